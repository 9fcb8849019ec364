//! Where a request goes: the event, the section, or the hold or booking an
//! id names (`404` naming what is missing), and asking that section's
//! actor: a change, rendered into its answer, or a read.

use std::sync::Arc;

use super::{ApiError, AppState};
use crate::actors::{Command, EventEntry, GetHold, SectionHandle};
use crate::api::{self, Answer};
use crate::auth::Fan;
use crate::domain::{BookingRef, HoldRef};

pub(super) fn event_entry(state: &AppState, id: &str) -> Result<Arc<EventEntry>, ApiError> {
    state
        .registry
        .get(id)
        .ok_or_else(|| ApiError::not_found("event-not-found", format!("no event {id:?}")))
}

/// An event's section by their ids: `404` naming the one missing.
pub(super) fn section_entry(
    state: &AppState,
    event: &str,
    section: &str,
) -> Result<(Arc<EventEntry>, Arc<SectionHandle>), ApiError> {
    let e = event_entry(state, event)?;
    let s = e.section(section).cloned().ok_or_else(|| {
        ApiError::not_found(
            "section-not-found",
            format!("event {event:?} has no section {section:?}"),
        )
    })?;
    Ok((e, s))
}

/// The section a hold id names, and the id; 404 for anything else.
pub(super) fn hold_target(
    state: &AppState,
    id: &str,
) -> Result<(Arc<SectionHandle>, HoldRef), ApiError> {
    let not_found = || ApiError::not_found("hold-not-found", "no such hold");
    let r = HoldRef::parse(id).map_err(|_| not_found())?;
    let section = state
        .registry
        .section(r.event(), r.section())
        .ok_or_else(not_found)?;
    Ok((section, r))
}

/// The section a booking id names, and the id; 404 for anything else.
pub(super) fn booking_target(
    state: &AppState,
    id: &str,
) -> Result<(Arc<SectionHandle>, BookingRef), ApiError> {
    let not_found = || ApiError::not_found("booking-not-found", "no such booking");
    let r = BookingRef::parse(id).map_err(|_| not_found())?;
    let section = state
        .registry
        .section(r.event(), r.section())
        .ok_or_else(not_found)?;
    Ok((section, r))
}

/// Asks `section` for a change and renders its answer; the one way every
/// change handler goes.
pub(super) async fn change(
    section: &SectionHandle,
    command: Command,
    idem: Option<crate::journal::IdemTag>,
) -> Result<Answer, ApiError> {
    let outcome = section
        .change(command, idem)
        .await
        .map_err(|err| ApiError::from_section(err, &section.def.id, &section.layout))?;
    Ok(api::answer(&section.def, &section.layout, &outcome))
}

/// Asks `section` something and maps its refusal.
pub(super) async fn ask<M, T>(section: &SectionHandle, msg: M) -> Result<T, ApiError>
where
    M: actix::Message<Result = Result<T, crate::actors::SectionError>> + Send + 'static,
    T: Send + 'static,
    crate::actors::SectionActor: actix::Handler<M>,
{
    section
        .ask(msg)
        .await
        .map_err(|err| ApiError::from_section(err, &section.def.id, &section.layout))
}

/// Fan `fan`'s hold `id` as its section has it, and the section.
pub(super) async fn read_hold(
    state: &AppState,
    fan: &Fan,
    id: &str,
) -> Result<(Arc<SectionHandle>, crate::domain::HoldView), ApiError> {
    let (s, r) = hold_target(state, id)?;
    let hold = ask(
        &s,
        GetHold {
            hold: r.seq(),
            secret: r.secret(),
            fan: Arc::clone(&fan.id),
        },
    )
    .await?;
    Ok((s, hold))
}
