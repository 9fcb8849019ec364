//! The journal on a shard's leader, written through Raft: a record's
//! receipt resolves once a majority has its batch, every replica applies
//! it, and a leader cut off from its majority acknowledges nothing more.

mod support;

use std::time::Duration;

use boxoffice_raft::RaftSink;
use boxoffice_store::journal::{encode, Journal, JournalConfig, JournalError};
use support::cluster::Cluster;
use support::{event_created, held, hold};

fn journal_on(cluster: &Cluster, leader: u64, commit_timeout: Duration) -> Journal {
    let r = &cluster.replicas[&leader];
    let next = r
        .raft
        .metrics()
        .borrow()
        .last_log_index
        .map_or(0, |i| i + 1);
    let sink = RaftSink::new(
        r.raft.clone(),
        tokio::runtime::Handle::current(),
        commit_timeout,
        4,
    );
    let (journal, _flusher) = Journal::start(
        Box::new(sink),
        next,
        Some(r.log.journal_reader()),
        JournalConfig::default(),
    );
    journal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leaders_journal_is_acknowledged_by_a_majority() {
    let cluster = Cluster::start(3, 1_000).await;
    let (leader, _) = cluster.leader(&[0, 1, 2], Duration::from_secs(10)).await;
    let journal = journal_on(&cluster, leader, Duration::from_secs(5));
    let first = journal.append(encode(&event_created("e"))).unwrap();
    let first = first.await.unwrap().unwrap();
    // Many records at once: they share batches (group commit).
    let receipts: Vec<_> = (0..100u32)
        .map(|seat| {
            journal
                .append(encode(&hold("e", "A", u64::from(seat), seat)))
                .unwrap()
        })
        .collect();
    let mut positions = Vec::new();
    for r in receipts {
        positions.push(r.await.unwrap().unwrap());
    }
    assert!(positions.windows(2).all(|w| w[0] <= w[1]), "{positions:?}");
    assert!(positions[0] > first);
    assert!(
        *positions.last().unwrap() < first + 100,
        "100 records in fewer than 100 batches"
    );
    assert_eq!(journal.durable_position(), positions.last().unwrap() + 1);
    let states = cluster.converged(&[0, 1, 2], Duration::from_secs(20)).await;
    assert_eq!(held(&states[0]), 100);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_fails_its_journal_and_acknowledges_nothing() {
    let cluster = Cluster::start(3, 1_000).await;
    let (leader, _) = cluster.leader(&[0, 1, 2], Duration::from_secs(10)).await;
    let journal = journal_on(&cluster, leader, Duration::from_millis(1_500));
    journal
        .append(encode(&event_created("e")))
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let rest: Vec<u64> = (0..3).filter(|&id| id != leader).collect();
    cluster.router.isolate(leader, &rest);
    let cut_off = journal.append(encode(&hold("e", "A", 0, 0))).unwrap();
    assert_eq!(cut_off.await.unwrap(), Err(JournalError::Failed));
    assert!(journal.is_failed());
    assert!(journal.append(encode(&hold("e", "A", 1, 1))).is_err());
    cluster.stop().await;
}
