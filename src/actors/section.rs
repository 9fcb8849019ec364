//! The section actor: applies commands to one `Section`, journals the
//! changes, and replies once they are durable.
//!
//! Replies to changes are futures that wait for the journal receipt, so the
//! actor moves on to the next command while earlier changes are being
//! flushed: that is what lets many fans share one group commit. Later
//! commands see earlier changes before they are durable; that is safe
//! because the journal is written in order, so a reply that depends on an
//! earlier change is released only after that change is durable too.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::clock::Clock;
use crate::domain::{
    Booking, BookingRef, BookingStatus, Change, Claim, CommandError, EventDef, Hold, HoldRef,
    Section, SectionCounts, SectionLayout,
};
use crate::journal::{encode, IdemTag, Journal, Receipt, Record};
use crate::mail::{Enqueue, MailEntry, MailKey, MailKind, SectionName};

/// An email to hand to the mailer once its change is durable.
type MailTo = (Recipient<Enqueue>, MailEntry);

/// Most expiries one sweep journals before yielding to other messages.
const EXPIRIES_PER_SWEEP_MAX: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SectionError {
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The section's inbox or the journal queue is full: try again soon.
    #[error("section is overloaded")]
    Overloaded,
    /// The journal failed or is shutting down: nothing can be made durable.
    #[error("section is unavailable")]
    Unavailable,
}

/// Counts a section publishes after every change, so that availability is
/// read without a message to the actor.
#[derive(Debug)]
pub struct SectionStats {
    /// Per category: free, held, sold.
    counts: Vec<[AtomicU32; 3]>,
    /// Changes applied since start, by kind: holds, releases, expiries,
    /// confirms, cancels (`CHANGE_KINDS`).
    changes: [AtomicU64; 5],
}

/// Names of the change counters, in `SectionStats::changes` order.
pub const CHANGE_KINDS: [&str; 5] = ["hold", "release", "expiry", "confirm", "cancel"];

impl SectionStats {
    pub fn new(counts: &SectionCounts) -> SectionStats {
        let s = SectionStats {
            counts: counts
                .by_category
                .iter()
                .map(|_| [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)])
                .collect(),
            changes: Default::default(),
        };
        s.publish(counts);
        s
    }

    fn publish(&self, counts: &SectionCounts) {
        for (slot, c) in self.counts.iter().zip(&counts.by_category) {
            slot[0].store(c.free, Ordering::Relaxed);
            slot[1].store(c.held, Ordering::Relaxed);
            slot[2].store(c.sold, Ordering::Relaxed);
        }
    }

    fn count_change(&self, change: &Change) {
        let i = match change {
            Change::HoldCreated { .. } => 0,
            Change::HoldReleased { .. } => 1,
            Change::HoldExpired { .. } => 2,
            Change::HoldConfirmed { .. } => 3,
            Change::BookingCancelled { .. } => 4,
        };
        self.changes[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Changes applied since start, in `CHANGE_KINDS` order.
    pub fn changes(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.changes[i].load(Ordering::Relaxed))
    }

    /// (free, held, sold) for each category.
    pub fn by_category(&self) -> Vec<(u32, u32, u32)> {
        self.counts
            .iter()
            .map(|s| {
                (
                    s[0].load(Ordering::Relaxed),
                    s[1].load(Ordering::Relaxed),
                    s[2].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldView {
    pub id: HoldRef,
    pub claim: Claim,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

impl HoldView {
    pub fn new(event: &str, section: &str, h: &Hold) -> HoldView {
        HoldView {
            id: HoldRef::new(event, section, h.seq, h.secret),
            claim: h.claim.clone(),
            created_at_ms: h.created_at_ms,
            expires_at_ms: h.expires_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingView {
    pub id: BookingRef,
    pub claim: Claim,
    pub email: String,
    pub payment_ref: String,
    pub confirmed_at_ms: u64,
    pub status: BookingStatus,
}

impl BookingView {
    pub fn new(event: &str, section: &str, b: &Booking) -> BookingView {
        BookingView {
            id: BookingRef::new(event, section, b.seq, b.secret),
            claim: b.claim.clone(),
            email: b.email.clone(),
            payment_ref: b.payment_ref.clone(),
            confirmed_at_ms: b.confirmed_at_ms,
            status: b.status,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatsView {
    /// One of `f`, `h`, `s` per seat; empty for a standing section.
    pub states: String,
    pub counts: SectionCounts,
}

#[derive(Debug, Clone)]
pub enum WhatToHold {
    /// Seat indices in the section's seat map.
    Seats(Vec<u32>),
    /// Best available seats together, or standing places.
    Best(u32),
}

#[derive(Message)]
#[rtype(result = "Result<HoldView, SectionError>")]
pub struct HoldSeats {
    pub what: WhatToHold,
    pub idem: Option<IdemTag>,
}

#[derive(Message)]
#[rtype(result = "Result<(), SectionError>")]
pub struct Release {
    pub hold: u64,
    pub secret: u64,
}

#[derive(Message)]
#[rtype(result = "Result<BookingView, SectionError>")]
pub struct Confirm {
    pub hold: u64,
    pub secret: u64,
    pub email: String,
    pub payment_ref: String,
    pub idem: Option<IdemTag>,
}

#[derive(Message)]
#[rtype(result = "Result<BookingView, SectionError>")]
pub struct Cancel {
    pub booking: u64,
    pub secret: u64,
    pub idem: Option<IdemTag>,
}

#[derive(Message)]
#[rtype(result = "Result<HoldView, SectionError>")]
pub struct GetHold {
    pub hold: u64,
    pub secret: u64,
}

#[derive(Message)]
#[rtype(result = "Result<BookingView, SectionError>")]
pub struct GetBooking {
    pub booking: u64,
    pub secret: u64,
}

#[derive(Message)]
#[rtype(result = "SeatsView")]
pub struct GetSeats;

pub struct SectionActor {
    /// The event, and its and this section's ids (shared by every outbox
    /// key of the section; the actor's own names too).
    mail_source: MailSource,
    /// Where the emails of durable bookings and cancellations go.
    mail: Option<Recipient<Enqueue>>,
    section: Section,
    journal: Journal,
    clock: Arc<dyn Clock>,
    /// Draws the secrets in hold and booking ids.
    rng: StdRng,
    stats: Arc<SectionStats>,
    /// How often idle sections look for expired holds.
    sweep_interval: Duration,
    /// Inbox bound; the registry's in-flight counter keeps below it.
    mailbox_capacity: usize,
}

impl SectionActor {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        def: Arc<EventDef>,
        mail: Option<Recipient<Enqueue>>,
        section: Section,
        journal: Journal,
        clock: Arc<dyn Clock>,
        seed: Option<u64>,
        stats: Arc<SectionStats>,
        sweep_interval: Duration,
        mailbox_capacity: usize,
    ) -> SectionActor {
        let mail_source = MailSource::new(&def, &section);
        let rng = match seed {
            Some(seed) => {
                let salt = format!("{}/{}", def.id, section.layout().id)
                    .bytes()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    });
                StdRng::seed_from_u64(seed ^ salt)
            }
            None => StdRng::from_os_rng(),
        };
        SectionActor {
            mail_source,
            mail,
            section,
            journal,
            clock,
            rng,
            stats,
            sweep_interval,
            mailbox_capacity,
        }
    }

    /// Refuses work the journal cannot take: failed (fail-stop) or full.
    fn ready(&self) -> Result<(), SectionError> {
        if self.journal.is_failed() {
            return Err(SectionError::Unavailable);
        }
        if !self.journal.has_room() {
            return Err(SectionError::Overloaded);
        }
        Ok(())
    }

    /// Applies a decided change and queues its record. Memory moves first;
    /// if the journal then refuses, it has failed and every later request is
    /// refused too (fail-stop), so the unjournaled change is never shown as
    /// done.
    fn commit(
        &mut self,
        change: Change,
        idem: Option<IdemTag>,
        acked: bool,
    ) -> Result<Option<Receipt>, SectionError> {
        let bytes = encode(&Record::Section {
            event: self.mail_source.name.event.to_string(),
            section: self.mail_source.name.section.to_string(),
            change: (&change).into(),
            idem,
        });
        self.section
            .apply(&change)
            .expect("a change this section decided applies to it");
        self.stats.publish(&self.section.counts());
        self.stats.count_change(&change);
        if acked {
            self.journal
                .append(bytes)
                .map(Some)
                .map_err(|_| SectionError::Unavailable)
        } else {
            self.journal
                .append_unacked(bytes)
                .map(|()| None)
                .map_err(|_| SectionError::Unavailable)
        }
    }

    /// Expires every hold whose time has come. Runs on a timer and before
    /// every command, so expiry is exact for any request that looks.
    fn expire_due(&mut self) {
        if self.journal.is_failed() {
            return;
        }
        let now = self.clock.now_ms();
        loop {
            let due = self.section.decide_expiries(now, EXPIRIES_PER_SWEEP_MAX);
            let n = due.len();
            for change in due {
                if self.commit(change, None, false).is_err() {
                    return;
                }
            }
            if n < EXPIRIES_PER_SWEEP_MAX {
                break;
            }
        }
    }

    fn change_reply<T: Send + 'static>(
        result: Result<(Option<Receipt>, T), SectionError>,
    ) -> ResponseFuture<Result<T, SectionError>> {
        Self::change_reply_mailing(result.map(|(r, v)| (r, v, None)))
    }

    /// Like `change_reply`, and once the change is durable (never before:
    /// no email for a booking a crash could still erase) hands its email
    /// to the mailer. Nothing waits for the mailer.
    fn change_reply_mailing<T: Send + 'static>(
        result: Result<(Option<Receipt>, T, Option<MailTo>), SectionError>,
    ) -> ResponseFuture<Result<T, SectionError>> {
        Box::pin(async move {
            let (receipt, value, mail) = result?;
            if let Some(receipt) = receipt {
                match receipt.await {
                    Ok(Ok(_position)) => {}
                    _ => return Err(SectionError::Unavailable),
                }
            }
            if let Some((to, entry)) = mail {
                to.do_send(Enqueue(entry));
            }
            Ok(value)
        })
    }

    /// The outbox entry of a booking's confirmation or cancellation.
    fn mail_for(&self, booking: u64, kind: MailKind) -> Option<MailTo> {
        let to = self.mail.clone()?;
        let b = self.section.booking_shared(booking)?;
        Some((to, self.mail_source.entry(self.section.layout(), b, kind)))
    }

    pub fn section(&self) -> &Section {
        &self.section
    }
}

impl Actor for SectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.mailbox_capacity);
        // Holds that expired while the server was down go first.
        self.expire_due();
        ctx.run_interval(self.sweep_interval, |act, _| act.expire_due());
    }
}

impl Handler<HoldSeats> for SectionActor {
    type Result = ResponseFuture<Result<HoldView, SectionError>>;

    fn handle(&mut self, msg: HoldSeats, _: &mut Context<Self>) -> Self::Result {
        let result = (|| {
            self.ready()?;
            self.expire_due();
            let now = self.clock.now_ms();
            let secret = self.rng.random();
            let change = match &msg.what {
                WhatToHold::Seats(seats) => self.section.decide_hold_seats(seats, now, secret)?,
                WhatToHold::Best(n) => self.section.decide_hold_best(*n, now, secret)?,
            };
            let Change::HoldCreated { hold, .. } = change else {
                unreachable!("holding creates a hold")
            };
            let receipt = self.commit(change, msg.idem, true)?;
            let view = HoldView::new(
                &self.mail_source.name.event,
                &self.mail_source.name.section,
                self.section.hold(hold).expect("just created"),
            );
            Ok((receipt, view))
        })();
        Self::change_reply(result)
    }
}

impl Handler<Release> for SectionActor {
    type Result = ResponseFuture<Result<(), SectionError>>;

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) -> Self::Result {
        let result = (|| {
            self.ready()?;
            self.expire_due();
            let change = self
                .section
                .decide_release(msg.hold, msg.secret, self.clock.now_ms())?;
            Ok((self.commit(change, None, true)?, ()))
        })();
        Self::change_reply(result)
    }
}

impl Handler<Confirm> for SectionActor {
    type Result = ResponseFuture<Result<BookingView, SectionError>>;

    fn handle(&mut self, msg: Confirm, _: &mut Context<Self>) -> Self::Result {
        let result = (|| {
            self.ready()?;
            self.expire_due();
            let secret = self.rng.random();
            let change = self.section.decide_confirm(
                msg.hold,
                msg.secret,
                msg.email,
                msg.payment_ref,
                self.clock.now_ms(),
                secret,
            )?;
            let Change::HoldConfirmed { booking, .. } = change else {
                unreachable!("confirming creates a booking")
            };
            let receipt = self.commit(change, msg.idem, true)?;
            let view = BookingView::new(
                &self.mail_source.name.event,
                &self.mail_source.name.section,
                self.section.booking(booking).expect("just created"),
            );
            Ok((
                receipt,
                view,
                self.mail_for(booking, MailKind::Confirmation),
            ))
        })();
        Self::change_reply_mailing(result)
    }
}

impl Handler<Cancel> for SectionActor {
    type Result = ResponseFuture<Result<BookingView, SectionError>>;

    fn handle(&mut self, msg: Cancel, _: &mut Context<Self>) -> Self::Result {
        let result = (|| {
            self.ready()?;
            self.expire_due();
            let change =
                self.section
                    .decide_cancel(msg.booking, msg.secret, self.clock.now_ms())?;
            let receipt = self.commit(change, msg.idem, true)?;
            let view = BookingView::new(
                &self.mail_source.name.event,
                &self.mail_source.name.section,
                self.section.booking(msg.booking).expect("exists"),
            );
            Ok((
                receipt,
                view,
                self.mail_for(msg.booking, MailKind::Cancellation),
            ))
        })();
        Self::change_reply_mailing(result)
    }
}

impl Handler<GetHold> for SectionActor {
    type Result = Result<HoldView, SectionError>;

    fn handle(&mut self, msg: GetHold, _: &mut Context<Self>) -> Self::Result {
        self.expire_due();
        let h = self.section.find_hold(msg.hold, msg.secret)?;
        Ok(HoldView::new(
            &self.mail_source.name.event,
            &self.mail_source.name.section,
            h,
        ))
    }
}

impl Handler<GetBooking> for SectionActor {
    type Result = Result<BookingView, SectionError>;

    fn handle(&mut self, msg: GetBooking, _: &mut Context<Self>) -> Self::Result {
        let b = self.section.find_booking(msg.booking, msg.secret)?;
        Ok(BookingView::new(
            &self.mail_source.name.event,
            &self.mail_source.name.section,
            b,
        ))
    }
}

impl Handler<GetSeats> for SectionActor {
    type Result = MessageResult<GetSeats>;

    fn handle(&mut self, _: GetSeats, _: &mut Context<Self>) -> Self::Result {
        self.expire_due();
        MessageResult(SeatsView {
            states: self.section.seat_states(),
            counts: self.section.counts(),
        })
    }
}

/// Where a section's emails come from: its event, and the event and
/// section ids every outbox key of the section shares.
#[derive(Debug, Clone)]
pub struct MailSource {
    pub def: Arc<EventDef>,
    pub name: Arc<SectionName>,
}

impl MailSource {
    pub fn new(def: &Arc<EventDef>, section: &Section) -> MailSource {
        MailSource {
            def: Arc::clone(def),
            name: Arc::new(SectionName {
                event: def.id.as_str().into(),
                section: section.layout().id.as_str().into(),
            }),
        }
    }

    /// The outbox entry for `b`'s email of `kind`: used live (once the
    /// change is durable) and on replay, so both queue the same email.
    pub fn entry(
        &self,
        layout: &Arc<SectionLayout>,
        b: &Arc<Booking>,
        kind: MailKind,
    ) -> MailEntry {
        MailEntry {
            key: MailKey {
                name: Arc::clone(&self.name),
                booking: b.seq,
                kind,
            },
            booking: Arc::clone(b),
            def: Arc::clone(&self.def),
            layout: Arc::clone(layout),
        }
    }
}
