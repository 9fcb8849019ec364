//! Seeded schedules of faults over three replicas (the real storage, an
//! in-memory network): writes, links cut and healed, replicas crashed and
//! restarted from their disks. After each schedule every acknowledged
//! write is on every replica, the replicas hold the same state byte for
//! byte, and no term had two leaders (checked by `Cluster::stop`).
//!
//! The schedule is a function of its seed; the timing is not (real
//! threads, real disks, real timers), so a failing seed names the
//! schedule to run again, not the interleaving.
//! `BOXOFFICE_RAFT_SEEDS=<n>` runs more of them.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::cluster::Cluster;
use support::{batch, small_event};

const STEPS: u32 = 20;

/// SplitMix64: the schedule from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

async fn schedule(seed: u64) {
    let mut rng = Rng(seed);
    let mut cluster = Cluster::start(3, 6).await;
    let mut acked = Vec::new();
    let mut crashed: Option<u64> = None;
    for step in 0..STEPS {
        match rng.below(10) {
            0..=5 => {
                let Some(leader) = cluster.try_leader(Duration::from_secs(1)).await else {
                    continue;
                };
                let event = format!("s{seed}-{step}");
                let write = cluster.write(leader, batch(&[small_event(&event)]));
                if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), write).await {
                    acked.push(event);
                }
            }
            6 => {
                let id = rng.below(3);
                let others: Vec<u64> = (0..3).filter(|&o| o != id).collect();
                cluster.router.isolate(id, &others);
            }
            7 => cluster.router.heal(),
            8 if crashed.is_none() => {
                let id = rng.below(3);
                cluster.crash(id).await;
                crashed = Some(id);
            }
            _ => {
                if let Some(id) = crashed.take() {
                    cluster.start_replica(id).await;
                }
            }
        }
    }
    cluster.router.heal();
    if let Some(id) = crashed {
        cluster.start_replica(id).await;
    }
    let all = [0, 1, 2];
    cluster.leader(&all, Duration::from_secs(10)).await;
    // Whatever the last leader had uncommitted is committed (or dropped)
    // by its next write: make one, so every replica applies up to it.
    let leader = cluster.try_leader(Duration::from_secs(10)).await.unwrap();
    let last = format!("s{seed}-end");
    cluster
        .write(leader, batch(&[small_event(&last)]))
        .await
        .unwrap();
    acked.push(last);
    cluster.converged(&all, Duration::from_secs(20)).await;
    let events: BTreeSet<String> = cluster.replicas[&0]
        .machine
        .read(|s| s.events.keys().cloned().collect());
    for event in &acked {
        assert!(
            events.contains(event),
            "seed {seed}: acknowledged {event} is lost"
        );
    }
    assert_eq!(cluster.up().len(), 3);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_seeded_fault_schedules() {
    let seeds: u64 = std::env::var("BOXOFFICE_RAFT_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    for seed in 0..seeds {
        schedule(seed).await;
    }
}
