//! The snapshot's serialized types (`boxoffice.snapshot/4`): a
//! compatibility boundary, kept apart from the domain and converted by
//! hand. Any change of shape is a new `FORMAT` (postcard is not
//! self-describing); the older formats' types stay, frozen, in
//! `wire_v1.rs` and `wire_v2.rs`, and are converted to these on reading.
//! A `/3` body is a `/4` body without its last field, `rooms` (postcard
//! writes a struct as its fields one after another), so every type a
//! `/3` body holds is frozen here too: changing one is a `/5`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::TIME_MS_MAX;
use crate::domain::{
    AdmissionPart, Booking, BookingStatus, BookingTexts, Claim, FanKey, Hold, HoldEnd, Lang,
    RoomParts, RoomSettings, SectionKind, SectionLayout, SectionParts, EMAIL_LEN_MAX,
    FAN_ID_LEN_MAX, PAYMENT_REF_LEN_MAX,
};
use crate::outbox::MailKind;

/// Highest hold or booking number a snapshot may carry: far past any
/// sale (2^48), far from overflowing.
pub const SEQ_MAX: u64 = 1 << 48;

/// The JSON header: what the file is, at which journal position, and
/// counts to check the body against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// `boxoffice.snapshot/4` (or an older format this build still reads).
    pub format: String,
    pub created_at: String,
    pub created_at_ms: u64,
    /// The journal batch the snapshot reaches up to (exclusive): replay
    /// resumes there.
    pub journal_position: u64,
    pub events: Vec<HeaderEvent>,
    pub idempotency_answers: u64,
    pub outbox_entries: u64,
    /// The data directory's lineage (`<id> <since_ms>`, see
    /// `data_dir::Lineage`): a restore goes on with it, so the tickets
    /// mailed before still admit. Absent in files from before lineages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderEvent {
    pub id: String,
    pub sections: u64,
    pub capacity: u64,
    pub held: u64,
    pub sold: u64,
    pub holds: u64,
    pub bookings: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub events: Vec<EventSnap>,
    pub idempotency: Vec<AnswerSnap>,
    pub outbox: Vec<MailSnap>,
    /// Waiting rooms switched on (`/4`).
    pub rooms: Vec<RoomSnap>,
}

/// A `/3` body: a `/4` one before its rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyV3 {
    pub events: Vec<EventSnap>,
    pub idempotency: Vec<AnswerSnap>,
    pub outbox: Vec<MailSnap>,
}

impl From<BodyV3> for Body {
    fn from(b: BodyV3) -> Body {
        Body {
            events: b.events,
            idempotency: b.idempotency,
            outbox: b.outbox,
            rooms: Vec::new(),
        }
    }
}

/// One event's waiting room: its fans in queue order (before the
/// shuffle: the pre-queue in arrival order) and what became of each
/// admitted number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSnap {
    pub event: String,
    pub queue_opens_at_ms: u64,
    pub opens_at_ms: u64,
    pub rate_per_sec: u32,
    pub active_max: Option<u32>,
    pub admission_ttl_ms: u64,
    pub paused: bool,
    /// Each fan's key (`domain::FanKey`: 128 bits of the SHA-256 of its
    /// id), in queue order.
    pub queue: Vec<[u8; 16]>,
    /// When each of them joined, in seconds since the epoch.
    pub joined_s: Vec<u32>,
    pub shuffled: Option<u64>,
    pub next_at_us: u64,
    pub admissions: Vec<AdmissionSnap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdmissionSnap {
    Valid { expires_at_ms: u64 },
    Expired,
    Done,
}

impl RoomSnap {
    pub fn from_parts(event: &str, p: RoomParts) -> RoomSnap {
        let s = p.settings;
        RoomSnap {
            event: event.to_owned(),
            queue_opens_at_ms: s.queue_opens_at_ms,
            opens_at_ms: s.opens_at_ms,
            rate_per_sec: s.rate_per_sec,
            active_max: s.active_max,
            admission_ttl_ms: s.admission_ttl_ms,
            paused: s.paused,
            queue: p.queue.into_iter().map(|k| k.0).collect(),
            joined_s: p.joined_s,
            shuffled: p.shuffled,
            next_at_us: p.next_at_us,
            admissions: p
                .admissions
                .into_iter()
                .map(|a| match a {
                    AdmissionPart::Valid { expires_at_ms } => {
                        AdmissionSnap::Valid { expires_at_ms }
                    }
                    AdmissionPart::Expired => AdmissionSnap::Expired,
                    AdmissionPart::Done => AdmissionSnap::Done,
                })
                .collect(),
        }
    }

    /// The room's parts, refusing times past what the server writes and
    /// fans no token could name (the room checks the rest).
    pub fn to_parts(&self) -> Result<RoomParts, String> {
        let times = [
            self.queue_opens_at_ms,
            self.opens_at_ms,
            self.admission_ttl_ms,
        ];
        let expiries = self.admissions.iter().filter_map(|a| match a {
            AdmissionSnap::Valid { expires_at_ms } => Some(*expires_at_ms),
            _ => None,
        });
        if times.into_iter().chain(expiries).any(|t| t > TIME_MS_MAX)
            || self.next_at_us / 1000 > TIME_MS_MAX
        {
            return Err("a time past the year 9999".into());
        }
        Ok(RoomParts {
            settings: RoomSettings {
                queue_opens_at_ms: self.queue_opens_at_ms,
                opens_at_ms: self.opens_at_ms,
                rate_per_sec: self.rate_per_sec,
                active_max: self.active_max,
                admission_ttl_ms: self.admission_ttl_ms,
                paused: self.paused,
            },
            queue: self.queue.iter().copied().map(FanKey).collect(),
            joined_s: self.joined_s.clone(),
            shuffled: self.shuffled,
            next_at_us: self.next_at_us,
            admissions: self
                .admissions
                .iter()
                .map(|a| match *a {
                    AdmissionSnap::Valid { expires_at_ms } => {
                        AdmissionPart::Valid { expires_at_ms }
                    }
                    AdmissionSnap::Expired => AdmissionPart::Expired,
                    AdmissionSnap::Done => AdmissionPart::Done,
                })
                .collect(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventSnap {
    /// The `boxoffice.event/1` document the event was created from.
    pub spec_json: String,
    pub created_at_ms: u64,
    /// In layout order.
    pub sections: Vec<SectionSnap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionSnap {
    pub id: String,
    pub next_hold: u64,
    pub next_booking: u64,
    pub holds: Vec<HoldSnap>,
    pub bookings: Vec<BookingSnap>,
    pub ended: Vec<EndedSnap>,
    /// Tickets checked in, by booking and place.
    pub check_ins: Vec<CheckInSnap>,
}

/// A language of emails: a variant index on disk (one byte, nothing to
/// allocate); variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LangSnap {
    En,
    Ko,
}

impl From<Lang> for LangSnap {
    fn from(l: Lang) -> LangSnap {
        match l {
            Lang::En => LangSnap::En,
            Lang::Ko => LangSnap::Ko,
        }
    }
}

impl From<LangSnap> for Lang {
    fn from(l: LangSnap) -> Lang {
        match l {
            LangSnap::En => Lang::En,
            LangSnap::Ko => Lang::Ko,
        }
    }
}

/// The first check-in of one ticket: place `place` (from 1) of booking
/// `booking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInSnap {
    pub booking: u64,
    pub place: u32,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldSnap {
    pub seq: u64,
    pub secret: u64,
    /// The fan it belongs to (`sub` of its token); shared with the hold,
    /// so capturing copies no fan.
    pub fan: Arc<str>,
    pub claim: ClaimSnap,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingSnap {
    pub seq: u64,
    pub secret: u64,
    pub hold_seq: u64,
    pub fan: Arc<str>,
    pub claim: ClaimSnap,
    pub email: String,
    /// The language of its emails.
    pub lang: LangSnap,
    pub payment_ref: String,
    pub confirmed_at_ms: u64,
    pub cancelled_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndSnap {
    Released,
    Expired,
    Confirmed { booking: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSnap {
    pub seq: u64,
    /// The hold's secret xor its fan's `domain::fan_tag`: the end of a hold
    /// answers only the fan who held it. Sections keep and compare its
    /// low 32 bits (`domain::ended_check`), and write only those since
    /// 2026-12-07; older files' full 64 bits read the same.
    pub secret: u64,
    pub end: EndSnap,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSnap {
    pub key: String,
    pub fingerprint: [u8; 32],
    pub status: u16,
    pub body: Vec<u8>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailSnap {
    pub event: String,
    pub section: String,
    pub booking: u64,
    pub kind: MailKindSnap,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
    pub dead: bool,
}

/// What a hold or booking claims. Encoded as the journal's claim record
/// is (postcard: variant index, then contents), but its own type: the two
/// formats change on their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimSnap {
    Seats(Vec<u32>),
    Quantity(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailKindSnap {
    Confirmation,
    Cancellation,
}

impl From<MailKind> for MailKindSnap {
    fn from(k: MailKind) -> MailKindSnap {
        match k {
            MailKind::Confirmation => MailKindSnap::Confirmation,
            MailKind::Cancellation => MailKindSnap::Cancellation,
        }
    }
}

impl From<MailKindSnap> for MailKind {
    fn from(k: MailKindSnap) -> MailKind {
        match k {
            MailKindSnap::Confirmation => MailKind::Confirmation,
            MailKindSnap::Cancellation => MailKind::Cancellation,
        }
    }
}

fn claim_snap(c: &Claim) -> ClaimSnap {
    match c {
        Claim::Seats(s) => ClaimSnap::Seats(s.to_vec()),
        Claim::Quantity(n) => ClaimSnap::Quantity(*n),
    }
}

fn claim(c: ClaimSnap) -> Claim {
    match c {
        ClaimSnap::Seats(s) => Claim::Seats(s.into()),
        ClaimSnap::Quantity(n) => Claim::Quantity(n),
    }
}

impl SectionSnap {
    pub fn from_parts(id: &str, p: &SectionParts) -> SectionSnap {
        SectionSnap {
            id: id.to_owned(),
            next_hold: p.next_hold,
            next_booking: p.next_booking,
            holds: p
                .holds
                .iter()
                .map(|h| HoldSnap {
                    seq: h.seq,
                    secret: h.secret,
                    fan: Arc::clone(&h.fan),
                    claim: claim_snap(&h.claim),
                    created_at_ms: h.created_at_ms,
                    expires_at_ms: h.expires_at_ms,
                })
                .collect(),
            bookings: p
                .bookings
                .iter()
                .map(|b| BookingSnap {
                    seq: b.seq,
                    secret: b.secret,
                    hold_seq: b.hold_seq,
                    fan: Arc::clone(&b.fan),
                    claim: claim_snap(&b.claim),
                    email: b.email().to_owned(),
                    lang: b.lang().into(),
                    payment_ref: b.payment_ref().to_owned(),
                    confirmed_at_ms: b.confirmed_at_ms,
                    cancelled_at_ms: b.status.cancelled_at(),
                })
                .collect(),
            ended: p
                .ended
                .iter()
                .map(|&(seq, secret, end)| EndedSnap {
                    seq,
                    secret,
                    end: match end {
                        HoldEnd::Released => EndSnap::Released,
                        HoldEnd::Expired => EndSnap::Expired,
                        HoldEnd::Confirmed { booking } => EndSnap::Confirmed { booking },
                    },
                })
                .collect(),
            check_ins: p
                .check_ins
                .iter()
                .map(|&(booking, place, at_ms)| CheckInSnap {
                    booking,
                    place,
                    at_ms,
                })
                .collect(),
        }
    }

    fn check_ranges(&self) -> Result<(), String> {
        let time = |what: String, ms: u64| {
            if ms > TIME_MS_MAX {
                Err(format!("{what} is past the year 9999 ({ms} ms)"))
            } else {
                Ok(())
            }
        };
        // Empty is the anonymous fan of holds made before fans signed in
        // (a `/1` snapshot's).
        let fan = |what: String, fan: &str| {
            if fan.len() > FAN_ID_LEN_MAX {
                Err(format!("{what}: a fan id of {} bytes", fan.len()))
            } else {
                Ok(())
            }
        };
        if self.next_hold > SEQ_MAX || self.next_booking > SEQ_MAX {
            return Err(format!(
                "hold or booking numbers past {SEQ_MAX} ({}, {})",
                self.next_hold, self.next_booking
            ));
        }
        for h in &self.holds {
            time(format!("hold {}: created_at", h.seq), h.created_at_ms)?;
            time(format!("hold {}: expires_at", h.seq), h.expires_at_ms)?;
            if h.expires_at_ms < h.created_at_ms {
                return Err(format!("hold {} expires before it was made", h.seq));
            }
            fan(format!("hold {}", h.seq), &h.fan)?;
        }
        for b in &self.bookings {
            time(
                format!("booking {}: confirmed_at", b.seq),
                b.confirmed_at_ms,
            )?;
            if let Some(at) = b.cancelled_at_ms {
                time(format!("booking {}: cancelled_at", b.seq), at)?;
            }
            if b.hold_seq >= self.next_hold {
                return Err(format!(
                    "booking {} confirms hold {}, never made (the next is {})",
                    b.seq, b.hold_seq, self.next_hold
                ));
            }
            fan(format!("booking {}", b.seq), &b.fan)?;
            if b.email.len() > EMAIL_LEN_MAX || !crate::outbox::can_send_to(&b.email) {
                return Err(format!("booking {}: not an email address", b.seq));
            }
            if b.payment_ref.len() > PAYMENT_REF_LEN_MAX {
                return Err(format!("booking {}: a payment reference too long", b.seq));
            }
        }
        for e in &self.ended {
            if let EndSnap::Confirmed { booking } = e.end {
                if booking >= self.next_booking {
                    return Err(format!(
                        "hold {} ended in booking {booking}, never made",
                        e.seq
                    ));
                }
            }
        }
        for c in &self.check_ins {
            time(
                format!("check-in of booking {} place {}", c.booking, c.place),
                c.at_ms,
            )?;
        }
        Ok(())
    }

    /// Back to domain parts. Checked here: every number and string within
    /// what the server itself could have written (times RFC 3339 can
    /// write, hold numbers that cannot overflow, ids and texts within the
    /// lengths the API takes) and claims that fit the layout's kind; the
    /// section checks the rest (sequences, seats with one owner each).
    /// Moves the holds' and bookings' texts and seats out (what the
    /// sections keep is what was decoded, not a copy of it: a copy would
    /// leave the decoded half free between kept ones, memory that stays
    /// resident); `self` keeps its numbers, with no holds, bookings, ended
    /// holds or check-ins.
    pub fn take_parts(&mut self, layout: &SectionLayout) -> Result<SectionParts, String> {
        self.check_ranges()?;
        let seated = matches!(layout.kind, SectionKind::Seated(_));
        let check = |c: ClaimSnap| match (c, seated) {
            (c @ ClaimSnap::Seats(_), true) | (c @ ClaimSnap::Quantity(_), false) => Ok(claim(c)),
            _ => Err("a claim does not match the section's kind".to_owned()),
        };
        Ok(SectionParts {
            next_hold: self.next_hold,
            next_booking: self.next_booking,
            holds: std::mem::take(&mut self.holds)
                .into_iter()
                .map(|h| {
                    Ok(Hold {
                        seq: h.seq,
                        secret: h.secret,
                        fan: h.fan,
                        claim: check(h.claim)?,
                        created_at_ms: h.created_at_ms,
                        expires_at_ms: h.expires_at_ms,
                    })
                })
                .collect::<Result<_, String>>()?,
            bookings: std::mem::take(&mut self.bookings)
                .into_iter()
                .map(|b| {
                    Ok(Booking {
                        seq: b.seq,
                        secret: b.secret,
                        hold_seq: b.hold_seq,
                        fan: b.fan,
                        claim: check(b.claim)?,
                        texts: BookingTexts::new(&b.email, b.lang.into(), &b.payment_ref),
                        confirmed_at_ms: b.confirmed_at_ms,
                        status: b
                            .cancelled_at_ms
                            .map_or(BookingStatus::CONFIRMED, BookingStatus::cancelled),
                    })
                })
                .collect::<Result<_, String>>()?,
            ended: std::mem::take(&mut self.ended)
                .into_iter()
                .map(|e| {
                    (
                        e.seq,
                        e.secret,
                        match e.end {
                            EndSnap::Released => HoldEnd::Released,
                            EndSnap::Expired => HoldEnd::Expired,
                            EndSnap::Confirmed { booking } => HoldEnd::Confirmed { booking },
                        },
                    )
                })
                .collect(),
            check_ins: std::mem::take(&mut self.check_ins)
                .into_iter()
                .map(|c| (c.booking, c.place, c.at_ms))
                .collect(),
        })
    }
}
