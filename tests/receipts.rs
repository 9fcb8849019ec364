//! Payment receipts over a real socket: a confirm books only with a
//! receipt the payment service signed for exactly this hold, its total
//! and its currency, with a reference never used before. Every other
//! receipt is refused with its own problem type and books nothing.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boxoffice::clock::{Clock, ManualClock};
use common::{args, TestServer, T0_MS};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The secret shared with the payment service (HS256).
const SECRET: &str = "a-secret-the-payment-service-shares-with-us";

fn server(dir: &Path) -> TestServer {
    let mut a = args(dir);
    a.payment_secret = Some(SECRET.into());
    TestServer::start_with(a, Arc::new(ManualClock::new(T0_MS)))
}

/// A receipt of `claims`, HS256 with `secret`.
fn signed(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// The claims of a good receipt for `hold` (its answer), valid for ten
/// minutes on the server's clock.
fn claims(s: &TestServer, hold: &Value, reference: &str) -> Value {
    let now = s.clock.now_ms() / 1000;
    json!({"hold": hold["id"], "amount": hold["total_price"], "currency": hold["currency"],
           "ref": reference, "iat": now, "exp": now + 600})
}

fn confirm(s: &TestServer, hold: &Value, receipt: &str) -> common::Resp {
    s.post(
        &format!("/v1/holds/{}/confirm", hold["id"].as_str().unwrap()),
        &json!({"email": "fan@example.com", "receipt": receipt}),
    )
}

fn sold(s: &TestServer) -> u64 {
    s.get("/v1/events/demo").body["sold"].as_u64().unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/issuer")
        .join(name)
}

#[test]
fn only_a_receipt_for_exactly_this_hold_books() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path());
    let hold = s.hold("A", &["A/1/1", "A/11/1"]);
    // The hold's answer says what to pay: R (165,000) + S (143,000).
    assert_eq!(
        (hold["total_price"].clone(), hold["currency"].clone()),
        (json!(308_000), json!("KRW"))
    );
    let other = s.hold("B", &["B/1/1"]);
    let good = claims(&s, &hold, "pay_1");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let rsa = EncodingKey::from_rsa_der(&std::fs::read(fixture("rsa-private.pkcs1.der")).unwrap());
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("empty", String::new(), 422, "receipt-invalid"),
        ("not a JWT", "pay me".into(), 422, "receipt-invalid"),
        (
            "forged (another secret)",
            signed("not-the-secret-of-the-payment-service", &good),
            422,
            "receipt-invalid",
        ),
        (
            "alg none",
            format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&good)),
            422,
            "receipt-invalid",
        ),
        (
            "RS256 against a shared secret",
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &good, &rsa).unwrap(),
            422,
            "receipt-invalid",
        ),
        (
            "expired",
            signed(SECRET, &with("exp", json!(T0_MS / 1000 - 3600))),
            422,
            "receipt-expired",
        ),
        (
            "amount as a string",
            signed(SECRET, &with("amount", json!("308000"))),
            422,
            "receipt-invalid",
        ),
        (
            "no reference",
            signed(SECRET, &{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("ref");
                c
            }),
            422,
            "receipt-invalid",
        ),
        (
            "another hold",
            signed(SECRET, &with("hold", other["id"].clone())),
            422,
            "receipt-wrong-hold",
        ),
        (
            "too little",
            signed(SECRET, &with("amount", json!(307_999))),
            422,
            "receipt-wrong-amount",
        ),
        (
            "too much",
            signed(SECRET, &with("amount", json!(308_001))),
            422,
            "receipt-wrong-amount",
        ),
        (
            "another currency",
            signed(SECRET, &with("currency", json!("USD"))),
            422,
            "receipt-wrong-currency",
        ),
        (
            "over 8 KiB",
            signed(SECRET, &with("ref", json!("x".repeat(7 << 10)))),
            422,
            "receipt-invalid",
        ),
    ];
    for (what, receipt, status, kind) in cases {
        let r = confirm(&s, &hold, &receipt);
        assert_eq!(r.status, status, "{what}: {r:?}");
        assert_eq!(r.content_type, "application/problem+json", "{what}");
        assert_eq!(
            r.body["type"],
            format!("urn:boxoffice:problem:{kind}"),
            "{what}: {r:?}"
        );
    }
    let r = confirm(&s, &hold, &signed(SECRET, &with("amount", json!(1))));
    assert_eq!(
        (r.body["total_price"].clone(), r.body["paid"].clone()),
        (json!(308_000), json!(1))
    );
    assert_eq!(sold(&s), 0, "no refused receipt booked anything");
    assert_eq!(
        s.get(&format!("/v1/holds/{}", hold["id"].as_str().unwrap()))
            .status,
        200
    );
    // A receipt of the demo secret is not the payment service's.
    let demo = common::receipt(dir.path(), &hold, "pay_demo");
    assert_eq!(
        confirm(&s, &hold, &demo).body["type"],
        "urn:boxoffice:problem:receipt-invalid"
    );

    // The good one books, and the booking keeps its reference.
    let b = confirm(&s, &hold, &signed(SECRET, &good));
    assert_eq!(b.status, 201, "{b:?}");
    assert_eq!(b.body["payment_ref"], "pay_1");
    assert_eq!(b.body["total_price"], 308_000);
    assert_eq!(sold(&s), 2);

    // Its reference never books again: not for another hold, in another
    // section, not after a restart, not after the booking is cancelled.
    let reused = confirm(&s, &other, &signed(SECRET, &claims(&s, &other, "pay_1")));
    assert_eq!(
        (reused.status, reused.body["type"].as_str()),
        (409, Some("urn:boxoffice:problem:payment-already-used"))
    );
    let bid = b.body["id"].as_str().unwrap();
    assert_eq!(
        s.raw("POST", &format!("/v1/bookings/{bid}/cancel"), None, &[])
            .status,
        200
    );
    let clock = Arc::clone(&s.clock);
    s.stop();
    let mut a = args(dir.path());
    a.payment_secret = Some(SECRET.into());
    let s = TestServer::start_with(a, clock);
    let reused = confirm(&s, &other, &signed(SECRET, &claims(&s, &other, "pay_1")));
    assert_eq!(
        reused.body["type"], "urn:boxoffice:problem:payment-already-used",
        "{reused:?}"
    );
    assert_eq!(
        confirm(&s, &other, &signed(SECRET, &claims(&s, &other, "pay_2"))).status,
        201
    );
    let metrics = s.metrics();
    assert!(
        metrics.contains(r#"boxoffice_receipts_refused_total{reason="signature"}"#),
        "{metrics}"
    );
}

/// Two confirmations racing with one reference, in two sections: one
/// books.
#[test]
fn one_reference_books_once_whatever_the_race() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(server(dir.path()));
    for round in 0..10 {
        let holds: Vec<Value> = ["C", "D", "E", "F"]
            .iter()
            .map(|sec| {
                let r = s.post(
                    "/v1/events/demo/holds",
                    &json!({"section": sec, "quantity": 1}),
                );
                assert_eq!(r.status, 201);
                r.body
            })
            .collect();
        let reference = format!("race-{round}");
        let barrier = Arc::new(std::sync::Barrier::new(holds.len()));
        let answers: Vec<u16> = holds
            .into_iter()
            .map(|h| {
                let (s, barrier) = (Arc::clone(&s), Arc::clone(&barrier));
                let receipt = signed(SECRET, &claims(&s, &h, &reference));
                std::thread::spawn(move || {
                    barrier.wait();
                    confirm(&s, &h, &receipt).status
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            answers.iter().filter(|&&a| a == 201).count(),
            1,
            "{answers:?}"
        );
        assert_eq!(
            answers.iter().filter(|&&a| a == 409).count(),
            3,
            "{answers:?}"
        );
    }
}

/// A payment service that signs with its own keys, published as a JWKS
/// (here ES256 and EdDSA): its receipts book, if they name the payment
/// service as issuer and this server as audience; a shared-secret receipt
/// does not, nor does a key it does not list, nor a receipt the same keys
/// signed for another issuer or another audience (one payment provider
/// serving many shops).
#[test]
fn receipts_signed_with_the_payment_services_jwks() {
    const ISSUER: &str = "https://pay.example";
    const AUDIENCE: &str = "boxoffice-tickets";
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(dir.path());
    a.payment_jwks = Some(fixture("jwks.json").to_str().unwrap().to_owned());
    a.payment_issuer = Some(ISSUER.into());
    a.payment_audience = Some(AUDIENCE.into());
    let s = TestServer::start_with(a, Arc::new(ManualClock::new(T0_MS)));
    let hold = s.hold("A", &["A/2/1"]);
    let mut c = claims(&s, &hold, "pay_jwks");
    c["iss"] = json!(ISSUER);
    c["aud"] = json!(AUDIENCE);
    let der = |f: &str| std::fs::read(fixture(f)).unwrap();
    let es = |kid: &str, c: &Value| {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(
            &h,
            c,
            &EncodingKey::from_ec_der(&der("ec-private.pkcs8.der")),
        )
        .unwrap()
    };
    assert_eq!(
        confirm(&s, &hold, &es("no-such-key", &c)).body["reason"],
        "unknown-key"
    );
    assert_eq!(
        confirm(&s, &hold, &signed(SECRET, &c)).body["reason"],
        "algorithm"
    );
    for (claim, value, reason) in [
        ("aud", json!("another-shop"), "audience"),
        ("aud", Value::Null, "audience"),
        ("iss", json!("https://pay.example.evil"), "issuer"),
        ("iss", Value::Null, "issuer"),
    ] {
        let mut other = c.clone();
        match value {
            Value::Null => other.as_object_mut().unwrap().remove(claim),
            v => other.as_object_mut().unwrap().insert(claim.into(), v),
        };
        let r = confirm(&s, &hold, &es("test-es256", &other));
        assert_eq!(
            (r.status, r.body["reason"].as_str()),
            (422, Some(reason)),
            "{claim}: {r:?}"
        );
    }
    assert_eq!(sold(&s), 0);
    let b = confirm(&s, &hold, &es("test-es256", &c));
    assert_eq!(b.status, 201, "{b:?}");
    assert_eq!(b.body["payment_ref"], "pay_jwks");
}
