//! Replicas of one shard in one process, on their own disks (temporary
//! directories: the real log store and state machine), talking through
//! an in-memory network the test can cut link by link.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use boxoffice_raft::{Batch, LogStore, Machine, Node, NodeId, Raft, Shard};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{Config, ServerState};

/// The network: who is up, and which links are cut (both ways).
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    up: BTreeMap<NodeId, Raft>,
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Router {
    fn target(&self, from: NodeId, to: NodeId) -> Result<Raft, Unreachable> {
        let links = self.inner.lock().unwrap();
        if links.cut.contains(&(from, to)) {
            return Err(unreachable("the link is cut"));
        }
        links
            .up
            .get(&to)
            .cloned()
            .ok_or_else(|| unreachable("the replica is down"))
    }

    /// Cuts every link between `a` and the others.
    pub fn isolate(&self, a: NodeId, others: &[NodeId]) {
        let mut links = self.inner.lock().unwrap();
        for &b in others {
            links.cut.insert((a, b));
            links.cut.insert((b, a));
        }
    }

    pub fn heal(&self) {
        self.inner.lock().unwrap().cut.clear();
    }
}

fn unreachable(why: &str) -> Unreachable {
    Unreachable::new(&std::io::Error::other(why.to_string()))
}

pub struct Conn {
    from: NodeId,
    to: NodeId,
    router: Router,
}

/// A replica's view of the network: its own id on every link.
#[derive(Clone)]
pub struct From {
    id: NodeId,
    router: Router,
}

impl RaftNetworkFactory<Shard> for From {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Conn {
        Conn {
            from: self.id,
            to: target,
            router: self.router.clone(),
        }
    }
}

type Rpc<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, Node, E>>;

// openraft's error types are what they are.
#[allow(clippy::result_large_err)]
impl Conn {
    fn raft<E: std::error::Error>(&self) -> Rpc<Raft, E> {
        self.router
            .target(self.from, self.to)
            .map_err(RPCError::Unreachable)
    }

    /// The answer, unless the link was cut while the request travelled.
    fn back<T, E: std::error::Error>(
        &self,
        answer: Result<T, RaftError<NodeId, E>>,
    ) -> Rpc<T, RaftError<NodeId, E>> {
        self.router
            .target(self.to, self.from)
            .map_err(RPCError::Unreachable)?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<Shard> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Shard>,
        _option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>> {
        let raft = self.raft()?;
        let answer = raft.append_entries(rpc).await;
        self.back(answer)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Shard>,
        _option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let raft = self.raft()?;
        let answer = raft.install_snapshot(rpc).await;
        self.back(answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>> {
        let raft = self.raft()?;
        let answer = raft.vote(rpc).await;
        self.back(answer)
    }
}

/// Timings for tests: elections in a few hundred milliseconds, and a
/// snapshot every `snapshot_every` entries.
pub fn config(snapshot_every: u64) -> Arc<Config> {
    let config = Config {
        cluster_name: "test-shard".into(),
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(config.validate().expect("a valid Raft config"))
}

pub struct Replica {
    pub raft: Raft,
    pub machine: Machine,
    pub log: LogStore,
    /// Set: every sync of its log fails from now on.
    pub fail_syncs: Arc<std::sync::atomic::AtomicBool>,
}

/// `n` replicas of a shard, each with its own directory.
pub struct Cluster {
    pub router: Router,
    pub replicas: BTreeMap<NodeId, Replica>,
    dirs: BTreeMap<NodeId, PathBuf>,
    config: Arc<Config>,
    /// Every replica seen leading, by term (watched from each replica's
    /// metrics): Raft allows one a term.
    leaders: Arc<Mutex<BTreeMap<u64, BTreeSet<NodeId>>>>,
    _root: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` replicas and makes replica 0 initialise the group.
    pub async fn start(n: u64, snapshot_every: u64) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let mut cluster = Cluster {
            router: Router::default(),
            replicas: BTreeMap::new(),
            dirs: BTreeMap::new(),
            config: config(snapshot_every),
            leaders: Arc::default(),
            _root: root,
        };
        for id in 0..n {
            let dir = cluster._root.path().join(format!("replica-{id}"));
            cluster.dirs.insert(id, dir);
            cluster.start_replica(id).await;
        }
        let members: BTreeMap<NodeId, Node> = (0..n)
            .map(|id| {
                (
                    id,
                    Node::new(format!("replica-{id}"), format!("http://replica-{id}")),
                )
            })
            .collect();
        cluster.replicas[&0]
            .raft
            .initialize(members)
            .await
            .expect("the group initialises");
        cluster
    }

    /// Starts replica `id` on its directory (again, after `crash`).
    pub async fn start_replica(&mut self, id: NodeId) {
        let dir = &self.dirs[&id];
        let log_config = boxoffice_raft::LogConfig::default();
        let fail_syncs = log_config.fail_syncs.clone();
        let log = LogStore::open(&dir.join("log"), log_config).expect("a log opens");
        let machine = super::machine(dir);
        let network = From {
            id,
            router: self.router.clone(),
        };
        let raft = Raft::new(
            id,
            self.config.clone(),
            network,
            log.clone(),
            machine.clone(),
        )
        .await
        .expect("a replica starts");
        self.router
            .inner
            .lock()
            .unwrap()
            .up
            .insert(id, raft.clone());
        let mut metrics = raft.metrics();
        let leaders = self.leaders.clone();
        tokio::spawn(async move {
            loop {
                {
                    let m = metrics.borrow_and_update();
                    if m.state == ServerState::Leader {
                        let mut leaders = leaders.lock().unwrap();
                        leaders.entry(m.current_term).or_default().insert(id);
                    }
                }
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        });
        self.replicas.insert(
            id,
            Replica {
                raft,
                machine,
                log,
                fail_syncs,
            },
        );
    }

    /// Starts a replica with an empty directory of its own (not yet a
    /// member: add it through the leader).
    pub async fn add_replica(&mut self, id: NodeId) {
        let dir = self._root.path().join(format!("replica-{id}"));
        self.dirs.insert(id, dir);
        self.start_replica(id).await;
    }

    /// Stops replica `id` at once: off the network, its Raft shut down;
    /// its directory stays for `start_replica`.
    pub async fn crash(&mut self, id: NodeId) {
        self.router.inner.lock().unwrap().up.remove(&id);
        if let Some(r) = self.replicas.remove(&id) {
            r.raft.shutdown().await.expect("a replica stops");
        }
    }

    /// The leader every running replica in `among` agrees on, once there
    /// is one, and how long it took.
    pub async fn leader(&self, among: &[NodeId], within: Duration) -> (NodeId, Duration) {
        let started = Instant::now();
        loop {
            let mut seen = BTreeSet::new();
            let mut leading = None;
            for id in among {
                let m = self.replicas[id].raft.metrics().borrow().clone();
                seen.insert(m.current_leader);
                if m.state == ServerState::Leader {
                    leading = Some(*id);
                }
            }
            if let (Some(l), 1) = (leading, seen.len()) {
                if seen.contains(&Some(l)) {
                    return (l, started.elapsed());
                }
            }
            assert!(
                started.elapsed() < within,
                "no leader among {among:?} within {within:?}: saw {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Proposes `batch` on `id`; `Ok` once a majority has it durably and
    /// it is applied on `id`.
    pub async fn write(&self, id: NodeId, batch: Batch) -> Result<u64, String> {
        self.replicas[&id]
            .raft
            .client_write(batch)
            .await
            .map(|r| r.data.position)
            .map_err(|e| e.to_string())
    }

    /// Waits until every replica in `among` has applied up to the same
    /// entry as the first, and returns their encoded states.
    pub async fn converged(&self, among: &[NodeId], within: Duration) -> Vec<Vec<u8>> {
        let started = Instant::now();
        loop {
            let applied: BTreeSet<_> = among
                .iter()
                .map(|id| self.replicas[id].machine.last_applied())
                .collect();
            if applied.len() == 1 {
                let states: Vec<_> = among
                    .iter()
                    .map(|id| self.replicas[id].machine.encoded())
                    .collect();
                if states.iter().all(|s| *s == states[0]) {
                    return states;
                }
            }
            assert!(
                started.elapsed() < within,
                "replicas {among:?} did not converge within {within:?}: applied {applied:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Replica `id`'s directory.
    pub fn dir(&self, id: NodeId) -> &std::path::Path {
        &self.dirs[&id]
    }

    /// Stops every replica, and checks that no term had two leaders.
    pub async fn stop(self) {
        for r in self.replicas.values() {
            let _ = r.raft.shutdown().await;
        }
        let leaders = self.leaders.lock().unwrap();
        for (term, ids) in leaders.iter() {
            assert_eq!(ids.len(), 1, "term {term} had leaders {ids:?}");
        }
    }

    /// The replicas running now.
    pub fn up(&self) -> Vec<NodeId> {
        self.replicas.keys().copied().collect()
    }

    /// The replica that leads now, as the running replicas see it, if
    /// one does within `within`.
    pub async fn try_leader(&self, within: Duration) -> Option<NodeId> {
        let started = Instant::now();
        loop {
            for (id, r) in &self.replicas {
                let m = r.raft.metrics().borrow().clone();
                if m.state == ServerState::Leader && m.current_leader == Some(*id) {
                    return Some(*id);
                }
            }
            if started.elapsed() >= within {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
