//! The waiting room's endpoints: an operator switches an event's room on,
//! changes it or switches it off; fans join, ask where they stand and,
//! once admitted, send their admission with each hold (checked by
//! `admission::check_admission`, which the hold handler calls).
//!
//! The room's public state (serving number, rate) is the same for every
//! fan and cacheable for a second, so hundreds of thousands of waiting
//! fans need not ask for their own standing often: their position is
//! their number minus the serving number.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::error::Problem;
use super::slots::{FanSlot, Refused, STREAMS_PER_FAN_MAX};
use super::target::event_entry;
use super::who::{Admin, SignedIn};
use super::{read_json, ApiError, AppState, BODY_LEN_MAX};
use crate::actors::{EventEntry, FanStanding, RoomHandle, RoomView};
use crate::api::dto::{QueueStandingDto, WaitingRoomDto};
use crate::auth::admission::Admission;
use crate::auth::Fan;
use crate::clock::rfc3339_ms;
use crate::domain::Standing;
use crate::layout::WaitingRoomSpec;

fn room_dto(event: &str, view: Option<RoomView>) -> WaitingRoomDto {
    let Some(v) = view else {
        return WaitingRoomDto {
            event: event.to_owned(),
            ..WaitingRoomDto::default()
        };
    };
    WaitingRoomDto {
        event: event.to_owned(),
        enabled: true,
        settings: Some(WaitingRoomSpec::of(&v.settings)),
        serving: v.serving,
        joined: v.joined,
        waiting: v.joined.saturating_sub(v.serving),
        active: v.active,
        admitted_per_sec: (v.admitted_per_sec * 10.0).round() / 10.0,
        shuffle_seed: v.shuffle_seed.map(|s| s.to_string()),
    }
}

/// Switch an event's waiting room on, change how it runs (rate, cap,
/// pause), or switch it off (admin).
#[utoipa::path(put, path = "/v1/events/{event}/waiting-room", tag = "waiting room",
    params(("event" = String, Path)),
    request_body = WaitingRoomSpec,
    security(("admin_token" = [])),
    responses((status = 200, description = "The room as it now runs", body = WaitingRoomDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "A body over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json", body = Problem, content_type = "application/problem+json"),
        (status = 421, description = "Another shard serves this event", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Settings no room runs by (`field` names which)", body = Problem, content_type = "application/problem+json")))]
pub async fn set_waiting_room(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    _: Admin,
) -> Result<HttpResponse, ApiError> {
    let (spec, _): (WaitingRoomSpec, Bytes) = read_json(&req, payload, BODY_LEN_MAX, false).await?;
    let e = event_entry(&state, &path)?;
    let settings = spec
        .build("waiting_room", &e.phases())
        .map_err(|err| ApiError::invalid(err.to_string()).with("field", err.path.clone()))?;
    let e = state
        .registry
        .set_waiting_room(&path, settings)
        .await
        .map_err(|err| match err {
            crate::actors::RoomSwitchError::Registry(r) => ApiError::from_registry(r),
            crate::actors::RoomSwitchError::Room(r) => ApiError::from_room(r, &path),
        })?;
    Ok(HttpResponse::Ok().json(room_dto(&e.def.id, e.room().map(|r| r.view()))))
}

/// An event's waiting room: whether it is on, its serving number and
/// admission rate. The same for everyone; cacheable for a second.
#[utoipa::path(get, path = "/v1/events/{event}/waiting-room", tag = "waiting room",
    params(("event" = String, Path)),
    responses((status = 200, body = WaitingRoomDto),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_waiting_room(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let e = event_entry(&state, &path)?;
    Ok(HttpResponse::Ok()
        .insert_header(CacheControl(vec![
            CacheDirective::Public,
            CacheDirective::MaxAge(1),
        ]))
        .json(room_dto(&e.def.id, e.room().map(|r| r.view()))))
}

fn open_room(e: &EventEntry) -> Result<Arc<RoomHandle>, ApiError> {
    e.room().ok_or_else(|| {
        ApiError::not_found(
            "waiting-room-off",
            format!("event {:?} has no waiting room: hold directly", e.def.id),
        )
    })
}

/// The event a path names, and the event's room.
fn event_and_room(
    state: &AppState,
    event: &str,
) -> Result<(Arc<EventEntry>, Arc<RoomHandle>), ApiError> {
    let e = event_entry(state, event)?;
    let room = open_room(&e)?;
    Ok((e, room))
}

fn standing_dto(state: &AppState, event: &str, fan: &Fan, s: FanStanding) -> QueueStandingDto {
    let v = s.view;
    let mut dto = QueueStandingDto {
        event: event.to_owned(),
        state: "pre-queue",
        number: None,
        serving: v.serving,
        ahead: None,
        estimated_wait_secs: None,
        opens_at: rfc3339_ms(v.settings.opens_at_ms),
        admission: None,
        admission_expires_at: None,
    };
    match s.standing {
        Standing::PreQueue => {}
        Standing::Waiting { number, ahead } => {
            let rate = if v.admitted_per_sec >= 1.0 {
                v.admitted_per_sec
            } else {
                f64::from(v.settings.rate_per_sec)
            };
            dto.state = "waiting";
            dto.number = Some(number);
            dto.ahead = Some(ahead);
            dto.estimated_wait_secs =
                (!v.settings.paused).then(|| (ahead as f64 / rate).ceil() as u64);
        }
        Standing::Admitted {
            number,
            expires_at_ms,
        } => {
            dto.state = "admitted";
            dto.number = Some(number);
            dto.admission = Some(state.admission_key.sign(&Admission {
                e: event.to_owned(),
                f: fan.id.to_string(),
                n: number,
                x: expires_at_ms,
            }));
            dto.admission_expires_at = Some(rfc3339_ms(expires_at_ms));
        }
        Standing::Expired { number } => {
            dto.state = "expired";
            dto.number = Some(number);
        }
        Standing::Done { number } => {
            dto.state = "done";
            dto.number = Some(number);
        }
    }
    dto
}

/// Join an event's waiting room: one place per fan (joining again
/// answers the same place). Before the opening fans wait in a pre-queue,
/// shuffled at the opening; later fans queue in arrival order.
#[utoipa::path(post, path = "/v1/events/{event}/queue", tag = "waiting room",
    params(("event" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 200, description = "Where the fan stands", body = QueueStandingDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The queue opens later (`queue-not-open`, with `opens_at`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event, or it has no waiting room (`waiting-room-off`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Joins cannot be made durable now, or the queue holds as many fans as it can (`queue-full`); see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn join_queue(
    state: web::Data<AppState>,
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let (e, room) = event_and_room(&state, &path)?;
    let standing = room
        .join(&fan.id)
        .await
        .map_err(|err| ApiError::from_room(err, &e.def.id))?;
    Ok(HttpResponse::Ok().json(standing_dto(&state, &e.def.id, &fan, standing)))
}

/// Where the signed-in fan stands in an event's waiting room; once
/// admitted, with the admission to send with each hold.
#[utoipa::path(get, path = "/v1/events/{event}/queue/me", tag = "waiting room",
    params(("event" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 200, body = QueueStandingDto),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event, no waiting room (`waiting-room-off`), or not in its queue (`not-in-queue`)", body = Problem, content_type = "application/problem+json")))]
pub async fn my_place(
    state: web::Data<AppState>,
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let (e, room) = event_and_room(&state, &path)?;
    let standing = room
        .standing(&fan.id)
        .ok_or_else(|| not_in_queue(&e.def.id))?;
    Ok(HttpResponse::Ok().json(standing_dto(&state, &e.def.id, &fan, standing)))
}

/// How often a stream looks at its fan's standing.
const STREAM_POLL: Duration = Duration::from_secs(1);
/// A comment line this often while nothing changes, so proxies keep the
/// connection, and a fan who went away (noticed only when a write
/// fails) gives its stream's place back within seconds.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(5);
/// A stream ends after this long; the client connects again (a browser's
/// `EventSource` does so by itself), so no stream outlives its fan.
const STREAM_LIFETIME: Duration = Duration::from_secs(600);

struct Watch {
    state: web::Data<AppState>,
    room: Arc<RoomHandle>,
    fan: Arc<Fan>,
    event: String,
    last: Option<String>,
    quiet: Duration,
    started: Instant,
    ended: bool,
    _slot: FanSlot,
}

impl Watch {
    /// The next line of the stream: the standing when it changed, a
    /// keep-alive, or the end (admitted, expired, done; the room off; the
    /// server stopping; the stream's lifetime over).
    async fn next(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Watch)> {
        loop {
            if self.ended
                || self.started.elapsed() >= STREAM_LIFETIME
                || self.room.is_retired()
                || self.state.drain.is_shutting_down()
            {
                return None;
            }
            let standing = self.room.standing(&self.fan.id)?;
            let dto = standing_dto(&self.state, &self.event, &self.fan, standing);
            let json = crate::api::dto::json_text(&dto);
            if self.last.as_ref() != Some(&json) {
                self.ended = !matches!(dto.state, "pre-queue" | "waiting");
                let line = Bytes::from(format!("event: standing\ndata: {json}\n\n"));
                self.last = Some(json);
                self.quiet = Duration::ZERO;
                return Some((Ok(line), self));
            }
            if self.quiet >= STREAM_KEEPALIVE {
                self.quiet = Duration::ZERO;
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
            }
            tokio::time::sleep(STREAM_POLL).await;
            self.quiet += STREAM_POLL;
        }
    }
}

/// Where the signed-in fan stands, as a server-sent event stream: an
/// `event: standing` with the same body as `GET .../queue/me` whenever it
/// changes (looked at every second), until the fan is admitted (that
/// event carries the admission), its admission ended, or ten minutes
/// passed (connect again). A phone waits on one connection instead of
/// polling. A fan already admitted (or past it) gets 204: nothing will
/// change (`GET .../queue/me` has the admission).
#[utoipa::path(get, path = "/v1/events/{event}/queue/me/stream", tag = "waiting room",
    params(("event" = String, Path)),
    security(("fan_token" = [])),
    responses((status = 200, description = "`text/event-stream` of `standing` events, each a QueueStandingDto", content_type = "text/event-stream", body = String),
        (status = 204, description = "Already admitted, or past it: nothing will change"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such event, no waiting room (`waiting-room-off`), or not in its queue (`not-in-queue`): join first", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This fan has two streams open already (`too-many-streams`); see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many streams open as the server keeps (`--queue-streams-max`): poll `GET .../queue/me` instead; see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn my_place_stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    SignedIn(fan): SignedIn,
) -> Result<HttpResponse, ApiError> {
    let (e, room) = event_and_room(&state, &path)?;
    let standing = room
        .standing(&fan.id)
        .ok_or_else(|| not_in_queue(&e.def.id))?;
    if !matches!(
        standing.standing,
        Standing::PreQueue | Standing::Waiting { .. }
    ) {
        // Nothing more will change: a browser's EventSource stops
        // reconnecting on 204 (GET .../queue/me has the admission).
        return Ok(HttpResponse::NoContent().finish());
    }
    if let Some(socket) = req.conn_data::<super::server::Socket>() {
        socket.cap_send_buffer();
    }
    let slot = state
        .streams
        .queue
        .take(&fan.id)
        .map_err(|refused| match refused {
            Refused::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Too busy",
                "as many waiting-room streams are open as this server keeps: poll GET .../queue/me instead",
            )
            .retry_after(5),
            Refused::FanFull => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many streams",
                format!("you have {STREAMS_PER_FAN_MAX} streams open already: close one, or poll GET .../queue/me"),
            )
            .retry_after(5),
        })?;
    let watch = Watch {
        state: state.clone(),
        room,
        fan,
        event: e.def.id.clone(),
        last: None,
        quiet: Duration::ZERO,
        started: Instant::now(),
        ended: false,
        _slot: slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(futures_util::stream::unfold(watch, Watch::next)))
}

fn not_in_queue(event: &str) -> ApiError {
    ApiError::not_found(
        "not-in-queue",
        format!("you are not in the queue of {event:?}: join first"),
    )
}
