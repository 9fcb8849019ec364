//! The demo's stand-ins for the two services a real sale has around
//! boxoffice: the fan club's login and the payment page. They exist only
//! in the demo (`--demo`, the default), and there only while the server
//! trusts its own demo keys (no `--jwks`: the demo issuer; no
//! `--payment-secret` or `--payment-jwks`: the demo payment secret). A
//! real sale (`--demo false`) never has them: every `/v1/demo` path is a
//! 404, as if it were not there.
//!
//! - `GET /v1/demo`: which stand-ins this server offers (the fan's page
//!   shows a "demo fan" button and a demo payment only if it does), and
//!   whether it hands them to more than this machine.
//! - `POST /v1/demo/fans`: a new fan's token, signed by the demo issuer,
//!   as the agency's login would hand it to the page.
//! - `POST /v1/demo/payments`: a payment receipt for the signed-in fan's
//!   own live hold, for exactly its total, as the payment page would.

use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::Problem;
use super::target::read_hold;
use super::who::signed_in;
use super::{read_json, ApiError, AppState, BODY_LEN_MAX};
use crate::api::dto::hold_view_dto;
use crate::auth::issuer::LocalIssuer;
use crate::auth::receipt::LocalPayments;
use crate::domain::HoldView;

/// How long a demo fan's token lasts: an evening of trying the page.
const FAN_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);
/// How long a demo receipt lasts: the fan confirms at once.
const RECEIPT_TTL: Duration = Duration::from_secs(600);
/// The memberships a demo fan may claim, and how long each may be.
const MEMBERSHIPS_MAX: usize = 8;
const MEMBERSHIP_LEN_MAX: usize = 64;

/// The demo's signing keys, each present only while the server trusts it.
pub struct Demo {
    /// Whether this is the demo at all: a real sale serves no `/v1/demo`.
    on: bool,
    /// A demo listening beyond loopback: anyone who reaches it gets
    /// tokens and receipts.
    exposed: bool,
    issuer: Option<LocalIssuer>,
    payments: Option<LocalPayments>,
    /// The `aud` the server's verifier asks for, if any: a demo token
    /// must pass the same check as any other.
    audience: Option<String>,
}

impl Demo {
    /// No demo: a real sale serves no `/v1/demo`.
    pub fn off() -> Demo {
        Demo {
            on: false,
            exposed: false,
            issuer: None,
            payments: None,
            audience: None,
        }
    }

    /// The demo, with the signing keys the server's verifiers trust (each
    /// `None` when that trust is the real one's); `exposed` when it
    /// listens beyond loopback; `audience` the `aud` the verifier asks.
    pub fn on(
        issuer: Option<LocalIssuer>,
        payments: Option<LocalPayments>,
        audience: Option<String>,
        exposed: bool,
    ) -> Demo {
        Demo {
            on: true,
            exposed,
            issuer,
            payments,
            audience,
        }
    }
}

/// What a demo listening beyond loopback says, at start and to whoever
/// asks `GET /v1/demo`.
pub const EXPOSED_WARNING: &str = "this is the demo, reachable from other machines: it signs a token and a payment receipt for anyone who asks, so every seat can be booked for free; never run it for a real sale (--demo false)";

/// Which demo stand-ins this server offers.
#[derive(Debug, Serialize, ToSchema)]
pub struct DemoDto {
    /// The server listens beyond loopback: anyone who reaches it may take
    /// demo tokens and receipts (`warning` says so).
    pub exposed: bool,
    /// Present when `exposed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<&'static str>,
    /// `POST /v1/demo/fans` signs tokens (the server trusts the demo
    /// issuer).
    pub fans: bool,
    /// `POST /v1/demo/payments` signs receipts (the server trusts the
    /// demo payment secret).
    pub payments: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoFanRequest {
    /// The fan's memberships (default `["fanclub"]`, which the demo
    /// event's presale admits; `[]` for a fan who is no member).
    #[schema(max_items = 8, min_length = 1, max_length = 64, pattern = "^[!-~]+$")]
    pub memberships: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemoFanDto {
    /// The fan's bearer token.
    pub token: String,
    /// Its `sub`.
    pub fan: String,
    pub memberships: Vec<String>,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoPaymentRequest {
    /// The id of the fan's live hold to pay for.
    pub hold: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DemoPaymentDto {
    /// The receipt to confirm the hold with.
    pub receipt: String,
    pub hold: String,
    /// In the currency's minor unit: the hold's total.
    pub amount: u64,
    pub currency: String,
    pub reference: String,
}

/// A real sale has no demo: as if the path were not there. A demo that
/// trusts a real service for `what` has no stand-in for it.
fn demo_off(state: &AppState, req: &HttpRequest, what: &str) -> ApiError {
    if !state.demo.on {
        return ApiError::not_found("not-found", format!("no resource at {}", req.path()));
    }
    ApiError::not_found(
        "demo-off",
        format!("this server does not trust the demo {what}: no demo stand-in here"),
    )
}

/// Which demo stand-ins this server offers (a real sale has no demo:
/// `404`).
#[utoipa::path(get, path = "/v1/demo", tag = "demo",
    responses((status = 200, body = DemoDto),
        (status = 404, description = "A real sale: no demo here", body = Problem, content_type = "application/problem+json")))]
pub async fn offers(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !state.demo.on {
        return super::error::not_found(req).await;
    }
    HttpResponse::Ok().json(DemoDto {
        exposed: state.demo.exposed,
        warning: state.demo.exposed.then_some(EXPOSED_WARNING),
        fans: state.demo.issuer.is_some(),
        payments: state.demo.payments.is_some(),
    })
}

/// A new demo fan's token (only while the server trusts the demo issuer:
/// the stand-in for the fan club's login).
#[utoipa::path(post, path = "/v1/demo/fans", tag = "demo",
    request_body(content = Option<DemoFanRequest>, description = "May be empty"),
    responses((status = 201, body = DemoFanDto),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No demo issuer here (`demo-off`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "More than 8 memberships, or one that is empty, longer than 64 bytes or not printable ASCII", body = Problem, content_type = "application/problem+json")))]
pub async fn new_fan(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let issuer = state
        .demo
        .issuer
        .as_ref()
        .ok_or_else(|| demo_off(&state, &req, "issuer"))?;
    // Empty, `null` or an object.
    let (body, _): (Option<DemoFanRequest>, Bytes) =
        read_json(&req, payload, BODY_LEN_MAX, true).await?;
    let memberships = body
        .and_then(|b| b.memberships)
        .unwrap_or_else(|| vec!["fanclub".to_owned()]);
    if memberships.len() > MEMBERSHIPS_MAX {
        return Err(
            ApiError::invalid(format!("at most {MEMBERSHIPS_MAX} memberships"))
                .with("field", "memberships"),
        );
    }
    if let Some(bad) = memberships.iter().find(|m| {
        m.is_empty() || m.len() > MEMBERSHIP_LEN_MAX || !m.bytes().all(|b| b.is_ascii_graphic())
    }) {
        return Err(ApiError::invalid(format!(
            "{bad:?} is no membership: 1 to {MEMBERSHIP_LEN_MAX} printable ASCII characters"
        ))
        .with("field", "memberships"));
    }
    let fan = format!("demo-{:016x}", random_u64()?);
    let now_s = state.registry.clock().now_ms() / 1000;
    let ttl = FAN_TOKEN_TTL.as_secs();
    let token = issuer.mint(
        &fan,
        &memberships,
        now_s,
        ttl,
        state.demo.audience.as_deref(),
    );
    Ok(HttpResponse::Created().json(DemoFanDto {
        token,
        fan,
        memberships,
        expires_at: crate::clock::rfc3339_ms((now_s + ttl) * 1000),
    }))
}

/// Pay for the signed-in fan's live hold on the demo (only while the
/// server trusts the demo payment secret: the stand-in for the payment
/// page). The receipt pays exactly the hold's total.
#[utoipa::path(post, path = "/v1/demo/payments", tag = "demo",
    request_body = DemoPaymentRequest,
    security(("fan_token" = [])),
    responses((status = 201, body = DemoPaymentDto),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No demo payments here (`demo-off`), or no such hold of this fan (`hold-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The hold is confirmed already (`hold-confirmed`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The hold expired or was released", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn pay(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let payments = state
        .demo
        .payments
        .as_ref()
        .ok_or_else(|| demo_off(&state, &req, "payment secret"))?;
    let fan = signed_in(&state, &req)?;
    let (body, _): (DemoPaymentRequest, Bytes) =
        read_json(&req, payload, BODY_LEN_MAX, false).await?;
    let (s, view) = read_hold(&state, &fan, &body.hold).await?;
    if matches!(view, HoldView::Confirmed { .. }) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "hold-confirmed",
            "Hold already confirmed",
            "this hold is booked already: nothing to pay",
        ));
    }
    let hold = hold_view_dto(&s.def, &s.layout, &view);
    let reference = format!("demo_{:016x}", random_u64()?);
    let now_s = state.registry.clock().now_ms() / 1000;
    let receipt = payments.receipt(
        &hold.id,
        hold.total_price,
        &hold.currency,
        &reference,
        now_s,
        RECEIPT_TTL.as_secs(),
    );
    Ok(HttpResponse::Created().json(DemoPaymentDto {
        receipt,
        hold: hold.id,
        amount: hold.total_price,
        currency: hold.currency,
        reference,
    }))
}

fn random_u64() -> Result<u64, ApiError> {
    let mut n = [0u8; 8];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut n).map_err(|e| {
        tracing::error!("no randomness: {e}");
        ApiError::internal()
    })?;
    Ok(u64::from_le_bytes(n))
}
