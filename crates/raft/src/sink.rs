//! The journal's sink on a shard's leader: the flusher's batch becomes
//! one Raft entry, durable once a majority of the replicas has it on
//! stable storage and the leader applied it (`client_write`).
//!
//! A write that is not committed within `commit_timeout` (a leader cut
//! off from its majority, or deposed) fails the journal: the sections'
//! memory may then be ahead of what the shard agreed on, so nothing more
//! may be acknowledged here (fail-stop, as after a failed disk write).
//! The entry may still commit later; it was never acknowledged.

use std::io;
use std::time::Duration;

use boxoffice_store::journal::{JournalConfig, Sink};

use crate::{Batch, Raft};

pub struct RaftSink {
    raft: Raft,
    runtime: tokio::runtime::Handle,
    commit_timeout: Duration,
}

impl RaftSink {
    /// Proposes through `raft`, whose tasks run on `runtime`.
    pub fn new(raft: Raft, runtime: tokio::runtime::Handle, commit_timeout: Duration) -> RaftSink {
        RaftSink {
            raft,
            runtime,
            commit_timeout,
        }
    }
}

impl Sink for RaftSink {
    fn write(&mut self, bytes: &[u8], _config: &JournalConfig) -> io::Result<u64> {
        let batch = Batch {
            records: bytes.to_vec(),
        };
        // The timer is made inside the runtime's context, not this thread's.
        let written = self.runtime.block_on(async {
            tokio::time::timeout(self.commit_timeout, self.raft.client_write(batch)).await
        });
        match written {
            Ok(Ok(response)) => Ok(response.log_id.index),
            Ok(Err(e)) => Err(io::Error::other(format!("the shard did not commit: {e}"))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the shard did not commit within {:?}", self.commit_timeout),
            )),
        }
    }

    /// The Raft log purges itself after its snapshots.
    fn compact(&mut self, _below: u64, _max: usize) -> io::Result<usize> {
        Ok(0)
    }
}
