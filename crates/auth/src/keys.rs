//! The issuer's public keys: a JWKS (RFC 7517) from a file or a URL, or
//! the local demo issuer's one key. Only ES256 (P-256), RS256 and EdDSA
//! (Ed25519) keys are taken: never a symmetric (`oct`) key, so no token
//! can be checked with HMAC against a public key, and each key verifies
//! its own algorithm only.
//!
//! A file is read again when it changes (a key added there is accepted
//! without a restart); a URL is fetched every `refresh` and when a token
//! names an unknown key id (at most once per `UNKNOWN_KID_REFETCH`). A read
//! or fetch that fails, or yields no usable key, keeps the last good set.
//! A set whose keys changed gets a new [`Keys::generation`]: whoever
//! remembers what a key proved checks it again (a key that left the set
//! ends its tokens at the next refresh). What counts is the usable keys
//! themselves (`KeySet::fingerprint`), not the document's bytes: an
//! issuer that serves its keys in another order on every fetch must not
//! make every fan's token be checked again every few seconds.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use sha2::{Digest, Sha256};

/// Most keys one set may hold, and most bytes of a JWKS document.
pub const KEYS_MAX: usize = 100;
pub const JWKS_LEN_MAX: u64 = 1 << 20;
/// How often a JWKS file is looked at for changes.
const FILE_CHECK: Duration = Duration::from_secs(1);
/// Least time between two fetches caused by unknown key ids (or the
/// refresh period, if shorter): a client sending made-up ids cannot make
/// the server hammer the issuer.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(10);
/// Deadline of one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key and the one algorithm it checks.
#[derive(Clone)]
pub struct Key {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

/// The keys tokens are checked against, by key id.
#[derive(Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys without an id; a token without `kid` is checked against the
    /// one key of its algorithm, if there is exactly one.
    unnamed: Vec<Key>,
    /// A SHA-256 of the usable keys, in a canonical order.
    fingerprint: [u8; 32],
}

impl KeySet {
    /// The key a token with header `kid` and `alg` must verify with.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> Option<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid).filter(|k| k.alg == alg),
            None => {
                let mut of_alg = self
                    .by_kid
                    .values()
                    .chain(&self.unnamed)
                    .filter(|k| k.alg == alg);
                match (of_alg.next(), of_alg.next()) {
                    (Some(k), None) => Some(k),
                    _ => None,
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A set of one key.
    pub fn single(kid: &str, key: Key) -> KeySet {
        KeySet {
            by_kid: HashMap::from([(kid.to_owned(), key)]),
            unnamed: Vec::new(),
            fingerprint: Sha256::digest(kid.as_bytes()).into(),
        }
    }

    /// The same for two sets of the same usable keys, however their
    /// documents were written.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The usable keys of a JWKS document; keys of other types, curves or
    /// algorithms are skipped (and named in the error when none is left).
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))?;
        if set.keys.len() > KEYS_MAX {
            return Err(format!("more than {KEYS_MAX} keys"));
        }
        let mut out = KeySet::default();
        let mut skipped = Vec::new();
        let mut canonical = Vec::new();
        for jwk in &set.keys {
            match usable(jwk) {
                Ok(key) => {
                    // Serialized field by field in the type's order: the
                    // same for the same key, whatever the document's.
                    canonical.push(serde_json::to_vec(jwk).unwrap_or_default());
                    match &jwk.common.key_id {
                        Some(kid) => {
                            out.by_kid.insert(kid.clone(), key);
                        }
                        None => out.unnamed.push(key),
                    }
                }
                Err(why) => skipped.push(format!(
                    "{}: {why}",
                    jwk.common.key_id.as_deref().unwrap_or("a key without kid")
                )),
            }
        }
        canonical.sort();
        let mut h = Sha256::new();
        for key in &canonical {
            h.update((key.len() as u64).to_le_bytes());
            h.update(key);
        }
        out.fingerprint = h.finalize().into();
        if out.is_empty() {
            return Err(format!(
                "no usable key (ES256, RS256 or EdDSA){}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {}", skipped.join(", "))
                }
            ));
        }
        if !skipped.is_empty() {
            tracing::warn!(skipped = %skipped.join(", "), "JWKS keys not used");
        }
        Ok(out)
    }
}

/// A JWK's verification key and algorithm, if it is one we accept.
fn usable(jwk: &Jwk) -> Result<Key, String> {
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => return Err("a symmetric key is never taken".into()),
        _ => return Err("not a P-256, RSA or Ed25519 key".into()),
    };
    // A key that names its algorithm must name the one we check it with.
    let named = jwk.common.key_algorithm;
    let agrees = match named {
        None => true,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(_) => false,
    };
    if !agrees {
        return Err(format!("its alg {named:?} is not accepted"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("does not load: {e}"))?;
    Ok(Key { alg, key })
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A fixed set (the local demo issuer's key).
    Fixed,
    File(PathBuf),
    Url(String),
}

impl Origin {
    /// A setting's JWKS: an http(s) URL, or else a file.
    pub fn of(location: &str) -> Origin {
        if location.starts_with("http://") || location.starts_with("https://") {
            Origin::Url(location.to_owned())
        } else {
            Origin::File(location.into())
        }
    }
}

/// The current key set, kept fresh by a thread of its own for a file or a
/// URL.
pub struct Keys {
    current: RwLock<Arc<KeySet>>,
    /// Bumped whenever the set's document changes.
    generation: AtomicU64,
    nudge: Sender<()>,
    origin: Origin,
}

impl Keys {
    /// A fixed set: nothing to refresh.
    pub fn fixed(set: KeySet) -> Arc<Keys> {
        let (nudge, _) = crossbeam_channel::bounded(1);
        Arc::new(Keys {
            current: RwLock::new(Arc::new(set)),
            generation: AtomicU64::new(0),
            nudge,
            origin: Origin::Fixed,
        })
    }

    /// Loads the set from `origin` now (an error if that fails: a server
    /// must not start without keys), then keeps it fresh.
    pub fn load(origin: Origin, refresh: Duration) -> Result<Arc<Keys>, String> {
        let (first, stamp) = read(&origin)?;
        let fingerprint = first.fingerprint();
        let (nudge, nudged) = crossbeam_channel::bounded(1);
        let keys = Arc::new(Keys {
            current: RwLock::new(Arc::new(first)),
            generation: AtomicU64::new(0),
            nudge,
            origin: origin.clone(),
        });
        let weak = Arc::downgrade(&keys);
        std::thread::Builder::new()
            .name("jwks-refresh".into())
            .spawn(move || refresher(weak, nudged, origin, refresh, stamp, fingerprint))
            .map_err(|e| format!("cannot start the key refresher: {e}"))?;
        Ok(keys)
    }

    pub fn get(&self) -> Arc<KeySet> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Which set `get` gives: a new number each time the document
    /// changed. Read it before `get`, so that a number never claims a
    /// newer set than the one a check used.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A token named a key id the set lacks: look again soon (never
    /// waits; the refresher decides whether to).
    pub fn unknown_kid(&self) {
        if !matches!(self.origin, Origin::Fixed) {
            let _ = self.nudge.try_send(());
        }
    }

    fn replace(&self, set: KeySet) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// A file's modification time, to notice changes.
type Stamp = Option<SystemTime>;

fn read(origin: &Origin) -> Result<(KeySet, Stamp), String> {
    match origin {
        Origin::Fixed => Ok((KeySet::default(), None)),
        Origin::File(path) => {
            let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.len() as u64 > JWKS_LEN_MAX {
                return Err(format!("{}: over {JWKS_LEN_MAX} bytes", path.display()));
            }
            let set = KeySet::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((set, stamp))
        }
        Origin::Url(url) => {
            let response = ureq::get(url)
                .timeout(FETCH_TIMEOUT)
                .call()
                .map_err(|e| format!("{url}: {e}"))?;
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(response.into_reader(), JWKS_LEN_MAX + 1),
                &mut bytes,
            )
            .map_err(|e| format!("{url}: {e}"))?;
            if bytes.len() as u64 > JWKS_LEN_MAX {
                return Err(format!("{url}: over {JWKS_LEN_MAX} bytes"));
            }
            let set = KeySet::parse(&bytes).map_err(|e| format!("{url}: {e}"))?;
            Ok((set, None))
        }
    }
}

fn refresher(
    keys: Weak<Keys>,
    nudged: Receiver<()>,
    origin: Origin,
    refresh: Duration,
    mut stamp: Stamp,
    mut fingerprint: [u8; 32],
) {
    let tick = match origin {
        Origin::File(_) => FILE_CHECK,
        _ => refresh,
    };
    let mut last_fetch = Instant::now();
    loop {
        let nudge = match nudged.recv_timeout(tick) {
            Ok(()) => true,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => false,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        let Some(keys) = keys.upgrade() else {
            return;
        };
        let due = match &origin {
            Origin::Fixed => return,
            Origin::File(path) => {
                let changed = std::fs::metadata(path).and_then(|m| m.modified()).ok() != stamp;
                changed || (nudge && last_fetch.elapsed() >= FILE_CHECK)
            }
            Origin::Url(_) => !nudge || last_fetch.elapsed() >= UNKNOWN_KID_REFETCH.min(refresh),
        };
        if !due {
            continue;
        }
        last_fetch = Instant::now();
        match read(&origin) {
            Ok((set, new_stamp)) => {
                stamp = new_stamp;
                // The same keys: nothing to check again.
                if set.fingerprint() != fingerprint {
                    fingerprint = set.fingerprint();
                    tracing::info!(keys = set.len(), origin = ?keys.origin, "issuer keys loaded");
                    keys.replace(set);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the issuer keys; keeping the last good ones");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/issuer/jwks.json"
        );
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// The same keys written otherwise (another order, other spacing) are
    /// the same set; a key more or less is another.
    #[test]
    fn a_set_is_known_by_its_keys_not_its_bytes() {
        let doc = fixture();
        let set = |v: &serde_json::Value| KeySet::parse(v.to_string().as_bytes()).unwrap();
        let same = set(&doc).fingerprint();
        let mut reversed = doc.clone();
        reversed["keys"].as_array_mut().unwrap().reverse();
        assert_eq!(set(&reversed).fingerprint(), same);
        let pretty = serde_json::to_vec_pretty(&doc).unwrap();
        assert_eq!(KeySet::parse(&pretty).unwrap().fingerprint(), same);
        let mut fewer = doc.clone();
        fewer["keys"].as_array_mut().unwrap().pop();
        assert_ne!(set(&fewer).fingerprint(), same);
    }
}
