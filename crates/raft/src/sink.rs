//! The journal's sink on a shard's leader: the flusher's batch becomes
//! one Raft entry, durable once a majority of the replicas has it on
//! stable storage and the leader applied it.
//!
//! Several batches are in flight at once (up to `in_flight_max`): the
//! flusher proposes a batch (`client_write_ff`: it is in the leader's log
//! when that returns) and goes back for the next while the `journal-acks`
//! thread waits for the commits in log order and completes each batch's
//! records. A commit costs two fdatasyncs and a round trip; with one
//! batch in flight, each batch paid all of it (BENCHMARKS.md,
//! "Replication").
//!
//! A batch not committed within `commit_timeout` (a leader cut off from
//! its majority, or deposed) fails the journal, and so does every batch
//! after it: the sections' memory may then be ahead of what the shard
//! agreed on, so nothing more may be acknowledged here (fail-stop, as
//! after a failed disk write). Such an entry may still commit later; it
//! was never acknowledged.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use boxoffice_store::journal::{Completion, JournalConfig, Sink};
use crossbeam_channel::{Receiver, Sender};
use openraft::raft::ClientWriteResult;

use crate::{Batch, Raft, Shard};

type Answer = ClientWriteResult<Shard>;

/// A proposed batch, waiting for its commit (or already refused).
enum Pending {
    Proposed(tokio::sync::oneshot::Receiver<Answer>, Completion),
    Refused(io::Error, Completion),
}

pub struct RaftSink {
    raft: Raft,
    runtime: tokio::runtime::Handle,
    /// One token a batch in flight: taken before a batch is proposed,
    /// given back once it is completed.
    slots: Receiver<()>,
    pending: Option<Sender<Pending>>,
    acks: Option<JoinHandle<()>>,
}

impl RaftSink {
    /// Proposes through `raft`, whose tasks run on `runtime`, with up to
    /// `in_flight_max` batches waiting for their commit.
    pub fn new(
        raft: Raft,
        runtime: tokio::runtime::Handle,
        commit_timeout: Duration,
        in_flight_max: usize,
    ) -> RaftSink {
        let in_flight_max = in_flight_max.max(1);
        let (free, slots) = crossbeam_channel::bounded(in_flight_max);
        for _ in 0..in_flight_max {
            let _ = free.send(());
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let acks = std::thread::Builder::new()
            .name("journal-acks".into())
            .spawn(move || complete_in_order(rx, commit_timeout, free))
            .expect("spawn the journal's ack thread");
        RaftSink {
            raft,
            runtime,
            slots,
            pending: Some(tx),
            acks: Some(acks),
        }
    }
}

/// Completes each batch once its commit is known, in the order proposed.
/// Its timer is its own (a runtime of this thread), not Raft's: the
/// replica's runtime may be gone while batches still wait. Once a batch
/// failed, the later ones fail at once (none may be acknowledged).
fn complete_in_order(rx: Receiver<Pending>, timeout: Duration, free: Sender<()>) {
    let timer = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(timer) => timer,
        Err(error) => {
            tracing::error!(%error, "the journal's ack thread has no timer");
            for pending in rx {
                let (Pending::Proposed(_, done) | Pending::Refused(_, done)) = pending;
                done(Err(io::Error::other(
                    "the journal's ack thread has no timer",
                )));
            }
            return;
        }
    };
    let mut failed = false;
    for pending in rx {
        match pending {
            Pending::Refused(error, done) => {
                failed = true;
                done(Err(error))
            }
            Pending::Proposed(_, done) if failed => {
                done(Err(io::Error::other("an earlier batch was not committed")))
            }
            Pending::Proposed(answer, done) => {
                let answer = timer.block_on(async { tokio::time::timeout(timeout, answer).await });
                let result = match answer {
                    Ok(Ok(Ok(response))) => Ok(response.log_id.index),
                    Ok(Ok(Err(e))) => {
                        Err(io::Error::other(format!("the shard did not commit: {e}")))
                    }
                    Ok(Err(_)) => Err(io::Error::other("Raft stopped before the commit")),
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the shard did not commit within {timeout:?}"),
                    )),
                };
                if let Err(error) = &result {
                    failed = true;
                    tracing::error!(%error, "a batch was not committed; the journal stops acknowledging");
                }
                done(result);
            }
        }
        let _ = free.send(());
    }
}

impl Sink for RaftSink {
    fn submit(&mut self, bytes: Vec<u8>, _config: &JournalConfig, done: Completion) {
        // Waits while `in_flight_max` batches wait for their commit (back
        // pressure on the flusher, so on the sections' queue). The ack
        // thread gives slots back for as long as it lives.
        if self.slots.recv().is_err() {
            return done(Err(io::Error::other("the journal's ack thread is gone")));
        }
        let raft = self.raft.clone();
        let proposed = self
            .runtime
            .block_on(async move { raft.client_write_ff(Batch { records: bytes }).await });
        let pending = match proposed {
            Ok(answer) => Pending::Proposed(answer, done),
            Err(e) => Pending::Refused(
                io::Error::other(format!("Raft refused the batch: {e}")),
                done,
            ),
        };
        let Some(tx) = &self.pending else {
            return match pending {
                Pending::Proposed(_, done) | Pending::Refused(_, done) => {
                    done(Err(io::Error::other("the journal is draining")))
                }
            };
        };
        {
            if let Err(e) = tx.send(pending) {
                match e.into_inner() {
                    Pending::Proposed(_, done) | Pending::Refused(_, done) => {
                        done(Err(io::Error::other("the journal's ack thread is gone")))
                    }
                }
            }
        }
    }

    fn drain(&mut self) {
        self.pending.take();
        if let Some(acks) = self.acks.take() {
            let _ = acks.join();
        }
    }

    /// The Raft log purges itself after its snapshots.
    fn compact(&mut self, _below: u64, _max: usize) -> io::Result<usize> {
        Ok(0)
    }
}

impl Drop for RaftSink {
    fn drop(&mut self) {
        self.drain();
    }
}
