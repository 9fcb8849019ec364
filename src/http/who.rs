//! Who is calling: the bearer token a request carries, and whom it
//! proves: a signed-in fan (its JWT, checked by `auth::Verifier`), the
//! admin, or support acting for a fan. The handlers of every kind ask
//! here, so there is one check of each credential.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::HttpRequest;

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
