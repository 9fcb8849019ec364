//! Operations: `/metrics` parses as Prometheus text and moves with
//! traffic; every answer carries a request id.

mod common;

use std::collections::HashMap;

use common::*;
use serde_json::json;

/// Parses the Prometheus text format strictly enough to catch a broken
/// exposition: every sample line is `name{labels} value`, every metric has
/// its `# TYPE`. Returns sample → value.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{line}"
        );
        let base = name
            .strip_suffix("_bucket")
            .or(name.strip_suffix("_sum"))
            .or(name.strip_suffix("_count"))
            .filter(|b| typed.contains(*b))
            .unwrap_or(name);
        assert!(typed.contains(base), "no # TYPE for {name}");
        if key.contains('{') {
            assert!(key.ends_with('}'), "{line}");
        }
        samples.insert(key.to_owned(), value);
    }
    samples
}

fn scrape(s: &TestServer) -> HashMap<String, f64> {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    parse(&r.text)
}

fn at(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[test]
fn metrics_parse_and_move_with_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let before = scrape(&s);
    let holds = r#"boxoffice_changes_total{event="demo",kind="hold",section="A"}"#;
    let confirms = r#"boxoffice_changes_total{event="demo",kind="confirm",section="A"}"#;
    let held = r#"boxoffice_seats{event="demo",section="A",state="held"}"#;
    let sold = r#"boxoffice_seats{event="demo",section="A",state="sold"}"#;
    let created = r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event}/holds",status="201"}"#;
    let conflict = r#"boxoffice_http_requests_total{method="POST",route="/v1/events/{event}/holds",status="409"}"#;
    assert_eq!(at(&before, held), 0.0);

    let h = s.hold("A", &["A/1/1", "A/1/2"]);
    s.hold("A", &["A/1/3"]);
    let r = s.post(
        "/v1/events/demo/holds",
        &json!({"section": "A", "seats": ["A/1/3"]}),
    );
    assert_eq!(r.status, 409);
    let c = s.post(
        &format!("/v1/holds/{}/confirm", h["id"].as_str().unwrap()),
        &json!({"email": "m@example.com", "payment_ref": "p"}),
    );
    assert_eq!(c.status, 201);

    let after = scrape(&s);
    assert_eq!(at(&after, holds) - at(&before, holds), 2.0);
    assert_eq!(at(&after, confirms) - at(&before, confirms), 1.0);
    assert_eq!(at(&after, held), 1.0);
    assert_eq!(at(&after, sold), 2.0);
    assert_eq!(at(&after, created) - at(&before, created), 2.0);
    assert_eq!(at(&after, conflict) - at(&before, conflict), 1.0);
    assert!(
        at(&after, "boxoffice_journal_records_total")
            - at(&before, "boxoffice_journal_records_total")
            >= 3.0
    );
    assert!(at(&after, "boxoffice_journal_flush_seconds_count") >= 1.0);
    assert!(at(&after, r#"boxoffice_mail_total{event="queued"}"#) >= 1.0);
    assert!(at(&after, "process_resident_memory_bytes") > 0.0);
    let latency = r#"boxoffice_http_request_seconds_count{route="/v1/events/{event}/holds"}"#;
    assert_eq!(at(&after, latency) - at(&before, latency), 3.0);
    // Ids never become labels: one route for every hold.
    assert!(after.keys().all(|k| !k.contains(h["id"].as_str().unwrap())));
}

#[test]
fn every_answer_carries_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let id_of = |headers: &[(&str, &str)]| {
        let mut req = agent().get(&format!("{}/v1/events", s.base));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = req.call().unwrap();
        resp.header("x-request-id").unwrap().to_owned()
    };
    assert_eq!(id_of(&[("X-Request-Id", "abc-123.x:y")]), "abc-123.x:y");
    let fresh = id_of(&[]);
    assert_eq!(fresh.len(), 16);
    assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()), "{fresh}");
    assert_ne!(fresh, id_of(&[]));
    // Odd or overlong ids are replaced, not echoed.
    let replaced = id_of(&[("X-Request-Id", "<script>")]);
    assert_eq!(replaced.len(), 16);
    let replaced = id_of(&[("X-Request-Id", &"a".repeat(200))]);
    assert_eq!(replaced.len(), 16);
    // Errors carry one too.
    let resp = agent().get(&format!("{}/v1/nothing", s.base)).call();
    let Err(ureq::Error::Status(404, resp)) = resp else {
        panic!("expected 404")
    };
    assert!(resp.header("x-request-id").is_some());
}
