//! The operators' endpoints: liveness and readiness for Kubernetes, and
//! the Prometheus metrics (served on the metrics listener only, by
//! `server::start_metrics`).

use actix_web::{web, HttpResponse};

use super::AppState;

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
