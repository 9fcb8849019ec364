//! boxoffice-http: the REST API under `/v1` (routing, request parsing,
//! idempotency, errors), its wire types ([`api`]) and the fan's page.
//!
//! Architecture invariants:
//! - handlers parse and validate everything a client sends before a section
//!   sees it; a client's mistake is a 4xx problem+json and changes nothing;
//! - handlers never touch section state: they route to the section's actor
//!   by (event, section) and render what it answers;
//! - [`configure`] is the one place routes are declared, used by the server
//!   and by tests alike.

// The layers below, under the paths the modules name them by.
use boxoffice_auth as auth;
use boxoffice_domain as domain;
use boxoffice_runtime::{actors, mail, metrics, shard, snapshot, threads};
use boxoffice_store::{clock, idempotency, journal, layout, recovery};

mod admission;
pub mod api;
mod client_address;
mod demo;
pub mod error;
mod feed;
mod handlers;
pub mod openapi;
mod ops;
mod page;
pub mod queue;
pub mod rate;
pub mod server;
pub mod slots;
pub mod streams;
mod target;
mod tickets;
mod who;

use std::future::Future;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::actors::Registry;
use crate::api::Answer;
use crate::idempotency::{Begin, IdempotencyStore};
use crate::journal::IdemTag;
use crate::shard::{event_of_path, Sharding};
pub use client_address::ClientAddresses;
pub use demo::{Demo, EXPOSED_WARNING};
pub use error::ApiError;

/// Largest body of a fan's request.
pub const BODY_LEN_MAX: usize = 16 << 10;
/// Largest event document accepted by `POST /v1/events`.
pub const EVENT_BODY_LEN_MAX: usize = 16 << 20;
/// Deadline for a body where no settings say otherwise.
const BODY_READ_TIMEOUT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest `Idempotency-Key`.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = crate::idempotency::KEY_LEN_MAX;

/// Shared by every worker; built once, outside the `HttpServer` factory.
pub struct AppState {
    pub registry: Arc<Registry>,
    pub idempotency: Arc<IdempotencyStore>,
    /// Bearer token for admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    pub mailer: actix::Addr<crate::mail::Mailer>,
    pub mail_stats: Arc<crate::mail::MailStats>,
    pub snapshotter: Arc<crate::snapshot::scheduler::Snapshotter>,
    pub data_dir: std::path::PathBuf,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Requests in flight, and whether a stop has begun (`/readyz`
    /// answers 503 from then on).
    pub drain: Arc<server::Drain>,
    /// This server's shard and the map; `None` serves every event.
    pub sharding: Option<Sharding>,
    /// Checks fans' tokens.
    pub auth: Arc<crate::auth::Verifier>,
    /// Checks the payment service's receipts.
    pub receipts: Arc<crate::auth::receipt::ReceiptVerifier>,
    /// Slows each fan's hold attempts to `--fan-holds-per-sec`; `None`:
    /// no limit.
    pub fan_rate: Option<Arc<rate::FanRate>>,
    /// Deadline for reading a request's body, once its head is in.
    pub body_read_timeout: std::time::Duration,
    /// Signs the tickets a fan reads with its booking, and checks those
    /// a door scans.
    pub tickets: crate::mail::Tickets,
    /// Bearer token of door scanners; `None` disables check-in.
    pub scanner_token: Option<String>,
    pub check_ins_refused: tickets::CheckInRefusals,
    /// Signs the admissions of events' waiting rooms, and checks them.
    pub admission_key: crate::auth::admission::AdmissionKey,
    /// Bearer token of the services that read the change feed.
    pub feed_token: Option<String>,
    /// The streams open now (waiting room, seats, change feeds), and the
    /// most kept at once.
    pub streams: slots::Streams,
    /// The demo's stand-ins for the fan club's login and the payment
    /// page, present only while the server trusts the demo's keys.
    pub demo: demo::Demo,
}

impl AppState {
    /// Refuses an event another shard serves (or none does).
    pub fn own(&self, event: &str) -> Result<(), ApiError> {
        match &self.sharding {
            Some(s) => s
                .check(event)
                .map_err(|owner| ApiError::misdirected(event, owner)),
            None => Ok(()),
        }
    }
}

/// Background upkeep of what the request path remembers: answers past
/// their TTL (every minute) and the rate state of fans at rest (every
/// second). Runs on the current actix system.
pub fn keep_tidy(
    idempotency: &Arc<IdempotencyStore>,
    fan_rate: Option<&Arc<rate::FanRate>>,
    clock: &Arc<dyn crate::clock::Clock>,
) {
    let (store, clock) = (Arc::clone(idempotency), Arc::clone(clock));
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            store.prune(clock.now_ms());
        }
    });
    if let Some(rate) = fan_rate.cloned() {
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                rate.prune();
            }
        });
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    use actix_web::http::Method;
    use error::{method_not_allowed, not_found};
    use handlers::*;
    use ops::{healthz, readyz};
    use web::route;
    /// A resource answering `routes` (each a method and its handler), and
    /// every other method with `405` whose `Allow` lists exactly them.
    fn resource<const N: usize>(
        path: &str,
        routes: [(Method, actix_web::Route); N],
    ) -> actix_web::Resource {
        let allow: Vec<&str> = routes.iter().map(|(m, _)| m.as_str()).collect();
        let allow = allow.join(", ");
        let mut r = web::resource(path).default_service(web::to(move |req: HttpRequest| {
            let allow = allow.clone();
            async move { method_not_allowed(&req, &allow) }
        }));
        for (method, handler) in routes {
            r = r.route(handler.method(method));
        }
        r
    }
    // A path segment that does not decode (say `%FF`, not UTF-8) names no
    // resource: answer as every other 404 does, in problem+json.
    cfg.app_data(web::PathConfig::default().error_handler(|err, req| {
        ApiError::not_found("not-found", format!("no resource at {}: {err}", req.path())).into()
    }));
    let (get, post, put, delete) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
    cfg.service(resource(
        "/v1/events",
        [
            (get.clone(), route().to(list_events)),
            (post.clone(), route().to(create_event)),
        ],
    ))
    .service(resource(
        "/v1/events/{event}",
        [(get.clone(), route().to(get_event))],
    ))
    .service(resource(
        "/v1/events/{event}/sections/{section}/seats",
        [(get.clone(), route().to(get_seats))],
    ))
    .service(resource(
        "/v1/events/{event}/holds",
        [(post.clone(), route().to(create_hold))],
    ))
    .service(resource(
        "/v1/events/{event}/sale-phases",
        [(put, route().to(move_sale_phases))],
    ))
    .service(resource(
        "/v1/holds/{id}",
        [
            (get.clone(), route().to(get_hold)),
            (delete, route().to(release_hold)),
        ],
    ))
    .service(resource(
        "/v1/holds/{id}/confirm",
        [(post.clone(), route().to(confirm_hold))],
    ))
    .service(resource(
        "/v1/bookings/{id}",
        [(get.clone(), route().to(get_booking))],
    ))
    .service(resource(
        "/v1/bookings/{id}/tickets/{place}/qr",
        [(get.clone(), route().to(tickets::ticket_qr))],
    ))
    .service(resource(
        "/v1/events/{event}/me/bookings",
        [(get.clone(), route().to(my_bookings))],
    ))
    .service(resource(
        "/v1/events/{event}/me/holds",
        [(get.clone(), route().to(my_holds))],
    ))
    .service(resource(
        "/v1/bookings/{id}/cancel",
        [(post.clone(), route().to(cancel_booking))],
    ))
    .service(resource(
        "/v1/events/{event}/sections/{section}/stream",
        [(get.clone(), route().to(streams::seat_stream))],
    ))
    .service(resource(
        "/v1/events/{event}/changes",
        [(get.clone(), route().to(feed::changes))],
    ))
    .service(resource(
        "/v1/events/{event}/waiting-room",
        [
            (get.clone(), route().to(queue::get_waiting_room)),
            (Method::PUT, route().to(queue::set_waiting_room)),
        ],
    ))
    .service(resource(
        "/v1/events/{event}/queue",
        [(post.clone(), route().to(queue::join_queue))],
    ))
    .service(resource(
        "/v1/events/{event}/queue/me",
        [(get.clone(), route().to(queue::my_place))],
    ))
    .service(resource(
        "/v1/events/{event}/queue/me/stream",
        [(get.clone(), route().to(queue::my_place_stream))],
    ))
    .service(resource(
        "/v1/tickets/check-in",
        [(post.clone(), route().to(tickets::check_in))],
    ))
    .service(resource(
        "/v1/admin/outbox",
        [(get.clone(), route().to(list_outbox))],
    ))
    .service(resource(
        "/v1/admin/outbox/{id}/retry",
        [(post.clone(), route().to(retry_outbox))],
    ))
    .service(resource(
        "/v1/admin/snapshots",
        [
            (get.clone(), route().to(list_snapshots)),
            (post.clone(), route().to(create_snapshot)),
        ],
    ))
    .service(resource(
        "/v1/admin/snapshots/{position}",
        [(get.clone(), route().to(get_snapshot))],
    ))
    .service(resource(
        "/v1/openapi.json",
        [(get.clone(), route().to(openapi::serve))],
    ))
    .service(resource(
        "/v1/demo",
        [(get.clone(), route().to(demo::offers))],
    ))
    .service(resource(
        "/v1/demo/fans",
        [(post.clone(), route().to(demo::new_fan))],
    ))
    .service(resource(
        "/v1/demo/payments",
        [(post, route().to(demo::pay))],
    ))
    .service(resource("/healthz", [(get.clone(), route().to(healthz))]))
    .service(resource("/readyz", [(get, route().to(readyz))]))
    .default_service(web::to(not_found));
    for (path, to) in page::routes() {
        cfg.service(resource(path, [(Method::GET, to)]));
    }
}

/// Reads a JSON body: checks the media type (415), the size (413), the
/// syntax (400) and the shape (422). Returns the value and the raw bytes
/// (for the idempotency fingerprint).
pub async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
    empty_ok: bool,
) -> Result<(T, Bytes), ApiError> {
    let bytes = read_body(req, payload, limit).await?;
    if bytes.is_empty() && empty_ok {
        return serde_json::from_slice(b"{}")
            .map(|v| (v, bytes))
            .map_err(|e| ApiError::invalid(e.to_string()));
    }
    check_json_content_type(req.headers())?;
    // serde reads a struct from an array too, field by field in order
    // (`[null]` would be `{"memberships": null}`); every body here is an
    // object, so an array is refused before it can be taken for one.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid(
            "the body must be a JSON object, not an array",
        ));
    }
    match serde_json::from_slice::<T>(&bytes) {
        Ok(v) => Ok((v, bytes)),
        Err(e) => match e.classify() {
            serde_json::error::Category::Data => Err(ApiError::invalid(e.to_string())),
            _ => Err(ApiError::bad_request(format!("malformed JSON: {e}"))),
        },
    }
}

fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as application/json",
        )
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(unsupported())
    }
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Request body too large",
            format!("the body may have at most {limit} bytes"),
        )
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit as u64 {
            return Err(too_large());
        }
    }
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    // A client that sends a head and then trickles (or nothing) must not
    // hold its connection and this task for ever.
    let deadline = req
        .app_data::<web::Data<AppState>>()
        .map_or(BODY_READ_TIMEOUT_DEFAULT, |s| s.body_read_timeout);
    match tokio::time::timeout(deadline, read).await {
        Ok(read) => read,
        Err(_) => Err(ApiError::request_timeout(deadline)),
    }
}

/// The request's `Idempotency-Key`, in its scope: `scope`, a newline (which
/// neither a scope nor a key contains), the key.
fn idempotency_key(req: &HttpRequest, scope: &str) -> Result<Option<String>, ApiError> {
    let Some(v) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_LEN_MAX} visible ASCII characters"
        ))
    };
    let s = v.to_str().map_err(|_| bad())?;
    if s.is_empty() || s.len() > IDEMPOTENCY_KEY_LEN_MAX || !s.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(format!("{scope}\n{s}")))
}

fn fingerprint(req: &HttpRequest, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(req.method().as_str());
    h.update([0]);
    h.update(req.path());
    h.update([0]);
    h.update(body);
    h.finalize().into()
}

/// A change's answer as an HTTP response: JSON, or nothing for `204`.
pub fn answer_response(answer: Answer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if answer.body.is_empty() {
        return HttpResponse::build(status).finish();
    }
    HttpResponse::build(status)
        .content_type("application/json")
        .body(answer.body)
}

/// Runs a change at most once per `Idempotency-Key` of `scope` (the fan
/// who sends it, or the admin token): keys are each fan's own, so no fan's
/// key can collide with, replay or refuse another's.
///
/// The change runs in a detached task, key or not: a client that hangs up
/// cancels nothing, so whatever reached the journal is finished (an event
/// is started, an answer remembered) and a retry finds it instead of
/// changing things twice or waiting on a change that was abandoned.
pub async fn idempotent<F, Fut>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    scope: &str,
    body: &Bytes,
    change: F,
) -> Result<HttpResponse, ApiError>
where
    F: FnOnce(Option<IdemTag>) -> Fut + 'static,
    Fut: Future<Output = Result<Answer, ApiError>> + 'static,
{
    let Some(key) = idempotency_key(req, scope)? else {
        let task = actix_web::rt::spawn(change(None));
        let answer = task.await.map_err(|_| ApiError::internal())??;
        return Ok(answer_response(answer));
    };
    let now = state.registry.clock().now_ms();
    let fp = fingerprint(req, body);
    match state.idempotency.begin(&key, fp, now) {
        Begin::Replay { status, body } => {
            let mut res = answer_response(Answer { status, body });
            res.headers_mut().insert(
                header::HeaderName::from_static("idempotent-replayed"),
                header::HeaderValue::from_static("true"),
            );
            Ok(res)
        }
        Begin::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used for a different request",
        )),
        Begin::InFlight => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency-key-in-use",
            "Request in progress",
            "a request with this Idempotency-Key is still being answered",
        )
        .retry_after(1)),
        Begin::Full => Err(ApiError::overloaded()),
        Begin::Fresh(pending) => {
            let tag = IdemTag {
                key: pending.key().to_owned(),
                fingerprint: pending.fingerprint(),
                at_ms: now,
            };
            let task = actix_web::rt::spawn(async move {
                let result = change(Some(tag)).await;
                if let Ok(answer) = &result {
                    pending.complete(answer.status, answer.body.clone(), now);
                }
                result
            });
            let answer = task.await.map_err(|_| ApiError::internal())??;
            Ok(answer_response(answer))
        }
    }
}

/// Middleware: what can be refused before a request's body is read or it
/// is routed, is. A path naming an event this shard does not serve gets
/// `421` naming the owner (event creation names its event in the body:
/// the handler checks it); a request bound for a section while the
/// process's in-flight limit is reached gets `503` with `Retry-After`
/// (the section's own limit is checked when it is asked).
pub async fn refuse_early(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::ResponseError;
    let refusal = req.app_data::<web::Data<AppState>>().and_then(|s| {
        if s.drain.is_closed() {
            return Some(ApiError::shutting_down());
        }
        if s.sharding.is_some() {
            if let Some(Err(e)) = event_of_path(req.path()).map(|event| s.own(&event)) {
                return Some(e);
            }
        }
        (bound_for_a_section(req.path()) && !s.registry.process_limit().has_room())
            .then(ApiError::overloaded)
    });
    match refusal {
        Some(err) => Ok(req
            .into_response(err.error_response())
            .map_into_right_body()),
        None => next.call(req).await.map(|r| r.map_into_left_body()),
    }
}

/// Whether a request of `path` asks a section (and so counts against the
/// in-flight limits): holds, bookings (a fan's lists of them too) and
/// seat maps.
fn bound_for_a_section(path: &str) -> bool {
    path.starts_with("/v1/holds/")
        || path.starts_with("/v1/bookings/")
        || path == "/v1/tickets/check-in"
        || path.strip_prefix("/v1/events/").is_some_and(|rest| {
            rest.ends_with("/holds")
                || rest.ends_with("/me/bookings")
                || rest.contains("/sections/")
        })
}

/// Longest `X-Request-Id` taken from a client; longer or odd ones are
/// replaced by a fresh id.
pub const REQUEST_ID_LEN_MAX: usize = 128;

fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= REQUEST_ID_LEN_MAX
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(v) => v.to_owned(),
        None => {
            use rand::{Rng, SeedableRng};
            thread_local! {
                static RNG: std::cell::RefCell<rand::rngs::StdRng> =
                    std::cell::RefCell::new(rand::rngs::StdRng::from_os_rng());
            }
            RNG.with(|r| format!("{:016x}", r.borrow_mut().random::<u64>()))
        }
    }
}

/// A request's method as a metric label: the methods of HTTP (RFC 9110,
/// and PATCH), or `other`. Any token is a valid method, and a label per
/// made-up one would grow the metrics without bound.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Middleware around every request: a request id (the client's
/// `X-Request-Id`, or a fresh one) in a tracing span and on the response,
/// and the request counter and latency histogram by route.
pub async fn observe(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let method = method_label(req.method());
    let id = request_id(req.headers());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let _in_flight = state.as_ref().map(|s| s.drain.enter());
    // The route is known once routing is done (inside `next`); asking
    // before would match the path against every pattern a second time.
    let span =
        tracing::info_span!("request", request_id = %id, %method, route = tracing::field::Empty);
    let mut res = next.call(req).instrument(span.clone()).await?;
    // Patterns, not paths: ids would make a label per hold.
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    span.record("route", route.as_str());
    if let Ok(v) = header::HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), v);
    }
    if state.as_ref().is_some_and(|s| s.drain.is_shutting_down()) {
        // Stopping: this connection's next request would find it gone.
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    if let Some(m) = state.as_ref().map(|s| &s.metrics) {
        m.http_requests
            .with_label_values(&[&route, method, res.status().as_str()])
            .inc();
        m.http_seconds
            .with_label_values(&[&route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}
