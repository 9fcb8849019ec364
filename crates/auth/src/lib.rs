//! Fans, known by the JWTs (RFC 7519) the fan club's membership service
//! signs: `sub` names the fan, a claim (`memberships` by default) lists
//! the memberships that open presale phases to it. And the other tokens
//! this server checks or signs: payment receipts, admissions, its own
//! MAC'd tokens. The `boxoffice-auth` crate, re-exported by the server as
//! `boxoffice::auth`: it knows nothing of HTTP, actors or the command line
//! (each verifier is built from its own settings by the server's
//! `settings` module), and of the workspace only the domain and the
//! store's clock and data directory.
//!
//! - [`keys`]: the issuer's public keys (a JWKS file or URL, kept fresh;
//!   or the local demo issuer's key);
//! - [`jwt`]: the one pipeline fans' tokens and receipts go through;
//! - [`issuer`]: the local demo issuer, for the embedded default;
//! - [`receipt`]: payment receipts; [`admission`]: waiting-room
//!   admissions; [`signed`]: the MAC'd tokens this server signs itself,
//!   and [`ticket`]: the tickets in the QR codes, which name their booking
//!   and the data directory's lineage;
//! - [`Verifier`]: checks a token and caches what it proved.
//!
//! What a token must be: at most `TOKEN_LEN_MAX` bytes; ES256, RS256 or
//! EdDSA, checked with the issuer's key of that id and that algorithm only
//! (never `none`, never HMAC: a public key is never a shared secret); `exp`
//! a number and not past, `nbf` (when present) a number and not ahead,
//! both with `leeway_secs`, against the server's clock (so tests can move
//! it); `sub` present, non-empty, at most `SUB_LEN_MAX` bytes of visible
//! characters; `iss` and `aud` equal to the settings when they are set.
//! A wrong-typed `exp` or `nbf` (a string, say) is refused: the claims are
//! read into typed fields here, whatever the library skips.

pub mod admission;
pub mod issuer;
pub mod jwt;
pub mod keys;
pub mod receipt;
pub mod signed;
pub mod ticket;

// `crate::clock`, `crate::data_dir` and `crate::domain` read as they did
// when these modules were the server's.
use boxoffice_domain as domain;
use boxoffice_store::{clock, data_dir};

use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::domain::{FanId, Lang};
use jwt::{Credential, JwtCheck, Refusals, Trust};
pub use keys::{KeySet, Keys, Origin};

/// Longest token taken.
pub const TOKEN_LEN_MAX: usize = jwt::JWT_LEN_MAX;
/// Longest fan id (`sub`).
pub const SUB_LEN_MAX: usize = crate::domain::FAN_ID_LEN_MAX;
/// Most memberships a token may list, and the longest.
pub const MEMBERSHIPS_MAX: usize = 32;
/// The claim naming the language a fan reads (a BCP 47 tag, as OpenID
/// Connect's `locale`).
pub const LOCALE_CLAIM: &str = "locale";
pub const MEMBERSHIP_LEN_MAX: usize = 64;

/// A fan, as a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    pub id: FanId,
    pub memberships: Box<[Box<str>]>,
    /// The language its `locale` claim names, if boxoffice writes it (a
    /// claim of another language, or of another type, says nothing).
    pub lang: Option<Lang>,
    /// The token's `exp`, in seconds since the epoch.
    pub expires_at_s: u64,
}

impl Fan {
    pub fn is_member(&self, membership: &str) -> bool {
        self.memberships.iter().any(|m| &**m == membership)
    }
}

/// Why a fan's token was refused (each is a `401` at the edge): the one
/// list receipts are refused by too.
pub use jwt::{Refusal, Refused, REASONS};

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `iss` every token must carry, if set.
    pub issuer: Option<String>,
    /// `aud` every token must carry (among its audiences), if set.
    pub audience: Option<String>,
    /// The claim that lists a fan's memberships.
    pub membership_claim: String,
    /// Clock skew forgiven on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Most verified tokens remembered.
    pub cache_max: usize,
}

/// The claims, typed: a wrong-typed `exp` or `nbf` fails here.
#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// Checks tokens; remembers each verified one until it expires or the
/// issuer's keys change (bounded, keyed by a hash of the token), so a
/// fan's later requests do not pay for the signature again, and a key
/// that left the JWKS proves nothing more once the set is refreshed.
pub struct Verifier {
    /// The issuer's keys, `iss` and `aud`.
    jwt: JwtCheck,
    settings: AuthSettings,
    /// What each token proved, and under which generation of the keys.
    cache: quick_cache::sync::Cache<[u8; 32], (Arc<Fan>, u64)>,
    clock: Arc<dyn Clock>,
    /// Refusals by reason, for metrics.
    refused: Refusals,
}

impl Verifier {
    pub fn new(keys: Arc<Keys>, settings: AuthSettings, clock: Arc<dyn Clock>) -> Verifier {
        assert!(settings.cache_max >= 1);
        Verifier {
            jwt: JwtCheck {
                trust: Trust::Keys(keys),
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
            },
            cache: quick_cache::sync::Cache::new(settings.cache_max),
            settings,
            clock,
            refused: Default::default(),
        }
    }

    /// The fan a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Arc<Fan>, Refused> {
        self.refused.note(Credential::FanToken, self.check(token))
    }

    /// Refusals since start, in `REASONS` order.
    pub fn refused(&self) -> [u64; REASONS.len()] {
        self.refused.counts()
    }

    fn check(&self, token: &str) -> Result<Arc<Fan>, Refusal> {
        JwtCheck::fits(token)?;
        let now_s = self.clock.now_ms() / 1000;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let generation = self.jwt.generation();
        if let Some((fan, proved_under)) = self.cache.get(&digest) {
            if now_s > fan.expires_at_s.saturating_add(self.settings.leeway_secs) {
                self.cache.remove(&digest);
                return Err(Refusal::Expired);
            }
            if proved_under == generation {
                return Ok(fan);
            }
            // The keys changed since: its key may have left the set.
        }
        let fan = match self.verify_signed(token, now_s) {
            Ok(fan) => Arc::new(fan),
            Err(e) => {
                self.cache.remove(&digest);
                return Err(e);
            }
        };
        self.cache.insert(digest, (Arc::clone(&fan), generation));
        Ok(fan)
    }

    fn verify_signed(&self, token: &str, now_s: u64) -> Result<Fan, Refusal> {
        let claims: Claims = self.jwt.claims(token)?;
        let leeway = self.settings.leeway_secs as f64;
        let now = now_s as f64;
        let exp = claims.exp.ok_or(Refusal::Claims)?;
        if !exp.is_finite() || now > exp + leeway {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = claims.nbf {
            if !nbf.is_finite() || now + leeway < nbf {
                return Err(Refusal::NotYetValid);
            }
        }
        let sub = claims.sub.ok_or(Refusal::Claims)?;
        if sub.is_empty()
            || sub.len() > SUB_LEN_MAX
            || sub.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(Refusal::Claims);
        }
        let memberships = match claims.rest.get(&self.settings.membership_claim) {
            None => Vec::new(),
            Some(serde_json::Value::Array(list)) if list.len() <= MEMBERSHIPS_MAX => list
                .iter()
                .map(|m| match m.as_str() {
                    Some(m) if m.len() <= MEMBERSHIP_LEN_MAX => Ok(m.into()),
                    _ => Err(Refusal::Claims),
                })
                .collect::<Result<Vec<Box<str>>, _>>()?,
            Some(_) => return Err(Refusal::Claims),
        };
        let lang = claims
            .rest
            .get(LOCALE_CLAIM)
            .and_then(serde_json::Value::as_str)
            .and_then(Lang::from_tag);
        Ok(Fan {
            id: sub.into(),
            memberships: memberships.into(),
            lang,
            // Within u64: a far-future exp stays far future.
            expires_at_s: exp.min(u64::MAX as f64) as u64,
        })
    }
}
