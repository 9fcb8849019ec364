//! The endpoints. Each parses and validates its request, finds the one
//! section it is about (or reads published counters), asks it, and
//! answers with what `api` renders.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::Problem;
use super::rate::Verdict;
use super::target::{
    ask, booking_target, change, event_entry, hold_target, read_hold, section_entry,
};
use super::who::{Admin, AsCaller, SignedIn, ADMIN_SCOPE};
use super::{
    answer_response, idempotent, read_json, ApiError, AppState, BODY_LEN_MAX, EVENT_BODY_LEN_MAX,
};
use crate::actors::{
    Command, EventEntry, FanRef, GetBooking, GetBookings, GetHolds, Payment, SectionHandle,
    WhatToHold,
};
use crate::api;
use crate::api::dto::*;
use crate::auth::Fan;
use crate::domain::{Addressee, Caller, Lang, SectionKind, EMAIL_LEN_MAX};
use crate::layout::{build_phases, EventSpec};

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
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    path: web::Path<String>,
    _: Admin,
) -> Result<HttpResponse, ApiError> {
    use crate::mail::{MailAdminError, RetryError};
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
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    path: web::Path<String>,
    _: Admin,
) -> Result<HttpResponse, ApiError> {
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
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
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
        .get(super::admission::ADMISSION_HEADER)
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
        super::admission::check_admission(&gate, &e, &fan, admission.as_deref(), now)?;
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

/// A hold: while it lasts, or once confirmed (`status` names which, and a
/// confirmed one names its booking); 410 once it expired or was released.
#[utoipa::path(get, path = "/v1/holds/{id}", tag = "holds", params(("id" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 200, body = HoldDto), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, body = Problem, content_type = "application/problem+json")))]
pub async fn get_hold(
    state: web::Data<AppState>,
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let (s, hold) = read_hold(&state, &fan, &path).await?;
    Ok(HttpResponse::Ok().json(hold_view_dto(&s.def, &s.layout, &hold)))
}

/// Release a hold: its seats return to free.
#[utoipa::path(delete, path = "/v1/holds/{id}", tag = "holds", params(("id" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 401, description = "No token, or one that proves nothing", body = Problem, content_type = "application/problem+json"), (status = 204, description = "Released"), (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"), (status = 410, body = Problem, content_type = "application/problem+json")))]
pub async fn release_hold(
    state: web::Data<AppState>,
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
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
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
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
    if !crate::mail::can_send_to(email) {
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
    path: web::Path<String>,
    AsCaller(by): AsCaller,
) -> Result<HttpResponse, ApiError> {
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
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let e = served_event(&state, &path)?;
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

/// The event of `path`, served here.
fn served_event(state: &AppState, event: &str) -> Result<Arc<EventEntry>, ApiError> {
    state.own(event)?;
    event_entry(state, event)
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
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let e = served_event(&state, &path)?;
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
    AsCaller(by): AsCaller,
) -> Result<HttpResponse, ApiError> {
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
