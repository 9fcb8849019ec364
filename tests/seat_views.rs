//! Invariant 8 for seat maps and availability: readers see each section's
//! published view, which holds a change only once it is durable, and a
//! read never waits in (or is refused by) the section's in-flight bound.
//! Over a real socket, with the journal's group commit slowed down so a
//! change sits applied in memory, not yet durable, long enough to look.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Whether the section's actor has applied `n` holds in memory (its
/// change counter moves at apply time, before durability).
fn applied_holds(s: &TestServer, section: &str, n: u64) -> bool {
    let text = s.get("/metrics").text;
    let key =
        format!(r#"boxoffice_changes_total{{event="demo",kind="hold",section="{section}"}} {n}"#);
    text.lines().any(|l| l == key)
}

fn held(s: &TestServer) -> u64 {
    s.get("/v1/events/demo").body["held"].as_u64().unwrap()
}

#[test]
fn a_change_is_shown_once_durable_and_reads_pass_a_full_section() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    // Every group commit takes 600 ms longer; the section admits one
    // request in flight.
    a.journal_delay_ms = 600;
    a.mailbox_capacity = 1;
    let s = TestServer::start_with(
        a,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    assert!(s.states("A").starts_with("fff"));
    std::thread::scope(|scope| {
        let holding = scope.spawn(|| s.hold("A", &["A/1/1"]));
        let began = Instant::now();
        while !applied_holds(&s, "A", 1) {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "the hold never applied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Applied in memory, not durable: nobody is shown it.
        let map = s.get("/v1/events/demo/sections/A/seats");
        assert_eq!(map.status, 200, "a read passes the full section: {map:?}");
        assert!(map.body["states"].as_str().unwrap().starts_with("fff"));
        assert_eq!(map.body["held"], 0);
        assert_eq!(held(&s), 0);
        // The section's one place in flight is taken: a change is refused.
        let second = s.post(
            "/v1/events/demo/holds",
            &json!({"section": "A", "seats": ["A/1/2"]}),
        );
        assert_eq!(second.status, 503, "{second:?}");
        let first = holding.join().unwrap();
        assert_eq!(first["seats"], json!(["A/1/1"]));
    });
    // Told it is durable, the fan's next read shows it.
    assert!(s.states("A").starts_with("hff"));
    assert_eq!(held(&s), 1);
}
