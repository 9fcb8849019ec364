//! The HTTP ceiling for BENCHMARKS.md: a minimal actix-web POST handler
//! that parses the same JSON body a hold has and answers 201 with a small
//! JSON document, with no actor, journal or fsync. Whatever the load tool
//! measures against this is the most any handler can do on the machine.
//!
//! cargo run --release --example http_ceiling -- 127.0.0.1:8090

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct HoldRequest {
    section: String,
    quantity: Option<u32>,
}

async fn hold(body: web::Json<HoldRequest>) -> HttpResponse {
    HttpResponse::Created()
        .json(serde_json::json!({"section": body.section, "quantity": body.quantity}))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().route("/v1/events/{event}/holds", web::post().to(hold)))
            .workers(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .backlog(4096)
            .bind(addr)?
            .run()
            .await
    })
}
