//! What the Raft crate's tests share: a replica's storage in a temporary
//! directory, answers rendered deterministically, and real records.

#![allow(dead_code)]

pub mod cluster;

use std::path::Path;
use std::sync::Arc;

use boxoffice_domain::{CategoryCounts, EventDef, Outcome, SalePhases, SectionLayout};
use boxoffice_raft::{
    Batch, LogConfig, LogStore, Machine, MachineConfig, Node, NodeId, PeerConfig, Replica,
    ReplicaConfig,
};
use boxoffice_store::clock::SystemClock;
use boxoffice_store::journal::{encode_into, ChangeRecord, ClaimRecord, Record};
use boxoffice_store::recovery::Answers;

/// Renders each answer from what it answers, the same on every replica.
#[derive(Debug)]
pub struct TestAnswers;

impl Answers for TestAnswers {
    fn change(&self, _: &EventDef, _: &SectionLayout, outcome: &Outcome) -> (u16, bytes::Bytes) {
        (201, bytes::Bytes::from(format!("{outcome:?}")))
    }

    fn event_created(
        &self,
        def: &EventDef,
        _: &SalePhases,
        _: &[Vec<CategoryCounts>],
    ) -> (u16, bytes::Bytes) {
        (201, bytes::Bytes::from(def.id.clone()))
    }
}

pub const IDEM_TTL_MS: u64 = 24 * 3600 * 1000;

pub fn machine(dir: &Path) -> Machine {
    Machine::open(MachineConfig {
        dir: dir.join("machine"),
        answers: Arc::new(TestAnswers),
        clock: Arc::new(SystemClock),
        idem_ttl_ms: IDEM_TTL_MS,
    })
    .expect("a machine opens")
}

pub fn log(dir: &Path) -> LogStore {
    LogStore::open(&dir.join("log"), LogConfig::default()).expect("a log opens")
}

/// The demo event's document, under the id `event`.
pub fn event_json(event: &str) -> String {
    let mut json: serde_json::Value =
        serde_json::from_str(boxoffice_store::layout::DEMO_EVENT_JSON)
            .expect("the demo event is JSON");
    json["id"] = serde_json::Value::String(event.into());
    json.to_string()
}

/// A batch of `records`, encoded as the journal encodes them.
pub fn batch(records: &[Record]) -> Batch {
    let mut bytes = Vec::new();
    for r in records {
        encode_into(r, &mut bytes);
    }
    Batch { records: bytes }
}

pub fn event_created(event: &str) -> Record {
    Record::EventCreated {
        spec_json: event_json(event),
        at_ms: 1_700_000_000_000,
        idem: None,
    }
}

/// Hold `hold` of seat `seat` in the demo event's first section.
pub fn hold(event: &str, section: &str, hold: u64, seat: u32) -> Record {
    Record::Section {
        event: event.into(),
        section: section.into(),
        change: ChangeRecord::HoldCreatedBy {
            hold,
            secret: hold.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            fan: Arc::from(format!("fan-{hold}")),
            claim: ClaimRecord::Seats(vec![seat]),
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_000_000 + 600_000,
        },
        idem: None,
    }
}

/// Seats held in every event of an encoded state.
pub fn held(encoded: &[u8]) -> u64 {
    let snap = boxoffice_store::snapshot::decode(encoded).expect("an encoded state decodes");
    snap.header.events.iter().map(|e| e.held).sum()
}

/// A small event of its own (one section of five seats): creating it
/// applies whatever came before, so a schedule of faults may lose or
/// keep any unacknowledged one without breaking the next.
pub fn small_event(event: &str) -> Record {
    let spec = serde_json::json!({
        "format": "boxoffice.event/1", "id": event, "name": "Test",
        "starts_at": "2026-12-24T10:00:00Z", "currency": "KRW",
        "hold_ttl_secs": 60, "seats_per_hold_max": 4,
        "categories": [{"id": "R", "name": "R seat", "price": 150000}],
        "venue": {"name": "Hall", "sections": [
            {"id": "A", "name": "A", "category": "R", "rows": [
                {"label": "1", "seats": 5, "x": 0.0, "y": 0.0}]}]}
    });
    Record::EventCreated {
        spec_json: spec.to_string(),
        at_ms: 1_700_000_000_000,
        idem: None,
    }
}

/// Replica `id`'s settings as the tests run it: its directory under
/// `root`, the tests' answers and secret.
pub fn replica_config(
    root: &Path,
    id: NodeId,
    members: std::collections::BTreeMap<NodeId, Node>,
    peer_listener: std::net::TcpListener,
    raft: openraft::Config,
    log: LogConfig,
) -> ReplicaConfig {
    ReplicaConfig {
        id,
        members,
        data_dir: root.join(format!("replica-{id}")),
        peer_listener,
        peers: PeerConfig {
            secret: Arc::from("test-shard-secret"),
            body_bytes_max: 64 << 20,
            snapshot_bytes_max: 1 << 30,
        },
        raft,
        answers: Arc::new(TestAnswers),
        clock: Arc::new(SystemClock),
        idem_ttl_ms: IDEM_TTL_MS,
        log,
    }
}

/// `n` replicas on loopback, each with its own directory under `root`
/// and its own peer listener (replica `i`'s API is `http://api-i`);
/// replica 0 forms the group.
pub fn start_replicas(
    root: &Path,
    n: u64,
    raft: &openraft::Config,
) -> std::collections::BTreeMap<NodeId, Replica> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let members: std::collections::BTreeMap<NodeId, Node> = (0..n)
        .zip(&listeners)
        .map(|(id, l)| {
            let peer = l.local_addr().unwrap().to_string();
            (id, Node::new(peer, format!("http://api-{id}")))
        })
        .collect();
    (0..n)
        .zip(listeners)
        .map(|(id, listener)| {
            let config = replica_config(
                root,
                id,
                members.clone(),
                listener,
                raft.clone(),
                LogConfig::default(),
            );
            (id, Replica::start(config).unwrap())
        })
        .collect()
}
