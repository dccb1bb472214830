//! Frame timing of a real session, for benchmarks (`scripts/bench-tui-build.sh`): with
//! `PUBDECK_FRAME_STATS=FILE` the event loop records how long each of its turns took (the
//! actions it applied, then its draw, if any: while a turn runs, input waits), how long each
//! draw took, and how long each key waited from the loop taking it to the end of the frame
//! that shows it, and writes a one-line JSON summary to FILE on exit. Off (and free)
//! otherwise.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Samples kept of each kind (a session longer than this keeps its first ones).
const MAX_SAMPLES: usize = 1_000_000;

#[derive(Debug)]
pub struct FrameStats {
    path: PathBuf,
    /// Keys applied since the last draw, by arrival.
    keys: Vec<Instant>,
    turns: Vec<Duration>,
    draws: Vec<Duration>,
    key_to_frame: Vec<Duration>,
}

fn push(v: &mut Vec<Duration>, d: Duration) {
    if v.len() < MAX_SAMPLES {
        v.push(d);
    }
}

fn summary(v: &mut [Duration]) -> serde_json::Value {
    v.sort_unstable();
    let at = |p: f64| {
        v.get(((v.len().saturating_sub(1)) as f64 * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    serde_json::json!({"n": v.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}

impl FrameStats {
    /// From `PUBDECK_FRAME_STATS`, if set.
    pub fn from_env() -> Option<FrameStats> {
        let path = std::env::var_os("PUBDECK_FRAME_STATS")?;
        Some(FrameStats::new(PathBuf::from(path)))
    }

    fn new(path: PathBuf) -> FrameStats {
        FrameStats {
            path,
            keys: Vec::new(),
            turns: Vec::new(),
            draws: Vec::new(),
            key_to_frame: Vec::new(),
        }
    }

    /// The loop took a key press at `at`.
    pub fn key(&mut self, at: Instant) {
        if self.keys.len() < MAX_SAMPLES {
            self.keys.push(at);
        }
    }

    /// A frame was drawn; drawing started at `at`.
    pub fn drawn(&mut self, at: Instant) {
        let now = Instant::now();
        push(&mut self.draws, now - at);
        for k in std::mem::take(&mut self.keys) {
            push(&mut self.key_to_frame, now - k);
        }
    }

    /// A turn of the loop that started at `at` (when its wait ended) is over.
    pub fn turn(&mut self, at: Instant) {
        push(&mut self.turns, at.elapsed());
    }

    /// Writes the summary.
    pub fn write(mut self) {
        let line = serde_json::json!({
            "turn": summary(&mut self.turns),
            "draw": summary(&mut self.draws),
            "key_to_frame": summary(&mut self.key_to_frame),
        });
        if let Err(e) = std::fs::write(&self.path, format!("{line}\n")) {
            tracing::warn!(path = %self.path.display(), error = %e, "could not write the frame statistics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_draws_and_key_waits_are_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        let mut s = FrameStats::new(path.clone());
        // A 20 ms turn with no draw, then a key that waits 10 ms for its frame.
        let t = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        s.turn(t);
        let t = Instant::now();
        s.key(t);
        std::thread::sleep(Duration::from_millis(10));
        s.drawn(Instant::now());
        s.turn(t);
        s.write();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(v["turn"]["n"], 2);
        assert_eq!(v["draw"]["n"], 1);
        assert_eq!(v["key_to_frame"]["n"], 1);
        assert!(v["turn"]["max_ms"].as_f64().unwrap() >= 20.0, "{v}");
        assert!(v["key_to_frame"]["max_ms"].as_f64().unwrap() >= 10.0, "{v}");
        assert!(v["draw"]["max_ms"].as_f64().unwrap() < 10.0, "{v}");
    }
}
