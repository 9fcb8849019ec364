//! Journal records: the on-disk wire format, and its framing.
//!
//! A compatibility boundary, kept apart from the domain types and converted
//! by hand. Records are postcard-encoded; postcard writes an enum variant as
//! its index, so variants are only ever appended, never reordered or
//! removed. A change of shape that cannot be expressed that way bumps
//! `RECORD_VERSION`, and the reader keeps decoding the old versions.
//!
//! Frame: `len: u32 LE | crc32: u32 LE | payload[len]`, where the payload is
//! `version: u8 | postcard(Record)` and the CRC covers the payload. Frames
//! are checked right after they are built (in debug builds) and every time
//! they are read.

use serde::{Deserialize, Serialize};

use crate::domain::{Change, Claim, Lang, RoomChange, RoomSettings};

pub const RECORD_VERSION: u8 = 1;
const FRAME_HEADER_LEN: usize = 8;
/// Largest payload a frame may carry. An event file is the largest record.
pub const RECORD_LEN_MAX: usize = 64 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemTag {
    pub key: String,
    /// SHA-256 of the request (method, path, body): the same key with
    /// another request is refused.
    pub fingerprint: [u8; 32],
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// An event was created from a `boxoffice.event/1` document.
    EventCreated {
        spec_json: String,
        at_ms: u64,
        idem: Option<IdemTag>,
    },
    /// One change to one section.
    Section {
        event: String,
        section: String,
        change: ChangeRecord,
        idem: Option<IdemTag>,
    },
    /// What happened to one outbox email (the entry itself is born from
    /// the `HoldConfirmed` or `BookingCancelled` change of its booking).
    Mail {
        event: String,
        section: String,
        booking: u64,
        kind: MailKindRecord,
        outcome: MailOutcomeRecord,
    },
    /// An operator moved an event's sale phases: `phases_json` is the
    /// new `sale_phases` list of its `boxoffice.event/1` document.
    SalePhasesMoved {
        event: String,
        phases_json: String,
        at_ms: u64,
    },
    /// An operator switched an event's waiting room on or changed how it
    /// runs (`Some`), or switched it off (`None`: its queue is dropped).
    WaitingRoomSet {
        event: String,
        settings: Option<RoomSettingsRecord>,
        at_ms: u64,
    },
    /// One change to an event's waiting room.
    WaitingRoom {
        event: String,
        change: RoomChangeRecord,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettingsRecord {
    pub queue_opens_at_ms: u64,
    pub opens_at_ms: u64,
    pub rate_per_sec: u32,
    pub active_max: Option<u32>,
    pub admission_ttl_ms: u64,
    pub paused: bool,
}

/// A waiting room's change (its settings travel as `WaitingRoomSet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomChangeRecord {
    Joined {
        /// Shared with the room: encoding copies no fan.
        fan: std::sync::Arc<str>,
        at_ms: u64,
    },
    Shuffled {
        seed: u64,
        at_ms: u64,
    },
    Admitted {
        through: u64,
        at_ms: u64,
        next_at_us: u64,
    },
    Expired {
        number: u64,
    },
    Done {
        number: u64,
    },
}

impl From<RoomSettings> for RoomSettingsRecord {
    fn from(s: RoomSettings) -> RoomSettingsRecord {
        RoomSettingsRecord {
            queue_opens_at_ms: s.queue_opens_at_ms,
            opens_at_ms: s.opens_at_ms,
            rate_per_sec: s.rate_per_sec,
            active_max: s.active_max,
            admission_ttl_ms: s.admission_ttl_ms,
            paused: s.paused,
        }
    }
}

impl From<RoomSettingsRecord> for RoomSettings {
    fn from(s: RoomSettingsRecord) -> RoomSettings {
        RoomSettings {
            queue_opens_at_ms: s.queue_opens_at_ms,
            opens_at_ms: s.opens_at_ms,
            rate_per_sec: s.rate_per_sec,
            active_max: s.active_max,
            admission_ttl_ms: s.admission_ttl_ms,
            paused: s.paused,
        }
    }
}

/// The record of a room's change to event `event`'s room.
pub fn room_record(event: &str, change: &RoomChange, at_ms: u64) -> Record {
    let event = event.to_owned();
    let change = match change {
        RoomChange::Settings(s) => {
            return Record::WaitingRoomSet {
                event,
                settings: Some((*s).into()),
                at_ms,
            }
        }
        RoomChange::Joined { fan, at_ms } => RoomChangeRecord::Joined {
            fan: std::sync::Arc::clone(fan),
            at_ms: *at_ms,
        },
        RoomChange::Shuffled { seed, at_ms } => RoomChangeRecord::Shuffled {
            seed: *seed,
            at_ms: *at_ms,
        },
        RoomChange::Admitted {
            through,
            at_ms,
            next_at_us,
        } => RoomChangeRecord::Admitted {
            through: *through,
            at_ms: *at_ms,
            next_at_us: *next_at_us,
        },
        RoomChange::Expired { number } => RoomChangeRecord::Expired { number: *number },
        RoomChange::Done { number } => RoomChangeRecord::Done { number: *number },
    };
    Record::WaitingRoom { event, change }
}

impl From<RoomChangeRecord> for RoomChange {
    fn from(c: RoomChangeRecord) -> RoomChange {
        match c {
            RoomChangeRecord::Joined { fan, at_ms } => RoomChange::Joined { fan, at_ms },
            RoomChangeRecord::Shuffled { seed, at_ms } => RoomChange::Shuffled { seed, at_ms },
            RoomChangeRecord::Admitted {
                through,
                at_ms,
                next_at_us,
            } => RoomChange::Admitted {
                through,
                at_ms,
                next_at_us,
            },
            RoomChangeRecord::Expired { number } => RoomChange::Expired { number },
            RoomChangeRecord::Done { number } => RoomChange::Done { number },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailKindRecord {
    Confirmation,
    Cancellation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MailOutcomeRecord {
    Sent {
        at_ms: u64,
    },
    Failed {
        attempts: u32,
        error: String,
        next_at_ms: u64,
    },
    Dead {
        attempts: u32,
        error: String,
    },
    Requeued {
        at_ms: u64,
    },
}

/// A language of emails; variants only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LangRecord {
    En,
    Ko,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClaimRecord {
    Seats(Vec<u32>),
    Quantity(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeRecord {
    HoldCreated {
        hold: u64,
        secret: u64,
        claim: ClaimRecord,
        created_at_ms: u64,
        expires_at_ms: u64,
    },
    HoldReleased {
        hold: u64,
        at_ms: u64,
    },
    HoldExpired {
        hold: u64,
        at_ms: u64,
    },
    HoldConfirmed {
        hold: u64,
        booking: u64,
        secret: u64,
        email: String,
        payment_ref: String,
        at_ms: u64,
    },
    BookingCancelled {
        booking: u64,
        at_ms: u64,
    },
    /// A hold with the fan it belongs to (`HoldCreated`, from before fans
    /// were known, is read as a hold of the anonymous fan `""`).
    HoldCreatedBy {
        hold: u64,
        secret: u64,
        /// Shared with the hold: encoding a record copies no fan.
        fan: std::sync::Arc<str>,
        claim: ClaimRecord,
        created_at_ms: u64,
        expires_at_ms: u64,
    },
    /// The ticket of place `place` (from 1) of a booking checked in.
    TicketCheckedIn {
        booking: u64,
        place: u32,
        at_ms: u64,
    },
    /// A confirmation with the language of its booking's emails
    /// (`HoldConfirmed`, from before emails had languages, reads as
    /// English).
    HoldConfirmedIn {
        hold: u64,
        booking: u64,
        secret: u64,
        email: String,
        lang: LangRecord,
        payment_ref: String,
        at_ms: u64,
    },
}

impl From<ClaimRecord> for Claim {
    fn from(c: ClaimRecord) -> Claim {
        match c {
            ClaimRecord::Seats(s) => Claim::Seats(s.into()),
            ClaimRecord::Quantity(n) => Claim::Quantity(n),
        }
    }
}

impl From<&Change> for ChangeRecord {
    fn from(c: &Change) -> ChangeRecord {
        match c {
            Change::HoldCreated {
                hold,
                secret,
                fan,
                claim,
                created_at_ms,
                expires_at_ms,
            } => ChangeRecord::HoldCreatedBy {
                hold: *hold,
                secret: *secret,
                fan: std::sync::Arc::clone(fan),
                claim: match claim {
                    Claim::Seats(s) => ClaimRecord::Seats(s.to_vec()),
                    Claim::Quantity(n) => ClaimRecord::Quantity(*n),
                },
                created_at_ms: *created_at_ms,
                expires_at_ms: *expires_at_ms,
            },
            Change::HoldReleased { hold, at_ms } => ChangeRecord::HoldReleased {
                hold: *hold,
                at_ms: *at_ms,
            },
            Change::HoldExpired { hold, at_ms } => ChangeRecord::HoldExpired {
                hold: *hold,
                at_ms: *at_ms,
            },
            Change::HoldConfirmed {
                hold,
                booking,
                secret,
                email,
                lang,
                payment_ref,
                at_ms,
            } => ChangeRecord::HoldConfirmedIn {
                hold: *hold,
                booking: *booking,
                secret: *secret,
                email: email.clone(),
                lang: match lang {
                    Lang::En => LangRecord::En,
                    Lang::Ko => LangRecord::Ko,
                },
                payment_ref: payment_ref.clone(),
                at_ms: *at_ms,
            },
            Change::BookingCancelled { booking, at_ms } => ChangeRecord::BookingCancelled {
                booking: *booking,
                at_ms: *at_ms,
            },
            Change::TicketCheckedIn {
                booking,
                place,
                at_ms,
            } => ChangeRecord::TicketCheckedIn {
                booking: *booking,
                place: *place,
                at_ms: *at_ms,
            },
        }
    }
}

impl From<ChangeRecord> for Change {
    fn from(c: ChangeRecord) -> Change {
        match c {
            ChangeRecord::HoldCreated {
                hold,
                secret,
                claim,
                created_at_ms,
                expires_at_ms,
            } => Change::HoldCreated {
                hold,
                secret,
                fan: "".into(),
                claim: claim.into(),
                created_at_ms,
                expires_at_ms,
            },
            ChangeRecord::HoldCreatedBy {
                hold,
                secret,
                fan,
                claim,
                created_at_ms,
                expires_at_ms,
            } => Change::HoldCreated {
                hold,
                secret,
                fan,
                claim: claim.into(),
                created_at_ms,
                expires_at_ms,
            },
            ChangeRecord::HoldReleased { hold, at_ms } => Change::HoldReleased { hold, at_ms },
            ChangeRecord::HoldExpired { hold, at_ms } => Change::HoldExpired { hold, at_ms },
            ChangeRecord::HoldConfirmed {
                hold,
                booking,
                secret,
                email,
                payment_ref,
                at_ms,
            } => Change::HoldConfirmed {
                hold,
                booking,
                secret,
                email,
                lang: Lang::En,
                payment_ref,
                at_ms,
            },
            ChangeRecord::HoldConfirmedIn {
                hold,
                booking,
                secret,
                email,
                lang,
                payment_ref,
                at_ms,
            } => Change::HoldConfirmed {
                hold,
                booking,
                secret,
                email,
                lang: match lang {
                    LangRecord::En => Lang::En,
                    LangRecord::Ko => Lang::Ko,
                },
                payment_ref,
                at_ms,
            },
            ChangeRecord::BookingCancelled { booking, at_ms } => {
                Change::BookingCancelled { booking, at_ms }
            }
            ChangeRecord::TicketCheckedIn {
                booking,
                place,
                at_ms,
            } => Change::TicketCheckedIn {
                booking,
                place,
                at_ms,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame truncated at byte {0}")]
    Truncated(usize),
    #[error("frame at byte {0} has a bad checksum")]
    Checksum(usize),
    #[error("frame at byte {offset} has unknown record version {version}")]
    Version { offset: usize, version: u8 },
    #[error("frame at byte {offset} does not decode: {message}")]
    Payload { offset: usize, message: String },
}

/// Appends one framed record to `out`.
pub fn encode_into(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_LEN]);
    out.push(RECORD_VERSION);
    let out_vec = std::mem::take(out);
    let mut out_vec = postcard::to_extend(record, out_vec).expect("records always encode");
    let len = out_vec.len() - start - FRAME_HEADER_LEN;
    assert!(
        len <= RECORD_LEN_MAX,
        "record of {len} bytes is over the limit"
    );
    let crc = crc32fast::hash(&out_vec[start + FRAME_HEADER_LEN..]);
    out_vec[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out_vec[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    *out = out_vec;
    #[cfg(debug_assertions)]
    {
        let (back, used) = decode_one(&out[start..], 0).expect("a fresh frame decodes");
        assert_eq!(used, out.len() - start);
        assert_eq!(&back, record);
    }
}

pub fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(record, &mut out);
    out
}

/// Decodes the frame at the start of `bytes`; `offset` is only for errors.
/// Returns the record and how many bytes it took.
pub fn decode_one(bytes: &[u8], offset: usize) -> Result<(Record, usize), DecodeError> {
    if bytes.len() < FRAME_HEADER_LEN {
        return Err(DecodeError::Truncated(offset));
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len == 0 || len > RECORD_LEN_MAX || bytes.len() - FRAME_HEADER_LEN < len {
        return Err(DecodeError::Truncated(offset));
    }
    let payload = &bytes[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
    if crc32fast::hash(payload) != crc {
        return Err(DecodeError::Checksum(offset));
    }
    if payload[0] != RECORD_VERSION {
        return Err(DecodeError::Version {
            offset,
            version: payload[0],
        });
    }
    let (record, rest) =
        postcard::take_from_bytes::<Record>(&payload[1..]).map_err(|e| DecodeError::Payload {
            offset,
            message: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::Payload {
            offset,
            message: format!("{} bytes after the record", rest.len()),
        });
    }
    Ok((record, FRAME_HEADER_LEN + len))
}

/// Decodes every frame of a batch.
pub fn decode_all(mut bytes: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while !bytes.is_empty() {
        let (r, used) = decode_one(bytes, offset)?;
        out.push(r);
        bytes = &bytes[used..];
        offset += used;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record::EventCreated {
                spec_json: "{}".into(),
                at_ms: 7,
                idem: None,
            },
            Record::Section {
                event: "demo".into(),
                section: "A".into(),
                change: ChangeRecord::HoldCreated {
                    hold: 3,
                    secret: u64::MAX,
                    claim: ClaimRecord::Seats(vec![1, 2]),
                    created_at_ms: 1,
                    expires_at_ms: 2,
                },
                idem: Some(IdemTag {
                    key: "k".into(),
                    fingerprint: [9; 32],
                    at_ms: 1,
                }),
            },
        ]
    }

    #[test]
    fn mail_records_round_trip() {
        let r = Record::Mail {
            event: "demo".into(),
            section: "A".into(),
            booking: 9,
            kind: MailKindRecord::Cancellation,
            outcome: MailOutcomeRecord::Failed {
                attempts: 3,
                error: "451 try later".into(),
                next_at_ms: 77,
            },
        };
        assert_eq!(decode_all(&encode(&r)).unwrap(), vec![r]);
    }

    /// Postcard writes a variant as its index: old journals decode only
    /// while every variant keeps its place.
    #[test]
    fn variants_keep_their_places() {
        let moved = Record::SalePhasesMoved {
            event: "demo".into(),
            phases_json: "[]".into(),
            at_ms: 5,
        };
        let bytes = encode(&moved);
        assert_eq!(
            bytes[FRAME_HEADER_LEN + 1],
            3,
            "SalePhasesMoved is variant 3"
        );
        assert_eq!(encode(&sample()[1])[FRAME_HEADER_LEN + 1], 1);
        assert_eq!(decode_all(&bytes).unwrap(), vec![moved]);
        let check_in = Record::Section {
            event: "e".into(),
            section: "s".into(),
            change: ChangeRecord::TicketCheckedIn {
                booking: 1,
                place: 2,
                at_ms: 3,
            },
            idem: None,
        };
        let bytes = encode(&check_in);
        // Section is variant 1; its strings "e" and "s" are a length byte
        // and a byte each; then the change's variant, the seventh.
        assert_eq!(
            bytes[FRAME_HEADER_LEN + 1..FRAME_HEADER_LEN + 7],
            [1, 1, b'e', 1, b's', 6]
        );
        assert_eq!(decode_all(&bytes).unwrap(), vec![check_in]);
    }

    #[test]
    fn round_trip() {
        let mut bytes = Vec::new();
        for r in sample() {
            encode_into(&r, &mut bytes);
        }
        assert_eq!(decode_all(&bytes).unwrap(), sample());
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = encode(&sample()[1]);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode_all(&b).is_err(), "flip at {i} went unnoticed");
        }
    }

    #[test]
    fn truncation_is_caught() {
        let bytes = encode(&sample()[1]);
        for n in 1..bytes.len() {
            assert_eq!(decode_all(&bytes[..n]), Err(DecodeError::Truncated(0)));
        }
    }

    #[test]
    fn unknown_version_is_named() {
        let mut bytes = encode(&sample()[0]);
        bytes[8] = 2;
        let crc = crc32fast::hash(&bytes[8..]);
        bytes[4..8].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_all(&bytes),
            Err(DecodeError::Version {
                offset: 0,
                version: 2
            })
        );
    }
}
