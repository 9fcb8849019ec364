//! Shards of one map, as two real processes on this machine: each serves
//! its own events only and refuses every other with `421` naming the
//! owner, on every route that names an event or an id, creation included.

mod common;

use common::{boxoffice, request, serve, small_event, Resp, ADMIN_TOKEN};
use serde_json::json;

fn call(base: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
    call_as(base, ADMIN_TOKEN, method, path, body)
}

fn call_as(base: &str, token: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
    let auth = format!("Bearer {token}");
    request(
        method,
        &format!("{base}{path}"),
        body.map(str::to_owned),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
    )
}

fn assert_misdirected(r: &Resp, event: &str, owner: Option<&str>, what: &str) {
    assert_eq!(r.status, 421, "{what}: {r:?}");
    assert_eq!(r.content_type, "application/problem+json", "{what}");
    assert_eq!(
        r.body["type"], "urn:boxoffice:problem:misdirected",
        "{what}"
    );
    assert_eq!(r.body["event"], event, "{what}");
    assert_eq!(r.body["shard"], json!(owner), "{what}");
}

#[test]
fn each_shard_serves_its_own_events_and_names_the_owner_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("shards.toml");
    std::fs::write(
        &map,
        "[shards]\nboxoffice-0 = [\"demo\"]\nboxoffice-1 = [\"tour\"]\n",
    )
    .unwrap();
    let flags = |shard: &'static str| {
        vec![
            "--admin-token",
            ADMIN_TOKEN,
            "--shard-map",
            map.to_str().unwrap(),
            "--shard",
            shard,
        ]
    };
    let (_a, a) = serve(&dir.path().join("a"), &flags("boxoffice-0"));
    let (_b, b) = serve(&dir.path().join("b"), &flags("boxoffice-1"));

    // The demo event is shard 0's: only it creates it at start.
    assert_eq!(call(&a, "GET", "/v1/events", None).body[0]["id"], "demo");
    assert_eq!(call(&b, "GET", "/v1/events", None).body, json!([]));

    // Creation goes to the owner only; an event nobody owns, nowhere.
    let tour = small_event("tour", &[10], 5, 4).to_string();
    assert_misdirected(
        &call(&a, "POST", "/v1/events", Some(&tour)),
        "tour",
        Some("boxoffice-1"),
        "create tour on 0",
    );
    assert_eq!(call(&b, "POST", "/v1/events", Some(&tour)).status, 201);
    let stray = small_event("stray", &[10], 5, 4).to_string();
    for base in [&a, &b] {
        assert_misdirected(
            &call(base, "POST", "/v1/events", Some(&stray)),
            "stray",
            None,
            "create an event no shard owns",
        );
    }

    // A hold and a booking of each event, on its own shard, by a fan
    // signed in there (each shard here runs its own demo issuer).
    let mut ids = Vec::new();
    let fan_a = common::token(&dir.path().join("a"), "fan-1");
    let fan_b = common::token(&dir.path().join("b"), "fan-1");
    for (base, fan, event, section, data_dir) in [
        (&a, &fan_a, "demo", "A", dir.path().join("a")),
        (&b, &fan_b, "tour", "S", dir.path().join("b")),
    ] {
        let body = json!({"section": section, "quantity": 2}).to_string();
        let hold = call_as(
            base,
            fan,
            "POST",
            &format!("/v1/events/{event}/holds"),
            Some(&body),
        );
        assert_eq!(hold.status, 201, "{hold:?}");
        let pay = common::pay(&data_dir, &hold.body, "fan@example.com").to_string();
        let hold = hold.body["id"].as_str().unwrap().to_owned();
        let booking = call_as(
            base,
            fan,
            "POST",
            &format!("/v1/holds/{hold}/confirm"),
            Some(&pay),
        );
        assert_eq!(booking.status, 201, "{booking:?}");
        let second = call_as(
            base,
            fan,
            "POST",
            &format!("/v1/events/{event}/holds"),
            Some(&body),
        );
        ids.push((
            event,
            section,
            second.body["id"].as_str().unwrap().to_owned(),
            booking.body["id"].as_str().unwrap().to_owned(),
        ));
    }

    // Every route that names the other shard's event or id: 421, before
    // the body is even read (a malformed one included), nothing changed.
    let before = (
        call(&a, "GET", "/v1/events/demo", None).text,
        call(&b, "GET", "/v1/events/tour", None).text,
    );
    let routes = |event: &str, section: &str, hold: &str, booking: &str| {
        vec![
            ("GET", format!("/v1/events/{event}"), None),
            (
                "GET",
                format!("/v1/events/{event}/sections/{section}/seats"),
                None,
            ),
            (
                "POST",
                format!("/v1/events/{event}/holds"),
                Some("{not json"),
            ),
            ("GET", format!("/v1/holds/{hold}"), None),
            ("DELETE", format!("/v1/holds/{hold}"), None),
            ("POST", format!("/v1/holds/{hold}/confirm"), Some("{}")),
            ("GET", format!("/v1/bookings/{booking}"), None),
            ("POST", format!("/v1/bookings/{booking}/cancel"), Some("{}")),
            (
                "POST",
                format!("/v1/admin/outbox/{event}.{section}.b0.confirmation/retry"),
                None,
            ),
        ]
    };
    for ((event, section, hold, booking), (wrong, owner)) in
        ids.iter().zip([(&b, "boxoffice-0"), (&a, "boxoffice-1")])
    {
        for (method, path, body) in routes(event, section, hold, booking) {
            assert_misdirected(
                &call(wrong, method, &path, body),
                event,
                Some(owner),
                &format!("{method} {path}"),
            );
        }
    }
    assert_eq!(
        (
            call(&a, "GET", "/v1/events/demo", None).text,
            call(&b, "GET", "/v1/events/tour", None).text,
        ),
        before
    );
    // And the owner still serves them.
    let (_, _, hold, _) = &ids[0];
    assert_eq!(
        call_as(&a, &fan_a, "GET", &format!("/v1/holds/{hold}"), None).status,
        200
    );
}

#[test]
fn a_shard_missing_from_its_map_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("shards.toml");
    std::fs::write(&map, "[shards]\nboxoffice-0 = [\"demo\"]\n").unwrap();
    let run = |args: &[&str]| {
        boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--shard-map",
        map.to_str().unwrap(),
        "--shard",
        "boxoffice-7",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--shard") && err.contains("boxoffice-7"),
        "{err}"
    );
    // A map without a shard name (or a name without a map) is refused.
    let out = run(&["--shard-map", map.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--shard"));
    std::fs::write(
        &map,
        "[shards]\nboxoffice-0 = [\"x\"]\nboxoffice-1 = [\"x\"]\n",
    )
    .unwrap();
    let out = run(&[
        "--shard-map",
        map.to_str().unwrap(),
        "--shard",
        "boxoffice-0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--shard-map") && err.contains("one shard"),
        "{err}"
    );
}
