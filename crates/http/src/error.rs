//! `ApiError`: every refusal as an RFC 9457 `application/problem+json`
//! answer with a stable `type` per kind of problem.
//!
//! Client mistakes map to 4xx with a message that says what to fix; a fault
//! of ours maps to a 500 that reveals nothing (the detail is logged).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::actors::{RegistryError, SectionError};
use crate::auth::{Refusal, Refused};
use crate::clock::{rfc3339, rfc3339_ms};
use crate::domain::{Admission, CommandError, SectionKind, SectionLayout};
use crate::mail::TicketError;

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_PREFIX: &str = "urn:boxoffice:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `urn:boxoffice:problem:<kind>`, stable per kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    /// Extension members, e.g. the seats that were taken.
    pub extra: Map<String, Value>,
    pub retry_after_secs: Option<u32>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.title,
            self.status.as_u16(),
            self.detail
        )
    }
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            kind,
            title,
            detail: detail.into(),
            extra: Map::new(),
            retry_after_secs: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ApiError {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn retry_after(mut self, secs: u32) -> ApiError {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Malformed request",
            detail,
        )
    }

    pub fn invalid(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-request",
            "Invalid request",
            detail,
        )
    }

    pub fn not_found(kind: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, kind, "Not found", detail)
    }

    /// The body did not arrive in time; the connection is closed after it.
    pub fn request_timeout(deadline: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request body too slow",
            format!(
                "the body must arrive within {} ms of the request's head",
                deadline.as_millis()
            ),
        )
    }

    pub fn overloaded() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too busy",
            "too many requests are in flight right now; retry after the Retry-After seconds with the same Idempotency-Key",
        )
        .retry_after(1)
    }

    /// The server is stopping: another replica (or this one, restarted)
    /// will answer.
    pub fn shutting_down() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "Shutting down",
            "this server is stopping; retry after the Retry-After seconds with the same Idempotency-Key",
        )
        .retry_after(1)
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "changes cannot be made durable right now",
        )
        .retry_after(5)
    }

    /// The request is for an event another shard serves (`owner`), or
    /// that no shard serves.
    pub fn misdirected(event: &str, owner: Option<&str>) -> ApiError {
        let detail = match owner {
            Some(shard) => format!("event {event:?} is served by shard {shard:?}, not this one"),
            None => format!("no shard serves event {event:?}"),
        };
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            "Wrong shard",
            detail,
        )
        .with("event", event)
        .with("shard", owner)
    }

    /// A fan trying holds faster than `--fan-holds-per-sec`.
    pub fn too_many_holds(retry_after_secs: u32) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many attempts",
            "you are trying holds too fast: wait as Retry-After says",
        )
        .retry_after(retry_after_secs)
    }

    /// A fan's request without a bearer token.
    pub fn sign_in_required() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Sign-in required",
            "send Authorization: Bearer <the fan club's token>",
        )
    }

    /// A bearer token that proves nothing: RFC 6750's `invalid_token`.
    pub fn invalid_token(e: Refused) -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid-token",
            "Invalid token",
            e.to_string(),
        )
        .with("reason", e.reason())
    }

    /// A hold refused by the event's sale phases; `None` when admitted.
    /// Times are RFC 3339, so an app can count down to `opens_at`.
    pub fn not_admitted(event: &str, admission: Admission) -> Option<ApiError> {
        let forbidden = |kind, title, detail: String| {
            ApiError::new(StatusCode::FORBIDDEN, kind, title, detail).with("event", event)
        };
        Some(match admission {
            Admission::Open => return None,
            Admission::NotYet { opens_at_ms } => forbidden(
                "sale-not-open",
                "Sale not open yet",
                format!("the sale opens to you at {}", rfc3339(opens_at_ms)),
            )
            .with("opens_at", rfc3339(opens_at_ms)),
            Admission::MembershipRequired { opens_at_ms } => forbidden(
                "membership-required",
                "Members only",
                match opens_at_ms {
                    Some(ms) => format!(
                        "this phase of the sale is for members; it opens to you at {}",
                        rfc3339(ms)
                    ),
                    None => "the sale is for members only".to_owned(),
                },
            )
            .with("opens_at", opens_at_ms.map(rfc3339)),
            Admission::Closed => {
                forbidden("sale-closed", "Sale closed", "the sale has ended".into())
            }
        })
    }

    /// A hold without a valid admission while the event's waiting room
    /// is on: `reason` says what was wrong, `queue` where to queue.
    pub fn admission_required(event: &str, reason: &'static str, detail: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "admission-required",
            "Admission required",
            format!("{detail}: this event's sale is behind a waiting room; queue, and send the admission you get in the Boxoffice-Admission header"),
        )
        .with("event", event)
        .with("reason", reason)
        .with("queue", format!("/v1/events/{event}/queue"))
    }

    /// A waiting room that refused, or a journal that failed.
    pub fn from_room(err: crate::actors::RoomFailure, event: &str) -> ApiError {
        use crate::actors::RoomFailure;
        use crate::domain::RoomError;
        match err {
            RoomFailure::Refused(RoomError::NotOpenYet { opens_at_ms }) => ApiError::new(
                StatusCode::FORBIDDEN,
                "queue-not-open",
                "Queue not open yet",
                format!("the waiting room opens at {}", rfc3339(opens_at_ms)),
            )
            .with("event", event)
            .with("opens_at", rfc3339(opens_at_ms)),
            RoomFailure::Refused(RoomError::Settings(m)) => ApiError::invalid(m),
            RoomFailure::Refused(
                RoomError::NotInQueue | RoomError::NotAdmitted | RoomError::OpeningDue,
            ) => ApiError::not_found(
                "not-in-queue",
                format!("you are not in the queue of {event:?}"),
            ),
            RoomFailure::Refused(RoomError::Full) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queue-full",
                "Queue full",
                format!("the waiting room of {event:?} holds as many fans as it can"),
            )
            .retry_after(60),
            RoomFailure::Off => ApiError::not_found(
                "waiting-room-off",
                format!("event {event:?} has no waiting room"),
            ),
            RoomFailure::Unavailable => ApiError::unavailable(),
            RoomFailure::Busy => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "Too busy",
                "the sale's journal is busy: join again after the Retry-After seconds (joining again keeps any place you have)",
            )
            .retry_after(1),
        }
    }

    /// A receipt that proves nothing.
    pub fn bad_receipt(e: Refused) -> ApiError {
        let (kind, title) = match e.why {
            Refusal::Expired => ("receipt-expired", "Receipt expired"),
            _ => ("receipt-invalid", "Invalid receipt"),
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, kind, title, e.to_string())
            .with("field", "receipt")
            .with("reason", e.reason())
    }

    /// A good receipt, for another hold than the one confirmed.
    pub fn receipt_for_another_hold(hold: &str) -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "receipt-wrong-hold",
            "Receipt for another hold",
            "the receipt pays for another hold",
        )
        .with("field", "receipt")
        .with("receipt_hold", hold)
    }

    /// Maps the registry's refusal.
    pub fn from_registry(err: RegistryError) -> ApiError {
        match err {
            RegistryError::EventExists(id) => ApiError::new(
                StatusCode::CONFLICT,
                "event-exists",
                "Event exists",
                format!("an event {id:?} exists already"),
            ),
            RegistryError::NoEvent(id) => {
                ApiError::not_found("event-not-found", format!("no event {id:?}"))
            }
            RegistryError::Unavailable => ApiError::unavailable(),
        }
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            "the server failed; the fault is logged",
        )
    }

    /// Maps a section's refusal; `layout` turns seat indices into ids.
    pub fn from_section(err: SectionError, event: &str, layout: &SectionLayout) -> ApiError {
        let seat_id = |s: u32| match &layout.kind {
            SectionKind::Seated(map) => map.seat_id(s),
            SectionKind::Standing { .. } => s.to_string(),
        };
        let command = match err {
            SectionError::Overloaded => return ApiError::overloaded(),
            SectionError::Unavailable => return ApiError::unavailable(),
            SectionError::Command(c) => c,
        };
        let message = command.to_string();
        match command {
            CommandError::Empty => ApiError::invalid(message),
            CommandError::TooMany { max } => {
                ApiError::invalid(message).with("seats_per_hold_max", max)
            }
            CommandError::DuplicateSeat(s) => {
                ApiError::invalid(format!("seat {} is listed twice", seat_id(s)))
            }
            CommandError::StandingSection => ApiError::invalid(message),
            CommandError::SeatsUnavailable(seats) => {
                let ids: Vec<String> = seats.into_iter().map(seat_id).collect();
                ApiError::new(
                    StatusCode::CONFLICT,
                    "seats-unavailable",
                    "Seats not available",
                    format!("already held or sold: {}", ids.join(", ")),
                )
                .with("seats", ids)
            }
            CommandError::NoAdjacentBlock { wanted, largest } => ApiError::new(
                StatusCode::CONFLICT,
                "no-adjacent-seats",
                "Not enough seats together",
                message,
            )
            .with("wanted", wanted)
            .with("largest_block", largest),
            CommandError::NotEnoughPlaces { wanted, available } => ApiError::new(
                StatusCode::CONFLICT,
                "not-enough-places",
                "Not enough places",
                message,
            )
            .with("wanted", wanted)
            .with("available", available),
            CommandError::HoldNotFound => ApiError::not_found("hold-not-found", "no such hold"),
            CommandError::HoldExpired => ApiError::new(
                StatusCode::GONE,
                "hold-expired",
                "Hold expired",
                "the hold expired and its seats were returned",
            ),
            CommandError::HoldReleased => ApiError::new(
                StatusCode::GONE,
                "hold-released",
                "Hold released",
                "the hold was released",
            ),
            CommandError::HoldConfirmed {
                booking,
                booking_secret,
            } => ApiError::new(
                StatusCode::CONFLICT,
                "hold-confirmed",
                "Hold already confirmed",
                "the hold was already confirmed into a booking",
            )
            .with(
                "booking_id",
                crate::domain::BookingRef::new(event, &layout.id, booking, booking_secret)
                    .to_string(),
            ),
            CommandError::BookingNotFound => {
                ApiError::not_found("booking-not-found", "no such booking")
            }
            CommandError::BookingCancelled => ApiError::new(
                StatusCode::CONFLICT,
                "booking-cancelled",
                "Booking cancelled",
                "the booking was already cancelled",
            ),
            CommandError::WrongAmount { due, paid } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt-wrong-amount",
                "Receipt for another amount",
                message,
            )
            .with("field", "receipt")
            .with("total_price", due)
            .with("paid", paid),
            CommandError::WrongCurrency { due, paid } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "receipt-wrong-currency",
                "Receipt in another currency",
                message,
            )
            .with("field", "receipt")
            .with("currency", due)
            .with("paid", paid),
            CommandError::PaymentAlreadyUsed => ApiError::new(
                StatusCode::CONFLICT,
                "payment-already-used",
                "Payment already used",
                message,
            ),
            CommandError::FanLimitReached { limit, owned } => ApiError::new(
                StatusCode::CONFLICT,
                "fan-limit-reached",
                "Ticket limit reached",
                message,
            )
            .with("limit", limit)
            .with("owned", owned),
            CommandError::TicketNotFound => ApiError::ticket_not_found(),
            CommandError::TicketCancelled => ApiError::new(
                StatusCode::CONFLICT,
                "ticket-cancelled",
                "Ticket cancelled",
                "the ticket's booking was cancelled: the ticket is void",
            ),
            CommandError::BookingUsed => ApiError::new(
                StatusCode::CONFLICT,
                "booking-used",
                "Booking used",
                "a ticket of this booking was used at the door; support can still cancel it",
            ),
            CommandError::AlreadyCheckedIn { at_ms } => ApiError::new(
                StatusCode::CONFLICT,
                "already-checked-in",
                "Already checked in",
                format!(
                    "this ticket was checked in at {}; it admits once",
                    rfc3339_ms(at_ms)
                ),
            )
            .with("checked_in_at", rfc3339_ms(at_ms)),
        }
    }

    pub fn ticket_not_found() -> ApiError {
        ApiError::not_found(
            "ticket-not-found",
            "no booking has the place this ticket names",
        )
    }

    /// A ticket token that proves nothing.
    pub fn bad_ticket(e: &TicketError) -> ApiError {
        let reason = match e {
            TicketError::Malformed => "malformed",
            TicketError::BadSignature => "bad-signature",
            TicketError::Payload(_) => "payload",
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ticket-invalid",
            "Invalid ticket",
            e.to_string(),
        )
        .with("field", "token")
        .with("reason", reason)
    }

    /// A genuine ticket from before tickets were per place: it covers a
    /// whole booking, and a door admits one person per scan.
    pub fn ticket_superseded() -> ApiError {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ticket-superseded",
            "Ticket superseded",
            "this ticket covers a whole booking; scan the ticket of each place \
             (the fan's booking lists them)",
        )
        .with("field", "token")
    }

    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), format!("{TYPE_PREFIX}{}", self.kind).into());
        m.insert("title".into(), self.title.into());
        m.insert("status".into(), self.status.as_u16().into());
        m.insert("detail".into(), self.detail.clone().into());
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        if let Some(secs) = self.retry_after_secs {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // Whatever the client sends next is the rest of this body.
            res.force_close();
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // Every 401 reads the same to a client: sign in again. (RFC
            // 6750 §3.1 would leave the error code out when no token was
            // sent at all; the problem's type still tells the two apart.)
            res.insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
        }
        res.body(self.body().to_string())
    }
}

/// `404` for a path no route serves, in problem+json like every other.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    ApiError::not_found("not-found", format!("no resource at {}", req.path())).error_response()
}

/// `405` naming the methods `allow`ed (RFC 9110 §15.5.6: the `Allow`
/// header is required).
pub fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let mut res = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}; allowed: {allow}",
            req.method(),
            req.path()
        ),
    )
    .error_response();
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(allow) {
        res.headers_mut().insert(actix_web::http::header::ALLOW, v);
    }
    res
}
