//! One replica of a shard as `serve` runs it: its Raft on a runtime of
//! its own (`raft-*` threads, apart from the sections' and the HTTP
//! workers'), its log (the journal, in the data directory's `journal`),
//! its state machine (`raft`), its peer listener.
//!
//! A replica follows until it leads; then `take_lead` hands the state
//! its machine applied to the sections, which serve and write through
//! `sink` from there. It leads until `deposed` resolves; the process
//! then stops and starts again as a follower, from its disk (the
//! sections' memory may be ahead of what the shard agreed on).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use boxoffice_store::clock::Clock;
use boxoffice_store::journal::JournalReader;
use boxoffice_store::recovery::Answers;
use openraft::ServerState;

use crate::machine::Taken;
use crate::{
    LogConfig, LogStore, Machine, MachineConfig, Network, Node, NodeId, PeerConfig, Raft, RaftSink,
};

/// The machine's directory in a data directory.
pub const MACHINE_DIR: &str = "raft";

pub struct ReplicaConfig {
    pub id: NodeId,
    /// Every replica of the shard, this one included: the group that the
    /// one with the lowest id forms on its first start.
    pub members: BTreeMap<NodeId, Node>,
    pub data_dir: PathBuf,
    /// Bound by the caller (so that it can say where), not yet accepting.
    pub peer_listener: std::net::TcpListener,
    pub peers: PeerConfig,
    pub raft: openraft::Config,
    pub answers: Arc<dyn Answers + Send + Sync>,
    pub clock: Arc<dyn Clock>,
    pub idem_ttl_ms: u64,
    /// The log's failpoints (tests); `LogConfig::default()` otherwise.
    pub log: LogConfig,
}

pub struct Replica {
    id: NodeId,
    runtime: Option<tokio::runtime::Runtime>,
    raft: Raft,
    machine: Machine,
    log: LogStore,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

fn error(context: &str, e: impl std::fmt::Display) -> StartError {
    StartError(format!("{context}: {e}"))
}

impl Replica {
    /// Opens the replica's storage, starts its Raft and its peer
    /// listener, and initialises the group if this replica is fresh.
    /// Call it outside any async runtime (it runs its own).
    pub fn start(config: ReplicaConfig) -> Result<Replica, StartError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("raft")
            .enable_all()
            .build()
            .map_err(|e| error("starting Raft's runtime", e))?;
        let dir = &config.data_dir;
        let log = LogStore::open(&dir.join("journal"), config.log.clone())
            .map_err(|e| error("opening the Raft log", e))?;
        let machine = Machine::open(MachineConfig {
            dir: dir.join(MACHINE_DIR),
            answers: config.answers,
            clock: config.clock,
            idem_ttl_ms: config.idem_ttl_ms,
        })
        .map_err(|e| error("opening the state machine", e))?;
        let raft_config = Arc::new(
            config
                .raft
                .validate()
                .map_err(|e| error("the Raft settings", e))?,
        );
        let id = config.id;
        let network = Network::new(id, config.peers.clone());
        let raft = runtime
            .block_on(Raft::new(
                id,
                raft_config,
                network,
                log.clone(),
                machine.clone(),
            ))
            .map_err(|e| error("starting Raft", e))?;
        config
            .peer_listener
            .set_nonblocking(true)
            .map_err(|e| error("the peer listener", e))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(config.peer_listener)
                .map_err(|e| error("the peer listener", e))?
        };
        let (served, peers) = (raft.clone(), config.peers);
        runtime.spawn(async move {
            if let Err(error) = crate::network::serve(listener, served, peers).await {
                tracing::error!(%error, "the peer listener failed");
            }
        });
        let fresh = !runtime
            .block_on(raft.is_initialized())
            .map_err(|e| error("reading Raft's state", e))?;
        // The member with the lowest id forms the group, the others wait
        // to hear from it: two fresh replicas forming it at once would
        // each elect a leader, and the first would be deposed at once.
        let first = config.members.keys().next() == Some(&id);
        if fresh && first {
            if let Err(e) = runtime.block_on(raft.initialize(config.members)) {
                tracing::info!(error = %e, "the group is already formed");
            }
        }
        Ok(Replica {
            id,
            runtime: Some(runtime),
            raft,
            machine,
            log,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    /// Who leads, as this replica last heard.
    pub fn leader(&self) -> Option<(NodeId, Node)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some((id, node))
    }

    /// Whether this replica leads now.
    pub fn is_leader(&self) -> bool {
        let m = self.raft.metrics().borrow().clone();
        m.state == ServerState::Leader && m.current_leader == Some(self.id)
    }

    /// Waits until this replica leads and has applied every entry of its
    /// log (its term's first among them), then hands over the state (see [`Machine::take_for_serving`]). Needs no particular
    /// runtime.
    pub async fn take_lead(&self) -> Taken {
        let mut metrics = self.raft.metrics();
        loop {
            // Leading, with every entry of its log applied, its term's
            // included: a replica that restarts as the leader of the same
            // term (its vote was its own) proposes no new entry, and its
            // log may hold entries of that term it had not seen committed;
            // they must be in the state before the sections take it, since
            // the machine applies none of the sections' records after.
            let ready = {
                let m = metrics.borrow_and_update();
                m.state == ServerState::Leader
                    && m.current_leader == Some(self.id)
                    && m.last_applied
                        .is_some_and(|l| l.leader_id.term == m.current_term)
                    && m.last_applied.map(|l| l.index) == m.last_log_index
            };
            if ready {
                return self.machine.take_for_serving(self.journal_reader());
            }
            if metrics.changed().await.is_err() {
                // Raft stopped: wait for good (the process is stopping).
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once this replica no longer leads (or Raft stopped).
    pub async fn deposed(&self) {
        let mut metrics = self.raft.metrics();
        loop {
            let leads = {
                let m = metrics.borrow_and_update();
                m.state == ServerState::Leader && m.current_leader == Some(self.id)
            };
            if !leads || metrics.changed().await.is_err() {
                return;
            }
        }
    }

    /// The journal's sink while this replica leads (see [`RaftSink::new`]).
    pub fn sink(&self, commit_timeout: Duration, in_flight_max: usize) -> RaftSink {
        let handle = self
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the replica")
            .handle()
            .clone();
        RaftSink::new(self.raft.clone(), handle, commit_timeout, in_flight_max)
    }

    /// The log, read as a journal.
    pub fn journal_reader(&self) -> JournalReader {
        self.log.journal_reader()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Without blocking whoever drops the replica (an async
            // context, perhaps): Raft's tasks end with their runtime.
            runtime.shutdown_background();
        }
    }
}
