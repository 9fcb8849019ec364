//! Sale phases over a real socket: who may hold when, what a refused fan
//! is told (the opening to count down to), and an operator moving the
//! phases of an event on sale, at once and for good (across a restart and
//! a snapshot).

mod common;

use boxoffice::clock::Clock;
use common::{admin, small_event, token_at, TestServer, T0_MS};
use serde_json::{json, Value};

const HOUR_MS: u64 = 3_600_000;

fn rfc3339(ms: u64) -> String {
    boxoffice::clock::rfc3339(ms)
}

/// `fan`'s hold of one standing place of event `event`, signed with a
/// token listing `memberships`.
fn hold(s: &TestServer, event: &str, fan: &str, memberships: &[&str]) -> common::Resp {
    let token = token_at(&s.data_dir, fan, memberships, s.clock.now_ms());
    s.post_with(
        &format!("/v1/events/{event}/holds"),
        &json!({"section": "F", "quantity": 1}),
        &[("Authorization", &format!("Bearer {token}"))],
    )
}

/// `fan`'s hold with the Idempotency-Key `early-bird`.
fn keyed(s: &TestServer, fan: &str, memberships: &[&str]) -> common::Resp {
    let token = token_at(&s.data_dir, fan, memberships, s.clock.now_ms());
    s.post_with(
        "/v1/events/tour/holds",
        &json!({"section": "F", "quantity": 1}),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Idempotency-Key", "early-bird"),
        ],
    )
}

fn held(s: &TestServer, event: &str) -> u64 {
    s.get(&format!("/v1/events/{event}")).body["held"]
        .as_u64()
        .unwrap()
}

fn assert_refused(r: &common::Resp, kind: &str, opens_at: Option<u64>) {
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.content_type, "application/problem+json");
    assert_eq!(
        r.body["type"],
        format!("urn:boxoffice:problem:{kind}"),
        "{r:?}"
    );
    match opens_at {
        Some(ms) => assert_eq!(r.body["opens_at"], rfc3339(ms), "{r:?}"),
        None => assert!(r.body["opens_at"].is_null(), "{r:?}"),
    }
}

fn put_phases(s: &TestServer, event: &str, phases: &Value, auth: &[(&str, &str)]) -> common::Resp {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(auth);
    s.raw(
        "PUT",
        &format!("/v1/events/{event}/sale-phases"),
        Some(json!({ "sale_phases": phases }).to_string()),
        &h,
    )
}

#[test]
fn the_demo_presale_admits_members_first_and_counts_down_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let general = T0_MS + HOUR_MS;
    let detail = s.get("/v1/events/demo").body;
    assert_eq!(
        detail["sale_phases"],
        json!([
            {"name": "Fan-club presale", "opens_at": rfc3339(T0_MS), "memberships": ["fanclub"]},
            {"name": "General sale", "opens_at": rfc3339(general)}
        ])
    );
    assert_eq!(hold(&s, "demo", "member", &["fanclub"]).status, 201);
    let r = hold(&s, "demo", "walk-in", &[]);
    assert_refused(&r, "membership-required", Some(general));
    assert_eq!(r.body["event"], "demo");
    assert_eq!(held(&s, "demo"), 1, "a refusal holds nothing");
    s.clock.advance_ms(HOUR_MS);
    assert_eq!(hold(&s, "demo", "walk-in", &[]).status, 201);
    assert_eq!(hold(&s, "demo", "member", &["fanclub"]).status, 201);
    let metrics = s.metrics();
    for (reason, n) in [("membership_required", 1), ("not_open", 0), ("closed", 0)] {
        let line =
            format!(r#"boxoffice_holds_refused_total{{event="demo",reason="{reason}"}} {n}"#);
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[test]
fn phases_gate_holds_and_an_operator_moves_them_at_once_and_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = small_event("tour", &[10], 50, 4);
    let presale = T0_MS + HOUR_MS;
    let general = T0_MS + 2 * HOUR_MS;
    let closes = T0_MS + 10 * HOUR_MS;
    doc["sale_phases"] = json!([
        {"name": "Gold presale", "opens_at": rfc3339(presale), "closes_at": rfc3339(general),
         "memberships": ["gold", "platinum"]},
        {"name": "General sale", "opens_at": rfc3339(general), "closes_at": rfc3339(closes)}
    ]);
    let s = TestServer::start(dir.path());
    let r = s.post_with("/v1/events", &doc, &admin());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["sale_phases"], doc["sale_phases"]);

    // Before any opening: each fan is told when the sale opens to it.
    assert_refused(
        &hold(&s, "tour", "g", &["gold"]),
        "sale-not-open",
        Some(presale),
    );
    assert_refused(&hold(&s, "tour", "n", &[]), "sale-not-open", Some(general));
    // A keyed request refused is not remembered: its retry is asked anew.
    assert_eq!(keyed(&s, "g", &["gold"]).status, 403);

    // The operator opens the presale now.
    let moved = json!([
        {"name": "Gold presale", "opens_at": rfc3339(T0_MS), "closes_at": rfc3339(general),
         "memberships": ["gold", "platinum"]},
        {"name": "General sale", "opens_at": rfc3339(general), "closes_at": rfc3339(closes)}
    ]);
    let r = put_phases(&s, "tour", &moved, &admin());
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["sale_phases"], moved);
    let first = keyed(&s, "g", &["gold"]);
    assert_eq!(first.status, 201, "the same key, now admitted: {first:?}");
    assert_refused(
        &hold(&s, "tour", "n", &[]),
        "membership-required",
        Some(general),
    );
    assert_eq!(held(&s, "tour"), 1);

    // Bad moves change nothing.
    let bad = [
        (json!([{"name": "P", "opens_at": "soon"}]), 422),
        (
            json!([{"name": "P", "opens_at": rfc3339(T0_MS), "closes_at": rfc3339(T0_MS)}]),
            422,
        ),
        (
            json!([{"name": "P", "opens_at": rfc3339(T0_MS), "extra": 1}]),
            422,
        ),
    ];
    for (phases, status) in bad {
        let r = put_phases(&s, "tour", &phases, &admin());
        assert_eq!(r.status, status, "{phases}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json");
    }
    let r = put_phases(&s, "tour", &json!([]), &[]);
    assert_eq!(r.status, 401, "a fan's token is not the admin's: {r:?}");
    let r = put_phases(&s, "nope", &json!([]), &admin());
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(s.get("/v1/events/tour").body["sale_phases"], moved);

    // The move survives a restart (journal replay), then a restart from
    // a snapshot.
    let clock = s.clock.clone();
    s.stop();
    let s = TestServer::start_with(common::args(dir.path()), clock.clone());
    assert_eq!(s.get("/v1/events/tour").body["sale_phases"], moved);
    assert_eq!(hold(&s, "tour", "p", &["platinum"]).status, 201);
    assert_refused(
        &hold(&s, "tour", "n", &[]),
        "membership-required",
        Some(general),
    );
    let retried = keyed(&s, "g", &["gold"]);
    assert!(retried.replayed, "{retried:?}");
    assert_eq!(retried.text, first.text);
    let r = s.post_with("/v1/admin/snapshots", &json!({}), &admin());
    assert_eq!(r.status, 201, "{r:?}");
    s.stop();
    let s = TestServer::start_with(common::args(dir.path()), clock);
    assert_eq!(s.get("/v1/events/tour").body["sale_phases"], moved);

    // Everyone in the general sale; nobody once it has closed.
    s.clock.advance_ms(2 * HOUR_MS);
    assert_eq!(hold(&s, "tour", "n", &[]).status, 201);
    s.clock.advance_ms(8 * HOUR_MS);
    assert_refused(&hold(&s, "tour", "g", &["gold"]), "sale-closed", None);
    assert_refused(&hold(&s, "tour", "n", &[]), "sale-closed", None);
}

#[test]
fn an_event_without_phases_is_always_on_sale() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let r = s.post_with("/v1/events", &small_event("open", &[4], 5, 4), &admin());
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["sale_phases"], json!([]));
    assert!(r.body.get("tickets_per_fan_max").is_none());
    assert_eq!(hold(&s, "open", "anyone", &[]).status, 201);
}
