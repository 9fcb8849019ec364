//! A hold's admission: while an event's waiting room is on, a hold must
//! carry the fan's admission (`Boxoffice-Admission`), signed by this
//! server, for this event and this fan, still valid and still counted by
//! the room. The hold handler asks here; the waiting room's endpoints
//! hand the admissions out.

use super::{ApiError, AppState};
use crate::actors::EventEntry;
use crate::auth::Fan;

/// The header a hold carries its admission in.
pub const ADMISSION_HEADER: &str = "boxoffice-admission";

/// While `e`'s waiting room is on, a hold needs this fan's admission to
/// this event, valid now, that the room still counts (one that ended in
/// a booking, or expired, does not).
pub(super) fn check_admission(
    state: &AppState,
    e: &EventEntry,
    fan: &Fan,
    token: Option<&str>,
    now_ms: u64,
) -> Result<(), ApiError> {
    let Some(room) = e.room() else {
        return Ok(());
    };
    let event = e.def.id.as_str();
    let refuse = |reason, detail| Err(ApiError::admission_required(event, reason, detail));
    let Some(token) = token else {
        return refuse("missing", "no admission sent");
    };
    let Ok(admission) = state.admission_key.verify(token) else {
        return refuse(
            "invalid",
            "the admission sent is not one this server signed",
        );
    };
    if admission.e != event {
        return refuse("another-event", "the admission sent is for another event");
    }
    if admission.f != *fan.id {
        return refuse("another-fan", "the admission sent is another fan's");
    }
    if now_ms >= admission.x || !room.admits(&fan.id, admission.n, now_ms) {
        return refuse("expired", "the admission sent is no longer valid");
    }
    Ok(())
}
