//! Coalesced reads of the database's state version.
//!
//! Every request of the service needs the state version as of its arrival (it decides whether
//! the cached token, visible catalogs, package lists and pages are current). Reading it once
//! per request costs one database round trip per request: on PostgreSQL, more CPU than the
//! rest of a cached search. Here concurrent requests share reads: a request waits for a read
//! that *started after it arrived* (so what it sees is never older than the database at its
//! arrival: a change committed before the request, through any instance, is seen), and one
//! read answers every request that arrived while the previous read was in flight. Under load
//! that is one query per round trip instead of one per request; an idle service still answers
//! a lone request after exactly one read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::CatalogResult;
use super::db::Db;

/// The outcome of read number `seq`. A failed read answers every request that waited for it
/// with its error: during a database outage each request fails after one bounded read, not
/// after a second read of its own.
#[derive(Debug, Clone)]
struct Reading {
    seq: u64,
    version: CatalogResult<i64>,
}

#[derive(Debug, Default)]
struct Schedule {
    /// The read in flight, if any.
    running: Option<u64>,
    /// The last read started.
    started: u64,
    /// Whether a request arrived during the read in flight (another read must follow it).
    again: bool,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct StateClock {
    db: Db,
    schedule: Mutex<Schedule>,
    readings: watch::Sender<Reading>,
    /// Reads made so far.
    reads: AtomicU64,
}

impl StateClock {
    pub(crate) fn new(db: Db) -> StateClock {
        StateClock {
            db,
            schedule: Mutex::default(),
            readings: watch::Sender::new(Reading {
                seq: 0,
                version: Ok(0),
            }),
            reads: AtomicU64::new(0),
        }
    }

    /// The state version as of no earlier than this call. The read runs as a task of its
    /// own, so a request that goes away does not strand the others.
    pub(crate) async fn now(self: &Arc<Self>) -> CatalogResult<i64> {
        let mut readings = self.readings.subscribe();
        let (ticket, spawn) = {
            let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
            match s.running {
                Some(seq) => {
                    s.again = true;
                    (seq + 1, false)
                }
                None => {
                    s.started += 1;
                    s.running = Some(s.started);
                    (s.started, true)
                }
            }
        };
        if spawn {
            tokio::spawn(Arc::clone(self).read_loop(ticket));
        }
        let reading = readings
            .wait_for(|r| r.seq >= ticket)
            .await
            .map(|r| r.version.clone());
        match reading {
            Ok(version) => version,
            // The sender lives as long as `self`: not reached; read alone to be sure.
            Err(_) => self.db.state_version().await,
        }
    }

    /// Reads of the database made so far.
    #[cfg(test)]
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Reads until no request waits for a read that has not started yet.
    async fn read_loop(self: Arc<Self>, mut seq: u64) {
        loop {
            self.reads.fetch_add(1, Ordering::Relaxed);
            let version = self.db.state_version().await;
            self.readings.send_replace(Reading { seq, version });
            let mut s = self.schedule.lock().unwrap_or_else(|e| e.into_inner());
            if s.again {
                s.again = false;
                s.started += 1;
                s.running = Some(s.started);
                seq = s.started;
            } else {
                s.running = None;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Scope;

    async fn db() -> (tempfile::TempDir, Db) {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::connect(tmp.path().join("c.db").to_str().unwrap())
            .await
            .unwrap();
        db.ensure_user("alice").await.unwrap();
        (tmp, db)
    }

    /// Moves the state version on once (a token revocation does).
    async fn change(db: &Db) {
        let (info, _) = db.create_token("alice", Scope::Read, None).await.unwrap();
        db.revoke_token(&info.id).await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_callers_share_reads_and_see_the_current_version() {
        let (_tmp, db) = db().await;
        let clock = Arc::new(StateClock::new(db.clone()));
        let first = clock.now().await.unwrap();
        assert_eq!(clock.reads(), 1);
        change(&db).await;
        // 200 callers arriving together (all polled before the first read can finish, on
        // this one thread): the first starts a read, the others arrived while it was in
        // flight and share the one after it. Two reads, not 200.
        let versions = futures::future::join_all((0..200).map(|_| clock.now())).await;
        assert_eq!(
            clock.reads(),
            3,
            "one read for the first caller, one for the rest"
        );
        for v in versions {
            assert_eq!(
                v.unwrap(),
                first + 1,
                "the change committed before the calls"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_committed_before_a_call_is_always_seen() {
        let (_tmp, db) = db().await;
        let clock = Arc::new(StateClock::new(db.clone()));
        let start = clock.now().await.unwrap();
        // Readers keep reads in flight all along, so every check below races a shared read
        // that may have started before the change.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..8 {
            let (clock, stop) = (Arc::clone(&clock), Arc::clone(&stop));
            readers.push(tokio::spawn(async move {
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = clock.now().await.unwrap();
                    assert!(v >= last, "the version went back: {v} after {last}");
                    last = v;
                }
            }));
        }
        for i in 1..=40 {
            change(&db).await;
            assert_eq!(clock.now().await.unwrap(), start + i);
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
        assert!(clock.reads() > 40);
    }
}
