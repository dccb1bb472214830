//! The service's search scans run on a few threads of their own, one per core, fed in arrival
//! order. Scans are CPU-bound: run on the blocking pool, hundreds of them would share the
//! cores at once, each answer waiting for all of them, and the requests answered from the
//! caches would wait behind them for a core. Held in a queue instead, a scan starts when a
//! worker is free (a worker never waits while there is work: no thread is started or woken
//! per scan), and cached answers keep the cores between scans.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of worker threads running jobs in the order they were sent.
#[derive(Debug)]
pub(crate) struct ScanPool {
    jobs: Mutex<Sender<Job>>,
}

impl ScanPool {
    /// `workers` threads (at least one); they end when the pool is dropped.
    pub(crate) fn new(workers: usize) -> std::io::Result<ScanPool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("pubdeck-scan-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(ScanPool {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `f` on a worker; `None` when it panicked (the worker goes on).
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Option<R> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .ok()?;
        rx.await.ok()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = match jobs.lock().unwrap_or_else(|e| e.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        // A panicking job drops its answer channel: its caller gets `None`.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_on_the_workers_at_most_as_many_at_once() {
        let pool = Arc::new(ScanPool::new(2).unwrap());
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, Ordering::SeqCst);
                        let name = std::thread::current().name().map(str::to_string);
                        (i * 2, name)
                    })
                    .await
                })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let (doubled, name) = t.await.unwrap().unwrap();
            assert_eq!(doubled, i * 2);
            assert!(name.unwrap().starts_with("pubdeck-scan-"));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "two workers, both used");
    }

    #[tokio::test]
    async fn a_panicking_job_answers_none_and_the_worker_goes_on() {
        let pool = ScanPool::new(1).unwrap();
        let r: Option<()> = pool.run(|| panic!("scan failed")).await;
        assert!(r.is_none());
        assert_eq!(pool.run(|| 7).await, Some(7));
    }
}
