//! What signing in costs a request: a token the server has seen (a hash
//! and a cache lookup) and one it has not (the signature check), per
//! algorithm, with the test issuer's keys (tests/fixtures/issuer/).
//!
//!     cargo bench --bench auth
//!     cargo bench --bench auth -- --warm-up-time 1 --measurement-time 2   # quick

use std::path::Path;
use std::sync::Arc;

use boxoffice::auth::{AuthSettings, KeySet, Keys, Verifier};
use boxoffice::clock::ManualClock;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const NOW_S: u64 = 1_795_392_000;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/issuer")
            .join(name),
    )
    .unwrap()
}

fn verifier(cache_max: usize) -> Verifier {
    let keys = KeySet::parse(&fixture("jwks.json")).unwrap();
    Verifier::new(
        Keys::fixed(keys),
        AuthSettings {
            issuer: Some("https://fanclub.example".into()),
            audience: Some("boxoffice".into()),
            membership_claim: "memberships".into(),
            leeway_secs: 30,
            cache_max,
        },
        Arc::new(ManualClock::new(NOW_S * 1000)),
    )
}

/// A token of fan `n`, signed with the `alg` key.
fn token(alg: Algorithm, n: u64) -> String {
    let (key, kid) = match alg {
        Algorithm::RS256 => (
            EncodingKey::from_rsa_der(&fixture("rsa-private.pkcs1.der")),
            "test-rs256",
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_der(&fixture("ec-private.pkcs8.der")),
            "test-es256",
        ),
        _ => (
            EncodingKey::from_ed_der(&fixture("ed25519-private.pkcs8.der")),
            "test-eddsa",
        ),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let claims = json!({"iss": "https://fanclub.example", "aud": "boxoffice",
        "sub": format!("fan-{n}"), "iat": NOW_S, "exp": NOW_S + 3600, "memberships": ["fanclub"]});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    g.throughput(Throughput::Elements(1));
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let name = format!("{alg:?}");
        // Seen before: the cache answers.
        let v = verifier(100_000);
        let t = token(alg, 0);
        v.verify(&t).unwrap();
        g.bench_with_input(BenchmarkId::new("cached", &name), &t, |b, t| {
            b.iter(|| v.verify(t).unwrap())
        });
        // Never seen: a cache of one, and a ring of distinct tokens.
        let v = verifier(1);
        let tokens: Vec<String> = (0..64).map(|n| token(alg, n)).collect();
        let mut i = 0;
        g.bench_function(BenchmarkId::new("signature", &name), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                v.verify(&tokens[i]).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
