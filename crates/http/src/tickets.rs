//! The door: `POST /v1/tickets/check-in`, for scanners only.
//!
//! A scanner sends what a ticket's QR code encodes. Its signature is
//! checked here (a forged or altered token never reaches a section); the
//! ticket names its event, section, booking and place, so the check-in
//! goes straight to that section's actor, which admits the first scan of
//! a place and refuses every later one with the time of the first. One
//! actor owns the place, so many doors scanning the same ticket at once
//! still check it in exactly once, and the check-in is journaled before
//! the door hears "admit".

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::error::Problem;
use super::target::{ask, booking_target, change};
use super::who::{bearer, same_secret, SignedIn};
use super::{idempotent, read_json, ApiError, AppState, BODY_LEN_MAX};
use crate::actors::{Command, GetBooking};
use crate::api::dto::{booking_dto_with_tickets, CheckInDto, CheckInRequest};
use crate::domain::{Caller, SectionKind};

/// The `Idempotency-Key` scope of scanners, to which each scan adds its
/// ticket's place: doors share one credential, and a door retrying a scan
/// must find its first answer however many other doors scanned since (a
/// scope keeps its last `--idempotency-keys-per-fan` answers).
const SCANNER_SCOPE: &str = "scanner token";

/// Why check-ins were refused, as `boxoffice_check_ins_refused_total`
/// labels them: the problem types of the refusals a door meets, and
/// `other` for the rest (a bad body, overload).
pub const CHECK_IN_REFUSALS: [&str; 7] = [
    "already-checked-in",
    "ticket-cancelled",
    "ticket-invalid",
    "ticket-not-found",
    "ticket-superseded",
    "unauthorized",
    "other",
];

/// Check-ins refused since start, by reason (`CHECK_IN_REFUSALS`).
#[derive(Debug, Default)]
pub struct CheckInRefusals([AtomicU64; CHECK_IN_REFUSALS.len()]);

impl CheckInRefusals {
    fn count(&self, e: &ApiError) {
        let i = CHECK_IN_REFUSALS
            .iter()
            .position(|&r| r == e.kind)
            .unwrap_or(CHECK_IN_REFUSALS.len() - 1);
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// (reason, count), in `CHECK_IN_REFUSALS` order.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        CHECK_IN_REFUSALS
            .iter()
            .zip(&self.0)
            .map(|(&r, n)| (r, n.load(Ordering::Relaxed)))
            .collect()
    }
}

/// The scanners' credential, and only theirs: the admin token does not
/// check tickets in.
fn check_scanner(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = &state.scanner_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "check-in-disabled",
            "Check-in disabled",
            "start the server with --scanner-token (BOXOFFICE_SCANNER_TOKEN) to enable it",
        ));
    };
    match bearer(req) {
        Some(given) if same_secret(given, token) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send Authorization: Bearer <scanner token>",
        )),
    }
}

/// Check a ticket in at the door: the first scan of a ticket admits
/// (`200`); every later one is refused with the time of the first.
#[utoipa::path(post, path = "/v1/tickets/check-in", tag = "tickets",
    request_body = CheckInRequest,
    params(("Idempotency-Key" = Option<String>, Header)),
    security(("scanner_token" = [])),
    responses((status = 200, description = "Checked in: admit", body = CheckInDto),
        (status = 401, description = "No scanner token, or another one", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The server has no scanner token (`check-in-disabled`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No booking has the ticket's place (`ticket-not-found`)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Checked in before (`already-checked-in`, with `checked_in_at`), or the booking was cancelled (`ticket-cancelled`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "Another shard serves the ticket's event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A token that proves nothing (`ticket-invalid`, with `reason`), a whole-booking ticket (`ticket-superseded`), or a bad body", body = Problem, content_type = "application/problem+json")))]
pub async fn check_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let result = check_in_inner(&state, &req, payload).await;
    if let Err(e) = &result {
        state.check_ins_refused.count(e);
    }
    result
}

async fn check_in_inner(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_scanner(state, req)?;
    let (body, raw): (CheckInRequest, Bytes) = read_json(req, payload, BODY_LEN_MAX, false).await?;
    let ticket = state
        .tickets
        .key
        .verify(&body.token)
        .map_err(|e| ApiError::bad_ticket(&e))?;
    let place = ticket.n.ok_or_else(ApiError::ticket_superseded)?;
    state.own(&ticket.e)?;
    let not_found = ApiError::ticket_not_found;
    // Of another life of this data (a fresh volume, the same key): no
    // booking here is its.
    let binding = ticket
        .binding(state.tickets.lineage)
        .ok_or_else(not_found)?;
    let section = state
        .registry
        .section(&ticket.e, &ticket.s)
        .ok_or_else(not_found)?;
    let seat = match (&ticket.seat, &section.layout.kind) {
        (Some(id), SectionKind::Seated(map)) => Some(map.lookup(id).ok_or_else(not_found)?),
        (None, SectionKind::Standing { .. }) => None,
        _ => return Err(not_found()),
    };
    let command = Command::CheckIn {
        booking: ticket.b,
        place,
        seat,
        binding,
    };
    let scope = format!(
        "{SCANNER_SCOPE} {}/{}/{}/{place}",
        ticket.e, ticket.s, ticket.b
    );
    idempotent(state, req, &scope, &raw, move |idem| async move {
        change(&section, command, idem).await
    })
    .await
}

/// The QR code of place `place` (from 1) of the signed-in fan's booking,
/// as a PNG: what the fan's page shows, the same token as the email's and
/// `tickets[place - 1].token` of `GET /v1/bookings/{id}`.
#[utoipa::path(get, path = "/v1/bookings/{id}/tickets/{place}/qr", tag = "bookings",
    params(("id" = String, Path), ("place" = u32, Path, minimum = 1)),
    security(("fan_token" = [])),
    responses((status = 200, description = "The ticket's QR code", content_type = "image/png", body = Vec<u8>),
        (status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such booking of this fan, none confirmed, or no such place (`ticket-not-found`)", body = Problem, content_type = "application/problem+json")))]
pub async fn ticket_qr(
    state: web::Data<AppState>,
    path: web::Path<(String, u32)>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let (id, place) = path.into_inner();
    let (s, r) = booking_target(&state, &id)?;
    let read = ask(
        &s,
        GetBooking {
            booking: r.seq(),
            secret: r.secret(),
            by: Caller::Fan(std::sync::Arc::clone(&fan.id)),
        },
    )
    .await?;
    let token = booking_dto_with_tickets(&s.def, &s.layout, &read, &state.tickets)
        .tickets
        .and_then(|t| t.into_iter().nth((place as usize).checked_sub(1)?))
        .map(|t| t.token)
        .ok_or_else(|| {
            ApiError::not_found(
                "ticket-not-found",
                "this booking has no ticket for that place",
            )
        })?;
    let (png, _) = crate::mail::qr_png(&token).map_err(|e| {
        tracing::error!("a ticket's QR code did not render: {e}");
        ApiError::internal()
    })?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(CacheControl(vec![
            CacheDirective::Private,
            CacheDirective::NoStore,
        ]))
        .body(png))
}
