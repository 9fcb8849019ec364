//! Tokens this server signs for itself and checks later: a small JSON
//! payload, `<PREFIX>.<payload>.<mac>`, the payload base64url (no
//! padding) and the mac base64url of HMAC-SHA256 over `<PREFIX>.<payload>`.
//! The prefix names the kind of token and is under the mac, so one kind
//! never passes for another. Tickets (`mail::TicketKey`, `BXT1`) and
//! waiting-room admissions (`admission::AdmissionKey`, `BXA1`) are both.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;

pub const KEY_LEN: usize = 32;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedError {
    /// Not a token of this kind (or longer than any).
    Malformed,
    /// The mac does not match: forged, altered or another key's.
    BadSignature,
    /// Signed, but the payload does not decode.
    Payload(String),
}

/// An HMAC-SHA256 key.
#[derive(Clone)]
pub struct MacKey([u8; KEY_LEN]);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl MacKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MacKey {
        MacKey(bytes)
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    pub fn sign<T: Serialize>(&self, prefix: &str, payload: &T) -> String {
        let json = serde_json::to_vec(payload).expect("token payloads serialize");
        let signed = format!("{prefix}.{}", URL_SAFE_NO_PAD.encode(json));
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks the mac in constant time, then decodes the payload; tokens
    /// longer than `len_max` are not looked at.
    pub fn verify<T: DeserializeOwned>(
        &self,
        prefix: &str,
        token: &str,
        len_max: usize,
    ) -> Result<T, SignedError> {
        let token = token.trim();
        if token.len() > len_max {
            return Err(SignedError::Malformed);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(SignedError::Malformed)?;
        let payload = signed
            .strip_prefix(prefix)
            .and_then(|p| p.strip_prefix('.'))
            .ok_or(SignedError::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| SignedError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&tag)
            .map_err(|_| SignedError::BadSignature)?;
        let json = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|e| SignedError::Payload(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| SignedError::Payload(e.to_string()))
    }
}
