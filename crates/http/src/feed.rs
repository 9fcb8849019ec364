//! The change feed: every durable change of an event, for other services,
//! as server-sent events read from the journal itself.
//!
//! `GET /v1/events/{event}/changes` is read beside the flusher
//! ([`JournalReader`]), only below the journal's durable position, so it
//! never sends what a crash could take back; each change's `id` is its
//! journal position `<batch>.<record>`. A reconnect with `Last-Event-ID`
//! resumes right after it; `?from=<batch>` starts at a batch (a
//! snapshot's position: the snapshot plus the feed from there rebuild
//! everything); neither starts live. A position the journal no longer
//! keeps (compacted after a snapshot) is `410`, naming the oldest it
//! keeps. It carries fans' ids and emails: the admin token or the feed's
//! own (`--feed-token`) only.
//!
//! Bounds: `--feed-streams-max` streams; each reads at most
//! `BATCHES_PER_READ` batches at a time, and reads again only once the
//! client has taken what it read (actix polls a stream only while the
//! connection takes its bytes), so a slow reader holds one read's frames.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};

use super::error::{ApiError, Problem};
use super::slots::StreamSlot;
use super::streams::{DRAIN_POLL, KEEPALIVE, KEEPALIVE_FRAME};
use super::target::event_entry;
use super::who::{bearer, same_secret};
use super::AppState;
use crate::api::feed::{event_of, feed_change, FeedEntryDto};
use crate::domain::EventDef;
use crate::journal::{JournalReader, OpenError};

/// Most batches one read of the journal takes in.
const BATCHES_PER_READ: u64 = 16;

/// Most changes one read hands the stream (a batch holds up to 4,096
/// records): a slow client holds at most this many frames.
const FRAMES_PER_READ: usize = 1024;

/// Where a feed stands: the next batch to read, and how many of its
/// records were sent already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    batch: u64,
    skip: u32,
}

/// Parses a feed position `<batch>.<record>` into the cursor right
/// after it.
fn after(position: &str) -> Option<Cursor> {
    let (batch, record) = position.trim().split_once('.')?;
    let batch: u64 = batch.parse().ok()?;
    let record: u32 = record.parse().ok()?;
    Some(Cursor {
        batch,
        skip: record.checked_add(1)?,
    })
}

/// Why a read of the journal stopped.
enum ReadError {
    Open(OpenError),
    /// A batch was missing (compacted meanwhile): the client reconnects
    /// and is told where the journal starts.
    Gap,
    /// `FRAMES_PER_READ` frames are in: the next read starts here.
    Full(Cursor),
}

impl From<OpenError> for ReadError {
    fn from(e: OpenError) -> ReadError {
        ReadError::Open(e)
    }
}

/// The frames of event `def`'s changes in batches `[from.batch, end)`,
/// after `from.skip` records of the first, up to `FRAMES_PER_READ`; and
/// where the next read starts.
fn read(
    reader: &JournalReader,
    def: &EventDef,
    from: Cursor,
    end: u64,
) -> Result<(Vec<Bytes>, Cursor), ReadError> {
    let mut frames = Vec::new();
    let mut expect = from.batch;
    let mut index = 0u32;
    let read = reader.replay_range(from.batch, Some(end), |batch, record| {
        if batch == expect {
            expect += 1;
            index = 0;
        } else if batch + 1 == expect {
            index += 1;
        } else {
            return Err(ReadError::Gap);
        }
        if batch == from.batch && index < from.skip {
            return Ok(());
        }
        if frames.len() == FRAMES_PER_READ {
            return Err(ReadError::Full(Cursor { batch, skip: index }));
        }
        if event_of(&record).as_deref() != Some(def.id.as_str()) {
            return Ok(());
        }
        if let Some(change) = feed_change(def, record) {
            frames.push(frame(batch, index, &def.id, change));
        }
        Ok(())
    });
    match read {
        Ok(_) if expect == end => Ok((
            frames,
            Cursor {
                batch: end,
                skip: 0,
            },
        )),
        Ok(_) => Err(ReadError::Gap),
        Err(ReadError::Full(next)) => Ok((frames, next)),
        // A batch compaction was removing when the read began.
        Err(ReadError::Open(OpenError::Corrupt { batch, .. })) if batch == from.batch => {
            Err(ReadError::Gap)
        }
        Err(e) => Err(e),
    }
}

fn frame(batch: u64, index: u32, event: &str, change: crate::api::feed::FeedChangeDto) -> Bytes {
    let position = format!("{batch}.{index}");
    let kind = change.kind();
    let entry = FeedEntryDto {
        position,
        event: event.to_owned(),
        change,
    };
    let json = crate::api::dto::json_text(&entry);
    Bytes::from(format!(
        "id: {}\nevent: {kind}\ndata: {json}\n\n",
        entry.position
    ))
}

struct FeedWatch {
    state: web::Data<AppState>,
    def: Arc<EventDef>,
    cursor: Cursor,
    pending: VecDeque<Bytes>,
    /// Moves once the published views took in new durable batches.
    position: tokio::sync::watch::Receiver<u64>,
    quiet: Duration,
    _slot: StreamSlot,
}

impl FeedWatch {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, FeedWatch)> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                self.quiet = Duration::ZERO;
                return Some((Ok(frame), self));
            }
            if self.state.drain.is_shutting_down() {
                return None;
            }
            let journal = self.state.registry.journal();
            let durable = journal.durable_position();
            if self.cursor.batch < durable {
                let end = durable.min(self.cursor.batch + BATCHES_PER_READ);
                // None: the journal has closed (the server is stopping).
                let reader = journal.reader()?;
                let (def, from) = (Arc::clone(&self.def), self.cursor);
                match web::block(move || read(&reader, &def, from, end)).await {
                    Ok(Ok((frames, next))) => {
                        self.pending.extend(frames);
                        self.cursor = next;
                    }
                    Ok(Err(ReadError::Open(error))) => {
                        tracing::error!(%error, "the change feed cannot read the journal");
                        return None;
                    }
                    Ok(Err(ReadError::Gap | ReadError::Full(_))) | Err(_) => return None,
                }
                continue;
            }
            let wait = DRAIN_POLL.min(KEEPALIVE.saturating_sub(self.quiet));
            if tokio::time::timeout(wait, self.position.changed())
                .await
                .is_err()
            {
                self.quiet += wait;
                if self.quiet >= KEEPALIVE {
                    self.quiet = Duration::ZERO;
                    return Some((Ok(Bytes::from_static(KEEPALIVE_FRAME)), self));
                }
            }
        }
    }
}

/// The feed's credential: the admin token, or the feed's own.
fn check_feed_credential(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let tokens = [&state.admin_token, &state.feed_token];
    if tokens.iter().all(|t| t.is_none()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "feed-disabled",
            "Change feed disabled",
            "start the server with --feed-token (or --admin-token) to read the change feed",
        ));
    }
    let given = bearer(req);
    let known = tokens
        .iter()
        .filter_map(|t| t.as_deref())
        .any(|t| given.is_some_and(|g| same_secret(g, t)));
    if known {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            "send Authorization: Bearer <feed token or admin token>",
        ))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedQuery {
    from: Option<u64>,
}

/// Every durable change of an event, as server-sent events: `event:` is
/// the change's `kind` and `data:` a FeedEntryDto; `id:` its journal
/// position, `<batch>.<record>`. Starts live; `Last-Event-ID` resumes
/// right after a position; `?from=<batch>` starts at a batch (a
/// snapshot's `position`). Only durable changes are sent, in journal
/// order; a comment line every 15 s keeps proxies from closing a quiet
/// stream. For services: the feed token (`--feed-token`) or the admin
/// token.
#[utoipa::path(get, path = "/v1/events/{event}/changes", tag = "admin",
    params(("event" = String, Path),
        ("from" = Option<u64>, Query, description = "Start at this journal batch (a snapshot's position)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume right after this position (`<batch>.<record>`)")),
    security(("admin_token" = []), ("feed_token" = [])),
    responses((status = 200, description = "`text/event-stream` of changes, each a FeedEntryDto", content_type = "text/event-stream", body = String),
        (status = 400, description = "A malformed position, or one this journal has not reached", body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No feed or admin token configured", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The journal no longer keeps that position (`oldest` is the first batch it keeps): load a snapshot, then read from its position", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "As many feeds open as the server keeps (`--feed-streams-max`); see Retry-After", body = Problem, content_type = "application/problem+json")))]
pub async fn changes(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    check_feed_credential(&state, &req)?;
    let e = event_entry(&state, &path)?;
    let query = web::Query::<FeedQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let journal = state.registry.journal();
    let durable = journal.durable_position();
    let last = req.headers().get("last-event-id");
    let cursor = match (last, query.from) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give Last-Event-ID or ?from, not both",
            ))
        }
        (Some(last), None) => last.to_str().ok().and_then(after).ok_or_else(|| {
            ApiError::bad_request("Last-Event-ID is a feed position: <batch>.<record>")
        })?,
        (None, Some(batch)) => Cursor { batch, skip: 0 },
        (None, None) => Cursor {
            batch: durable,
            skip: 0,
        },
    };
    if cursor.batch > durable || (cursor.batch == durable && cursor.skip > 0) {
        return Err(ApiError::bad_request(format!(
            "this journal has not reached batch {}: it stands at {durable} (a position from another server, or from before a restore?)",
            cursor.batch
        ))
        .with("position", durable));
    }
    let reader = journal.reader().ok_or_else(ApiError::overloaded)?;
    let first = web::block(move || reader.first_batch())
        .await
        .map_err(|_| ApiError::overloaded())?
        .map_err(|error| {
            tracing::error!(%error, "the change feed cannot read the journal");
            ApiError::overloaded()
        })?;
    // Batches below the first kept (or, with none kept, below the
    // durable position) were compacted after a snapshot; so are those
    // below where compaction may be removing keys now.
    let oldest = first
        .unwrap_or(durable)
        .max(journal.compacting_below().min(durable));
    if cursor.batch < oldest {
        return Err(ApiError::new(
            StatusCode::GONE,
            "position-gone",
            "Position no longer kept",
            format!("the journal keeps batches from {oldest}: load a snapshot at or after it, then read with ?from=<its position>"),
        )
        .with("oldest", oldest));
    }
    let slot = state.streams.feeds.take().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "Too busy",
            "as many change feeds are open as this server keeps (--feed-streams-max)",
        )
        .retry_after(5)
    })?;
    let watch = FeedWatch {
        state: state.clone(),
        def: Arc::clone(&e.def),
        cursor,
        pending: VecDeque::from([Bytes::from_static(b"retry: 1000\n\n")]),
        position: state.registry.publisher().position(),
        quiet: Duration::ZERO,
        _slot: slot,
    };
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .streaming(futures_util::stream::unfold(watch, FeedWatch::next)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{encode, ChangeRecord, JournalConfig, Record, Store};
    use crate::layout::EventSpec;

    fn event(id: &str) -> Arc<EventDef> {
        let doc = serde_json::json!({
            "format": "boxoffice.event/1", "id": id, "name": "Ev", "starts_at": "2026-12-24T10:00:00Z",
            "currency": "KRW", "hold_ttl_secs": 60, "seats_per_hold_max": 4,
            "categories": [{"id": "R", "name": "R", "price": 1}],
            "venue": {"name": "V", "sections": [{"id": "S", "name": "S", "category": "R",
                "rows": [{"label": "1", "seats": 10, "x": 0.0, "y": 0.0}]}]}
        });
        let spec = EventSpec::from_json(doc.to_string().as_bytes()).unwrap();
        Arc::new(spec.build().unwrap())
    }

    fn release(event: &str, hold: u64) -> Vec<u8> {
        encode(&Record::Section {
            event: event.into(),
            section: "S".into(),
            change: ChangeRecord::HoldReleased { hold, at_ms: 0 },
            idem: None,
        })
    }

    /// A read hands out at most `FRAMES_PER_READ` changes and says where
    /// the next starts, mid-batch; another event's records are skipped
    /// but counted in the positions; read on from there, every change
    /// comes once, in order.
    #[test]
    fn reads_page_through_a_batch_and_skip_other_events() {
        let dir = tempfile::tempdir().unwrap();
        let (journal, flusher) = Store::open(dir.path())
            .unwrap()
            .start(JournalConfig::default());
        let n = FRAMES_PER_READ as u64 + 100;
        // One batch: a record of another event between every two of ours.
        let mut receipts = Vec::new();
        for i in 0..n {
            journal.append_unacked(release("other", i)).unwrap();
            receipts.push(journal.append(release("ev", i)).unwrap());
        }
        for r in receipts {
            r.blocking_recv().unwrap().unwrap();
        }
        let def = event("ev");
        let reader = journal.reader().unwrap();
        let end = journal.durable_position();
        let mut at = Cursor { batch: 0, skip: 0 };
        let mut holds = Vec::new();
        let mut ids = Vec::new();
        while at.batch < end {
            let (frames, next) = read(&reader, &def, at, end).ok().unwrap();
            assert!(frames.len() <= FRAMES_PER_READ);
            for f in frames {
                let text = std::str::from_utf8(&f).unwrap().to_owned();
                let id = text
                    .lines()
                    .next()
                    .unwrap()
                    .strip_prefix("id: ")
                    .unwrap()
                    .to_owned();
                let data: serde_json::Value = serde_json::from_str(
                    text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap(),
                )
                .unwrap();
                assert_eq!(data["event"], "ev");
                holds.push(data["hold"].as_u64().unwrap());
                ids.push(id);
            }
            assert!(next != at, "a read moves on");
            at = next;
        }
        assert_eq!(holds, (0..n).collect::<Vec<_>>(), "each once, in order");
        // Another event's record sits between every two of ours, and
        // counts in the positions: two of ours in one batch are two
        // apart (wherever the flusher cut the batches).
        let positions: Vec<(u64, u64)> = ids
            .iter()
            .map(|id| {
                let (batch, index) = id.split_once('.').unwrap();
                (batch.parse().unwrap(), index.parse().unwrap())
            })
            .collect();
        let mut same_batch = 0;
        for pair in positions.windows(2) {
            assert!(pair[0] < pair[1], "positions increase: {pair:?}");
            if pair[0].0 == pair[1].0 {
                assert_eq!(pair[1].1, pair[0].1 + 2, "{pair:?}");
                same_batch += 1;
            }
        }
        assert!(same_batch > 0, "group commit put several in one batch");
        // Resuming right after any id gives exactly the rest.
        let k = FRAMES_PER_READ + 7;
        let after_k = after(&ids[k]).unwrap();
        let (rest, _) = read(&reader, &def, after_k, end).ok().unwrap();
        assert_eq!(rest.len(), holds.len() - k - 1);
        journal.close();
        flusher.join().unwrap();
    }

    #[test]
    fn a_position_resumes_right_after_it() {
        assert_eq!(after("12.0"), Some(Cursor { batch: 12, skip: 1 }));
        assert_eq!(after(" 7.41 "), Some(Cursor { batch: 7, skip: 42 }));
        for bad in [
            "",
            "12",
            "12.",
            ".3",
            "a.b",
            "-1.0",
            "1.4294967295",
            "1.2.3",
        ] {
            assert_eq!(after(bad), None, "{bad:?}");
        }
    }
}
