//! Three replicas of a shard (the real log store and state machine, each
//! on its own directory) over an in-memory network: what a majority
//! acknowledged is never lost, a lost or cut-off leader is replaced, and
//! every replica ends with the same state, byte for byte.

mod support;

use std::time::Duration;

use support::cluster::Cluster;
use support::{batch, event_created, held, hold};

const ELECTION: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_applies_the_same_records() {
    let cluster = Cluster::start(3, 1_000).await;
    let (leader, _) = cluster.leader(&[0, 1, 2], ELECTION).await;
    cluster
        .write(leader, batch(&[event_created("e")]))
        .await
        .unwrap();
    for seat in 0..40u32 {
        // Two holds a batch, as a group commit carries several.
        let h = u64::from(seat) * 2;
        let records = [
            hold("e", "A", h, seat * 2),
            hold("e", "A", h + 1, seat * 2 + 1),
        ];
        cluster.write(leader, batch(&records)).await.unwrap();
    }
    let states = cluster.converged(&[0, 1, 2], SETTLE).await;
    assert_eq!(held(&states[0]), 80);

    // Each replica's log reads as a journal: the event, then the holds in
    // the order they were written, batch `i` holding entry `i`'s records.
    let events = cluster.replicas[&leader]
        .raft
        .metrics()
        .borrow()
        .last_log_index;
    for (id, r) in &cluster.replicas {
        let mut seen = Vec::new();
        let end = r
            .log
            .journal_reader()
            .replay_range(0, None, |batch, record| {
                seen.push((batch, record));
                Ok::<(), boxoffice_store::journal::OpenError>(())
            })
            .unwrap();
        assert_eq!(Some(end - 1), events, "replica {id}");
        assert_eq!(seen.len(), 81, "replica {id}");
        assert_eq!(seen[0].1, event_created("e"));
        for (i, (batch, record)) in seen[1..].iter().enumerate() {
            let seat = i as u32;
            assert_eq!(
                *record,
                hold("e", "A", u64::from(seat), seat),
                "replica {id}"
            );
            // Entry 2 is the event; each later entry two holds.
            assert_eq!(*batch, 3 + i as u64 / 2, "replica {id}");
        }
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_leader_is_replaced_and_nothing_acknowledged_is_lost() {
    let mut cluster = Cluster::start(3, 1_000).await;
    let (first, _) = cluster.leader(&[0, 1, 2], ELECTION).await;
    cluster
        .write(first, batch(&[event_created("e")]))
        .await
        .unwrap();
    for seat in 0..10 {
        cluster
            .write(first, batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    cluster.crash(first).await;
    let rest: Vec<u64> = (0..3).filter(|&id| id != first).collect();
    let (second, _) = cluster.leader(&rest, ELECTION).await;
    assert_ne!(second, first);
    for seat in 10..20 {
        cluster
            .write(second, batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    let states = cluster.converged(&rest, SETTLE).await;
    assert_eq!(held(&states[0]), 20, "every acknowledged hold, on both");

    // The old leader comes back from its disk and catches up.
    cluster.start_replica(first).await;
    let states = cluster.converged(&[0, 1, 2], SETTLE).await;
    assert_eq!(held(&states[0]), 20);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_acknowledges_nothing_and_the_others_go_on() {
    let cluster = Cluster::start(3, 1_000).await;
    let (old, _) = cluster.leader(&[0, 1, 2], ELECTION).await;
    cluster
        .write(old, batch(&[event_created("e")]))
        .await
        .unwrap();
    let rest: Vec<u64> = (0..3).filter(|&id| id != old).collect();
    cluster.router.isolate(old, &rest);

    // Without a majority, the old leader cannot commit: its write waits
    // (and is later thrown away), it is never acknowledged.
    let attempt = tokio::time::timeout(
        Duration::from_secs(2),
        cluster.write(old, batch(&[hold("e", "A", 0, 700)])),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "a leader without a majority acknowledged a write: {attempt:?}"
    );

    let (new, _) = cluster.leader(&rest, ELECTION).await;
    for seat in 0..5 {
        cluster
            .write(new, batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    cluster.router.heal();
    let states = cluster.converged(&[0, 1, 2], SETTLE).await;
    assert_eq!(
        held(&states[0]),
        5,
        "the cut-off leader's unacknowledged hold is gone everywhere"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_after_the_log_was_purged_installs_a_snapshot() {
    let mut cluster = Cluster::start(3, 20).await;
    let (leader, _) = cluster.leader(&[0, 1, 2], ELECTION).await;
    cluster
        .write(leader, batch(&[event_created("e")]))
        .await
        .unwrap();
    for seat in 0..60 {
        cluster
            .write(leader, batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    cluster.converged(&[0, 1, 2], SETTLE).await;
    // Snapshots were taken and the log purged: entry 0 is gone.
    let mut metrics = cluster.replicas[&leader].raft.metrics();
    let purged = metrics
        .wait_for(|m| m.purged.is_some_and(|p| p.index > 10))
        .await
        .expect("the leader purges its log")
        .purged;
    assert!(purged.is_some());

    cluster.add_replica(3).await;
    cluster.replicas[&leader]
        .raft
        .add_learner(
            3,
            boxoffice_raft::Node::new("replica-3", "http://replica-3"),
            true,
        )
        .await
        .expect("the new replica joins as a learner");
    let states = cluster.converged(&[0, 1, 2, 3], SETTLE).await;
    assert_eq!(held(&states[3]), 60);
    let installed = cluster.replicas[&3]
        .raft
        .metrics()
        .borrow()
        .snapshot
        .map_or(0, |s| s.index);
    assert!(
        installed > 10,
        "the new replica installed a snapshot, up to {installed}"
    );
    cluster.stop().await;
}
