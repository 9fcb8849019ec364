//! Snapshots: one file holding every section's full state (seats, holds,
//! bookings, remembered idempotent answers, the email outbox) at a known
//! journal position. A logical dump, never a copy of sled's files.
//!
//! File layout (all integers little-endian), documented for operators in
//! `snapshots/README.md`:
//!
//! ```text
//! magic "BXSNAP01" | header_len: u32 | header: JSON | body_len: u64 |
//! body: postcard(Body) | sha256(header || body): 32 bytes
//! ```
//!
//! The header is JSON so that `head -c 4096` shows what a file is. The
//! checksum covers everything between the magic and itself, so a flipped
//! byte anywhere is caught before anything is loaded. Files are written to
//! a temporary name, fsynced, renamed into place and the directory
//! fsynced: a crash mid-write never leaves a half snapshot that looks
//! whole.
//!
//! Architecture invariant: a snapshot is a pure function of the journal up
//! to its position. Restoring it and replaying the journal from that
//! position gives exactly the state the server had.

pub mod wire;
mod wire_v1;
mod wire_v2;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use wire::{Body, EventSnap, Header, HeaderEvent};

use crate::clock::TIME_MS_MAX;
use crate::domain::{EventDef, SalePhases, Section, WaitingRoom};
use crate::idempotency::SCOPED_KEY_LEN_MAX as IDEMPOTENCY_SCOPED_KEY_LEN_MAX;
use crate::layout::EventSpec;

pub const MAGIC: &[u8; 8] = b"BXSNAP01";
pub const FORMAT: &str = "boxoffice.snapshot/4";
/// The format before waiting rooms; still read.
pub const FORMAT_V3: &str = "boxoffice.snapshot/3";
/// The format before tickets checked in; still read.
pub const FORMAT_V2: &str = "boxoffice.snapshot/2";
/// The format before holds and bookings named their fan; still read.
pub const FORMAT_V1: &str = "boxoffice.snapshot/1";
/// Largest header and body a reader accepts (a stadium tour of sold-out
/// events is far below).
pub const HEADER_LEN_MAX: usize = 16 << 20;
pub const BODY_LEN_MAX: u64 = 16 << 30;
/// Snapshot files in a data directory: `snapshots/<position>.snap`.
pub const DIR: &str = "snapshots";
pub const EXT: &str = "snap";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "not a boxoffice snapshot (the file does not start with {:?})",
        String::from_utf8_lossy(MAGIC)
    )]
    NotASnapshot,
    #[error("the snapshot is truncated: {0}")]
    Truncated(String),
    #[error("the snapshot's checksum does not match: the file is corrupt")]
    Checksum,
    #[error(
        "unsupported snapshot format {found:?} (this build reads {FORMAT:?} and {FORMAT_V1:?})"
    )]
    Version { found: String },
    #[error("the snapshot header does not parse: {0}")]
    Header(String),
    #[error("the snapshot body does not decode: {0}")]
    Body(String),
    #[error("event {event:?}: its layout does not build: {message}")]
    Layout { event: String, message: String },
    #[error("{0}")]
    Inconsistent(String),
}

/// A decoded, checksummed snapshot.
#[derive(Debug)]
pub struct Snapshot {
    pub header: Header,
    pub body: Body,
}

/// State rebuilt from a snapshot, checked section by section.
pub struct Restored {
    pub events: Vec<RestoredEvent>,
}

pub struct RestoredEvent {
    pub spec_json: String,
    pub def: Arc<EventDef>,
    pub phases: SalePhases,
    pub created_at_ms: u64,
    pub sections: Vec<Section>,
    pub room: Option<WaitingRoom>,
}

pub fn encode(header: &Header, body: &Body) -> Vec<u8> {
    seal(
        header,
        &postcard::to_stdvec(body).expect("bodies serialize"),
    )
}

/// The file of `header` and an encoded body, with its checksum.
fn seal(header: &Header, body_bytes: &[u8]) -> Vec<u8> {
    let header_json = serde_json::to_vec(header).expect("headers serialize");
    let mut out = Vec::with_capacity(8 + 4 + header_json.len() + 8 + body_bytes.len() + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&header_json);
    out.extend_from_slice(&(body_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(body_bytes);
    let digest = Sha256::digest(&out[8..]);
    out.extend_from_slice(&digest);
    out
}

/// Checks magic, lengths, checksum and version, then decodes.
pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let truncated = |what: &str| SnapshotError::Truncated(format!("{what} is cut short"));
    let mut at = 8;
    let header_len = u32::from_le_bytes(
        bytes
            .get(at..at + 4)
            .ok_or_else(|| truncated("the header length"))?
            .try_into()
            .expect("4 bytes"),
    ) as usize;
    at += 4;
    if header_len > HEADER_LEN_MAX {
        return Err(SnapshotError::Header(format!(
            "header of {header_len} bytes is over the limit"
        )));
    }
    let header_bytes = bytes
        .get(at..at + header_len)
        .ok_or_else(|| truncated("the header"))?;
    at += header_len;
    let body_len = u64::from_le_bytes(
        bytes
            .get(at..at + 8)
            .ok_or_else(|| truncated("the body length"))?
            .try_into()
            .expect("8 bytes"),
    );
    at += 8;
    if body_len > BODY_LEN_MAX || body_len > (bytes.len() - at) as u64 {
        return Err(truncated("the body"));
    }
    let body_bytes = &bytes[at..at + body_len as usize];
    at += body_len as usize;
    let digest = bytes
        .get(at..at + 32)
        .ok_or_else(|| truncated("the checksum"))?;
    if bytes.len() != at + 32 {
        return Err(SnapshotError::Truncated(format!(
            "{} bytes follow the checksum",
            bytes.len() - at - 32
        )));
    }
    if Sha256::digest(&bytes[8..at])[..] != digest[..] {
        return Err(SnapshotError::Checksum);
    }
    // The format is checked before the header's shape, so that a newer
    // file says "unsupported version", not "does not parse".
    let raw: serde_json::Value =
        serde_json::from_slice(header_bytes).map_err(|e| SnapshotError::Header(e.to_string()))?;
    let found = raw["format"].as_str().unwrap_or("").to_owned();
    if ![FORMAT, FORMAT_V3, FORMAT_V2, FORMAT_V1].contains(&found.as_str()) {
        return Err(SnapshotError::Version { found });
    }
    let header: Header =
        serde_json::from_value(raw).map_err(|e| SnapshotError::Header(e.to_string()))?;
    if let Some(lineage) = &header.lineage {
        crate::data_dir::Lineage::parse(lineage)
            .map_err(|e| SnapshotError::Header(format!("lineage {lineage:?}: {e:#}")))?;
    }
    let body_error = |e: postcard::Error| SnapshotError::Body(e.to_string());
    let (body, rest) = match found.as_str() {
        FORMAT_V1 => postcard::take_from_bytes::<wire_v1::BodyV1>(body_bytes)
            .map(|(b, rest)| (Body::from(b), rest))
            .map_err(body_error)?,
        FORMAT_V2 => postcard::take_from_bytes::<wire_v2::BodyV2>(body_bytes)
            .map(|(b, rest)| (Body::from(b), rest))
            .map_err(body_error)?,
        FORMAT_V3 => postcard::take_from_bytes::<wire::BodyV3>(body_bytes)
            .map(|(b, rest)| (Body::from(b), rest))
            .map_err(body_error)?,
        _ => postcard::take_from_bytes::<Body>(body_bytes).map_err(body_error)?,
    };
    if !rest.is_empty() {
        return Err(SnapshotError::Body(format!(
            "{} bytes after the body",
            rest.len()
        )));
    }
    Ok(Snapshot { header, body })
}

pub fn read(path: &Path) -> Result<Snapshot, SnapshotError> {
    let bytes = std::fs::read(path).map_err(|source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    })?;
    decode(&bytes)
}

/// Reads only the header of a snapshot file (for listings; the checksum
/// is not checked, so this says what a file claims, not that it is good).
pub fn read_header(path: &Path) -> Result<Header, SnapshotError> {
    use std::io::Read;
    let io = |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut prefix = [0u8; 12];
    f.read_exact(&mut prefix)
        .map_err(|_| SnapshotError::Truncated("the header length is cut short".into()))?;
    if &prefix[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let len = u32::from_le_bytes(prefix[8..12].try_into().expect("4 bytes")) as usize;
    if len > HEADER_LEN_MAX {
        return Err(SnapshotError::Header("header over the limit".into()));
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header)
        .map_err(|_| SnapshotError::Truncated("the header is cut short".into()))?;
    serde_json::from_slice(&header).map_err(|e| SnapshotError::Header(e.to_string()))
}

/// Writes `bytes` to `path` so that a crash leaves either no file or the
/// whole file: temporary name, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a snapshot path needs a file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl Snapshot {
    /// The numbers outside the sections within what the server itself
    /// writes: times RFC 3339 can write, HTTP statuses, answers and keys
    /// within their bounds.
    fn check_ranges(&self) -> Result<(), SnapshotError> {
        let bad = |m: String| Err(SnapshotError::Inconsistent(m));
        for e in &self.body.events {
            if e.created_at_ms > TIME_MS_MAX {
                return bad(format!(
                    "an event made past the year 9999 ({} ms)",
                    e.created_at_ms
                ));
            }
        }
        for a in &self.body.idempotency {
            if a.at_ms > TIME_MS_MAX {
                return bad(format!(
                    "an idempotent answer from past the year 9999 ({} ms)",
                    a.at_ms
                ));
            }
            if !(100..=599).contains(&a.status) {
                return bad(format!("an idempotent answer with status {}", a.status));
            }
            if a.key.len() > IDEMPOTENCY_SCOPED_KEY_LEN_MAX {
                return bad(format!("an Idempotency-Key of {} bytes", a.key.len()));
            }
        }
        for m in &self.body.outbox {
            if m.next_at_ms > TIME_MS_MAX {
                return bad(format!(
                    "email {}/{}/{} due past the year 9999",
                    m.event, m.section, m.booking
                ));
            }
        }
        Ok(())
    }

    /// Rebuilds every event and section, checking each section's state
    /// (no seat with two owners, counts that add up) and that the header's
    /// counts match the body. Takes the sections' holds and bookings out
    /// of the body (`SectionSnap::take_parts`): a snapshot restores once.
    pub fn restore(&mut self) -> Result<Restored, SnapshotError> {
        self.check_ranges()?;
        let mut events = Vec::new();
        let mut rooms = std::collections::HashMap::new();
        for r in &self.body.rooms {
            let room = r
                .to_parts()
                .and_then(|p| WaitingRoom::from_parts(p).map_err(|e| e.0))
                .map_err(|m| {
                    SnapshotError::Inconsistent(format!("waiting room of {:?}: {m}", r.event))
                })?;
            if rooms.insert(r.event.as_str(), room).is_some() {
                return Err(SnapshotError::Inconsistent(format!(
                    "two waiting rooms of {:?}",
                    r.event
                )));
            }
        }
        if self.header.events.len() != self.body.events.len() {
            return Err(SnapshotError::Inconsistent(
                "the header and the body list different events".into(),
            ));
        }
        for (e, h) in self.body.events.iter_mut().zip(&self.header.events) {
            let layout_err = |message: String| SnapshotError::Layout {
                event: h.id.clone(),
                message,
            };
            let spec = EventSpec::from_json(e.spec_json.as_bytes())
                .map_err(|err| layout_err(err.to_string()))?;
            let def = Arc::new(spec.build().map_err(|err| layout_err(err.to_string()))?);
            let phases = spec.phases().map_err(|err| layout_err(err.to_string()))?;
            if def.id != h.id {
                return Err(SnapshotError::Inconsistent(format!(
                    "the header names event {:?}, the body {:?}",
                    h.id, def.id
                )));
            }
            if e.sections.len() != def.sections.len() {
                return Err(SnapshotError::Inconsistent(format!(
                    "event {:?} has {} sections in its layout and {} in the snapshot",
                    def.id,
                    def.sections.len(),
                    e.sections.len()
                )));
            }
            let mut sections = Vec::new();
            let (mut held, mut sold) = (0u64, 0u64);
            for (layout, s) in def.sections.iter().zip(&mut e.sections) {
                if layout.id != s.id {
                    return Err(SnapshotError::Inconsistent(format!(
                        "event {:?}: section {:?} where the layout has {:?}",
                        def.id, s.id, layout.id
                    )));
                }
                let parts = s.take_parts(layout).map_err(|m| {
                    SnapshotError::Inconsistent(format!("{}/{}: {m}", def.id, s.id))
                })?;
                let section =
                    Section::from_parts(Arc::clone(layout), def.limits, parts).map_err(|err| {
                        SnapshotError::Inconsistent(format!("{}/{}: {}", def.id, s.id, err.0))
                    })?;
                let c = section.counts().total;
                held += u64::from(c.held);
                sold += u64::from(c.sold);
                sections.push(section);
            }
            if (held, sold) != (h.held, h.sold) || def.capacity() != h.capacity {
                return Err(SnapshotError::Inconsistent(format!(
                    "event {:?}: the header counts do not match the sections",
                    def.id
                )));
            }
            events.push(RestoredEvent {
                spec_json: e.spec_json.clone(),
                room: rooms.remove(def.id.as_str()),
                def,
                phases,
                created_at_ms: e.created_at_ms,
                sections,
            });
        }
        if let Some(event) = rooms.keys().next() {
            return Err(SnapshotError::Inconsistent(format!(
                "a waiting room of unknown event {event:?}"
            )));
        }
        Ok(Restored { events })
    }
}

/// The snapshot files of a data directory, newest (highest journal
/// position) first.
pub fn list(data_dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let dir = data_dir.join(DIR);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == EXT) {
            if let Some(pos) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            {
                out.push((pos, path));
            }
        }
    }
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    Ok(out)
}

/// `snapshots/<position>.snap`, zero-padded so names sort by position.
pub fn path_for(data_dir: &Path, position: u64) -> PathBuf {
    data_dir.join(DIR).join(format!("{position:020}.{EXT}"))
}

/// One event's state, as the caller holds it.
pub struct EventState<'a> {
    pub spec_json: &'a str,
    pub def: &'a EventDef,
    pub created_at_ms: u64,
    pub sections: &'a [Section],
    pub room: Option<&'a WaitingRoom>,
}

/// Builds a snapshot of `events`, the remembered `answers` and the
/// `outbox`, taken at journal `position`.
pub fn capture<'a>(
    events: impl IntoIterator<Item = EventState<'a>>,
    answers: &[crate::idempotency::Answer],
    outbox: &crate::outbox::Outbox,
    position: u64,
    now_ms: u64,
    lineage: Option<crate::data_dir::Lineage>,
) -> (Header, Body) {
    let mut header_events = Vec::new();
    let mut body_events = Vec::new();
    let mut rooms = Vec::new();
    for e in events {
        if let Some(room) = e.room {
            rooms.push(wire::RoomSnap::from_parts(&e.def.id, room.parts()));
        }
        let (mut held, mut sold, mut holds, mut bookings) = (0u64, 0u64, 0u64, 0u64);
        let mut sections = Vec::new();
        for s in e.sections {
            let c = s.counts().total;
            held += u64::from(c.held);
            sold += u64::from(c.sold);
            let parts = s.parts();
            holds += parts.holds.len() as u64;
            bookings += parts.bookings.len() as u64;
            sections.push(wire::SectionSnap::from_parts(&s.layout().id, &parts));
        }
        header_events.push(HeaderEvent {
            id: e.def.id.clone(),
            sections: sections.len() as u64,
            capacity: e.def.capacity(),
            held,
            sold,
            holds,
            bookings,
        });
        body_events.push(EventSnap {
            spec_json: e.spec_json.to_owned(),
            created_at_ms: e.created_at_ms,
            sections,
        });
    }
    let idempotency: Vec<wire::AnswerSnap> = answers
        .iter()
        .map(|a| wire::AnswerSnap {
            key: a.key.clone(),
            fingerprint: a.fingerprint,
            status: a.status,
            body: a.body.to_vec(),
            at_ms: a.at_ms,
        })
        .collect();
    let outbox: Vec<wire::MailSnap> = outbox
        .slots()
        .into_iter()
        .map(|(key, slot)| wire::MailSnap {
            event: key.event().to_string(),
            section: key.section().to_string(),
            booking: key.booking,
            kind: key.kind.into(),
            attempts: slot.attempts,
            next_at_ms: slot.next_at_ms,
            last_error: slot.last_error.map(str::to_owned),
            dead: slot.state == crate::outbox::SlotState::Dead,
        })
        .collect();
    let header = Header {
        format: FORMAT.to_owned(),
        created_at: crate::clock::rfc3339_ms(now_ms),
        created_at_ms: now_ms,
        journal_position: position,
        events: header_events,
        idempotency_answers: idempotency.len() as u64,
        outbox_entries: outbox.len() as u64,
        lineage: lineage.map(|l| l.header()),
    };
    (
        header,
        Body {
            events: body_events,
            idempotency,
            outbox,
            rooms,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FanId, RoomChange, RoomSettings};

    fn header(format: &str) -> Header {
        Header {
            format: format.to_owned(),
            created_at: crate::clock::rfc3339_ms(0),
            created_at_ms: 0,
            journal_position: 3,
            events: Vec::new(),
            idempotency_answers: 0,
            outbox_entries: 0,
            lineage: None,
        }
    }

    /// A `/3` file, as a `/3` server wrote it (its body without rooms),
    /// reads as a `/4` one with no waiting room.
    #[test]
    fn a_v3_file_reads_with_no_rooms() {
        let v3 = wire::BodyV3 {
            events: Vec::new(),
            idempotency: Vec::new(),
            outbox: Vec::new(),
        };
        let bytes = seal(&header(FORMAT_V3), &postcard::to_stdvec(&v3).unwrap());
        let snap = decode(&bytes).unwrap();
        assert_eq!(snap.header.format, FORMAT_V3);
        assert!(snap.body.rooms.is_empty());
        // The same bytes as `/4` lack the rooms: cut short, refused.
        let bytes = seal(&header(FORMAT), &postcard::to_stdvec(&v3).unwrap());
        assert!(matches!(decode(&bytes), Err(SnapshotError::Body(_))));
    }

    #[test]
    fn a_room_round_trips() {
        let mut room = WaitingRoom::new(RoomSettings {
            queue_opens_at_ms: 0,
            opens_at_ms: 1_000,
            rate_per_sec: 5,
            active_max: Some(2),
            admission_ttl_ms: 10_000,
            paused: false,
        });
        for fan in ["a", "b", "c"] {
            let fan: FanId = fan.into();
            let c = room.decide_join(&fan, 10).unwrap().unwrap();
            room.apply(&c).unwrap();
        }
        room.apply(&RoomChange::Shuffled {
            seed: 9,
            at_ms: 1_000,
        })
        .unwrap();
        let c = room.decide_admission(2_000).unwrap();
        room.apply(&c).unwrap();
        let snap = wire::RoomSnap::from_parts("demo", room.parts());
        let bytes = postcard::to_stdvec(&snap).unwrap();
        let back: wire::RoomSnap = postcard::from_bytes(&bytes).unwrap();
        let rebuilt = WaitingRoom::from_parts(back.to_parts().unwrap()).unwrap();
        assert_eq!(rebuilt.parts(), room.parts());
    }
}
