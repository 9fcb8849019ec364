//! The HTTP ceiling for BENCHMARKS.md: a minimal actix-web server that
//! speaks just enough of the API for wrk and `boxoffice loadgen` (an event
//! with 20 sections, and a hold handler that parses the same JSON body a
//! hold has and answers 201 with a small JSON document), with no actor,
//! journal or fsync. Whatever a load tool measures against this is the
//! most any handler can do on the machine, and what the tool itself can
//! drive.
//!
//!     cargo run --release --example http_ceiling -- 127.0.0.1:8090
//!     boxoffice loadgen --server http://127.0.0.1:8090 --event bench \
//!         --confirm-ratio 0 --release-ratio 0 --explicit-ratio 0

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct HoldRequest {
    section: String,
    quantity: Option<u32>,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

async fn hold(path: web::Path<String>, body: web::Json<HoldRequest>) -> HttpResponse {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HttpResponse::Created().json(serde_json::json!({
        "id": format!("{}.{}.h{n:x}.0000000000000000", path.as_str(), body.section),
        "quantity": body.quantity,
    }))
}

/// An event as `GET /v1/events/{event}` shows it, as far as the load
/// generator reads it; it never sells out.
async fn event(path: web::Path<String>) -> HttpResponse {
    let sections: Vec<serde_json::Value> = (1..=20)
        .map(|i| serde_json::json!({"id": format!("S{i:02}"), "kind": "seated"}))
        .collect();
    HttpResponse::Ok().json(serde_json::json!({
        "id": path.as_str(), "seats_per_hold_max": 4,
        "free": 1_000_000, "held": 0, "sold": 0, "sections": sections,
    }))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| {
            App::new()
                .route("/v1/events/{event}", web::get().to(event))
                .route("/v1/events/{event}/holds", web::post().to(hold))
        })
        .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .backlog(4096)
        .bind(addr)?
        .run()
        .await
    })
}
