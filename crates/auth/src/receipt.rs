//! Payment receipts: a JWT the payment service signs once a fan has paid
//! for a hold, naming the hold, the amount, the currency and a unique
//! payment reference. A confirm books only with one (the server never
//! trusts a client's word that it paid).
//!
//! Signed with HS256 and a secret shared with the payment service
//! (`--payment-secret`), or with a key of its JWKS (`--payment-jwks`:
//! ES256, RS256 or EdDSA, never HMAC against a public key). Without
//! either, the server keeps a demo secret in its data directory and
//! `boxoffice receipt` stands in for the payment page.
//!
//! This module checks what the token alone can prove: signature, expiry,
//! typed claims. That the hold is the one confirmed, that amount and
//! currency are the hold's total, and that the reference was never used
//! are checked where those facts live (the handler, the section actor).

use std::path::Path;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use super::jwt::{Credential, JwtCheck, Refusal, Refusals, Refused, Trust};
use crate::clock::Clock;
use crate::data_dir;

/// The file in a data directory that holds the demo payment secret (64
/// hex digits).
pub const PAYMENT_KEY_FILE: &str = "payment.key";
/// Longest receipt taken.
pub const RECEIPT_LEN_MAX: usize = super::jwt::JWT_LEN_MAX;
/// Longest payment reference, and shortest shared secret.
pub const REFERENCE_LEN_MAX: usize = crate::domain::PAYMENT_REF_LEN_MAX;
pub const SECRET_LEN_MIN: usize = 32;
/// Longest currency code and hold id a receipt may name.
const HOLD_LEN_MAX: usize = 256;

/// What a verified receipt says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The hold paid for, as its id.
    pub hold: String,
    /// In the currency's minor unit.
    pub amount: u64,
    pub currency: String,
    /// The payment service's unique reference: books once, ever.
    pub reference: String,
}

/// The claims, typed: an amount or `exp` that is a string or a fraction
/// fails here.
#[derive(Serialize, Deserialize)]
struct Claims {
    hold: String,
    amount: u64,
    currency: String,
    #[serde(rename = "ref")]
    reference: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

pub struct ReceiptVerifier {
    /// The payment service's secret or keys, `iss` and `aud`.
    jwt: JwtCheck,
    leeway_secs: u64,
    clock: Arc<dyn Clock>,
    /// Refusals by reason, for metrics.
    refused: Refusals,
}

impl ReceiptVerifier {
    /// Checks receipts against `trust`, requiring `issuer` and
    /// `audience` when given, with `leeway_secs` forgiven on `exp`.
    pub fn new(
        trust: Trust,
        issuer: Option<String>,
        audience: Option<String>,
        leeway_secs: u64,
        clock: Arc<dyn Clock>,
    ) -> ReceiptVerifier {
        ReceiptVerifier {
            jwt: JwtCheck {
                trust,
                issuer,
                audience,
            },
            leeway_secs,
            clock,
            refused: Default::default(),
        }
    }

    /// What `token` proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Receipt, Refused> {
        self.refused.note(Credential::Receipt, self.check(token))
    }

    /// Refusals since start, in `REASONS` order.
    pub fn refused(&self) -> [u64; super::jwt::REASONS.len()] {
        self.refused.counts()
    }

    fn check(&self, token: &str) -> Result<Receipt, Refusal> {
        let claims: Claims = self.jwt.claims(token)?;
        let now_s = self.clock.now_ms() / 1000;
        if now_s > claims.exp.saturating_add(self.leeway_secs) {
            return Err(Refusal::Expired);
        }
        let printable = |s: &str, max: usize| {
            !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
        };
        if !printable(&claims.hold, HOLD_LEN_MAX)
            || !printable(&claims.reference, REFERENCE_LEN_MAX)
            || claims.currency.len() != 3
            || !claims.currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(Refusal::Claims);
        }
        Ok(Receipt {
            hold: claims.hold,
            amount: claims.amount,
            currency: claims.currency,
            reference: claims.reference,
        })
    }
}

/// The demo payment service: the secret in the data directory, and the
/// receipts `boxoffice receipt` signs with it.
pub struct LocalPayments {
    signing: EncodingKey,
    verifying: DecodingKey,
}

impl LocalPayments {
    /// The secret in `data_dir`, made on first use.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<LocalPayments> {
        LocalPayments::from_secret(&data_dir::load_or_create_secret(
            data_dir,
            PAYMENT_KEY_FILE,
            32,
        )?)
    }

    /// What checks the receipts it signs.
    pub fn verifying_key(&self) -> DecodingKey {
        self.verifying.clone()
    }

    /// The secret in an existing key file (`<data-dir>/payment.key`).
    pub fn from_file(path: &Path) -> anyhow::Result<LocalPayments> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let secret =
            data_dir::from_hex(text.trim(), 32).with_context(|| format!("{}", path.display()))?;
        LocalPayments::from_secret(&secret)
    }

    fn from_secret(secret: &[u8]) -> anyhow::Result<LocalPayments> {
        let bad = |e: jsonwebtoken::errors::Error| anyhow::anyhow!("the demo payment secret: {e}");
        Ok(LocalPayments {
            signing: EncodingKey::from_secret(secret).map_err(bad)?,
            verifying: DecodingKey::from_secret(secret).map_err(bad)?,
        })
    }

    /// A receipt for `amount` `currency` paid for hold `hold`, reference
    /// `reference`, issued at `now_s`, valid for `ttl_s`.
    pub fn receipt(
        &self,
        hold: &str,
        amount: u64,
        currency: &str,
        reference: &str,
        now_s: u64,
        ttl_s: u64,
    ) -> String {
        let claims = Claims {
            hold: hold.to_owned(),
            amount,
            currency: currency.to_owned(),
            reference: reference.to_owned(),
            exp: now_s.saturating_add(ttl_s),
            iat: Some(now_s),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .expect("HS256 signs any claims")
    }
}
