//! The one way this server checks a JWT it did not sign, for fans' tokens
//! (`Verifier`) and payment receipts (`ReceiptVerifier`) alike: the
//! header's algorithm must be one the trust takes (a shared secret takes
//! HS256 only; a key set ES256, RS256 or EdDSA, each key its own, never
//! HMAC against a public key), its key id one of the trusted keys; the
//! library checks the signature, `iss` and `aud` (when the check names
//! them, each then required). Time and the claims themselves are the
//! caller's to check, typed and on its own clock: `exp` and `nbf` are
//! never left to the library.

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

/// Why a token proves nothing, as far as its signature, header and
/// registered claims can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    Algorithm,
    UnknownKey,
    Signature,
    Issuer,
    Audience,
    /// The claims do not decode into the caller's type.
    Claims,
}

/// A trust and the `iss` and `aud` its tokens must carry.
pub struct JwtCheck {
    pub trust: Trust,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

impl JwtCheck {
    /// The claims of `token`, once its signature, algorithm, key, `iss`
    /// and `aud` are as they must be.
    pub fn claims<C: DeserializeOwned>(&self, token: &str) -> Result<C, JwtError> {
        let header = decode_header(token).map_err(|_| self.header_error(token))?;
        let keys;
        let (alg, key) = match &self.trust {
            Trust::Secret(key) if header.alg == Algorithm::HS256 => (Algorithm::HS256, key),
            Trust::Secret(_) => return Err(JwtError::Algorithm),
            Trust::Keys(_) if !KEY_ALGORITHMS.contains(&header.alg) => {
                return Err(JwtError::Algorithm)
            }
            Trust::Keys(set) => {
                keys = set.get();
                match keys.find(header.kid.as_deref(), header.alg) {
                    Some(k) => (k.alg, &k.key),
                    None => {
                        set.unknown_kid();
                        return Err(JwtError::UnknownKey);
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
                    ErrorKind::InvalidSignature => JwtError::Signature,
                    ErrorKind::InvalidIssuer => JwtError::Issuer,
                    ErrorKind::InvalidAudience => JwtError::Audience,
                    ErrorKind::MissingRequiredClaim(c) if c == "iss" => JwtError::Issuer,
                    ErrorKind::MissingRequiredClaim(c) if c == "aud" => JwtError::Audience,
                    ErrorKind::InvalidAlgorithm => JwtError::Algorithm,
                    ErrorKind::Json(_) => JwtError::Claims,
                    ErrorKind::Base64(_) | ErrorKind::Utf8(_) | ErrorKind::InvalidToken => {
                        JwtError::Malformed
                    }
                    _ => JwtError::Signature,
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
    fn header_error(&self, token: &str) -> JwtError {
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
            JwtError::Algorithm
        } else {
            JwtError::Malformed
        }
    }
}
