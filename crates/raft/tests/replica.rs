//! Replicas as `serve` runs them (each its own runtime, real sockets):
//! a fresh group forms itself, the one that leads takes the state its
//! machine applied and writes through the journal, and when it is gone
//! another takes over with everything acknowledged.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use boxoffice_raft::machine::Taken;
use boxoffice_raft::{Node, NodeId, Replica};
use boxoffice_store::journal::{encode, Journal, JournalConfig};
use support::{event_created, held, hold};

fn start_all(root: &std::path::Path) -> BTreeMap<NodeId, Replica> {
    support::start_replicas(root, 3, &support::cluster::config(1_000))
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Waits for the replica that leads, takes its state and starts its
/// journal through Raft.
fn lead(replicas: &BTreeMap<NodeId, Replica>) -> (NodeId, u64, u64, Journal) {
    let taken = block_on(async {
        let waits = replicas
            .iter()
            .map(|(id, r)| {
                Box::pin(async move { (*id, r.take_lead().await) })
                    as std::pin::Pin<Box<dyn std::future::Future<Output = (NodeId, Taken)>>>
            })
            .collect();
        tokio::time::timeout(Duration::from_secs(10), futures_select(waits))
            .await
            .expect("a replica leads within 10 s")
    });
    let (id, taken) = taken;
    let r = &replicas[&id];
    let held = held_in(&taken);
    let (journal, _flusher) = Journal::start(
        Box::new(r.sink(Duration::from_secs(5), 4)),
        taken.position,
        Some(r.journal_reader()),
        JournalConfig::default(),
    );
    (id, taken.position, held, journal)
}

/// The first of `futures` to finish.
async fn futures_select<T>(
    futures: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = T> + '_>>>,
) -> T {
    let mut futures = futures;
    std::future::poll_fn(move |cx| {
        for f in futures.iter_mut() {
            if let std::task::Poll::Ready(t) = f.as_mut().poll(cx) {
                return std::task::Poll::Ready(t);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

fn append(journal: &Journal, records: &[boxoffice_store::journal::Record]) {
    let receipts: Vec<_> = records
        .iter()
        .map(|r| journal.append(encode(r)).unwrap())
        .collect();
    block_on(async {
        for r in receipts {
            r.await.unwrap().unwrap();
        }
    });
}

#[test]
fn a_replica_takes_the_lead_with_everything_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let mut replicas = start_all(root.path());
    let (first, _, before, journal) = lead(&replicas);
    assert_eq!(before, 0);
    assert!(replicas[&first].is_leader());
    let mut records = vec![event_created("e")];
    records.extend((0..20u32).map(|seat| hold("e", "A", u64::from(seat), seat)));
    append(&journal, &records);
    // Every follower names the leader.
    for (id, r) in &replicas {
        if *id != first {
            let started = std::time::Instant::now();
            while r.leader().map(|(l, _)| l) != Some(first) {
                assert!(started.elapsed() < Duration::from_secs(5));
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(r.leader().unwrap().1.api, format!("http://api-{first}"));
        }
    }
    drop(journal);

    // While the sections own the state, the leader's snapshots are built
    // from its disk (the last snapshot and the log after it).
    let leader = &replicas[&first];
    let last = leader.raft().metrics().borrow().last_log_index;
    block_on(leader.raft().trigger().snapshot()).unwrap();
    let started = std::time::Instant::now();
    while leader.raft().metrics().borrow().snapshot.map(|s| s.index) != last {
        assert!(started.elapsed() < Duration::from_secs(10), "no snapshot");
        std::thread::sleep(Duration::from_millis(10));
    }
    let copy = tempfile::tempdir().unwrap();
    let file = boxoffice_raft::machine::SNAPSHOT_FILE;
    std::fs::create_dir(copy.path().join("machine")).unwrap();
    std::fs::copy(
        root.path().join(format!("replica-{first}/raft")).join(file),
        copy.path().join("machine").join(file),
    )
    .unwrap();
    assert_eq!(held(&support::machine(copy.path()).encoded()), 20);

    // The leader's process is gone; another takes the lead, warm, with
    // all 20 holds, and goes on.
    drop(replicas.remove(&first));
    let (second, _, after, journal) = lead(&replicas);
    assert_ne!(second, first);
    assert_eq!(after, 20);
    append(&journal, &[hold("e", "A", 20, 20)]);
    let follower = replicas.keys().find(|&&id| id != second).unwrap();
    let started = std::time::Instant::now();
    while held(&replicas[follower].machine().encoded()) != 21 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The holds in a state handed over.
fn held_in(taken: &Taken) -> u64 {
    held(
        &boxoffice_store::recovery::encode_snapshot(
            &taken.state,
            &boxoffice_store::idempotency::IdempotencyStore::new(1, 1, None),
            1,
            taken.position,
            0,
            None,
        )
        .1,
    )
}

#[test]
fn a_replica_restarted_as_leader_takes_every_entry_of_its_log() {
    // Alone in its group: its vote is its own, so it leads again at once
    // after a restart, in the same term, with no new entry; what its log
    // holds beyond the commit it had saved must be in the state it hands
    // over.
    let root = tempfile::tempdir().unwrap();
    let freeze = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = || {
        let peer_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = peer_listener.local_addr().unwrap().to_string();
        let members = BTreeMap::from([(0, Node::new(addr, "http://api-0"))]);
        let log = boxoffice_raft::LogConfig {
            freeze_committed: freeze.clone(),
            ..Default::default()
        };
        let raft = (*support::cluster::config(1_000)).clone();
        Replica::start(support::replica_config(
            root.path(),
            0,
            members,
            peer_listener,
            raft,
            log,
        ))
        .unwrap()
    };
    let first = start();
    let taken = block_on(first.take_lead());
    let (journal, flusher) = Journal::start(
        Box::new(first.sink(Duration::from_secs(5), 4)),
        taken.position,
        Some(first.journal_reader()),
        JournalConfig::default(),
    );
    let mut records = vec![event_created("e")];
    records.extend((0..10u32).map(|seat| hold("e", "A", u64::from(seat), seat)));
    append(&journal, &records);
    // The commit known on disk stays here; 20 more holds are committed
    // and acknowledged after it.
    freeze.store(true, std::sync::atomic::Ordering::SeqCst);
    let more: Vec<_> = (10..30u32)
        .map(|seat| hold("e", "A", u64::from(seat), seat))
        .collect();
    append(&journal, &more);
    journal.close();
    drop(journal);
    flusher.join().unwrap();
    drop(first);

    freeze.store(false, std::sync::atomic::Ordering::SeqCst);
    let again = start();
    let taken = block_on(async {
        tokio::time::timeout(Duration::from_secs(10), again.take_lead())
            .await
            .expect("the lone replica leads again")
    });
    assert_eq!(
        held_in(&taken),
        30,
        "every acknowledged hold is handed over"
    );
}
