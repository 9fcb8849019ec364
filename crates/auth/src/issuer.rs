//! The local demo issuer: without `--jwks`, the server makes an Ed25519
//! key in its data directory on first start and trusts it alone, so the
//! embedded default works on a fresh machine; `boxoffice token` signs fans'
//! tokens with it. With `--jwks` this key is never trusted.

use std::path::Path;

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::keys::{Key, KeySet};
use crate::data_dir;

/// The file in a data directory that holds the demo issuer's key (64 hex
/// digits: an Ed25519 seed).
pub const ISSUER_KEY_FILE: &str = "issuer.key";
/// The `iss` of the demo issuer's tokens.
pub const LOCAL_ISSUER: &str = "boxoffice-demo";

pub struct LocalIssuer {
    signing: EncodingKey,
    verifying: DecodingKey,
    /// `local-` and the first hex digits of the public key's SHA-256.
    kid: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    sub: &'a str,
    iat: u64,
    exp: u64,
    memberships: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    locale: Option<&'a str>,
}

impl LocalIssuer {
    /// The key in `data_dir`, made on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<LocalIssuer> {
        let seed = data_dir::load_or_create_secret(data_dir, ISSUER_KEY_FILE, 32)?;
        LocalIssuer::from_seed(seed.try_into().expect("32 bytes"))
    }

    /// The key in an existing key file (`<data-dir>/issuer.key`).
    pub fn from_file(path: &Path) -> anyhow::Result<LocalIssuer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let seed =
            data_dir::from_hex(text.trim(), 32).with_context(|| format!("{}", path.display()))?;
        LocalIssuer::from_seed(seed.try_into().expect("32 bytes"))
    }

    fn from_seed(seed: [u8; 32]) -> anyhow::Result<LocalIssuer> {
        let key = SigningKey::from_bytes(&seed);
        let der = key
            .to_pkcs8_der()
            .map_err(|e| anyhow::anyhow!("the demo issuer's key does not encode: {e}"))?;
        let public = key.verifying_key().to_bytes();
        let kid = format!("local-{}", &hex(&Sha256::digest(public))[..16]);
        let verifying = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public))
            .context("the demo issuer's public key")?;
        Ok(LocalIssuer {
            signing: EncodingKey::from_ed_der(der.as_bytes()),
            verifying,
            kid,
        })
    }

    /// The set of its one key, for the verifier.
    pub fn key_set(&self) -> KeySet {
        KeySet::single(
            &self.kid,
            Key {
                alg: Algorithm::EdDSA,
                key: self.verifying.clone(),
            },
        )
    }

    /// A token for fan `sub`, member of `memberships`, issued at `now_s`
    /// and valid for `ttl_s`.
    pub fn mint(
        &self,
        sub: &str,
        memberships: &[String],
        now_s: u64,
        ttl_s: u64,
        audience: Option<&str>,
    ) -> String {
        self.mint_in(sub, memberships, now_s, ttl_s, audience, None)
    }

    /// Likewise, for a fan whose `locale` claim (a BCP 47 tag) says the
    /// language it reads.
    pub fn mint_in(
        &self,
        sub: &str,
        memberships: &[String],
        now_s: u64,
        ttl_s: u64,
        audience: Option<&str>,
        locale: Option<&str>,
    ) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let claims = Claims {
            iss: LOCAL_ISSUER,
            aud: audience,
            sub,
            iat: now_s,
            exp: now_s.saturating_add(ttl_s),
            memberships,
            locale,
        };
        jsonwebtoken::encode(&header, &claims, &self.signing)
            .expect("an Ed25519 key signs any claims")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
