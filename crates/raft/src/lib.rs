//! Replication of a shard: its journal as a Raft log, its state as the
//! replicated state machine, so that the replicas of a shard agree on
//! every change and a change is acknowledged only once a majority has it
//! on stable storage.
//!
//! Consensus is openraft's (elections, terms, replication, commitment);
//! this crate gives it what is ours:
//! - [`LogStore`]: the Raft log in sled, written with group commit: an
//!   append is reported flushed only after sled's flush and an
//!   `fdatasync` of its data file, and openraft counts an entry towards
//!   a majority only once its replica reported that;
//! - [`Machine`]: the state machine, the journal's records applied through
//!   the store's `Replay` (the code a restart replays with), its
//!   snapshots the store's snapshot format with Raft's metadata in front.
//!
//! A log entry's payload is a [`Batch`]: the encoded records of one group
//! commit, in journal order. A journal position is the index of the entry
//! after it (entry `i` applied: position `i + 1`).
//!
//! Invariants:
//! - only the log's syncer thread flushes its sled store (spacejam/sled#1308);
//! - after the first failed write the log refuses everything (fail-stop),
//!   and openraft, told through `log_io_completed(Err)`, stops the node;
//! - the state machine applies exactly the records the log holds, in
//!   order, and a record that does not apply is an error, never skipped:
//!   two replicas that applied the same entries hold the same state.

pub mod log;
pub mod machine;
pub mod network;
pub mod replica;
pub mod sink;

pub use log::{LogConfig, LogStore};
pub use machine::{Machine, MachineConfig};
pub use network::{Network, PeerConfig};
pub use replica::{Replica, ReplicaConfig};
pub use sink::RaftSink;

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// The Raft types of a shard.
    pub Shard:
        D = Batch,
        R = Applied,
        Node = Node,
);

pub type NodeId = u64;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<Shard>;
pub type Raft = openraft::Raft<Shard>;
pub type StorageError = openraft::StorageError<NodeId>;

/// One group commit of a leader's journal: its records, encoded as the
/// journal encodes them (`len | crc32 | payload` each), in order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub records: Vec<u8>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} bytes)", self.records.len())
    }
}

/// Where a replica is: the listener its peers send Raft's messages to
/// (`host:port`), and its public API's base URL, where a follower sends
/// the fans it cannot serve.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub peer: String,
    pub api: String,
}

impl Node {
    pub fn new(peer: impl Into<String>, api: impl Into<String>) -> Node {
        Node {
            peer: peer.into(),
            api: api.into(),
        }
    }
}

/// What applying an entry answers: the journal position after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub position: u64,
}
