//! Fans sign in with the fan club's JWTs: real tokens signed with real
//! keys (tests/fixtures/issuer/: RS256, ES256, EdDSA), checked over a real
//! socket. Every way a token can be wrong is a 401 that changes nothing;
//! a fan's holds and bookings are its own; the issuer's keys rotate
//! without a restart.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://fanclub.example";
const AUDIENCE: &str = "boxoffice";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/issuer")
        .join(name)
}

/// The issuer's signing key of `alg`, and its key id.
fn key(alg: Algorithm) -> (EncodingKey, &'static str) {
    let der = |f: &str| std::fs::read(fixture(f)).unwrap();
    match alg {
        Algorithm::RS256 => (
            EncodingKey::from_rsa_der(&der("rsa-private.pkcs1.der")),
            "test-rs256",
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_der(&der("ec-private.pkcs8.der")),
            "test-es256",
        ),
        Algorithm::EdDSA => (
            EncodingKey::from_ed_der(&der("ed25519-private.pkcs8.der")),
            "test-eddsa",
        ),
        other => panic!("no fixture key for {other:?}"),
    }
}

/// A token of `claims`, signed with the issuer's `alg` key.
fn sign(alg: Algorithm, claims: &Value) -> String {
    let (key, kid) = key(alg);
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// The claims of a good token for `sub`, on the test server's clock.
fn claims(sub: &str) -> Value {
    let now = T0_MS / 1000;
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 3600,
           "memberships": ["fanclub"]})
}

/// A server that trusts the issuer's JWKS file `jwks`.
fn server(dir: &Path, jwks: &str) -> TestServer {
    let mut a = args(dir);
    a.jwks = Some(jwks.to_owned());
    a.jwt_issuer = Some(ISSUER.into());
    a.jwt_audience = Some(AUDIENCE.into());
    TestServer::start_with(a, Arc::new(boxoffice::clock::ManualClock::new(T0_MS)))
}

fn hold_as(s: &TestServer, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    s.post_with(
        "/v1/events/demo/holds",
        &json!({"section": "A", "quantity": 1}),
        &[("Authorization", &auth)],
    )
}

fn held(s: &TestServer) -> u64 {
    s.get("/v1/events/demo").body["held"].as_u64().unwrap()
}

fn b64(json: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
}

#[test]
fn every_way_a_token_can_be_wrong_is_a_401_that_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), fixture("jwks.json").to_str().unwrap());
    // Good tokens of each accepted algorithm hold.
    for (alg, sub) in [
        (Algorithm::RS256, "fan-rs"),
        (Algorithm::ES256, "fan-es"),
        (Algorithm::EdDSA, "fan-ed"),
    ] {
        let r = hold_as(&s, &sign(alg, &claims(sub)));
        assert_eq!(r.status, 201, "{alg:?}: {r:?}");
    }
    assert_eq!(held(&s), 3);

    let now = T0_MS / 1000;
    let with = |patch: Value| {
        let mut c = claims("fan-x");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let rsa_public_der = {
        // What an attacker has: the issuer's public key, used as an HMAC
        // secret (algorithm confusion).
        let jwks: Value =
            serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
        jwks["keys"][0]["n"].as_str().unwrap().as_bytes().to_vec()
    };
    let hs256_with_public_key = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-rs256".into());
        jsonwebtoken::encode(
            &header,
            &claims("fan-x"),
            &EncodingKey::from_secret(&rsa_public_der).unwrap(),
        )
        .unwrap()
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims("fan-x"))
    );
    let unknown_kid = {
        let (key, _) = key(Algorithm::ES256);
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("rotated-away".into());
        jsonwebtoken::encode(&header, &claims("fan-x"), &key).unwrap()
    };
    let wrong_key = {
        // The ES256 key, claiming to be the EdDSA key's kid and alg: the
        // key type does not match, so nothing verifies.
        let (key, _) = key(Algorithm::EdDSA);
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("test-rs256".into());
        jsonwebtoken::encode(&header, &claims("fan-x"), &key).unwrap()
    };
    let forged = {
        // A good token with its payload swapped for another fan's.
        let good = sign(Algorithm::EdDSA, &claims("fan-x"));
        let parts: Vec<&str> = good.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&claims("fan-admin")), parts[2])
    };
    let cases: Vec<(&str, String, &[&str])> = vec![
        (
            "expired",
            sign(Algorithm::RS256, &with(json!({"exp": now - 120}))),
            &["expired"],
        ),
        (
            "not yet valid",
            sign(Algorithm::RS256, &with(json!({"nbf": now + 600}))),
            &["not-yet-valid"],
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::ES256,
                &with(json!({"iss": "https://evil.example"})),
            ),
            &["issuer"],
        ),
        (
            "no issuer",
            sign(Algorithm::ES256, &with(json!({"iss": null}))),
            &["issuer"],
        ),
        (
            "wrong audience",
            sign(Algorithm::EdDSA, &with(json!({"aud": "someone-else"}))),
            &["audience"],
        ),
        ("alg none", unsigned, &["algorithm"]),
        (
            "HS256 with the public key",
            hs256_with_public_key,
            &["algorithm"],
        ),
        ("unknown kid", unknown_kid, &["unknown-key"]),
        (
            "another key's kid",
            wrong_key,
            &["unknown-key", "signature"],
        ),
        ("forged payload", forged, &["signature"]),
        (
            "exp a string",
            sign(Algorithm::RS256, &with(json!({"exp": "99999999999"}))),
            &["claims"],
        ),
        (
            "nbf a string",
            sign(Algorithm::RS256, &with(json!({"nbf": "0"}))),
            &["claims"],
        ),
        (
            "no exp",
            sign(Algorithm::RS256, &with(json!({"exp": null}))),
            &["claims"],
        ),
        (
            "no sub",
            sign(Algorithm::ES256, &with(json!({"sub": null}))),
            &["claims"],
        ),
        (
            "empty sub",
            sign(Algorithm::ES256, &with(json!({"sub": ""}))),
            &["claims"],
        ),
        (
            "memberships not a list",
            sign(Algorithm::ES256, &with(json!({"memberships": "fanclub"}))),
            &["claims"],
        ),
        ("16 KiB", "a".repeat(16 << 10), &["too-long"]),
        ("not a JWT", "not-a-token".into(), &["malformed"]),
    ];
    for (what, token, reasons) in &cases {
        let r = hold_as(&s, token);
        assert_eq!(r.status, 401, "{what}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{what}");
        assert_eq!(
            r.body["type"], "urn:boxoffice:problem:invalid-token",
            "{what}"
        );
        let reason = r.body["reason"].as_str().unwrap_or("");
        assert!(reasons.contains(&reason), "{what}: reason {reason:?}");
        // Reads of holds are refused the same way.
        let auth = format!("Bearer {token}");
        let g = s.raw(
            "GET",
            "/v1/holds/demo.A.h0.0000000000000000",
            None,
            &[("Authorization", &auth)],
        );
        assert_eq!(g.status, 401, "{what}");
    }
    // No token at all: 401 too, with the same challenge.
    let r = s.unsigned(
        "POST",
        "/v1/events/demo/holds",
        Some(json!({"section": "A", "quantity": 1}).to_string()),
        &[("Content-Type", "application/json")],
    );
    assert_eq!(
        (r.status, r.body["type"].as_str()),
        (401, Some("urn:boxoffice:problem:unauthorized"))
    );
    let resp = ureq::post(&format!("{}/v1/events/demo/holds", s.base)).send_string("{}");
    let Err(ureq::Error::Status(401, resp)) = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        resp.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    // Nothing changed.
    assert_eq!(held(&s), 3);
    // The challenge names the error when a token was sent.
    let resp = ureq::post(&format!("{}/v1/events/demo/holds", s.base))
        .set("Authorization", "Bearer nonsense")
        .send_string("{}");
    let Err(ureq::Error::Status(401, resp)) = resp else {
        panic!("{resp:?}")
    };
    assert_eq!(
        resp.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    // The refusals are counted by reason (each case was sent twice).
    let metrics = s.metrics();
    assert!(
        metrics.contains(r#"boxoffice_auth_refused_total{reason="expired"} 2"#),
        "{metrics}"
    );
}

#[test]
fn a_fans_holds_and_bookings_are_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let a = s.token_for("fan-a");
    let b = s.token_for("fan-b");
    let as_ = |t: &str| format!("Bearer {t}");
    let r = hold_as(&s, &a);
    assert_eq!(r.status, 201);
    let hold = r.body["id"].as_str().unwrap().to_owned();
    let before = s.raw(
        "GET",
        &format!("/v1/holds/{hold}"),
        None,
        &[("Authorization", &as_(&a))],
    );
    assert_eq!(before.status, 200);
    // Fan B: not found, whatever it tries, exactly as for no such hold.
    let hold_path = format!("/v1/holds/{hold}");
    let confirm_path = format!("/v1/holds/{hold}/confirm");
    // Even with a good receipt for the hold.
    let pay = common::pay(&s.data_dir, &before.body, "b@example.com").to_string();
    let json_b = [
        ("Authorization", as_(&b)),
        ("Content-Type", "application/json".into()),
    ];
    let json_b: Vec<(&str, &str)> = json_b.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for (method, path, body) in [
        ("GET", &hold_path, None),
        ("DELETE", &hold_path, None),
        ("POST", &confirm_path, Some(pay.clone())),
    ] {
        let r = s.raw(method, path, body, &json_b);
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert_eq!(r.body["type"], "urn:boxoffice:problem:hold-not-found");
    }
    assert_eq!(
        s.raw("GET", &hold_path, None, &[("Authorization", &as_(&a))])
            .text,
        before.text,
        "A's hold is unchanged"
    );
    // A confirms; the booking is A's too.
    let json_a = [
        ("Authorization", as_(&a)),
        ("Content-Type", "application/json".into()),
    ];
    let json_a: Vec<(&str, &str)> = json_a.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let pay = common::pay(&s.data_dir, &before.body, "a@example.com").to_string();
    let booked = s.raw("POST", &confirm_path, Some(pay), &json_a);
    assert_eq!(booked.status, 201, "{booked:?}");
    let booking = booked.body["id"].as_str().unwrap().to_owned();
    let booking_path = format!("/v1/bookings/{booking}");
    let cancel_path = format!("/v1/bookings/{booking}/cancel");
    for (method, path) in [("GET", &booking_path), ("POST", &cancel_path)] {
        let r = s.raw(method, path, Some("{}".into()), &json_b);
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
        assert_eq!(r.body["type"], "urn:boxoffice:problem:booking-not-found");
    }
    // B cannot even learn how A's hold ended.
    let r = s.raw("GET", &hold_path, None, &json_b);
    assert_eq!(r.status, 404, "{r:?}");
    let a_sees = s.raw("GET", &booking_path, None, &json_a);
    assert_eq!(
        (a_sees.status, a_sees.body["status"].as_str()),
        (200, Some("confirmed"))
    );
    // Support (the admin token) may read and cancel it; the tickets are
    // for the fan's hand only.
    let support = s.raw("GET", &booking_path, None, &admin());
    let mut fan_view = a_sees.body.clone();
    assert!(fan_view
        .as_object_mut()
        .unwrap()
        .remove("tickets")
        .is_some());
    assert_eq!(support.body, fan_view);
    let cancelled = s.raw("POST", &cancel_path, None, &admin());
    assert_eq!(
        (cancelled.status, cancelled.body["status"].as_str()),
        (200, Some("cancelled"))
    );
}

/// Waits until `f` holds, up to `secs`.
fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_added_to_the_jwks_file_is_taken_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let all: Value = serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let jwks = dir.path().join("jwks.json");
    let only_rsa = json!({"keys": [all["keys"][0]]});
    std::fs::write(&jwks, only_rsa.to_string()).unwrap();
    let s = server(&dir.path().join("data"), jwks.to_str().unwrap());
    assert_eq!(
        hold_as(&s, &sign(Algorithm::RS256, &claims("fan-1"))).status,
        201
    );
    let es = sign(Algorithm::ES256, &claims("fan-2"));
    let r = hold_as(&s, &es);
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (401, Some("unknown-key"))
    );
    // The issuer publishes a new key: no restart.
    std::fs::write(&jwks, all.to_string()).unwrap();
    eventually(10, "the new key was never taken", || {
        hold_as(&s, &es).status == 201
    });
    // A file that breaks keeps the last good keys.
    std::fs::write(&jwks, "{ not json").unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        hold_as(&s, &sign(Algorithm::EdDSA, &claims("fan-3"))).status,
        201
    );
}

/// A JWKS served over HTTP that can stop answering.
struct JwksServer {
    url: String,
    up: Arc<AtomicBool>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    fn start(body: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (u, f) = (Arc::clone(&up), Arc::clone(&fetches));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                f.fetch_add(1, Ordering::SeqCst);
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                if u.load(Ordering::SeqCst) {
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                } else {
                    let _ = conn.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                }
            }
        });
        JwksServer { url, up, fetches }
    }
}

#[test]
fn a_jwks_url_that_stops_answering_keeps_the_last_good_keys() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = JwksServer::start(std::fs::read_to_string(fixture("jwks.json")).unwrap());
    let mut a = args(dir.path());
    a.jwks = Some(jwks.url.clone());
    a.jwks_refresh_secs = 1;
    a.jwt_issuer = Some(ISSUER.into());
    a.jwt_audience = Some(AUDIENCE.into());
    let s = TestServer::start_with(a, Arc::new(boxoffice::clock::ManualClock::new(T0_MS)));
    assert_eq!(
        hold_as(&s, &sign(Algorithm::RS256, &claims("fan-1"))).status,
        201
    );
    jwks.up.store(false, Ordering::SeqCst);
    let seen = jwks.fetches.load(Ordering::SeqCst);
    eventually(10, "the server never tried the JWKS again", || {
        jwks.fetches.load(Ordering::SeqCst) >= seen + 2
    });
    // Fresh tokens (not in the cache) of every key still verify.
    for (alg, sub) in [(Algorithm::ES256, "fan-2"), (Algorithm::EdDSA, "fan-3")] {
        assert_eq!(hold_as(&s, &sign(alg, &claims(sub))).status, 201, "{alg:?}");
    }
}

#[test]
fn the_demo_issuer_signs_tokens_the_server_takes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path(), &[]);
    let out = boxoffice()
        .args([
            "token",
            "--sub",
            "fan-cli",
            "--membership",
            "fanclub",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = request(
        "POST",
        &format!("{base}/v1/events/demo/holds"),
        Some(json!({"section": "B", "quantity": 2}).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(r.status, 201, "{r:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    // With --jwks, the demo issuer's key is never taken.
    let jwks = fixture("jwks.json");
    let (mut child, base) = serve(
        dir.path(),
        &[
            "--jwks",
            jwks.to_str().unwrap(),
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            AUDIENCE,
        ],
    );
    let r = request(
        "POST",
        &format!("{base}/v1/events/demo/holds"),
        Some(json!({"section": "B", "quantity": 2}).to_string()),
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("Bearer {token}")),
        ],
    );
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (401, Some("unknown-key")),
        "{r:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A verified token is remembered, but only until its `exp` (and the
/// leeway): past it, the remembered token is refused too.
#[test]
fn a_remembered_token_still_expires() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), fixture("jwks.json").to_str().unwrap());
    let token = sign(Algorithm::ES256, &claims("fan-1"));
    assert_eq!(hold_as(&s, &token).status, 201);
    assert_eq!(hold_as(&s, &token).status, 201, "from the cache");
    // exp is an hour after T0; the leeway is 30 s.
    s.clock.advance_ms(3_600_000 + 30_000 + 1_000);
    let r = hold_as(&s, &token);
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (401, Some("expired"))
    );
}

fn keyed_hold(s: &TestServer, fan: &str, key: &str) -> Resp {
    let auth = format!("Bearer {}", s.token_for(fan));
    s.post_with(
        "/v1/events/demo/holds",
        &json!({"section": "B", "quantity": 1}),
        &[("Authorization", &auth), ("Idempotency-Key", key)],
    )
}

/// A keyed hold of `fan`, which it then releases: an answer remembered,
/// its seat back on sale.
fn keyed_hold_and_release(s: &TestServer, fan: &str, key: &str) {
    let h = keyed_hold(s, fan, key);
    assert_eq!(h.status, 201, "{fan}: {h:?}");
    let id = h.body["id"].as_str().unwrap();
    let auth = format!("Bearer {}", s.token_for(fan));
    let r = s.raw(
        "DELETE",
        &format!("/v1/holds/{id}"),
        None,
        &[("Authorization", &auth)],
    );
    assert_eq!(r.status, 204);
}

/// An Idempotency-Key is its fan's: the same key from two fans is two
/// requests, and each fan's retry gets its own first answer.
#[test]
fn the_same_key_from_two_fans_is_two_requests() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path());
    let a = keyed_hold(&s, "fan-a", "buy-1");
    let b = keyed_hold(&s, "fan-b", "buy-1");
    assert_eq!((a.status, b.status), (201, 201));
    assert!(!b.replayed);
    assert_ne!(a.body["id"], b.body["id"]);
    assert_eq!(held(&s), 2);
    let again = keyed_hold(&s, "fan-a", "buy-1");
    assert!(again.replayed);
    assert_eq!(again.text, a.text);
    assert_eq!(keyed_hold(&s, "fan-b", "buy-1").text, b.text);
}

/// A fan that sends key after key forgets its own oldest answers; the
/// store never fills for anybody else. (256 keys in all, 16 per shard;
/// 4 per fan.)
#[test]
fn one_fan_cannot_exhaust_the_keys_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.idempotency_keys_max = 256;
    a.idempotency_keys_per_fan = 4;
    let s = TestServer::start_with(a, Arc::new(boxoffice::clock::ManualClock::new(T0_MS)));
    for i in 0..150 {
        keyed_hold_and_release(&s, "greedy", &format!("h{i}"));
    }
    for f in 0..64 {
        let r = keyed_hold(&s, &format!("fan-{f}"), "mine");
        assert_eq!(r.status, 201, "fan-{f}: {r:?}");
    }
    // The greedy fan's latest answers are kept, its oldest forgotten: a
    // retry with its first key is a new request.
    let last = keyed_hold(&s, "greedy", "h149");
    assert!(last.replayed, "{last:?}");
    let first = keyed_hold(&s, "greedy", "h0");
    assert!(!first.replayed);
    assert_eq!(first.status, 201);
}

/// Colluding fans, each using its whole share of keys, fill every shard of
/// the store many times over: every other fan's keyed request still gets
/// room (never a 503), and its answer is there for its retry. (256 keys
/// in all, 16 per shard; 4 per fan; 100 fans of the crowd.)
#[test]
fn a_crowd_of_fans_cannot_take_the_keys_of_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.idempotency_keys_max = 256;
    a.idempotency_keys_per_fan = 4;
    let s = TestServer::start_with(a, Arc::new(boxoffice::clock::ManualClock::new(T0_MS)));
    for f in 0..100 {
        for k in 0..4 {
            keyed_hold_and_release(&s, &format!("crowd-{f}"), &format!("h{k}"));
        }
    }
    let metrics = s.metrics();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("boxoffice_idempotency_evicted_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    for f in 0..64 {
        let r = keyed_hold(&s, &format!("fan-{f}"), "mine");
        assert_eq!(r.status, 201, "fan-{f}: {r:?}");
    }
    for f in 0..64 {
        let again = keyed_hold(&s, &format!("fan-{f}"), "mine");
        assert!(again.replayed, "fan-{f}: {again:?}");
    }
}

/// The signed-in fan's own live holds of the demo: a read that needs a
/// token and changes nothing.
fn my_holds(s: &TestServer, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    s.raw(
        "GET",
        "/v1/events/demo/me/holds",
        None,
        &[("Authorization", &auth)],
    )
}

/// The issuer retires a key (it leaked, say): once the server has the new
/// JWKS, the retired key's tokens prove nothing, even those it verified
/// and remembered before; the other keys' tokens still hold.
#[test]
fn a_key_that_leaves_the_jwks_ends_its_tokens_at_the_next_refresh() {
    let dir = tempfile::tempdir().unwrap();
    let all: Value = serde_json::from_slice(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, all.to_string()).unwrap();
    let s = server(&dir.path().join("data"), jwks.to_str().unwrap());
    let retired = sign(Algorithm::ES256, &claims("fan-es"));
    let kept = sign(Algorithm::RS256, &claims("fan-rs"));
    // Both verified, and remembered.
    assert_eq!(my_holds(&s, &retired).status, 200);
    assert_eq!(my_holds(&s, &kept).status, 200);
    let without_es: Vec<Value> = all["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kid"] != "test-es256")
        .cloned()
        .collect();
    std::fs::write(&jwks, json!({ "keys": without_es }).to_string()).unwrap();
    eventually(10, "the retired key's remembered token still holds", || {
        my_holds(&s, &retired).status == 401
    });
    let r = my_holds(&s, &retired);
    assert_eq!(r.body["reason"], "unknown-key", "{r:?}");
    assert_eq!(my_holds(&s, &kept).status, 200);
}

/// A real sale with none of the settings its trust needs does not start:
/// it says which are missing, all at once, and makes no demo key on the
/// way out. With all of them it starts, and makes none either.
#[test]
fn a_real_sale_without_its_trust_settings_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0", "--demo", "false"])
            .arg("--data-dir")
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for name in [
        "--jwks (BOXOFFICE_JWKS)",
        "--jwt-issuer (BOXOFFICE_JWT_ISSUER)",
        "--jwt-audience (BOXOFFICE_JWT_AUDIENCE)",
        "--payment-secret (BOXOFFICE_PAYMENT_SECRET) or --payment-jwks (BOXOFFICE_PAYMENT_JWKS)",
    ] {
        assert!(err.contains(name), "{name} not named: {err}");
    }
    // Only what is missing is named.
    let jwks = fixture("jwks.json");
    let out = run(&[
        "--jwks",
        jwks.to_str().unwrap(),
        "--jwt-issuer",
        ISSUER,
        "--jwt-audience",
        AUDIENCE,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--payment-secret"), "{err}");
    assert!(!err.contains("--jwt-issuer"), "{err}");
    for demo_key in ["issuer.key", "payment.key"] {
        assert!(!dir.path().join(demo_key).exists(), "{demo_key} was made");
    }
}

/// A real sale checks tokens and receipts against its own services only:
/// the demo's keys in its data directory (left by a demo run of the same
/// directory, say) prove nothing; every `/v1/demo` path is a plain 404 and
/// no demo event is made.
#[test]
fn a_real_sale_trusts_its_own_services_only() {
    const PAYMENT_SECRET: &str = "a-secret-the-payment-service-shares-with-us";
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.demo = false;
    a.jwks = Some(fixture("jwks.json").to_str().unwrap().to_owned());
    a.jwt_issuer = Some(ISSUER.into());
    a.jwt_audience = Some(AUDIENCE.into());
    a.payment_secret = Some(PAYMENT_SECRET.into());
    // (The helper signs its default fan with the data directory's demo
    // issuer, which it makes: the key is there, and must not count.)
    let s = TestServer::start_with(a, Arc::new(boxoffice::clock::ManualClock::new(T0_MS)));
    assert_eq!(s.get("/v1/events").body, json!([]));
    for (method, path) in [
        ("GET", "/v1/demo"),
        ("POST", "/v1/demo/fans"),
        ("POST", "/v1/demo/payments"),
    ] {
        let r = s.unsigned(
            method,
            path,
            Some("{}".into()),
            &[("Content-Type", "application/json")],
        );
        check_problem(&r, 404, "not-found");
    }
    create_event(&s.base, &small_event("tour", &[10], 10, 4));
    let hold = |token: &str| {
        let auth = format!("Bearer {token}");
        s.raw(
            "POST",
            "/v1/events/tour/holds",
            Some(json!({"section": "S", "quantity": 2}).to_string()),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
        )
    };
    let demo_token = token_at(&s.data_dir, "fan-demo", &["fanclub"], T0_MS);
    let r = hold(&demo_token);
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (401, Some("unknown-key"))
    );
    let r = hold(&sign(Algorithm::EdDSA, &claims("fan-real")));
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_owned();
    let confirm = |receipt: &str| {
        let auth = format!("Bearer {}", sign(Algorithm::EdDSA, &claims("fan-real")));
        s.raw(
            "POST",
            &format!("/v1/holds/{id}/confirm"),
            Some(json!({"email": "fan@example.com", "receipt": receipt}).to_string()),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
        )
    };
    let r = confirm(&receipt(&s.data_dir, &r.body, "pay-demo"));
    assert_eq!(
        (r.status, r.body["reason"].as_str()),
        (422, Some("signature")),
        "{r:?}"
    );
    assert_eq!(s.get("/v1/events/tour").body["sold"], 0);
}

/// A demo that listens beyond loopback hands tokens and receipts to
/// anyone who reaches it: it says so at start and to whoever asks.
#[test]
fn a_demo_reachable_from_other_machines_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let (mut child, base) = spawn_listening(
        boxoffice()
            .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stderr(std::fs::File::create(&log).unwrap()),
    );
    let base = base.replace("0.0.0.0", "127.0.0.1");
    let r = request("GET", &format!("{base}/v1/demo"), None, &[]);
    assert_eq!(r.body["exposed"], true, "{r:?}");
    assert!(
        r.body["warning"].as_str().unwrap().contains("for free"),
        "{r:?}"
    );
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(
        err.contains("WARNING: this is the demo, reachable"),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
