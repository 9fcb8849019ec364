//! Three replicas over real sockets on loopback (the peer listener and
//! its HTTP client): they replicate and fail over as over the in-memory
//! network, and a peer listener refuses whoever lacks the shard's secret
//! or sends too much, before anything reaches Raft.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use boxoffice_raft::network::{serve, PeerConfig};
use boxoffice_raft::{Machine, Network, Node, NodeId, Raft};
use openraft::ServerState;
use support::{batch, event_created, held, hold};

struct Replica {
    raft: Raft,
    machine: Machine,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    addr: String,
}

fn peers() -> PeerConfig {
    PeerConfig {
        secret: Arc::from("test-shard-secret"),
        body_bytes_max: 1 << 20,
        snapshot_bytes_max: 1 << 30,
    }
}

async fn start(root: &std::path::Path, id: NodeId, listener: tokio::net::TcpListener) -> Replica {
    let dir = root.join(format!("replica-{id}"));
    let addr = listener.local_addr().unwrap().to_string();
    let machine = support::machine(&dir);
    let raft = Raft::new(
        id,
        support::cluster::config(1_000),
        Network::new(id, peers()),
        support::log(&dir),
        machine.clone(),
    )
    .await
    .unwrap();
    let server = tokio::spawn(serve(listener, raft.clone(), peers()));
    Replica {
        raft,
        machine,
        server,
        addr,
    }
}

async fn leader(replicas: &BTreeMap<NodeId, Replica>) -> NodeId {
    let started = Instant::now();
    loop {
        for (id, r) in replicas {
            let m = r.raft.metrics().borrow().clone();
            if m.state == ServerState::Leader && m.current_leader == Some(*id) {
                return *id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn converged(replicas: &BTreeMap<NodeId, Replica>) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let states: Vec<Vec<u8>> = replicas.values().map(|r| r.machine.encoded()).collect();
        if states.iter().all(|s| *s == states[0]) {
            return states[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no convergence"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_over_loopback_replicate_and_fail_over() {
    let root = tempfile::tempdir().unwrap();
    let mut replicas = BTreeMap::new();
    for id in 0..3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        replicas.insert(id, start(root.path(), id, listener).await);
    }
    let members: BTreeMap<NodeId, Node> = replicas
        .iter()
        .map(|(id, r)| (*id, Node::new(r.addr.clone(), format!("http://{}", r.addr))))
        .collect();
    replicas[&0].raft.initialize(members).await.unwrap();
    let first = leader(&replicas).await;
    let raft = replicas[&first].raft.clone();
    raft.client_write(batch(&[event_created("e")]))
        .await
        .unwrap();
    for seat in 0..10 {
        raft.client_write(batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    assert_eq!(held(&converged(&replicas).await), 10);

    // The leader's process is gone: its listener and its Raft.
    let gone = replicas.remove(&first).unwrap();
    gone.server.abort();
    gone.raft.shutdown().await.unwrap();
    let second = leader(&replicas).await;
    assert_ne!(second, first);
    let raft = replicas[&second].raft.clone();
    for seat in 10..15 {
        raft.client_write(batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    assert_eq!(held(&converged(&replicas).await), 15);
    for r in replicas.values() {
        r.raft.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_listener_refuses_strangers_and_floods_unread() {
    let root = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let replica = start(root.path(), 0, listener).await;
    let post = |path: &str, secret: &str, body: Vec<u8>| {
        let url = format!("http://{}/raft/{path}", replica.addr);
        let secret = secret.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut request = ureq::post(&url);
            if !secret.is_empty() {
                request = request.set("Authorization", &format!("Bearer {secret}"));
            }
            match request.send_bytes(&body) {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(e) => panic!("{e}"),
            }
        })
    };
    let vote = |secret: &str, body: Vec<u8>| post("vote", secret, body);
    // A vote for term 7 from a stranger would move this replica's term.
    let ballot = postcard::to_allocvec(&openraft::raft::VoteRequest::<NodeId>::new(
        openraft::Vote::new(7, 9),
        None,
    ))
    .unwrap();
    assert_eq!(vote("", ballot.clone()).await.unwrap(), 401);
    assert_eq!(vote("not-the-secret", ballot.clone()).await.unwrap(), 401);
    assert_eq!(
        vote("test-shard-secret", vec![0; (1 << 20) + 1])
            .await
            .unwrap(),
        413
    );
    assert_eq!(vote("test-shard-secret", vec![0xff; 7]).await.unwrap(), 400);
    // A snapshot's chunk far past the bound (openraft would grow its
    // buffer to the offset) is refused before it reaches Raft.
    let far = openraft::raft::InstallSnapshotRequest::<boxoffice_raft::Shard> {
        vote: openraft::Vote::new(7, 9),
        meta: openraft::SnapshotMeta {
            last_log_id: None,
            last_membership: Default::default(),
            snapshot_id: "far".into(),
        },
        offset: 1 << 40,
        data: vec![1; 16],
        done: false,
    };
    let far = postcard::to_allocvec(&far).unwrap();
    assert_eq!(
        post("snapshot", "test-shard-secret", far).await.unwrap(),
        413
    );
    assert_eq!(
        replica.raft.metrics().borrow().current_term,
        0,
        "nothing refused reached Raft"
    );
    // The shard's own peer is heard.
    assert_eq!(vote("test-shard-secret", ballot).await.unwrap(), 200);
    assert_eq!(replica.raft.metrics().borrow().current_term, 7);
    replica.raft.shutdown().await.unwrap();
}
