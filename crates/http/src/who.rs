//! Who is calling: the bearer token a request carries, and whom it
//! proves: a signed-in fan (its JWT, checked by `auth::Verifier`), the
//! admin, or support acting for a fan. Handlers say what they require in
//! their signature, with the extractors [`SignedIn`], [`Admin`] and
//! [`AsCaller`] (each given last, so that a bad path or query is refused
//! before the token is looked at, as before); the few that must check
//! later call the functions. One check of each credential either way.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};

use super::{ApiError, AppState};
use crate::auth::Fan;
use crate::domain::Caller;

/// The `Idempotency-Key` scope of admin requests (fans' keys are scoped to
/// the fan; a fan id never contains a space).
pub(super) const ADMIN_SCOPE: &str = "admin token";

/// The token of `Authorization: Bearer <token>`, if the request sends
/// one (the scheme's case does not matter, RFC 7235).
pub(super) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `given` is `secret`, compared in time independent of where
/// the two differ.
pub(super) fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Whether the request carries the admin token.
pub(super) fn is_admin(state: &AppState, req: &HttpRequest) -> bool {
    match (&state.admin_token, bearer(req)) {
        (Some(token), Some(given)) => same_secret(given, token),
        _ => false,
    }
}

pub(super) fn check_admin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    if state.admin_token.is_none() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin-disabled",
            "Admin API disabled",
            "start the server with --admin-token (BOXOFFICE_ADMIN_TOKEN) to enable it",
        ));
    }
    if is_admin(state, req) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send Authorization: Bearer <admin token>",
        ))
    }
}

/// The fan a request is signed in as: `401` without a valid token.
pub(super) fn signed_in(state: &AppState, req: &HttpRequest) -> Result<Arc<Fan>, ApiError> {
    let token = bearer(req).ok_or_else(ApiError::sign_in_required)?;
    state.auth.verify(token).map_err(ApiError::invalid_token)
}

/// Who asks about a booking: support (the admin token) or a signed-in
/// fan.
pub(super) fn caller(state: &AppState, req: &HttpRequest) -> Result<Caller, ApiError> {
    if is_admin(state, req) {
        return Ok(Caller::Support);
    }
    Ok(Caller::Fan(Arc::clone(&signed_in(state, req)?.id)))
}

/// The server's shared state, which every extractor reads.
fn state_of(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| {
            tracing::error!("a route without the server's state");
            ApiError::internal()
        })
}

/// A request signed in as a fan: `401` without a token that proves one.
pub struct SignedIn(pub Arc<Fan>);

impl FromRequest for SignedIn {
    type Error = ApiError;
    type Future = Ready<Result<SignedIn, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state_of(req).and_then(|state| signed_in(state, req).map(SignedIn)))
    }
}

/// A request with the admin token: `403` when the server has none, `401`
/// without it.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Admin, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state_of(req).and_then(|state| check_admin(state, req).map(|()| Admin)))
    }
}

/// Who asks about a booking: support (the admin token) or a signed-in
/// fan; `401` for anyone else.
pub struct AsCaller(pub Caller);

impl FromRequest for AsCaller {
    type Error = ApiError;
    type Future = Ready<Result<AsCaller, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state_of(req).and_then(|state| caller(state, req).map(AsCaller)))
    }
}
