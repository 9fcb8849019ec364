//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the DTOs' schemas, served at `GET /v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use serde_json::{json, Value};

use super::demo;
use super::error::{Problem, PROBLEM_JSON};
use super::feed;
use super::handlers;
use super::ops;
use super::queue;
use super::streams;
use super::tickets;
use crate::api::dto::*;
use crate::auth::receipt::RECEIPT_LEN_MAX;
use crate::layout::{self, SEATS_PER_HOLD_MAX};
use crate::layout::{
    AreaSpec, CategorySpec, EventSpec, RowSpec, SalePhaseSpec, SectionSpec, StandingSpec,
    VenueSpec, WaitingRoomSpec,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "boxoffice", description = "Seat allocator for high-demand ticket sales. Errors are RFC 9457 problem+json."),
    paths(
        handlers::list_events,
        handlers::get_event,
        handlers::create_event,
        handlers::move_sale_phases,
        handlers::get_seats,
        handlers::create_hold,
        handlers::get_hold,
        handlers::release_hold,
        handlers::confirm_hold,
        handlers::get_booking,
        handlers::cancel_booking,
        handlers::my_bookings,
        handlers::my_holds,
        tickets::check_in,
        tickets::ticket_qr,
        queue::get_waiting_room,
        queue::set_waiting_room,
        queue::join_queue,
        queue::my_place,
        queue::my_place_stream,
        streams::seat_stream,
        feed::changes,
        demo::offers,
        demo::new_fan,
        demo::pay,
        handlers::list_outbox,
        handlers::retry_outbox,
        handlers::create_snapshot,
        handlers::list_snapshots,
        handlers::get_snapshot,
        ops::healthz,
        ops::readyz,
    ),
    components(schemas(
        Problem, HoldRequest, HoldDto, ConfirmRequest, BookingDto, MyBookingsDto, MyHoldsDto, EventSummary, EventDetail,
        CategoryDto, SectionSummary, SectionCategoryDto, SeatMapDto, Availability,
        OutboxEntryDto, OutboxListDto, SnapshotFileDto, SnapshotListDto,
        EventSpec, CategorySpec, VenueSpec, SectionSpec, RowSpec, StandingSpec, AreaSpec,
        SalePhaseSpec, SalePhasesRequest, TicketDto, CheckInRequest, CheckInDto,
        WaitingRoomSpec, WaitingRoomDto, QueueStandingDto, SeatStatesDto, SeatChangesDto,
        crate::api::feed::FeedEntryDto, crate::api::feed::FeedChangeDto,
        demo::DemoDto, demo::DemoFanRequest, demo::DemoFanDto, demo::DemoPaymentRequest,
        demo::DemoPaymentDto,
    )),
    modifiers(&AdminToken),
)]
pub struct ApiDoc;

struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "scanner_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The door scanners' token (`--scanner-token`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "feed_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The change feed's readers' token (`--feed-token`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "fan_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The fan club's token (ES256, RS256 or EdDSA): `sub` names the fan",
                    ))
                    .build(),
            ),
        );
    }
}

pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document did not serialize");
            serde_json::Value::Null
        });
        edge_answers(&mut doc);
        links(&mut doc);
        narrow_schemas(&mut doc);
        crate::api::dto::json_text(&doc)
    })
}

/// A problem+json response described by `description`.
fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// A problem+json response that says when to come back.
fn problem_retry(description: &str) -> Value {
    let mut p = problem(description);
    p["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait before retrying (with the same Idempotency-Key)",
        "schema": {"type": "integer", "minimum": 0}
    }});
    p
}

/// The answers every operation of a kind can get from the edge (the
/// middleware and the body reader), whatever its handler says: listed
/// here once, from the same facts the server decides them by, so no
/// operation's list can miss one.
fn edge_answers(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (_, op) in item.iter_mut() {
            let has_body = op.get("requestBody").is_some();
            let signed = op.get("security").is_some();
            let keyed = idempotency_key(op);
            let responses = &mut op["responses"];
            let mut add = |status: &str, response: Value| {
                if responses.get(status).is_none() {
                    responses[status] = response;
                }
            };
            if has_body {
                add(
                    "400",
                    problem("Malformed JSON, or a malformed header (`bad-request`)"),
                );
                add("408", problem("The body did not arrive in time (`request-timeout`); the connection is closed"));
                add(
                    "413",
                    problem("The body is too large (`payload-too-large`)"),
                );
                add(
                    "415",
                    problem("The body is not `application/json` (`unsupported-media-type`)"),
                );
                add(
                    "422",
                    problem(
                        "The body's shape or content is invalid (`invalid-request`, with `field`)",
                    ),
                );
            }
            if signed {
                add(
                    "401",
                    problem("No token, or one that proves nothing (`WWW-Authenticate`)"),
                );
            }
            if keyed {
                add(
                    "400",
                    problem("Malformed JSON, or a malformed header (`bad-request`)"),
                );
                add("409", problem("A request with this Idempotency-Key is still being answered (`idempotency-key-in-use`)"));
                add("422", problem("This Idempotency-Key was used for a different request (`idempotency-key-reused`)"));
            }
            if super::event_of_path(path).is_some() || path == "/v1/events" && has_body {
                add(
                    "421",
                    problem("Another shard serves this event (`misdirected`, with `owner`)"),
                );
            }
            if super::bound_for_a_section(path) {
                add(
                    "503",
                    problem_retry(
                        "Too many requests in flight (`overloaded`), or the journal is unavailable",
                    ),
                );
            }
        }
    }
}

/// Whether `op` takes an `Idempotency-Key`; if so, its schema is made
/// exact (what `http::idempotency_key` takes).
fn idempotency_key(op: &mut Value) -> bool {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut keyed = false;
    for p in params {
        if p["name"] == "Idempotency-Key" && p["in"] == "header" {
            p["schema"] = json!({
                "type": "string",
                "pattern": format!("^[!-~]{{1,{}}}$", super::IDEMPOTENCY_KEY_LEN_MAX),
            });
            p["description"] = json!(
                "Retry key, unique per distinct request: a retry with the same key and body gets the first answer again"
            );
            keyed = true;
        }
    }
    keyed
}

/// OpenAPI links, so that a client (or a stateful test) can follow a
/// hold from its creation to reading, releasing and confirming it, and a
/// booking from its creation to reading and cancelling it.
fn links(doc: &mut Value) {
    let by_id = |op: &str| json!({"operationId": op, "parameters": {"id": "$response.body#/id"}});
    let hold = json!({
        "GetHold": by_id("get_hold"),
        "ReleaseHold": by_id("release_hold"),
        "ConfirmHold": by_id("confirm_hold"),
    });
    let booking = json!({
        "GetBooking": by_id("get_booking"),
        "CancelBooking": by_id("cancel_booking"),
    });
    for (path, method, links) in [
        ("/v1/events/{event}/holds", "post", hold),
        ("/v1/holds/{id}/confirm", "post", booking),
    ] {
        let created = &mut doc["paths"][path][method]["responses"]["201"];
        if created.is_object() {
            created["links"] = links;
        }
    }
}

/// The event document's bounds (`layout.rs` checks them all; what is
/// left is cross-references, such as a section's category, that no
/// schema can say).
fn event_document(schemas: &mut Value) {
    let name = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"});
    let text = json!({"type": "string", "minLength": 1, "maxLength": layout::TEXT_LEN_MAX, "pattern": "^[^\\u0000-\\u001f\\u007f]*\\S[^\\u0000-\\u001f\\u007f]*$"});
    let time = json!({"type": "string", "format": "date-time"});
    let event = &mut schemas["EventSpec"]["properties"];
    event["format"] = json!({"type": "string", "enum": ["boxoffice.event/1"]});
    event["id"] = name.clone();
    event["name"] = text.clone();
    event["starts_at"] = time.clone();
    event["currency"] = json!({"type": "string", "pattern": "^[A-Z]{3}$"});
    event["hold_ttl_secs"]["minimum"] = json!(layout::HOLD_TTL_SECS_MIN);
    event["hold_ttl_secs"]["maximum"] = json!(layout::HOLD_TTL_SECS_MAX);
    event["seats_per_hold_max"]["minimum"] = json!(1);
    event["seats_per_hold_max"]["maximum"] = json!(SEATS_PER_HOLD_MAX);
    event["tickets_per_fan_max"]["minimum"] = json!(1);
    event["tickets_per_fan_max"]["maximum"] = json!(layout::TICKETS_PER_FAN_MAX);
    event["categories"]["minItems"] = json!(1);
    event["categories"]["maxItems"] = json!(layout::CATEGORIES_PER_EVENT_MAX);
    event["sale_phases"]["maxItems"] = json!(layout::SALE_PHASES_MAX);
    let category = &mut schemas["CategorySpec"]["properties"];
    category["id"] = name.clone();
    category["name"] = text.clone();
    category["price"]["maximum"] = json!(layout::PRICE_MINOR_MAX);
    let venue = &mut schemas["VenueSpec"]["properties"];
    venue["name"] = text.clone();
    venue["sections"]["minItems"] = json!(1);
    venue["sections"]["maxItems"] = json!(layout::SECTIONS_PER_EVENT_MAX);
    let section = &mut schemas["SectionSpec"]["properties"];
    section["id"] = name.clone();
    section["name"] = text.clone();
    section["category"] = name;
    let phase = &mut schemas["SalePhaseSpec"]["properties"];
    phase["name"] = text;
    phase["opens_at"] = time;
    phase["memberships"]["maxItems"] = json!(layout::MEMBERSHIPS_PER_PHASE_MAX);
    phase["memberships"]["items"] = json!({"type": "string", "pattern": format!("^[!-~]{{1,{}}}$", layout::MEMBERSHIP_LEN_MAX)});
    schemas["SalePhasesRequest"]["properties"]["sale_phases"]["maxItems"] =
        json!(layout::SALE_PHASES_MAX);
}

/// Bounds the server enforces that the types alone do not say.
fn narrow_schemas(doc: &mut Value) {
    let schemas = &mut doc["components"]["schemas"];
    let hold = &mut schemas["HoldRequest"];
    hold["properties"]["quantity"]["minimum"] = json!(1);
    hold["properties"]["quantity"]["maximum"] = json!(SEATS_PER_HOLD_MAX);
    hold["properties"]["seats"]["minItems"] = json!(1);
    hold["properties"]["seats"]["maxItems"] = json!(SEATS_PER_HOLD_MAX);
    hold["properties"]["seats"]["uniqueItems"] = json!(true);
    // Exactly one of the two.
    hold["oneOf"] = json!([
        {"required": ["seats"], "properties": {"seats": {"type": "array"}, "quantity": {"type": "null"}}},
        {"required": ["quantity"], "properties": {"quantity": {"type": "integer"}, "seats": {"type": "null"}}},
    ]);
    let confirm = &mut schemas["ConfirmRequest"]["properties"];
    confirm["email"]["format"] = json!("email");
    confirm["email"]["maxLength"] = json!(crate::domain::EMAIL_LEN_MAX);
    // A JWT: three base64url parts (its signature no schema can check).
    confirm["receipt"]["pattern"] = json!("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$");
    confirm["receipt"]["maxLength"] = json!(RECEIPT_LEN_MAX);
    event_document(schemas);
    if let Some(params) = doc["paths"]["/v1/admin/outbox"]["get"]["parameters"].as_array_mut() {
        for p in params {
            match p["name"].as_str() {
                Some("state") => {
                    p["schema"] = json!({"type": "string", "enum": ["pending", "dead", "all"]})
                }
                Some("limit") => {
                    p["schema"] = json!({"type": "integer", "minimum": 1, "maximum": 1000})
                }
                _ => {}
            }
        }
    }
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
