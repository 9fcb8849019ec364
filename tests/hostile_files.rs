//! Files a hostile or buggy tool made: a snapshot edited and its checksum
//! recomputed, arbitrary bytes as a snapshot, a journal record or an
//! event document. Each inconsistent snapshot is refused by name (by the
//! library and by `boxoffice snapshot verify`); nothing panics in
//! decoding, checking or rendering. The proptests are the fuzzers; what
//! they found is kept below as plain tests.

mod common;

use boxoffice::layout::EventSpec;
use boxoffice::snapshot::wire::{
    AdmissionSnap, Body, CheckInSnap, ClaimSnap, EndSnap, Header, RoomSnap, SectionSnap,
};
use boxoffice::snapshot::{self, Snapshot, SnapshotError};
use common::*;
use proptest::prelude::*;
use serde_json::json;
use sha2::{Digest, Sha256};

/// A real snapshot of the demo event with live holds, a booking (and
/// its email in the outbox) and remembered answers.
fn real_snapshot() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = args(dir.path());
    args.mail_enabled = false;
    let s = TestServer::start_with(
        args,
        std::sync::Arc::new(boxoffice::clock::ManualClock::new(T0_MS)),
    );
    let h = s.hold("A", &["A/1/1", "A/1/2"]);
    let body = pay(&s.data_dir, &h, "fan@example.com");
    let id = h["id"].as_str().unwrap();
    let b = s.post_with(
        &format!("/v1/holds/{id}/confirm"),
        &body,
        &[("Idempotency-Key", "k1")],
    );
    assert_eq!(b.status, 201, "{b:?}");
    s.post_with(
        "/v1/events/demo/holds",
        &json!({"section": "FLOOR", "quantity": 2}),
        &[("Idempotency-Key", "k2")],
    );
    let r = s.raw("POST", "/v1/admin/snapshots", None, &admin());
    assert_eq!(r.status, 201, "{r:?}");
    let position = r.body["journal_position"].as_u64().unwrap();
    std::fs::read(snapshot::path_for(dir.path(), position)).unwrap()
}

/// Decodes, lets `edit` change the contents, and encodes again with a
/// fresh checksum, as a tool that knows the format would.
fn edited(bytes: &[u8], edit: impl FnOnce(&mut Header, &mut Body)) -> Vec<u8> {
    let Snapshot {
        mut header,
        mut body,
    } = snapshot::decode(bytes).unwrap();
    edit(&mut header, &mut body);
    snapshot::encode(&header, &body)
}

/// The checksum of bytes whose contents were changed in place.
fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
    let end = bytes.len() - 32;
    let digest = Sha256::digest(&bytes[8..end]);
    bytes[end..].copy_from_slice(&digest);
    bytes
}

fn refusal(bytes: &[u8]) -> String {
    match snapshot::decode(bytes).and_then(|mut s| s.restore().map(|_| ())) {
        Ok(()) => panic!("an inconsistent snapshot was taken"),
        Err(e) => e.to_string(),
    }
}

type Edit = fn(&mut Header, &mut Body);

/// A waiting room of the demo event, shuffled, its first two fans
/// admitted (one still valid), as a server would write it; `edit`
/// spoils it.
fn room(b: &mut Body, edit: impl FnOnce(&mut RoomSnap)) {
    let mut r = RoomSnap {
        event: "demo".into(),
        queue_opens_at_ms: 0,
        opens_at_ms: T0_MS,
        rate_per_sec: 10,
        active_max: None,
        admission_ttl_ms: 60_000,
        paused: false,
        queue: vec![[1; 16], [2; 16], [3; 16]],
        joined_s: vec![1_795_392_000; 3],
        shuffled: Some(7),
        next_at_us: T0_MS * 1000,
        admissions: vec![
            AdmissionSnap::Done,
            AdmissionSnap::Valid {
                expires_at_ms: T0_MS + 60_000,
            },
        ],
    };
    edit(&mut r);
    b.rooms.push(r);
}

/// The section of the demo event that has the booking.
fn section(b: &mut Body) -> &mut SectionSnap {
    let e = &mut b.events[0];
    let i = e
        .sections
        .iter()
        .position(|s| !s.bookings.is_empty())
        .unwrap();
    &mut e.sections[i]
}

#[test]
fn each_kind_of_inconsistent_snapshot_is_refused_by_name() {
    let good = real_snapshot();
    snapshot::decode(&good).unwrap().restore().unwrap();
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "booking time past 9999",
            |_, b| section(b).bookings[0].confirmed_at_ms = u64::MAX,
            "past the year 9999",
        ),
        (
            "cancelled past 9999",
            |_, b| section(b).bookings[0].cancelled_at_ms = Some(u64::MAX / 2),
            "past the year 9999",
        ),
        (
            "hold number overflowing",
            |_, b| section(b).next_hold = u64::MAX,
            "hold or booking numbers past",
        ),
        (
            "booking number overflowing",
            |_, b| section(b).next_booking = u64::MAX,
            "hold or booking numbers past",
        ),
        (
            "booking of a hold never made",
            |_, b| {
                let s = section(b);
                s.bookings[0].hold_seq = s.next_hold;
            },
            "never made",
        ),
        (
            "hold ended in a booking never made",
            |_, b| {
                let s = section(b);
                let next = s.next_booking;
                s.ended
                    .iter_mut()
                    .for_each(|e| e.end = EndSnap::Confirmed { booking: next });
            },
            "never made",
        ),
        (
            "email that is none",
            |_, b| section(b).bookings[0].email = "not an email".into(),
            "not an email address",
        ),
        (
            "fan id too long",
            |_, b| section(b).bookings[0].fan = "f".repeat(129).into(),
            "fan id of 129 bytes",
        ),
        (
            "seat outside the section",
            |_, b| {
                section(b).bookings[0].claim = ClaimSnap::Seats(vec![u32::MAX]);
            },
            "seat",
        ),
        (
            "check-in past 9999",
            |_, b| {
                section(b).check_ins.push(CheckInSnap {
                    booking: 0,
                    place: 1,
                    at_ms: u64::MAX,
                })
            },
            "past the year 9999",
        ),
        (
            "check-in of a booking never made",
            |_, b| {
                let s = section(b);
                let booking = s.next_booking;
                s.check_ins.push(CheckInSnap {
                    booking,
                    place: 1,
                    at_ms: T0_MS,
                });
            },
            "check-in of place 1 of booking",
        ),
        (
            "check-in of a place the booking has not",
            |_, b| {
                section(b).check_ins.push(CheckInSnap {
                    booking: 0,
                    place: 3,
                    at_ms: T0_MS,
                })
            },
            "does not have it",
        ),
        (
            "one place checked in twice",
            |_, b| {
                let c = CheckInSnap {
                    booking: 0,
                    place: 2,
                    at_ms: T0_MS,
                };
                section(b).check_ins.extend([c, c]);
            },
            "checked in twice",
        ),
        (
            "event made past 9999",
            |_, b| b.events[0].created_at_ms = u64::MAX,
            "past the year 9999",
        ),
        (
            "answer with status 0",
            |_, b| b.idempotency[0].status = 0,
            "status 0",
        ),
        (
            "answer from past 9999",
            |_, b| b.idempotency[0].at_ms = u64::MAX,
            "past the year 9999",
        ),
        (
            "email due past 9999",
            |_, b| b.outbox[0].next_at_ms = u64::MAX,
            "due past the year 9999",
        ),
        (
            "a fan twice in a waiting room",
            |_, b| room(b, |r| r.queue[2] = [1; 16]),
            "in the queue twice",
        ),
        (
            "admissions before the shuffle",
            |_, b| room(b, |r| r.shuffled = None),
            "admissions before the shuffle",
        ),
        (
            "more admissions than fans",
            |_, b| {
                room(b, |r| {
                    r.queue.truncate(1);
                    r.joined_s.truncate(1);
                })
            },
            "2 admissions of 1 fans",
        ),
        (
            "admission valid past 9999",
            |_, b| {
                room(b, |r| {
                    r.admissions[1] = AdmissionSnap::Valid {
                        expires_at_ms: u64::MAX,
                    }
                })
            },
            "past the year 9999",
        ),
        (
            "join times that do not match the fans",
            |_, b| {
                room(b, |r| {
                    r.joined_s.pop();
                })
            },
            "2 join times for 3 fans",
        ),
        (
            "waiting room admitting nobody",
            |_, b| room(b, |r| r.rate_per_sec = 0),
            "the rate is 1 to",
        ),
        (
            "waiting room of an unknown event",
            |_, b| room(b, |r| r.event = "nope".into()),
            "waiting room of unknown event",
        ),
        (
            "two waiting rooms of one event",
            |_, b| {
                room(b, |_| {});
                room(b, |_| {});
            },
            "two waiting rooms",
        ),
        (
            "header counts",
            |h, _| h.events[0].sold += 1,
            "header counts",
        ),
    ];
    for (what, edit, name) in cases {
        let bytes = edited(&good, edit);
        let e = refusal(&bytes);
        assert!(
            e.contains(name),
            "{what}: refused as {e:?}, not naming {name:?}"
        );
    }
    // And the command line says so too, naming it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edited.snap");
    std::fs::write(&file, edited(&good, |_, b| b.idempotency[0].status = 0)).unwrap();
    let out = boxoffice()
        .args(["snapshot", "verify"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status 0"), "{stderr}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    /// Arbitrary bytes: every decoder answers, none panics.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2_048)) {
        let _ = snapshot::decode(&bytes).map(|mut s| s.restore());
        let _ = boxoffice::journal::record::decode_all(&bytes);
        if let Ok(spec) = EventSpec::from_json(&bytes) {
            let _ = spec.build();
            let _ = spec.phases();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A real snapshot with bytes of its body changed and its checksum
    /// recomputed: decoded and checked, it is taken or refused; when
    /// taken, everything it holds renders. Never a panic.
    #[test]
    fn edited_snapshots_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        static GOOD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let good = GOOD.get_or_init(real_snapshot);
        let header_len = u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
        let body_start = 12 + header_len + 8;
        let body_len = good.len() - 32 - body_start;
        let mut bytes = good.clone();
        for (at, value) in edits {
            bytes[body_start + at.index(body_len)] = value;
        }
        let bytes = resealed(bytes);
        if let Ok(restored) = snapshot::decode(&bytes).and_then(|mut s| s.restore()) {
            for e in &restored.events {
                let _ = boxoffice::clock::rfc3339_ms(e.created_at_ms);
                for s in &e.sections {
                    for h in s.holds() {
                        let _ = boxoffice::api::dto::hold_dto(&e.def, s.layout(), h);
                    }
                    for b in s.bookings() {
                        let _ = boxoffice::api::dto::booking_dto(&e.def, s.layout(), b);
                    }
                }
            }
        }
    }
}

/// A snapshot error names its kind (kept: a regression of the edits
/// above would show here first).
#[test]
fn a_truncated_or_resealed_garbage_body_is_refused() {
    let good = real_snapshot();
    let cut = &good[..good.len() - 40];
    assert!(matches!(
        snapshot::decode(cut),
        Err(SnapshotError::Truncated(_)) | Err(SnapshotError::Checksum)
    ));
    let mut garbage = good.clone();
    let n = garbage.len();
    garbage[n - 200..n - 32].fill(0xFF);
    let e = snapshot::decode(&resealed(garbage)).and_then(|mut s| s.restore().map(|_| ()));
    assert!(e.is_err());
}
