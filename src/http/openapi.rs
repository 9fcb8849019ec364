//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the DTOs' schemas, served at `GET /v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::Problem;
use super::handlers;
use crate::api::dto::*;
use crate::layout::{
    CategorySpec, EventSpec, RowSpec, SalePhaseSpec, SectionSpec, StandingSpec, VenueSpec,
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
        handlers::list_outbox,
        handlers::retry_outbox,
        handlers::create_snapshot,
        handlers::list_snapshots,
        handlers::get_snapshot,
        handlers::metrics,
        handlers::healthz,
        handlers::readyz,
    ),
    components(schemas(
        Problem, HoldRequest, HoldDto, ConfirmRequest, BookingDto, EventSummary, EventDetail,
        CategoryDto, SectionSummary, SectionCategoryDto, SeatMapDto, Availability,
        OutboxEntryDto, OutboxListDto, SnapshotFileDto, SnapshotListDto,
        EventSpec, CategorySpec, VenueSpec, SectionSpec, RowSpec, StandingSpec,
        SalePhaseSpec, SalePhasesRequest,
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
        ApiDoc::openapi()
            .to_json()
            .expect("the OpenAPI document serializes")
    })
}

pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}
