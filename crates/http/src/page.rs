//! The fan's page, compiled into the binary: `GET /` and its script and
//! style sheet (`page/`). No CDN, no external fonts: it works on
//! a machine with no internet, and everything it reads is the REST API.
//!
//! Each asset goes out with a content security policy that lets the page
//! load and connect to this server only, run no inline script and take
//! no inline style (the script sets styles through the CSSOM), and be
//! framed by nobody.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::HttpResponse;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// What the page may load and do.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        // Small, and must change with the binary: revalidated each time.
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
