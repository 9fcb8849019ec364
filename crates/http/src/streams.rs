//! Seat streams: a section's seats as server-sent events, live.
//!
//! `GET /v1/events/{event}/sections/{section}/stream` sends the section's
//! whole state (`event: seats`), then every publication of its board
//! (`event: changes`: the seats that changed, by state, and the counts),
//! each with its journal position as the `id:`. A reconnect with
//! `Last-Event-ID` gets what it missed while the board keeps it, or the
//! whole state again. Everything shown is durable (see `actors::views`).
//!
//! Bounds: at most `--seat-streams-max` streams at once (503 past it), of
//! which at most `--seat-streams-anonymous-max` without a fan's token (the
//! rest kept for fans signed in, so a crowd of anonymous clients cannot
//! take the live map from fans), of those `--seat-streams-per-address-max`
//! a client address (429; `client_address`), and `SEAT_STREAMS_PER_FAN_MAX`
//! a fan (429); a stream more than `STREAM_BUFFER` publications behind is cut (its
//! client reconnects and catches up), so a client that stops reading
//! costs a slot and a receiver, never a growing queue; publications are
//! rendered once and shared by every stream.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use tokio::sync::broadcast::error::RecvError;

use super::error::{ApiError, Problem};
use super::slots::{FanSlot, Refused, StreamSlot, SEAT_STREAMS_PER_FAN_MAX};
use super::target::section_entry;
use super::who::{bearer, signed_in};
use super::AppState;
use crate::actors::{Publication, SeatsPublished, Start};
use crate::api::dto::{SeatChangesDto, SeatStatesDto};

/// A comment line this often keeps proxies from closing a quiet stream.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How often a quiet stream looks whether the server is stopping.
pub(super) const DRAIN_POLL: Duration = Duration::from_secs(1);

/// The comment line that keeps a quiet stream open.
pub(super) const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// A seat stream's place: a fan's, or one of the anonymous places (its
/// address's) and one of all (held for the stream's life, given back when
/// it ends).
enum SeatSlot {
    Fan(#[allow(dead_code)] FanSlot),
    Anonymous(#[allow(dead_code)] FanSlot, #[allow(dead_code)] StreamSlot),
}

/// The frame of a section's whole state, rendered once per view.
fn whole_frame(view: &SeatsPublished) -> Bytes {
    view.frame
        .get_or_init(|| {
            let dto = SeatStatesDto {
                position: view.position,
                availability: view.counts.total.into(),
                states: &view.states,
            };
            let json = crate::api::dto::json_text(&dto);
            Bytes::from(format!(
                "id: {}\nevent: seats\ndata: {json}\n\n",
                view.position
            ))
        })
        .clone()
}

/// A publication's frame, rendered by the first stream that sends it.
fn changes_frame(p: &Publication) -> Bytes {
    p.frame
        .get_or_init(|| {
            let mut dto = SeatChangesDto {
                position: p.position,
                since: p.since,
                availability: p.counts.total.into(),
                free: Vec::new(),
                held: Vec::new(),
                sold: Vec::new(),
            };
            for &(seat, state) in &p.seats {
                match state {
                    crate::actors::HELD => dto.held.push(seat),
                    crate::actors::SOLD => dto.sold.push(seat),
                    _ => dto.free.push(seat),
                }
            }
            let json = crate::api::dto::json_text(&dto);
            Bytes::from(format!(
                "id: {}\nevent: changes\ndata: {json}\n\n",
                p.position
            ))
        })
        .clone()
}

struct SeatWatch {
    state: web::Data<AppState>,
    /// Frames to send before the live ones (the start).
    first: VecDeque<Bytes>,
    rx: tokio::sync::broadcast::Receiver<Arc<Publication>>,
    /// Position of the last frame sent: live publications up to it were
    /// in the start already.
    seen: u64,
    quiet: Duration,
    _slot: SeatSlot,
}

impl SeatWatch {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, SeatWatch)> {
        if let Some(frame) = self.first.pop_front() {
            return Some((Ok(frame), self));
        }
        loop {
            if self.state.drain.is_shutting_down() {
                return None;
            }
            let wait = DRAIN_POLL.min(KEEPALIVE.saturating_sub(self.quiet));
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Ok(p)) if p.position <= self.seen => {}
                Ok(Ok(p)) => {
                    self.seen = p.position;
                    self.quiet = Duration::ZERO;
                    return Some((Ok(changes_frame(&p)), self));
                }
                Ok(Err(RecvError::Lagged(_))) => {
                    self.state.streams.seats.count_cut();
                    return None;
                }
                Ok(Err(RecvError::Closed)) => return None,
                Err(_) => {
                    self.quiet += wait;
                    if self.quiet >= KEEPALIVE {
                        self.quiet = Duration::ZERO;
                        return Some((Ok(Bytes::from_static(KEEPALIVE_FRAME)), self));
                    }
                }
            }
        }
    }
}

/// A place for a seat stream: a signed-in fan's (a bad token is `401`,
/// one stream too many for the fan `429`), or without a token one of
/// the anonymous places; `503` when none is left.
fn seat_slot(state: &AppState, req: &HttpRequest) -> Result<SeatSlot, ApiError> {
    let full = |detail: &str| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too busy",
            detail,
        )
        .retry_after(5)
    };
    let everyone = "as many seat streams are open as this server keeps: read GET .../seats instead";
    if bearer(req).is_none() {
        let streams = &state.streams;
        let address: Arc<str> = streams.addresses.key(req).unwrap_or_default().into();
        let anonymous = match streams.seats_by_address.take(&address) {
            Ok(slot) => slot,
            Err(Refused::Full) => return Err(full("as many seat streams without sign-in are open as this server keeps: sign in, or read GET .../seats instead")),
            Err(Refused::FanFull) => return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too-many-streams",
                "Too many streams",
                "as many seat streams without sign-in are open from your address as this server keeps for one: sign in, close one, or read GET .../seats instead",
            )
            .retry_after(5)),
        };
        let place = streams.seats.take().ok_or_else(|| full(everyone))?;
        return Ok(SeatSlot::Anonymous(anonymous, place));
    }
    let fan = signed_in(state, req)?;
    match state.streams.seat_fans.take(&fan.id) {
        Ok(slot) => Ok(SeatSlot::Fan(slot)),
        Err(Refused::Full) => Err(full(everyone)),
        Err(Refused::FanFull) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-streams",
            "Too many streams",
            format!("you have {SEAT_STREAMS_PER_FAN_MAX} seat streams open already: close one"),
        )
        .retry_after(5)),
    }
}

/// A section's seats, live, as server-sent events: first `event: seats`
/// (a SeatStatesDto: every seat's state, one letter each, in the order of
/// the seat map's `ids`), then `event: changes` (a SeatChangesDto: the
/// seats that changed since, by the state they are in now) whenever some
/// did, at most every 25 ms (on a section many watch, every 10 µs per
/// stream: 10,000 streams get one every 100 ms). Each event's `id` is the journal position it
/// stands at; reconnect with `Last-Event-ID` to get what you missed (or
/// the whole state again, when that is too old). Only durable changes are
/// sent. A comment line every 15 s keeps proxies from closing the stream.
/// A stream that falls 128 publications behind is ended: reconnect.
/// Anyone may watch; a fan's token (optional) opens the stream on the
/// places kept for signed-in fans, four a fan.
#[utoipa::path(get, path = "/v1/events/{event}/sections/{section}/stream", tag = "events",
    security((), ("fan_token" = [])),
    params(("event" = String, Path), ("section" = String, Path),
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: resume after it")),
    responses((status = 200, description = "`text/event-stream` of `seats` (SeatStatesDto) then `changes` (SeatChangesDto) events", content_type = "text/event-stream", body = String),
        (status = 401, description = "A token was sent and is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "This fan has four seat streams open already, or without a token this client address as many as `--seat-streams-per-address-max` (`too-many-streams`); see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many seat streams open as the server keeps (`--seat-streams-max`), or without a token as it keeps for those (`--seat-streams-anonymous-max`); see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn seat_stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (event, section) = path.into_inner();
    let (_, s) = section_entry(&state, &event, &section)?;
    let slot = seat_slot(&state, &req)?;
    if let Some(socket) = req.conn_data::<super::server::Socket>() {
        socket.cap_send_buffer();
    }
    // An id this server did not send (or garbage) gets the whole state.
    let seen = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let subscription = s.board.subscribe(seen);
    let mut first = VecDeque::new();
    first.push_back(Bytes::from_static(b"retry: 1000\n\n"));
    let seen = match subscription.start {
        Start::Whole(view) => {
            first.push_back(whole_frame(&view));
            view.position
        }
        Start::Missed(missed) => {
            let mut at = seen.unwrap_or(0);
            for p in &missed {
                first.push_back(changes_frame(p));
                at = p.position;
            }
            at
        }
    };
    let watch = SeatWatch {
        state: state.clone(),
        first,
        rx: subscription.rx,
        seen,
        quiet: Duration::ZERO,
        _slot: slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(futures_util::stream::unfold(watch, SeatWatch::next)))
}
