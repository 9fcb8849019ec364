//! The one way this server checks a JWT it did not sign, for fans' tokens
//! (`Verifier`) and payment receipts (`ReceiptVerifier`) alike: the
//! header's algorithm must be one the trust takes (a shared secret takes
//! HS256 only; a key set ES256, RS256 or EdDSA, each key its own, never
//! HMAC against a public key), its key id one of the trusted keys; the
//! library checks the signature, `iss` and `aud` (when the check names
//! them, each then required). Time and the claims themselves are the
//! caller's to check, typed and on its own clock: `exp` and `nbf` are
//! never left to the library.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use super::keys::Keys;

/// Whom a token must be signed by.
pub enum Trust {
    /// HS256 with a secret shared with the signer.
    Secret(DecodingKey),
    /// The signer's public keys (a JWKS, or the demo issuer's one key).
    Keys(Arc<Keys>),
}

/// The asymmetric algorithms a key set may use.
const KEY_ALGORITHMS: [Algorithm; 3] = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA];

/// Longest JWT looked at, a fan's or a receipt; real ones are a few
/// hundred bytes.
pub const JWT_LEN_MAX: usize = 8 << 10;

/// Why a token proves nothing: one list for fans' tokens and payment
/// receipts alike, so the edge and the metrics name refusals the same
/// way (a receipt is never refused as `NotYetValid`: it has no `nbf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    TooLong,
    Algorithm,
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    Issuer,
    Audience,
    /// The claims are missing, malformed, or do not decode into the
    /// caller's type.
    Claims,
}

/// `Refusal::reason` values, in order: metrics count refusals by them.
pub const REASONS: [&str; 10] = [
    "malformed",
    "too-long",
    "algorithm",
    "unknown-key",
    "signature",
    "expired",
    "not-yet-valid",
    "issuer",
    "audience",
    "claims",
];

impl Refusal {
    /// A short name: the problem's `reason` and the metric's label.
    pub fn reason(self) -> &'static str {
        REASONS[self as usize]
    }
}

/// What was refused: the words a refusal says it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A fan's token, from the fan club's issuer.
    FanToken,
    /// A payment receipt, from the payment service.
    Receipt,
}

/// A token refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub of: Credential,
    pub why: Refusal,
}

impl Refused {
    /// A short name: the problem's `reason` and the metric's label.
    pub fn reason(self) -> &'static str {
        self.why.reason()
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (noun, signer, claims) = match self.of {
            Credential::FanToken => ("token", "the issuer", "sub, exp, nbf, memberships"),
            Credential::Receipt => (
                "receipt",
                "the payment service",
                "hold, amount, currency, ref, exp",
            ),
        };
        let fan = self.of == Credential::FanToken;
        match self.why {
            Refusal::Malformed => write!(f, "the {noun} is not a JWT"),
            Refusal::TooLong => write!(f, "the {noun} is longer than {JWT_LEN_MAX} bytes"),
            Refusal::Algorithm if fan => write!(
                f,
                "the token's algorithm is not accepted (ES256, RS256 or EdDSA)"
            ),
            Refusal::Algorithm => write!(f, "the {noun}'s algorithm is not accepted"),
            Refusal::UnknownKey => {
                write!(
                    f,
                    "no key of {signer} has the {noun}'s key id and algorithm"
                )
            }
            Refusal::Signature => write!(f, "the {noun}'s signature does not verify"),
            Refusal::Expired => write!(f, "the {noun} has expired"),
            Refusal::NotYetValid => write!(f, "the {noun} is not valid yet"),
            Refusal::Issuer if fan => write!(f, "the token's issuer is not accepted"),
            Refusal::Issuer => write!(f, "the receipt's issuer is not the payment service's"),
            Refusal::Audience if fan => write!(f, "the token's audience is not accepted"),
            Refusal::Audience => write!(f, "the receipt's audience is not this server"),
            Refusal::Claims => write!(f, "the {noun}'s claims are missing or malformed ({claims})"),
        }
    }
}

impl std::error::Error for Refused {}

/// Refusals since start, counted by reason (`REASONS` order).
#[derive(Default)]
pub struct Refusals([AtomicU64; REASONS.len()]);

impl Refusals {
    /// Counts `result`'s refusal, if any, and says it of `of`.
    pub fn note<T>(&self, of: Credential, result: Result<T, Refusal>) -> Result<T, Refused> {
        result.map_err(|why| {
            self.0[why as usize].fetch_add(1, Ordering::Relaxed);
            Refused { of, why }
        })
    }

    pub fn counts(&self) -> [u64; REASONS.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// A trust and the `iss` and `aud` its tokens must carry.
pub struct JwtCheck {
    pub trust: Trust,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl JwtCheck {
    /// Whether `token` is short enough to look at (before hashing it or
    /// decoding anything).
    pub fn fits(token: &str) -> Result<(), Refusal> {
        if token.len() > JWT_LEN_MAX {
            return Err(Refusal::TooLong);
        }
        Ok(())
    }

    /// The claims of `token`, once its length, signature, algorithm, key,
    /// `iss` and `aud` are as they must be.
    pub fn claims<C: DeserializeOwned>(&self, token: &str) -> Result<C, Refusal> {
        JwtCheck::fits(token)?;
        let header = decode_header(token).map_err(|_| self.header_error(token))?;
        let keys;
        let (alg, key) = match &self.trust {
            Trust::Secret(key) if header.alg == Algorithm::HS256 => (Algorithm::HS256, key),
            Trust::Secret(_) => return Err(Refusal::Algorithm),
            Trust::Keys(_) if !KEY_ALGORITHMS.contains(&header.alg) => {
                return Err(Refusal::Algorithm)
            }
            Trust::Keys(set) => {
                keys = set.get();
                match keys.find(header.kid.as_deref(), header.alg) {
                    Some(k) => (k.alg, &k.key),
                    None => {
                        set.unknown_kid();
                        return Err(Refusal::UnknownKey);
                    }
                }
            }
        };
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        decode::<C>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => Refusal::Signature,
                    ErrorKind::InvalidIssuer => Refusal::Issuer,
                    ErrorKind::InvalidAudience => Refusal::Audience,
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" => Refusal::Issuer,
                    ErrorKind::MissingRequiredClaim(c) if c == "aud" => Refusal::Audience,
                    ErrorKind::InvalidAlgorithm => Refusal::Algorithm,
                    ErrorKind::Json(_) => Refusal::Claims,
                    ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                        Refusal::Malformed
                    }
                    _ => Refusal::Signature,
                }
            })
    }

    /// Which set of trusted keys checks now: a new number each time the
    /// set changed (always 0 for a shared secret).
    pub fn generation(&self) -> u64 {
        match &self.trust {
            Trust::Secret(_) => 0,
            Trust::Keys(keys) => keys.generation(),
        }
    }

    /// Why a token's header does not parse: a named algorithm this trust
    /// does not take (`none`, which the library does not even name) is
    /// `Algorithm`; anything else `Malformed`.
    fn header_error(&self, token: &str) -> Refusal {
        use base64::Engine;
        let taken: &[&str] = match self.trust {
            Trust::Secret(_) => &["HS256"],
            Trust::Keys(_) => &["ES256", "RS256", "EdDSA"],
        };
        let named_alg = token
            .split('.')
            .next()
            .and_then(|h| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(h)
                    .ok()
            })
            .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
            .is_some_and(|h| h["alg"].as_str().is_some_and(|a| !taken.contains(&a)));
        if named_alg {
            Refusal::Algorithm
        } else {
            Refusal::Malformed
        }
    }
}
