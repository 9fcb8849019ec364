//! The endpoints. Each parses and validates its request, finds the one
//! section it is about (or reads published counters), asks it, and
//! answers with what `api` renders.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;

use super::error::Problem;
use super::rate::Verdict;
use super::{
    answer_response, idempotent, read_json, ApiError, AppState, BODY_LEN_MAX, EVENT_BODY_LEN_MAX,
};
use crate::actors::{
    Command, EventEntry, FanRef, GetBooking, GetBookings, GetHold, GetHolds, Payment,
    SectionHandle, WhatToHold,
};
use crate::api::dto::*;
use crate::api::{self, Answer};
use crate::auth::Fan;
use crate::domain::{Addressee, BookingRef, Caller, HoldRef, Lang, SectionKind, EMAIL_LEN_MAX};
use crate::layout::{build_phases, EventSpec};

/// The `Idempotency-Key` scope of admin requests (fans' keys are scoped to
/// the fan; a fan id never contains a space).
const ADMIN_SCOPE: &str = "admin token";

pub(super) fn event_entry(state: &AppState, id: &str) -> Result<Arc<EventEntry>, ApiError> {
    state
        .registry
        .get(id)
        .ok_or_else(|| ApiError::not_found("event-not-found", format!("no event {id:?}")))
}

/// Each section's counts by category, as last published (durable).
fn published_counts(e: &EventEntry) -> Vec<Vec<crate::domain::CategoryCounts>> {
    e.sections()
        .iter()
        .map(|s| s.board.view().counts.by_category.clone())
        .collect()
}

fn event_detail_of(e: &EventEntry) -> EventDetail {
    event_detail(&e.def, &e.phases(), &published_counts(e))
}

/// Asks `section` for a change and renders its answer; the one way every
/// change handler goes.
pub(super) async fn change(
    section: &SectionHandle,
    command: Command,
    idem: Option<crate::journal::IdemTag>,
) -> Result<Answer, ApiError> {
    let outcome = section
        .change(command, idem)
        .await
        .map_err(|err| ApiError::from_section(err, &section.def.id, &section.layout))?;
    Ok(api::answer(&section.def, &section.layout, &outcome))
}

/// Asks `section` something and maps its refusal.
pub(super) async fn ask<M, T>(section: &SectionHandle, msg: M) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, crate::actors::SectionError>> + Send + 'static,
    T: Send + 'static,
    crate::actors::SectionActor: actix::Handler<M>,
{
    section
        .ask(msg)
        .await
        .map_err(|err| ApiError::from_section(err, &section.def.id, &section.layout))
}

/// List events on sale.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    responses((status = 200, description = "Events with their availability", body = [EventSummary])))]
pub async fn list_events(state: web::Data<AppState>) -> HttpResponse {
    state.registry.caught_up().await;
    let events: Vec<EventSummary> = state
        .registry
        .events()
        .iter()
        .filter(|e| state.own(&e.def.id).is_ok())
        .map(|e| event_detail_of(e).summary)
        .collect();
    HttpResponse::Ok().json(events)
}

/// One event with availability by section and category.
#[utoipa::path(get, path = "/v1/events/{event}", tag = "events",
    params(("event" = String, Path, description = "Event id")),
    responses((status = 200, body = EventDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_event(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = event_entry(&state, &path)?;
    state.registry.caught_up().await;
    Ok(HttpResponse::Ok().json(event_detail_of(&e)))
}

/// Create an event from a `boxoffice.event/1` document (admin).
#[utoipa::path(post, path = "/v1/events", tag = "admin",
    request_body = EventSpec,
    params(("Idempotency-Key" = Option<String>, Header, description = "Retry key")),
    security(("admin_token" = [])),
    responses((status = 201, body = EventDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The event exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "Another shard serves this event", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create_event(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let (spec, raw): (EventSpec, Bytes) =
        read_json(&req, payload, EVENT_BODY_LEN_MAX, false).await?;
    let def = spec
        .build()
        .map_err(|e| ApiError::invalid(e.to_string()).with("field", e.path.clone()))?;
    state.own(&def.id)?;
    let registry = Arc::clone(&state.registry);
    idempotent(&state, &req, ADMIN_SCOPE, &raw, move |idem| async move {
        let entry = registry
            .create_event(&spec, def, idem)
            .await
            .map_err(ApiError::from_registry)?;
        Ok(api::event_created(
            &entry.def,
            &entry.phases(),
            &published_counts(&entry),
        ))
    })
    .await
}

/// Move the sale phases of an event on sale (admin): the new list
/// replaces the old one at once, for every later hold, and is journaled.
#[utoipa::path(put, path = "/v1/events/{event}/sale-phases", tag = "admin",
    params(("event" = String, Path)),
    request_body = SalePhasesRequest,
    security(("admin_token" = [])),
    responses((status = 200, description = "The event with its new phases", body = EventDetail),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "Another shard serves this event", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn move_sale_phases(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let (body, _): (SalePhasesRequest, Bytes) =
        read_json(&req, payload, BODY_LEN_MAX, false).await?;
    let phases = build_phases("sale_phases", &body.sale_phases)
        .map_err(|e| ApiError::invalid(e.to_string()).with("field", e.path.clone()))?;
    let e = state
        .registry
        .move_phases(&path, phases)
        .await
        .map_err(ApiError::from_registry)?;
    Ok(HttpResponse::Ok().json(event_detail_of(&e)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// `pending`, `dead` or `all` (the default).
    state: Option<String>,
    /// 1-1000, default 100.
    limit: Option<usize>,
}

/// Lists the email outbox (admin).
#[utoipa::path(get, path = "/v1/admin/outbox", tag = "admin",
    params(("state" = Option<String>, Query, description = "pending, dead or all"),
           ("limit" = Option<usize>, Query, description = "1-1000, default 100")),
    security(("admin_token" = [])),
    responses((status = 200, body = OutboxListDto),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_outbox(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let q = web::Query::<OutboxQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("query: {e}")))?
        .into_inner();
    let dead = match q.state.as_deref().unwrap_or("all") {
        "all" => None,
        "dead" => Some(true),
        "pending" => Some(false),
        other => {
            return Err(ApiError::bad_request(format!(
                "state must be pending, dead or all, not {other:?}"
            ))
            .with("field", "state"))
        }
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=crate::mail::LIST_LEN_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1-{}",
            crate::mail::LIST_LEN_MAX
        ))
        .with("field", "limit"));
    }
    let list = state
        .mailer
        .send(crate::mail::ListOutbox { dead, limit })
        .await
        .map_err(|_| ApiError::unavailable())?;
    Ok(HttpResponse::Ok().json(outbox_list_dto(&list)))
}

/// Puts a dead letter back in the queue (admin).
#[utoipa::path(post, path = "/v1/admin/outbox/{id}/retry", tag = "admin",
    params(("id" = String, Path, description = "Outbox entry id, e.g. demo.A.b42.confirmation")),
    security(("admin_token" = [])),
    responses((status = 200, body = OutboxEntryDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not a dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn retry_outbox(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    use crate::mail::{MailAdminError, RetryError};
    check_admin(&state, &req)?;
    let not_found = || {
        ApiError::not_found(
            "outbox-entry-not-found",
            "no such outbox entry (sent entries leave the outbox)",
        )
    };
    let key = crate::mail::MailKey::parse(&path).ok_or_else(not_found)?;
    let result = state
        .mailer
        .send(crate::mail::RetryDead(key))
        .await
        .map_err(|_| ApiError::unavailable())?;
    match result {
        Ok(item) => Ok(HttpResponse::Ok().json(outbox_entry_dto(&item))),
        Err(MailAdminError::Retry(RetryError::NotFound)) => Err(not_found()),
        Err(MailAdminError::Retry(RetryError::NotDead)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "outbox-entry-not-dead",
            "Not a dead letter",
            "the entry is still being tried; only dead letters can be retried",
        )),
        Err(MailAdminError::Unavailable) => Err(ApiError::unavailable()),
    }
}

/// Takes a snapshot of the running server now (admin): a background
/// replay of the durable journal, so no section stops.
#[utoipa::path(post, path = "/v1/admin/snapshots", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 201, description = "The snapshot's header"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn create_snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    match state.snapshotter.take().await {
        Ok(header) => Ok(HttpResponse::Created().json(header)),
        Err(e) => {
            tracing::error!(error = %e, "snapshot on request failed");
            Err(ApiError::unavailable())
        }
    }
}

/// Lists the snapshots in the data directory, newest first (admin).
#[utoipa::path(get, path = "/v1/admin/snapshots", tag = "admin",
    security(("admin_token" = [])),
    responses((status = 200, description = "Snapshot files with their headers", body = SnapshotListDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list_snapshots(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let dir = state.data_dir.clone();
    let listed = web::block(move || {
        crate::snapshot::list(&dir).map(|l| {
            l.into_iter()
                .map(|(position, path)| {
                    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                    snapshot_file_dto(position, bytes, crate::snapshot::read_header(&path))
                })
                .collect::<Vec<_>>()
        })
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|e| {
        tracing::error!(error = %e, "cannot list snapshots");
        ApiError::internal()
    })?;
    Ok(HttpResponse::Ok().json(SnapshotListDto { snapshots: listed }))
}

/// Downloads one snapshot file by its journal position (admin).
#[utoipa::path(get, path = "/v1/admin/snapshots/{position}", tag = "admin",
    params(("position" = u64, Path, description = "Journal position, from the listing")),
    security(("admin_token" = [])),
    responses((status = 200, description = "The snapshot file", content_type = "application/octet-stream"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_snapshot(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_admin(&state, &req)?;
    let not_found = || ApiError::not_found("snapshot-not-found", "no snapshot at that position");
    let position: u64 = path.parse().map_err(|_| not_found())?;
    let file = crate::snapshot::path_for(&state.data_dir, position);
    let bytes = web::block(move || std::fs::read(file))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| not_found())?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .body(bytes))
}

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
fn is_admin(state: &AppState, req: &HttpRequest) -> bool {
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

/// An event's section by their ids: `404` naming the one missing.
pub(super) fn section_entry(
    state: &AppState,
    event: &str,
    section: &str,
) -> Result<(Arc<EventEntry>, Arc<SectionHandle>), ApiError> {
    let e = event_entry(state, event)?;
    let s = e.section(section).cloned().ok_or_else(|| {
        ApiError::not_found(
            "section-not-found",
            format!("event {event:?} has no section {section:?}"),
        )
    })?;
    Ok((e, s))
}

/// Every seat of a section with its state, in columns.
#[utoipa::path(get, path = "/v1/events/{event}/sections/{section}/seats", tag = "events",
    params(("event" = String, Path), ("section" = String, Path)),
    responses((status = 200, body = SeatMapDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_seats(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (event, section) = path.into_inner();
    let (e, s) = section_entry(&state, &event, &section)?;
    // The published view: never a message to the actor, and rendered
    // once per publication, whoever reads it.
    state.registry.caught_up().await;
    let view = s.board.view();
    let body = view
        .body
        .get_or_init(|| to_json(&seat_map(&e.def, &s.layout, &view.states, &view.counts)));
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body.clone()))
}

/// Hold seats for a few minutes: explicit seats, or the best N together.
#[utoipa::path(post, path = "/v1/events/{event}/holds", tag = "holds",
    params(("event" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "Retry key: the same key and body get the first answer again"),
        ("Boxoffice-Admission" = Option<String>, Header, description = "While the event's waiting room is on: the fan's admission (`admission` of `GET /v1/events/{event}/queue/me`)")),
    request_body = HoldRequest,
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 201, body = HoldDto),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No sale phase open to this fan: `sale-not-open` (with `opens_at`), `membership-required`, `sale-closed`; or the event's waiting room is on and the hold carries no valid admission: `admission-required` (with `reason` and `queue`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Seats taken, or no block large enough (`largest_block`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This fan tries too often (`rate-limited`); see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Saturated; see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn create_hold(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fan = signed_in(&state, &req)?;
    if let Some(rate) = &state.fan_rate {
        match rate.check(&fan.id) {
            Verdict::Go => {}
            Verdict::Wait { secs } => return Err(ApiError::too_many_holds(secs)),
            Verdict::Busy => return Err(ApiError::overloaded()),
        }
    }
    let event = path.into_inner();
    let (body, raw): (HoldRequest, Bytes) = read_json(&req, payload, BODY_LEN_MAX, false).await?;
    let e = event_entry(&state, &event)?;
    let Some(section) = e.section(&body.section).cloned() else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown-section",
            "Unknown section",
            format!("event {event:?} has no section {:?}", body.section),
        ));
    };
    let what = match (&body.seats, body.quantity) {
        (Some(seats), None) => WhatToHold::Seats(seat_indices(
            &section,
            seats,
            e.def.limits.seats_per_hold_max,
        )?),
        (None, Some(n)) => WhatToHold::Best(n),
        _ => {
            return Err(ApiError::invalid(
                "give exactly one of `seats` and `quantity`",
            ))
        }
    };
    let scope = Arc::clone(&fan.id);
    let clock = Arc::clone(state.registry.clock());
    let admission = req
        .headers()
        .get(super::queue::ADMISSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let gate = state.clone();
    idempotent(&state, &req, &scope, &raw, move |idem| async move {
        // Checked when the request is answered, not replayed: a retried
        // hold from the presale still gets its first answer afterwards.
        let now = clock.now_ms();
        let admitted = e.admit(now, &|m| fan.is_member(m));
        if let Some(refusal) = ApiError::not_admitted(&e.def.id, admitted) {
            return Err(refusal);
        }
        super::queue::check_admission(&gate, &e, &fan, admission.as_deref(), now)?;
        let command = Command::Hold {
            what,
            fan: Arc::clone(&fan.id),
        };
        change(&section, command, idem).await
    })
    .await
}

fn seat_indices(section: &SectionHandle, seats: &[String], max: u32) -> Result<Vec<u32>, ApiError> {
    let SectionKind::Seated(map) = &section.layout.kind else {
        return Err(ApiError::invalid(format!(
            "section {:?} is standing: ask for a quantity, not seats",
            section.layout.id
        )));
    };
    if seats.len() > max as usize {
        return Err(ApiError::invalid(format!("at most {max} seats per hold"))
            .with("seats_per_hold_max", max));
    }
    seats
        .iter()
        .map(|id| {
            map.lookup(id).ok_or_else(|| {
                let other = id.split('/').next().is_some_and(|s| s != section.layout.id);
                let detail = if other {
                    format!("seat {id:?} is not in section {:?}", section.layout.id)
                } else {
                    format!("section {:?} has no seat {id:?}", section.layout.id)
                };
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unknown-seat",
                    "Unknown seat",
                    detail,
                )
                .with("seat", id.clone())
            })
        })
        .collect()
}

/// The section a hold id names, and the id; 404 for anything else.
pub(super) fn hold_target(
    state: &AppState,
    id: &str,
) -> Result<(Arc<SectionHandle>, HoldRef), ApiError> {
    let not_found = || ApiError::not_found("hold-not-found", "no such hold");
    let r = HoldRef::parse(id).map_err(|_| not_found())?;
    let section = state
        .registry
        .section(r.event(), r.section())
        .ok_or_else(not_found)?;
    Ok((section, r))
}

/// The section a booking id names, and the id; 404 for anything else.
pub(super) fn booking_target(
    state: &AppState,
    id: &str,
) -> Result<(Arc<SectionHandle>, BookingRef), ApiError> {
    let not_found = || ApiError::not_found("booking-not-found", "no such booking");
    let r = BookingRef::parse(id).map_err(|_| not_found())?;
    let section = state
        .registry
        .section(r.event(), r.section())
        .ok_or_else(not_found)?;
    Ok((section, r))
}

/// A hold: while it lasts, or once confirmed (`status` names which, and a
/// confirmed one names its booking); 410 once it expired or was released.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds", params(("id" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 200, body = HoldDto), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json")))]
pub async fn get_hold(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fan = signed_in(&state, &req)?;
    let (s, hold) = read_hold(&state, &fan, &path).await?;
    Ok(HttpResponse::Ok().json(hold_view_dto(&s.def, &s.layout, &hold)))
}

/// Fan `fan`'s hold `id` as its section has it, and the section.
pub(super) async fn read_hold(
    state: &AppState,
    fan: &Fan,
    id: &str,
) -> Result<(Arc<SectionHandle>, crate::domain::HoldView), ApiError> {
    let (s, r) = hold_target(state, id)?;
    let hold = ask(
        &s,
        GetHold {
            hold: r.seq(),
            secret: r.secret(),
            fan: Arc::clone(&fan.id),
        },
    )
    .await?;
    Ok((s, hold))
}

/// Release a hold: its seats return to free.
#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds", params(("id" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 204, description = "Released"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 410, body = Problem, content_type = "application/problem+json")))]
pub async fn release_hold(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let fan = signed_in(&state, &req)?;
    let (s, r) = hold_target(&state, &path)?;
    let command = Command::Release {
        hold: r.seq(),
        secret: r.secret(),
        fan: Arc::clone(&fan.id),
    };
    Ok(answer_response(change(&s, command, None).await?))
}

/// Confirm a hold into a booking.
#[utoipa::path(post, path = "/v1/holds/{id}/confirm", tag = "bookings",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = ConfirmRequest,
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 201, body = BookingDto), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already confirmed (`hold-confirmed`), or the receipt's payment booked before (`payment-already-used`)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Expired or released", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Bad body, or a receipt that does not pay for this hold: `receipt-invalid` (with `reason`), `receipt-expired`, `receipt-wrong-hold`, `receipt-wrong-amount`, `receipt-wrong-currency`", body = Problem, content_type = "application/problem+json")))]
pub async fn confirm_hold(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let fan = signed_in(&state, &req)?;
    let (body, raw): (ConfirmRequest, Bytes) =
        read_json(&req, payload, BODY_LEN_MAX, false).await?;
    let (s, r) = hold_target(&state, &path)?;
    check_email(&body.email)?;
    let lang = email_language(&fan, &req);
    let receipts = Arc::clone(&state.receipts);
    let state_for_room = state.clone();
    let hold_id = path.into_inner();
    let scope = Arc::clone(&fan.id);
    idempotent(&state, &req, &scope, &raw, move |idem| async move {
        // Checked when answered, not replayed: a retry gets the first
        // answer even once the receipt has expired.
        let receipt = receipts
            .verify(&body.receipt)
            .map_err(ApiError::bad_receipt)?;
        if receipt.hold != hold_id {
            return Err(ApiError::receipt_for_another_hold(&receipt.hold));
        }
        let room = state_for_room
            .registry
            .get(&s.def.id)
            .and_then(|e| e.room());
        let command = Command::Confirm {
            hold: r.seq(),
            secret: r.secret(),
            fan: Arc::clone(&fan.id),
            to: Addressee {
                email: body.email,
                lang,
            },
            payment: Payment {
                amount: receipt.amount,
                currency: receipt.currency,
                reference: receipt.reference,
            },
        };
        let answer = change(&s, command, idem).await?;
        // A booking ends the fan's admission: its place under the
        // waiting room's cap frees.
        if let Some(room) = room {
            room.done(&fan.id);
        }
        Ok(answer)
    })
    .await
}

/// The language of a booking's emails: the fan's token's `locale`, else
/// the confirm's `Accept-Language`, else English.
fn email_language(fan: &Fan, req: &HttpRequest) -> Lang {
    fan.lang
        .or_else(|| {
            req.headers()
                .get(actix_web::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or_default()
}

/// Plausible, not verified: one `@`, a dotted domain, no spaces.
fn check_email(email: &str) -> Result<(), ApiError> {
    let bad =
        || ApiError::invalid(format!("{email:?} is not an email address")).with("field", "email");
    if email.len() > EMAIL_LEN_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    // Every address taken must be one the mailer can send to.
    if email.parse::<lettre::Address>().is_err() {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(bad());
    }
    Ok(())
}

/// A booking; read by its own fan while it stands, with a ticket per
/// place (`tickets`: what each place's QR code encodes).
#[utoipa::path(get, path = "/v1/bookings/{id}", tag = "bookings", params(("id" = String, Path)),
    security(("fan_token" = []), ("admin_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 200, body = BookingDto), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_booking(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&state, &req)?;
    let own_fan = matches!(by, Caller::Fan(_));
    let (s, r) = booking_target(&state, &path)?;
    let read = ask(
        &s,
        GetBooking {
            booking: r.seq(),
            secret: r.secret(),
            by,
        },
    )
    .await?;
    let dto = if own_fan {
        booking_dto_with_tickets(&s.def, &s.layout, &read, &state.tickets)
    } else {
        booking_dto(&s.def, &s.layout, &read.booking)
    };
    Ok(HttpResponse::Ok().json(dto))
}

/// Most bookings `GET /v1/events/{event}/me/bookings` lists: a fan has
/// as many as its limit allows, unless it cancels and books again; the
/// oldest past this are left out (`total` counts them).
pub const MY_BOOKINGS_LISTED_MAX: usize = 50;

/// The signed-in fan's bookings of an event, newest first, as they stand
/// now (cancelled ones too): "My tickets", on any device. Only durable
/// bookings are listed; each is read by its `id` for its tickets.
#[utoipa::path(get, path = "/v1/events/{event}/me/bookings", tag = "bookings",
    params(("event" = String, Path, description = "Event id")),
    security(("fan_token" = [])),
    responses((status = 200, body = MyBookingsDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event (`event-not-found`)", body = Problem, content_type = "application/problem+json")))]
pub async fn my_bookings(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (fan, e) = fan_and_event(&state, &req, &path)?;
    let (newest, total) = e.bookings.newest(&fan.id, MY_BOOKINGS_LISTED_MAX);
    let bookings = per_section(
        &e,
        &newest,
        |bookings| GetBookings {
            bookings,
            fan: Arc::clone(&fan.id),
        },
        |s, read: Option<crate::domain::BookingRead>| {
            read.map(|r| booking_dto(&s.def, &s.layout, &r.booking))
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(MyBookingsDto { bookings, total }))
}

/// The signed-in fan and the event of `path`, served here.
fn fan_and_event(
    state: &AppState,
    req: &HttpRequest,
    event: &str,
) -> Result<(Arc<Fan>, Arc<EventEntry>), ApiError> {
    let fan = signed_in(state, req)?;
    state.own(event)?;
    Ok((fan, event_entry(state, event)?))
}

/// Reads some of a fan's holds or bookings, `refs`, asking each section
/// that has some once, with the message `ask_for` makes of its share
/// (number, secret); renders each answer with `render` (`None`: left
/// out), in `refs`' order.
async fn per_section<M, A, D>(
    e: &EventEntry,
    refs: &[FanRef],
    ask_for: impl Fn(Vec<(u64, u64)>) -> M,
    render: impl Fn(&SectionHandle, A) -> Option<D>,
) -> Result<Vec<D>, ApiError>
where
    M: actix::Message<Result = Result<Vec<A>, crate::actors::SectionError>> + Send + 'static,
    A: Send + 'static,
    crate::actors::SectionActor: actix::Handler<M>,
{
    /// A section's share: positions in `refs`, and (number, secret).
    type Share = (Vec<usize>, Vec<(u64, u64)>);
    let mut by_section: std::collections::BTreeMap<u32, Share> = Default::default();
    for (k, r) in refs.iter().enumerate() {
        let (ks, ids) = by_section.entry(r.section).or_default();
        ks.push(k);
        ids.push((r.seq, r.secret));
    }
    let reads = by_section.into_iter().map(|(ix, (ks, ids))| {
        let s = usize::try_from(ix)
            .ok()
            .and_then(|ix| e.sections().get(ix))
            .cloned();
        let msg = ask_for(ids);
        async move {
            let s = s.ok_or_else(ApiError::internal)?;
            let answers = ask(&s, msg).await?;
            Ok::<_, ApiError>((s, ks, answers))
        }
    });
    let mut placed: Vec<(usize, D)> = Vec::new();
    for (s, ks, answers) in futures_util::future::try_join_all(reads).await? {
        placed.extend(
            ks.into_iter()
                .zip(answers)
                .filter_map(|(k, a)| render(&s, a).map(|d| (k, d))),
        );
    }
    placed.sort_by_key(|&(k, _)| k);
    Ok(placed.into_iter().map(|(_, d)| d).collect())
}

/// Most live holds `GET /v1/events/{event}/me/holds` lists.
pub const MY_HOLDS_LISTED_MAX: usize = 50;

/// The signed-in fan's live holds of an event, newest first: a fan who
/// held on another device (or in a tab it closed) finds its hold to pay
/// for or release. Only holds whose creation is durable are listed.
#[utoipa::path(get, path = "/v1/events/{event}/me/holds", tag = "holds",
    params(("event" = String, Path, description = "Event id")),
    security(("fan_token" = [])),
    responses((status = 200, body = MyHoldsDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event (`event-not-found`)", body = Problem, content_type = "application/problem+json")))]
pub async fn my_holds(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (fan, e) = fan_and_event(&state, &req, &path)?;
    // The list moves as the views do: a hold just answered is in it.
    state.registry.caught_up().await;
    let newest = e.holds.newest(&fan.id, MY_HOLDS_LISTED_MAX);
    let holds = per_section(
        &e,
        &newest,
        |holds| GetHolds {
            holds,
            fan: Arc::clone(&fan.id),
        },
        |s, live: Option<crate::domain::Hold>| live.map(|h| hold_dto(&s.def, &s.layout, &h)),
    )
    .await?;
    Ok(HttpResponse::Ok().json(MyHoldsDto { holds }))
}

/// Cancel a booking: its seats return to free. The body may be empty.
#[utoipa::path(post, path = "/v1/bookings/{id}/cancel", tag = "bookings",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body(content = Option<CancelRequest>, description = "May be empty"),
    security(("fan_token" = []), ("admin_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 200, body = BookingDto), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already cancelled (`booking-cancelled`), or a fan's booking whose ticket was used at the door (`booking-used`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A body that is not an empty object", body = Problem, content_type = "application/problem+json")))]
pub async fn cancel_booking(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let by = caller(&state, &req)?;
    // Empty, `null` or `{}`.
    let (_, raw): (Option<CancelRequest>, Bytes) =
        read_json(&req, payload, BODY_LEN_MAX, true).await?;
    let (s, r) = booking_target(&state, &path)?;
    let scope: Arc<str> = match &by {
        Caller::Fan(fan) => Arc::clone(fan),
        Caller::Support => ADMIN_SCOPE.into(),
    };
    let command = Command::Cancel {
        booking: r.seq(),
        secret: r.secret(),
        by,
    };
    idempotent(&state, &req, &scope, &raw, move |idem| async move {
        change(&s, command, idem).await
    })
    .await
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// The journal is replayed and writable, and the server is not shutting
/// down.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, description = "Ready"), (status = 503, description = "Journal failed, or shutting down")))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.registry.journal().is_failed() {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("journal failed\n")
    } else if state.drain.is_shutting_down() {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("shutting down\n")
    } else {
        HttpResponse::Ok()
            .content_type("text/plain")
            .body("ready\n")
    }
}

/// Prometheus metrics, text format: on the metrics listener only
/// (`--metrics-listen`), so not in the fans' OpenAPI document.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    // Seat counts come from the published views.
    state.registry.caught_up().await;
    let text = state.metrics.render(
        &state.registry,
        state.registry.journal(),
        &state.mail_stats,
        &state.auth,
        &state.receipts,
        crate::metrics::EdgeCounts {
            fan_rate_limited: state.fan_rate.as_ref().map_or(0, |r| r.limited()),
            check_ins_refused: &state.check_ins_refused.counts(),
            seat_streams_open: state.streams.seats.open(),
            seat_streams_anonymous: state.streams.seats_anonymous.open(),
            seat_streams_cut: state.streams.seats.cut(),
            idempotency_keys: state.idempotency.len(),
            idempotency_evicted: state.idempotency.evicted(),
        },
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found("not-found", format!("no resource at {}", req.path())).error_response()
}

/// `405` naming the methods `allow`ed (RFC 9110 §15.5.6: the `Allow`
/// header is required).
pub fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}; allowed: {allow}",
            req.method(),
            req.path()
        ),
    )
    .error_response();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}
