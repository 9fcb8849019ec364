//! The real binary across restarts: a retry after a crash gets the very
//! answer the first request got.

mod common;

use common::{request, serve, small_event, Resp, ADMIN_TOKEN};
use serde_json::{json, Value};

/// One keyed request, to send again after a restart.
struct Keyed {
    path: String,
    body: Value,
    key: &'static str,
    admin: bool,
}

impl Keyed {
    fn send(&self, base: &str) -> Resp {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Idempotency-Key", self.key),
        ];
        if self.admin {
            headers.push(("Authorization", auth.as_str()));
        }
        request(
            "POST",
            &format!("{base}{}", self.path),
            Some(self.body.to_string()),
            &headers,
        )
    }
}

/// Event creation, a hold, its confirmation and the booking's cancellation,
/// each with an Idempotency-Key: after a SIGKILL (answers rebuilt by
/// replaying the journal) and after a graceful stop (answers loaded from
/// the last snapshot), each retry is answered with the first answer's
/// status and exact bytes, and changes nothing.
#[test]
fn keyed_answers_are_byte_identical_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--admin-token", ADMIN_TOKEN, "--hold-ttl-secs", "3600"];
    let (mut child, base) = serve(dir.path(), &flags);
    let mut sent: Vec<(Keyed, Resp)> = Vec::new();
    let mut first = |k: Keyed| {
        let r = k.send(&base);
        assert!(matches!(r.status, 200 | 201), "{} {r:?}", k.path);
        assert!(!r.replayed);
        sent.push((k, r.clone()));
        r
    };
    first(Keyed {
        path: "/v1/events".into(),
        body: small_event("tour", &[10, 10], 5, 4),
        key: "create-tour",
        admin: true,
    });
    let hold = first(Keyed {
        path: "/v1/events/tour/holds".into(),
        body: json!({"section": "S", "quantity": 2}),
        key: "hold-1",
        admin: false,
    });
    let booking = first(Keyed {
        path: format!("/v1/holds/{}/confirm", hold.body["id"].as_str().unwrap()),
        body: json!({"email": "fan@example.com", "payment_ref": "pay_1"}),
        key: "confirm-1",
        admin: false,
    });
    first(Keyed {
        path: format!(
            "/v1/bookings/{}/cancel",
            booking.body["id"].as_str().unwrap()
        ),
        body: json!({}),
        key: "cancel-1",
        admin: false,
    });
    let event_after = request("GET", &format!("{base}/v1/events/tour"), None, &[]).text;

    // SIGKILL: no last snapshot; the restart replays the journal.
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, base) = serve(dir.path(), &flags);
    for (k, r) in &sent {
        let again = k.send(&base);
        assert!(again.replayed, "{}: {again:?}", k.path);
        assert_eq!(
            (again.status, &again.text),
            (r.status, &r.text),
            "{}",
            k.path
        );
    }

    // A graceful stop writes a last snapshot; the restart loads it.
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!boxoffice::snapshot::list(dir.path()).unwrap().is_empty());
    let (mut child, base) = serve(dir.path(), &flags);
    for (k, r) in &sent {
        let again = k.send(&base);
        assert!(again.replayed, "{}: {again:?}", k.path);
        assert_eq!(
            (again.status, &again.text),
            (r.status, &r.text),
            "{}",
            k.path
        );
    }
    // The retries changed nothing.
    assert_eq!(
        request("GET", &format!("{base}/v1/events/tour"), None, &[]).text,
        event_after
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
