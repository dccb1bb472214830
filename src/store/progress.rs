//! Typed progress events for uploads and downloads, and the meter that produces them.
//!
//! Byte events are monotonic: a failed attempt's bytes are taken back internally,
//! but `done` only ever grows, so the sum of all `delta`s is exactly the number of
//! bytes transferred by this run and the last `done` equals `total`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// One progress event of a transfer.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// The transfer begins. `resumed_bytes` were already done by an earlier run.
    Started {
        key: String,
        total_bytes: u64,
        parts: u32,
        part_size: u64,
        resumed_bytes: u64,
    },
    PartStarted {
        part: u32,
        bytes: u64,
    },
    PartFinished {
        part: u32,
        bytes: u64,
    },
    /// `delta` new bytes moved; `done` counts resumed bytes too, out of `total`.
    Bytes {
        delta: u64,
        done: u64,
        total: u64,
    },
    /// Smoothed rate, emitted about once per tick interval while the transfer runs.
    Rate {
        bytes_per_sec: f64,
        eta: Option<Duration>,
        done: u64,
        total: u64,
    },
    /// An attempt failed and will be retried after `delay`.
    Retry {
        part: Option<u32>,
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    /// Nothing moved for `idle` (at least the configured stall threshold).
    Stalled {
        idle: Duration,
    },
    Finished {
        key: String,
        total_bytes: u64,
        /// Bytes transferred by this run (excludes resumed bytes).
        sent_bytes: u64,
        resumed_bytes: u64,
        elapsed: Duration,
    },
    /// Nothing to do: the object is already present with this size.
    Skipped {
        key: String,
        size: u64,
    },
}

/// Where progress events go; cheap to clone; `ProgressSink::none()` discards them.
#[derive(Debug, Clone, Default)]
pub struct ProgressSink(Option<UnboundedSender<Progress>>);

impl ProgressSink {
    pub fn none() -> Self {
        ProgressSink(None)
    }

    pub fn new(tx: UnboundedSender<Progress>) -> Self {
        ProgressSink(Some(tx))
    }

    /// A sink plus the receiver to read its events from.
    pub fn channel() -> (Self, UnboundedReceiver<Progress>) {
        let (tx, rx) = unbounded_channel();
        (ProgressSink(Some(tx)), rx)
    }

    pub fn send(&self, event: Progress) {
        if let Some(tx) = &self.0 {
            // A dropped receiver just means nobody is watching.
            let _ = tx.send(event);
        }
    }
}

/// Timing knobs for rate and stall reporting.
#[derive(Debug, Clone, Copy)]
pub struct ProgressTiming {
    /// How often `Rate` events (and stall checks) happen.
    pub tick: Duration,
    /// Emit `Stalled` when no byte moved for this long.
    pub stall_after: Duration,
}

impl Default for ProgressTiming {
    fn default() -> Self {
        ProgressTiming {
            tick: Duration::from_secs(1),
            stall_after: Duration::from_secs(15),
        }
    }
}

struct MeterState {
    reported: u64,
    last_move: Instant,
}

/// Counts transferred bytes across concurrent attempts and reports them monotonically.
pub(crate) struct Meter {
    sink: ProgressSink,
    total: u64,
    base: u64,
    raw: AtomicU64,
    state: Mutex<MeterState>,
}

impl Meter {
    /// `base` bytes were done before this run (resumed); `total` includes them.
    pub(crate) fn new(sink: ProgressSink, total: u64, base: u64) -> Arc<Meter> {
        Arc::new(Meter {
            sink,
            total,
            base,
            raw: AtomicU64::new(0),
            state: Mutex::new(MeterState {
                reported: 0,
                last_move: Instant::now(),
            }),
        })
    }

    /// Record `n` more bytes moved by some attempt.
    pub(crate) fn add(&self, n: u64) {
        let raw = self.raw.fetch_add(n, Ordering::SeqCst) + n;
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if raw > st.reported {
            let delta = raw - st.reported;
            st.reported = raw;
            st.last_move = Instant::now();
            self.sink.send(Progress::Bytes {
                delta,
                done: self.base + raw,
                total: self.total,
            });
        }
    }

    /// Take back `n` bytes of a failed attempt (they will be sent again).
    pub(crate) fn take_back(&self, n: u64) {
        self.raw.fetch_sub(n, Ordering::SeqCst);
    }

    /// Bytes reported so far by this run.
    pub(crate) fn reported(&self) -> u64 {
        self.state.lock().map(|s| s.reported).unwrap_or(0)
    }

    fn snapshot(&self) -> (u64, Instant) {
        self.state
            .lock()
            .map(|s| (s.reported, s.last_move))
            .unwrap_or((0, Instant::now()))
    }

    /// Start the rate/ETA/stall reporter; it stops when the guard is dropped.
    pub(crate) fn start_ticker(self: &Arc<Self>, timing: ProgressTiming) -> TickerGuard {
        let meter = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let mut interval = tokio::time::interval(timing.tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            interval.tick().await;
            let mut last = (meter.snapshot().0, Instant::now());
            let mut rate: Option<f64> = None;
            let mut stall_warned = false;
            loop {
                interval.tick().await;
                let (reported, last_move) = meter.snapshot();
                let now = Instant::now();
                let dt = now.duration_since(last.1).as_secs_f64();
                if dt > 0.0 {
                    let sample = (reported - last.0) as f64 / dt;
                    // Exponential smoothing over roughly the last few seconds.
                    rate = Some(match rate {
                        None => sample,
                        Some(r) => 0.7 * r + 0.3 * sample,
                    });
                }
                last = (reported, now);
                let done = meter.base + reported;
                let r = rate.unwrap_or(0.0);
                let eta = (r > 1.0)
                    .then(|| Duration::from_secs_f64(meter.total.saturating_sub(done) as f64 / r));
                meter.sink.send(Progress::Rate {
                    bytes_per_sec: r,
                    eta,
                    done,
                    total: meter.total,
                });
                let idle = now.duration_since(last_move);
                if idle >= timing.stall_after {
                    if !stall_warned {
                        stall_warned = true;
                        meter.sink.send(Progress::Stalled { idle });
                    }
                } else {
                    stall_warned = false;
                }
            }
        });
        TickerGuard(handle)
    }
}

/// Stops the ticker task on drop.
pub(crate) struct TickerGuard(tokio::task::JoinHandle<()>);

/// Announces a transfer of `key` sent as one piece (`Started`, plus `PartStarted` for
/// uploads) and starts its meter and rate ticker.
pub(crate) fn begin_single(
    progress: &ProgressSink,
    key: &str,
    size: u64,
    resumed: u64,
    upload: bool,
    timing: ProgressTiming,
) -> (Arc<Meter>, TickerGuard, Instant) {
    progress.send(Progress::Started {
        key: key.to_owned(),
        total_bytes: size,
        parts: 1,
        part_size: size,
        resumed_bytes: resumed,
    });
    if upload {
        progress.send(Progress::PartStarted {
            part: 1,
            bytes: size,
        });
    }
    let meter = Meter::new(progress.clone(), size, resumed);
    let ticker = meter.start_ticker(timing);
    (meter, ticker, Instant::now())
}

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Translates a transfer's progress into the engine's event stream (the one place this
/// happens): bytes and rates become `Transfer`, retries `TransferRetry`, stalls
/// `TransferStalled`, and the end `TransferDone`. Returns when the sink side is dropped.
pub async fn forward_as_events(
    mut progress: UnboundedReceiver<Progress>,
    tx: crate::event::EventTx,
    direction: crate::event::Direction,
    key: String,
) {
    use crate::event::Event;
    let (mut sent, mut total, mut rate, mut eta, mut retries) = (0u64, 0u64, 0.0, None, 0u32);
    let started = Instant::now();
    while let Some(p) = progress.recv().await {
        let event = match p {
            Progress::Started {
                total_bytes,
                resumed_bytes,
                ..
            } => {
                total = total_bytes;
                sent = resumed_bytes;
                None
            }
            Progress::Bytes { done, total: t, .. } => {
                sent = done;
                total = t;
                None
            }
            Progress::Rate {
                bytes_per_sec,
                eta: e,
                done,
                total: t,
            } => {
                rate = bytes_per_sec;
                eta = e.map(|d| d.as_secs_f64());
                sent = done;
                total = t;
                None
            }
            Progress::Retry {
                attempt, reason, ..
            } => {
                retries += 1;
                Some(Event::TransferRetry {
                    direction,
                    key: key.clone(),
                    attempt,
                    reason,
                })
            }
            Progress::Stalled { idle } => Some(Event::TransferStalled {
                direction,
                key: key.clone(),
                idle,
            }),
            Progress::Skipped { size, .. } => Some(Event::TransferDone {
                direction,
                key: key.clone(),
                size,
                moved: 0,
                elapsed: started.elapsed(),
            }),
            Progress::Finished {
                total_bytes,
                sent_bytes,
                elapsed,
                ..
            } => Some(Event::TransferDone {
                direction,
                key: key.clone(),
                size: total_bytes,
                moved: sent_bytes,
                elapsed,
            }),
            Progress::PartStarted { .. } | Progress::PartFinished { .. } => continue,
        };
        let event = event.unwrap_or_else(|| Event::Transfer {
            direction,
            key: key.clone(),
            sent,
            total,
            rate,
            eta,
            retries,
        });
        if tx.send(event).await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn meter_is_monotonic_across_take_back() {
        let (sink, mut rx) = ProgressSink::channel();
        let m = Meter::new(sink, 100, 10);
        m.add(30);
        m.take_back(30);
        m.add(20); // still below the reported 30: no event
        m.add(70);
        drop(m);
        let mut deltas = 0;
        let mut last = 0;
        while let Ok(ev) = rx.try_recv() {
            if let Progress::Bytes { delta, done, .. } = ev {
                assert!(done > last);
                last = done;
                deltas += delta;
            }
        }
        assert_eq!(deltas, 90);
        assert_eq!(last, 100);
    }
}
