//! One replica's storage across restarts and faults: what was
//! acknowledged comes back from its log and snapshot, a failed sync
//! acknowledges nothing more, and a damaged snapshot file is refused by
//! name before any of it is used.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use boxoffice_raft::machine::SNAPSHOT_FILE;
use boxoffice_raft::{Machine, MachineConfig};
use support::cluster::Cluster;
use support::{batch, event_created, held, hold};

const ELECTION: Duration = Duration::from_secs(10);

/// A one-replica group with the event and `holds` holds, acknowledged.
async fn sale(holds: u32, snapshot_every: u64) -> Cluster {
    let cluster = Cluster::start(1, snapshot_every).await;
    cluster.leader(&[0], ELECTION).await;
    cluster
        .write(0, batch(&[event_created("e")]))
        .await
        .unwrap();
    for seat in 0..holds {
        cluster
            .write(0, batch(&[hold("e", "A", u64::from(seat), seat)]))
            .await
            .unwrap();
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_has_everything_it_acknowledged() {
    // A snapshot every 8 entries: the restart reads a snapshot file and
    // the log's tail after it.
    let mut cluster = sale(30, 8).await;
    let before = cluster.replicas[&0].machine.encoded();
    let snapshot = cluster.replicas[&0].raft.metrics().borrow().snapshot;
    assert!(snapshot.is_some_and(|s| s.index >= 8), "{snapshot:?}");
    cluster.crash(0).await;
    cluster.start_replica(0).await;
    cluster.leader(&[0], ELECTION).await;
    // Applied again up to the last committed entry.
    let mut metrics = cluster.replicas[&0].raft.metrics();
    let last = metrics.borrow().last_log_index;
    metrics
        .wait_for(|m| m.last_applied.map(|l| l.index) >= last)
        .await
        .unwrap();
    let after = cluster.replicas[&0].machine.encoded();
    assert_eq!(held(&after), 30);
    assert_eq!(after, before, "the same state, byte for byte");
    // And it goes on.
    cluster
        .write(0, batch(&[hold("e", "A", 30, 30)]))
        .await
        .unwrap();
    assert_eq!(held(&cluster.replicas[&0].machine.encoded()), 31);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_acknowledges_nothing_more() {
    let cluster = sale(3, 1_000).await;
    cluster.replicas[&0]
        .fail_syncs
        .store(true, Ordering::SeqCst);
    let refused = cluster.write(0, batch(&[hold("e", "A", 3, 3)])).await;
    assert!(
        refused.is_err(),
        "a write whose sync failed was acknowledged"
    );
    let again = cluster.write(0, batch(&[hold("e", "A", 3, 3)])).await;
    assert!(
        again.is_err(),
        "a write after a failed sync was acknowledged"
    );
    // Nothing unacknowledged was applied.
    assert_eq!(held(&cluster.replicas[&0].machine.encoded()), 3);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_file_is_refused_by_name() {
    let cluster = sale(12, 5).await;
    let good = std::fs::read(cluster.dir(0).join("machine").join(SNAPSHOT_FILE)).unwrap();
    cluster.stop().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("machine");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join(SNAPSHOT_FILE);

    let open = || {
        Machine::open(MachineConfig {
            dir: dir.clone(),
            answers: std::sync::Arc::new(support::TestAnswers),
            clock: std::sync::Arc::new(boxoffice_store::clock::SystemClock),
            idem_ttl_ms: support::IDEM_TTL_MS,
        })
    };
    let refused = |bytes: Vec<u8>, why: &str| {
        std::fs::write(&path, bytes).unwrap();
        match open() {
            Ok(_) => panic!("a snapshot file with {why} was used"),
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains(SNAPSHOT_FILE), "{message}");
                message
            }
        }
    };
    // The Raft metadata (just after the magic line and its length and
    // checksum), then the state after it, then the file cut short.
    let mut meta = good.clone();
    meta[26 + 8 + 2] ^= 0x40;
    assert!(refused(meta, "damaged metadata").contains("checksum"));
    let mut body = good.clone();
    let at = body.len() - 10;
    body[at] ^= 0x40;
    refused(body, "a damaged state");
    refused(good[..good.len() / 2].to_vec(), "half its bytes");
    refused(
        b"boxoffice.raft-snapshot/1\n\xff\xff\xff\x7f".to_vec(),
        "a huge length",
    );
    std::fs::write(&path, &good).unwrap();
    let machine = open().expect("the intact file opens");
    // Entries 0 and 1 are the group's membership and its first leader's
    // blank entry, 2 the event, each after it one hold.
    let last = machine
        .last_applied()
        .expect("the snapshot applied entries");
    assert!(last.index >= 5);
    assert_eq!(held(&machine.encoded()), last.index - 2);
}

#[test]
fn a_lone_servers_journal_is_refused_and_left_whole() {
    use boxoffice_store::journal::{encode, JournalConfig, OpenError, Store};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (journal, flusher) = Store::open(&dir).unwrap().start(JournalConfig::default());
    let receipt = journal.append(encode(&event_created("e"))).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(receipt)
        .unwrap()
        .unwrap();
    journal.close();
    drop(journal);
    flusher.join().unwrap();

    let refused = boxoffice_raft::LogStore::open(&dir, Default::default());
    let message = refused
        .err()
        .expect("a lone journal is no Raft log")
        .to_string();
    assert!(message.contains("lone server's journal"), "{message}");
    let mut records = 0;
    Store::open(&dir)
        .unwrap()
        .reader()
        .replay_range(0, None, |_, _| {
            records += 1;
            Ok::<(), OpenError>(())
        })
        .unwrap();
    assert_eq!(records, 1, "the journal is left as it was");
}
