//! A short flash sale through `boxoffice loadgen` against the real
//! binary: a small venue sells out with no seat sold twice, the server's
//! sold count equals the bookings, no fan passes its limit (greedy fans
//! try), every booking is paid by its own receipt, and no answer is a
//! 5xx. Then the doors open: every ticket admits exactly once.

mod common;

use common::*;
use serde_json::Value;

/// Invariant 1 under a flash sale: nothing oversold, every count adds up.
#[test]
fn a_short_flash_sale_sells_out_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = spawn_listening(
        common::boxoffice()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--admin-token",
                ADMIN_TOKEN,
                "--scanner-token",
                "loadgen-scanner-token",
            ])
            .args([
                "--demo-event",
                "false",
                "--mail-enabled",
                "false",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("RUST_LOG", "warn"),
    );
    // 3 rows of 20 seats and 40 standing places: 100 places; 4 a fan.
    let mut event = small_event("flash", &[20, 20, 20], 40, 4);
    event["tickets_per_fan_max"] = 4.into();
    create_event(&base, &event);

    let out = common::boxoffice()
        .args([
            "loadgen", "--server", &base, "--event", "flash", "--fans", "300",
        ])
        .args(["--connections", "8", "--ramp-secs", "0.5", "--seed", "7"])
        .args(["--explicit-ratio", "0.5", "--issuer-key"])
        .arg(dir.path().join("issuer.key"))
        .arg("--payment-key")
        .arg(dir.path().join("payment.key"))
        .args(["--greedy-ratio", "0.5"])
        .args(["--confirm-ratio", "0.9", "--release-ratio", "0.1", "--json"])
        .args(["--doors", "6", "--scanner-token", "loadgen-scanner-token"])
        .args(["--rescan-ratio", "0.3"])
        .args(["--watchers", "12"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    assert!(stderr.contains("seed 7"), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seed"], 7);
    assert_eq!(report["fans"], 300);
    assert_eq!(report["server_errors"], 0);
    let c = &report["consistency"];
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(c["seats_sold_twice"], serde_json::json!([]));
    assert_eq!(c["places_in_bookings"], c["places_sold_by_server"]);
    assert_eq!(c["tickets_per_fan_max"], 4);
    assert_eq!(c["fans_over_limit"], 0);
    assert_eq!(c["limit_breaches"], 0);
    assert_eq!(c["bookings_without_receipt"], 0);
    assert!(report["limit_refusals"].as_u64().unwrap() > 0, "{report}");
    // 300 fans for 100 places: the venue sells out, and the rest are told
    // so (409), not failed.
    let sold = c["places_sold_by_server"].as_u64().unwrap();
    assert!((90..=100).contains(&sold), "sold {sold}: {report}");
    assert!(report["statuses"]["409"].as_u64().unwrap() > 0, "{report}");
    for (status, _) in report["statuses"].as_object().unwrap() {
        assert!(!status.starts_with('5'), "{report}");
    }
    assert!(report["latency"]["hold"]["p99_ms"].as_f64().unwrap() > 0.0);
    // Every fan is answered, and accounted for once.
    let o = &report["outcomes"];
    let total: u64 = [
        "bought",
        "released",
        "held_only",
        "refused",
        "shed",
        "unanswered",
    ]
    .iter()
    .map(|k| o[k].as_u64().unwrap())
    .sum();
    assert_eq!(total, 300, "{o}");
    assert_eq!(o["unanswered"], 0, "{o}");
    assert_eq!(o["bought"], report["confirms"], "{report}");
    assert_eq!(c["bookings"], report["confirms"], "{report}");
    // Half the fans in the seated section pick seats on the map.
    assert!(report["explicit_holds"].as_u64().unwrap() > 0, "{report}");
    assert!(report["latency"]["seat_map"]["count"].as_u64().unwrap() > 0);
    // Every place sold is a ticket, and each admitted exactly once; the
    // rescans were each refused as used.
    let d = &report["doors"];
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["tickets"], c["places_in_bookings"], "{d}");
    assert_eq!(d["admitted"], d["tickets"], "{d}");
    assert_eq!(
        d["admitted"].as_u64().unwrap() + d["refused_as_used"].as_u64().unwrap(),
        d["scans"].as_u64().unwrap(),
        "{d}"
    );
    assert!(d["refused_as_used"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["tickets_not_admitted_once"], 0, "{d}");
    // Twelve clients watched the seated section's stream throughout: the
    // state rebuilt from it is the seat map's, and the holds showed up.
    let w = &report["watch"];
    assert_eq!(w["watchers"], 12, "{w}");
    assert_eq!(w["open_max"], 12, "{w}");
    assert_eq!(w["refused"], 0, "{w}");
    assert_eq!(w["replica_matches_map"], true, "{w}");
    assert!(w["frames"].as_u64().unwrap() > 1, "{w}");
    assert!(
        w["delay"]["count"].as_u64().unwrap() + w["ahead_of_answer"].as_u64().unwrap() > 0,
        "{w}"
    );

    server.kill().unwrap();
    server.wait().unwrap();
}

/// Invariant 9 under a sale through the waiting room: 200 fans, most
/// arriving before the opening, are admitted at 100 a second in queue
/// order as they see it, every admitted fan shops with its admission (no
/// hold is refused for want of one), and nothing is oversold.
#[test]
fn a_sale_through_the_waiting_room_admits_in_order() {
    queued_sale("poll");
}

/// The same with fans waiting on their own streams; the server keeps 50,
/// so most fans are told to poll, and do.
#[test]
fn fans_waiting_on_streams_are_admitted_in_order_too() {
    queued_sale("stream");
}

fn queued_sale(wait: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = serve(
        dir.path(),
        &[
            "--admin-token",
            ADMIN_TOKEN,
            "--queue-streams-max",
            "50",
            "--demo-event",
            "false",
            "--mail-enabled",
            "false",
        ],
    );
    let mut event = small_event("queued", &[20, 20, 20], 40, 4);
    event["tickets_per_fan_max"] = 4.into();
    create_event(&base, &event);
    let opens = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let opens_ms = opens
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let r = request(
        "PUT",
        &format!("{base}/v1/events/queued/waiting-room"),
        Some(
            serde_json::json!({"enabled": true, "opens_at": boxoffice::clock::rfc3339_ms(opens_ms),
                               "rate_per_sec": 100, "admission_ttl_secs": 60})
            .to_string(),
        ),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {ADMIN_TOKEN}")),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");

    let out = common::boxoffice()
        .args([
            "loadgen", "--server", &base, "--event", "queued", "--fans", "200",
        ])
        .args([
            "--connections",
            "16",
            "--ramp-secs",
            "3",
            "--seed",
            "11",
            "--queue",
        ])
        .args([
            "--queue-poll-ms",
            "100",
            "--queue-wait",
            wait,
            "--issuer-key",
        ])
        .arg(dir.path().join("issuer.key"))
        .arg("--payment-key")
        .arg(dir.path().join("payment.key"))
        .args(["--confirm-ratio", "0.9", "--release-ratio", "0.1", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loadgen failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let q = &report["queue"];
    assert_eq!(q["ok"], true, "{q}");
    assert_eq!(
        (q["joined"].as_u64(), q["admitted"].as_u64()),
        (Some(200), Some(200)),
        "{q}"
    );
    assert_eq!(q["out_of_order"], 0, "{q}");
    assert_eq!(q["gave_up"], 0, "{q}");
    // Streams: as many as the server keeps at once, at least; polls: none.
    let streamed = q["admitted_on_streams"].as_u64().unwrap();
    if wait == "stream" {
        assert!(streamed >= 50, "{q}");
    } else {
        assert_eq!(streamed, 0, "{q}");
    }
    // 200 fans at 100 a second: about two seconds of admissions.
    let rate = q["admitted_per_s"].as_f64().unwrap();
    assert!((50.0..=150.0).contains(&rate), "{q}");
    assert!(
        q["time_in_queue"]["p99_ms"].as_f64().unwrap() > 500.0,
        "{q}"
    );
    // Nobody shopped without an admission, and nothing oversold.
    assert_eq!(report["consistency"]["ok"], true, "{report}");
    assert_eq!(report["server_errors"], 0);
    assert!(report["statuses"].get("403").is_none(), "{report}");
    assert_eq!(report["outcomes"]["unanswered"], 0, "{report}");
    server.kill().unwrap();
    server.wait().unwrap();
}
