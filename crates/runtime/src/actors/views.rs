//! Published views: what readers see of each section, and only once it is
//! durable.
//!
//! A section actor attaches a [`SeatNote`] (the seats a change moved, their
//! state now, the section's counts after it) to the change's journal
//! record. The flusher hands every durable batch's notes on, in journal
//! order, to one publisher thread ([`Publisher`]), which applies them to
//! each section's [`SeatBoard`] and, at most once a round
//! (`ROUND_INTERVAL`), publishes every board that moved: an immutable
//! [`SeatsPublished`] for seat maps and availability, and a
//! [`Publication`] (the seats that changed) for the section's streams.
//! Readers never send the actor a message, so a read never waits in its
//! mailbox nor counts against its in-flight limit, and nothing a reader
//! sees can be lost by a crash.
//!
//! Positions are the journal's: a view at position `p` holds every batch
//! below `p` and none after. A publication covers `(since, position]`;
//! a stream that saw position `p` resumes from the publication whose
//! `since` is `p`, while the board still keeps it (at least
//! `RING_PUBLICATIONS_MIN` of them, and up to a section's worth of seats).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use tokio::sync::{broadcast, watch};

use crate::domain::SectionCounts;
use crate::journal::DurableBatch;

/// Shortest time between two publications of a board. A round applies
/// every batch that came in the meantime, so a hot section is published
/// about this often, whatever its rate of changes: each publication wakes
/// every stream of the section.
pub const ROUND_INTERVAL: Duration = Duration::from_millis(25);

/// What one stream's frame is budgeted to cost a hot section's board: its
/// streams get a publication at most every `max(ROUND_INTERVAL, streams
/// × STREAM_FRAME_BUDGET)`, so however many watch it, a board sends at
/// most 100,000 frames a second (10,000 streams: one every 100 ms), and
/// the CPU that serves holds is not spent on the crowd watching them.
pub const STREAM_FRAME_BUDGET: Duration = Duration::from_micros(10);

/// Publications a board keeps for streams that reconnect, at least.
pub const RING_PUBLICATIONS_MIN: usize = 64;

/// Publications a board keeps at most, whatever their size.
pub const RING_PUBLICATIONS_MAX: usize = 4096;

/// Publications a stream may fall behind before it is cut off (it
/// reconnects with `Last-Event-ID` and gets what it missed).
pub const STREAM_BUFFER: usize = 128;

/// A seat's state in a view: one of these bytes (as in `Section::seat_states`).
pub const FREE: u8 = b'f';
pub const HELD: u8 = b'h';
pub const SOLD: u8 = b's';

/// One section as last published: durable, immutable, shared by readers.
#[derive(Debug)]
pub struct SeatsPublished {
    /// The journal position it stands at: every batch below it is in.
    pub position: u64,
    /// One of `f`, `h`, `s` per seat; empty for a standing section.
    pub states: Arc<str>,
    pub counts: SectionCounts,
    /// The view as the seat map's body, rendered once by the first
    /// reader: every later read of this view sends the same bytes.
    pub body: OnceLock<Bytes>,
    /// The view as a seat stream's first frame, likewise.
    pub frame: OnceLock<Bytes>,
}

/// What changed in a section between two of its views.
#[derive(Debug)]
pub struct Publication {
    /// Position of the board's view before this.
    pub since: u64,
    /// Position of the board's view with this.
    pub position: u64,
    /// Every seat that changed, by ascending index, with its state now.
    pub seats: Vec<(u32, u8)>,
    pub counts: SectionCounts,
    /// The publication as a stream sends it, rendered once by the first
    /// stream that sends it.
    pub frame: OnceLock<Bytes>,
}

/// How a stream starts: what it missed since the position it saw, or the
/// whole state when that is no longer kept (or it saw nothing yet).
pub enum Start {
    Whole(Arc<SeatsPublished>),
    Missed(Vec<Arc<Publication>>),
}

/// A stream of one section's publications.
pub struct Subscription {
    pub start: Start,
    /// Every publication after the start; `Lagged` when the stream fell
    /// more than `STREAM_BUFFER` behind.
    pub rx: broadcast::Receiver<Arc<Publication>>,
}

/// One section's published state, and what the publisher keeps to move
/// it on. Shared by the section's actor (which notes its changes), the
/// publisher, and readers.
pub struct SeatBoard {
    view: RwLock<Arc<SeatsPublished>>,
    inner: Mutex<Board>,
    tx: broadcast::Sender<Arc<Publication>>,
    /// The event's fans' live holds, moved by the notes of this section's
    /// holds as they are durable.
    fan_holds: Arc<super::fan_holds::FanHolds>,
}

struct Board {
    /// Every seat's state with every durable change applied.
    states: Vec<u8>,
    counts: SectionCounts,
    /// Seats changed since the last stream publication (may repeat).
    changed: Vec<u32>,
    /// Anything changed since the last stream publication (in a standing
    /// section, only the counts do).
    unsent: bool,
    /// In the publisher's list of boards whose streams wait.
    paced: bool,
    /// Changed since the view was last published.
    dirty: bool,
    /// Position of the view.
    position: u64,
    /// Position of the last stream publication (or the start).
    streamed: u64,
    /// When the streams may get their next publication.
    next_stream: Option<Instant>,
    ring: VecDeque<Arc<Publication>>,
    /// Seats named by the publications in `ring`.
    ring_seats: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SeatBoard {
    /// A board for a section whose state, `states` and `counts`, is
    /// durable up to `position`.
    pub fn new(states: String, counts: SectionCounts, position: u64) -> SeatBoard {
        let view = Arc::new(SeatsPublished {
            position,
            states: Arc::from(states.as_str()),
            counts: counts.clone(),
            body: OnceLock::new(),
            frame: OnceLock::new(),
        });
        SeatBoard {
            view: RwLock::new(view),
            inner: Mutex::new(Board {
                states: states.into_bytes(),
                counts,
                changed: Vec::new(),
                unsent: false,
                paced: false,
                dirty: false,
                position,
                streamed: position,
                next_stream: None,
                ring: VecDeque::new(),
                ring_seats: 0,
            }),
            tx: broadcast::channel(STREAM_BUFFER).0,
            fan_holds: Arc::default(),
        }
    }

    /// The board of a section whose fans' live holds `holds` lists.
    pub fn with_fan_holds(mut self, holds: Arc<super::fan_holds::FanHolds>) -> SeatBoard {
        self.fan_holds = holds;
        self
    }

    /// The section as last published.
    pub fn view(&self) -> Arc<SeatsPublished> {
        Arc::clone(&self.view.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Streams open on this board.
    pub fn streams(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Starts a stream that saw the board at `seen` (its `Last-Event-ID`),
    /// or nothing yet: it misses nothing and sees nothing twice.
    /// Publications name each changed seat's state at their position, so
    /// one that began before `seen` and ends after it brings a state at
    /// `seen` to the state at its end.
    pub fn subscribe(&self, seen: Option<u64>) -> Subscription {
        let board = lock(&self.inner);
        // Under the board's lock, so no publication falls between the
        // start and the first one received.
        let rx = self.tx.subscribe();
        let start = match seen {
            // Between the last stream publication and the view: the next
            // publication brings what came after.
            Some(p) if (board.streamed..=board.position).contains(&p) => Start::Missed(Vec::new()),
            Some(p) => match board
                .ring
                .iter()
                .position(|x| x.since <= p && p < x.position)
            {
                Some(i) => Start::Missed(board.ring.range(i..).cloned().collect()),
                None => Start::Whole(self.view()),
            },
            None => Start::Whole(self.view()),
        };
        drop(board);
        Subscription { start, rx }
    }

    /// Applies one durable change (the publisher's side).
    fn apply(&self, note: SeatNote) -> bool {
        let mut board = lock(&self.inner);
        for &seat in note.seats.iter() {
            if let Some(s) = board.states.get_mut(seat as usize) {
                *s = note.to;
            }
        }
        board.changed.extend_from_slice(&note.seats);
        board.counts = note.counts;
        board.unsent = true;
        !std::mem::replace(&mut board.dirty, true)
    }

    /// Publishes the view at `position` (every change applied so far).
    fn publish_view(&self, position: u64) {
        let mut board = lock(&self.inner);
        board.dirty = false;
        board.position = position;
        let states = std::str::from_utf8(&board.states).unwrap_or_default();
        let view = Arc::new(SeatsPublished {
            position,
            states: Arc::from(states),
            counts: board.counts.clone(),
            body: OnceLock::new(),
            frame: OnceLock::new(),
        });
        *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
    }

    /// Sends the streams what changed since their last publication, up
    /// to the view's position, unless their pace (`STREAM_FRAME_BUDGET`)
    /// says wait: then the time it may, and nothing is sent.
    fn publish_stream(&self, now: Instant) -> Option<Instant> {
        let mut board = lock(&self.inner);
        if !board.unsent {
            return None;
        }
        if let Some(next) = board.next_stream.filter(|&next| next > now) {
            return Some(next);
        }
        board.unsent = false;
        let streams = u32::try_from(self.tx.receiver_count()).unwrap_or(u32::MAX);
        board.next_stream = Some(now + ROUND_INTERVAL.max(STREAM_FRAME_BUDGET * streams));
        let mut changed = std::mem::take(&mut board.changed);
        changed.sort_unstable();
        changed.dedup();
        let seats: Vec<(u32, u8)> = changed
            .iter()
            .filter_map(|&i| Some((i, *board.states.get(i as usize)?)))
            .collect();
        changed.clear();
        board.changed = changed;
        let publication = Arc::new(Publication {
            since: board.streamed,
            position: board.position,
            seats,
            counts: board.counts.clone(),
            frame: OnceLock::new(),
        });
        board.streamed = board.position;
        board.ring_seats += publication.seats.len();
        board.ring.push_back(Arc::clone(&publication));
        // Past a section's worth of seats, the whole state is the smaller
        // catch-up.
        let seats_max = board.states.len();
        while board.ring.len() > RING_PUBLICATIONS_MAX
            || (board.ring.len() > RING_PUBLICATIONS_MIN && board.ring_seats > seats_max)
        {
            if let Some(old) = board.ring.pop_front() {
                board.ring_seats -= old.seats.len();
            }
        }
        // No stream open is no error.
        let _ = self.tx.send(publication);
        None
    }

    /// Publishes the view and, at their pace, the streams (both only
    /// ever on the publisher's thread); when the streams must wait, the
    /// time they may get it.
    #[cfg(test)]
    fn publish(&self, position: u64, now: Instant) -> Option<Instant> {
        self.publish_view(position);
        self.publish_stream(now)
    }
}

/// A section's durable change, as its actor notes it on the record: the
/// seats it moved (none in a standing section), which all end in one
/// state, and the section's counts after it.
pub struct SeatNote {
    pub board: Arc<SeatBoard>,
    pub seats: crate::domain::Seats,
    pub to: u8,
    pub counts: SectionCounts,
    /// A hold it creates or ends, for its fan's list of live holds.
    pub hold: Option<super::fan_holds::HoldNote>,
}

/// The thread that publishes durable state, and the position it has
/// published up to.
pub struct Publisher {
    position: watch::Receiver<u64>,
}

impl Publisher {
    /// Starts publishing the batches `batches` hands on; `position` is
    /// where the journal stands (every batch below it is durable and
    /// already in the boards). The thread ends with the channel.
    pub fn start(batches: Receiver<DurableBatch>, position: u64) -> (Publisher, JoinHandle<()>) {
        let (tx, rx) = watch::channel(position);
        let thread = std::thread::Builder::new()
            .name("view-publisher".into())
            .spawn(move || publish(batches, tx))
            .expect("spawn the view publisher");
        (Publisher { position: rx }, thread)
    }

    /// The journal position every view has caught up with; changes when
    /// a round ends.
    pub fn position(&self) -> watch::Receiver<u64> {
        self.position.clone()
    }
}

fn publish(batches: Receiver<DurableBatch>, position: watch::Sender<u64>) {
    let mut dirty: Vec<Arc<SeatBoard>> = Vec::new();
    // Boards whose streams wait for their pace, and until when.
    let mut paced: Vec<(Arc<SeatBoard>, Instant)> = Vec::new();
    let mut at = *position.borrow();
    let mut last_round: Option<Instant> = None;
    loop {
        let first = match paced.iter().map(|(_, t)| *t).min() {
            None => batches.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(t) => batches.recv_timeout(t.saturating_duration_since(Instant::now())),
        };
        match first {
            Ok(batch) => take_in(batch, &mut at, &mut dirty),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Take in what comes until the round is due.
        let due = last_round.map_or_else(Instant::now, |t| t + ROUND_INTERVAL);
        let mut ended = false;
        loop {
            let next = match due.checked_duration_since(Instant::now()) {
                Some(wait) if !wait.is_zero() => batches.recv_timeout(wait),
                _ => batches.try_recv().map_err(|e| match e {
                    crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                }),
            };
            match next {
                Ok(batch) => take_in(batch, &mut at, &mut dirty),
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => {
                    ended = true;
                    break;
                }
            }
        }
        // At the end, nothing waits: the last changes go out at once.
        let now = match ended {
            true => Instant::now() + Duration::from_secs(3600),
            false => Instant::now(),
        };
        for board in dirty.drain(..) {
            board.publish_view(at);
            if !std::mem::replace(&mut lock(&board.inner).paced, true) {
                paced.push((board, now));
            }
        }
        paced.retain_mut(|(board, when)| {
            if *when > now {
                return true;
            }
            match board.publish_stream(now) {
                Some(next) => {
                    *when = next;
                    true
                }
                None => {
                    lock(&board.inner).paced = false;
                    false
                }
            }
        });
        position.send_replace(at);
        last_round = Some(now);
        if ended {
            break;
        }
    }
}

/// Applies a durable batch's notes to their boards; `dirty` gains every
/// board that moved for the first time this round.
fn take_in(batch: DurableBatch, at: &mut u64, dirty: &mut Vec<Arc<SeatBoard>>) {
    *at = batch.position;
    for note in batch.notes {
        if let Ok(mut note) = note.downcast::<SeatNote>() {
            if let Some(hold) = note.hold.take() {
                note.board.fan_holds.apply(hold);
            }
            let board = Arc::clone(&note.board);
            if board.apply(*note) {
                dirty.push(board);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CategoryCounts;

    fn counts(free: u32, held: u32) -> SectionCounts {
        let c = CategoryCounts {
            free,
            held,
            sold: 0,
        };
        SectionCounts {
            total: c,
            by_category: vec![c],
        }
    }

    fn board(seats: usize) -> Arc<SeatBoard> {
        let states = "f".repeat(seats);
        Arc::new(SeatBoard::new(states, counts(seats as u32, 0), 10))
    }

    /// Round `i`'s time: rounds a little over `ROUND_INTERVAL` apart.
    fn round(i: u64) -> Instant {
        use std::sync::OnceLock;
        static T0: OnceLock<Instant> = OnceLock::new();
        *T0.get_or_init(Instant::now) + (ROUND_INTERVAL + Duration::from_millis(1)) * i as u32
    }

    fn note(board: &Arc<SeatBoard>, seats: &[u32], to: u8, held: u32) -> SeatNote {
        SeatNote {
            board: Arc::clone(board),
            seats: seats.into(),
            to,
            counts: counts(100 - held, held),
            hold: None,
        }
    }

    /// Changes between two publications become one: each seat once, in
    /// order, in the state it ended in; the view moves with it.
    #[test]
    fn a_round_publishes_each_seat_once_in_its_last_state() {
        let b = board(100);
        let mut sub = b.subscribe(None);
        assert!(matches!(sub.start, Start::Whole(ref v) if v.position == 10));
        assert!(
            b.apply(note(&b, &[7, 3], HELD, 2)),
            "the first change dirties"
        );
        assert!(!b.apply(note(&b, &[7, 3], FREE, 0)), "the rest do not");
        assert!(!b.apply(note(&b, &[5], SOLD, 0)));
        assert_eq!(b.publish(12, round(0)), None);
        let p = sub.rx.try_recv().unwrap();
        assert_eq!((p.since, p.position), (10, 12));
        assert_eq!(p.seats, [(3, FREE), (5, SOLD), (7, FREE)]);
        let view = b.view();
        assert_eq!(view.position, 12);
        assert_eq!(&view.states[..8], "fffffsff");
        assert!(sub.rx.try_recv().is_err(), "one publication a round");
    }

    /// A stream that saw position `p` gets exactly what came after it
    /// while the board keeps it, the whole state once it does not, and
    /// nothing when it saw the latest.
    #[test]
    fn a_resumed_stream_gets_what_it_missed_or_the_whole_state() {
        let b = board(100);
        for i in 0..80u32 {
            b.apply(note(&b, &[i], HELD, i + 1));
            assert_eq!(b.publish(11 + u64::from(i), round(u64::from(i))), None);
        }
        // Positions 11..=90 published; the board keeps at least the last
        // RING_PUBLICATIONS_MIN.
        let Start::Missed(missed) = b.subscribe(Some(80)).start else {
            panic!("80 is kept");
        };
        assert_eq!(missed.len(), 10);
        assert_eq!(missed[0].since, 80);
        for pair in missed.windows(2) {
            assert_eq!(pair[1].since, pair[0].position, "a chain, no gap");
        }
        assert_eq!(missed.last().unwrap().position, 90);
        assert!(matches!(b.subscribe(Some(90)).start, Start::Missed(ref m) if m.is_empty()));
        // Past a section's worth of seats (100) and the minimum kept,
        // the oldest go: the whole state instead.
        for i in 0..60u32 {
            b.apply(note(&b, &[i], FREE, 0));
            b.publish(91 + u64::from(i), round(80 + u64::from(i)));
        }
        assert!(matches!(b.subscribe(Some(11)).start, Start::Whole(ref v) if v.position == 150));
        assert!(matches!(b.subscribe(Some(7_000)).start, Start::Whole(_)));
        let kept = lock(&b.inner).ring.len();
        assert!((RING_PUBLICATIONS_MIN..=101).contains(&kept), "{kept}");
    }

    /// A stream that stops reading holds no queue of its own: the
    /// publications are shared and bounded, and when it reads again it
    /// learns it fell behind (the HTTP layer then ends it).
    #[test]
    fn a_stream_that_stops_reading_falls_behind_and_is_told() {
        let b = board(1000);
        let mut idle = b.subscribe(None);
        for i in 0..(STREAM_BUFFER as u32 * 3) {
            b.apply(note(&b, &[i], HELD, 1));
            b.publish(11 + u64::from(i), round(u64::from(i)));
        }
        assert!(lock(&b.inner).ring.len() <= RING_PUBLICATIONS_MAX);
        assert!(matches!(
            idle.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }

    /// However many watch, a board's streams get a publication at most
    /// once per `STREAM_FRAME_BUDGET` each (10,000 streams: every
    /// 100 ms), while its view moves every round; a publication covers
    /// every change since the last, and a stream that saw a view in
    /// between resumes with it.
    #[test]
    fn streams_get_publications_at_their_pace_and_views_every_round() {
        let b = board(100);
        let mut crowd: Vec<Subscription> = (0..10_000).map(|_| b.subscribe(None)).collect();
        let t0 = round(0);
        let pace = STREAM_FRAME_BUDGET * 10_000;
        assert_eq!(pace, Duration::from_millis(100));
        b.apply(note(&b, &[1], HELD, 1));
        assert_eq!(b.publish(11, t0), None, "the first goes at once");
        b.apply(note(&b, &[2], HELD, 2));
        assert_eq!(b.publish(12, t0 + ROUND_INTERVAL), Some(t0 + pace));
        assert_eq!(b.view().position, 12, "the view does not wait");
        assert_eq!(&b.view().states[..3], "fhh");
        b.apply(note(&b, &[2], FREE, 1));
        assert_eq!(b.publish(13, t0 + ROUND_INTERVAL * 2), Some(t0 + pace));
        assert_eq!(b.publish_stream(t0 + pace), None, "sent once due");
        let rx = &mut crowd[0].rx;
        let first = rx.try_recv().unwrap();
        assert_eq!((first.since, first.position), (10, 11));
        assert_eq!(first.seats, [(1, HELD)]);
        let second = rx.try_recv().unwrap();
        assert_eq!((second.since, second.position), (11, 13));
        assert_eq!(second.seats, [(2, FREE)], "seat 2 as it is at 13");
        assert!(rx.try_recv().is_err());
        // A stream that was shown the view at 12 misses only the second.
        let Start::Missed(m) = b.subscribe(Some(12)).start else {
            panic!("12 is covered");
        };
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].position, 13);
        assert!(matches!(b.subscribe(Some(13)).start, Start::Missed(ref m) if m.is_empty()));
        assert!(
            matches!(b.subscribe(Some(14)).start, Start::Whole(_)),
            "not yet: whole"
        );
        // Nothing changed: nothing to send, whenever asked.
        assert_eq!(b.publish_stream(t0 + pace * 3), None);
        assert!(crowd[1].rx.try_recv().is_ok());
    }

    /// The publisher applies every durable batch's notes in order and
    /// publishes the boards that moved; its position follows the journal.
    #[test]
    fn the_publisher_follows_the_durable_batches() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (publisher, thread) = Publisher::start(rx, 10);
        let b = board(100);
        let mut sub = b.subscribe(None);
        let batch = |position, notes: Vec<SeatNote>| DurableBatch {
            position,
            notes: notes
                .into_iter()
                .map(|n| Box::new(n) as crate::journal::Note)
                .collect(),
        };
        tx.send(batch(11, vec![note(&b, &[1, 2], HELD, 2)]))
            .unwrap();
        tx.send(batch(12, vec![])).unwrap();
        tx.send(batch(13, vec![note(&b, &[2], FREE, 1)])).unwrap();
        drop(tx);
        thread.join().unwrap();
        assert_eq!(*publisher.position().borrow(), 13);
        let view = b.view();
        assert_eq!(view.position, 13);
        assert_eq!(&view.states[..4], "fhff");
        assert_eq!(view.counts.total.held, 1);
        // However the batches fell into rounds, the stream's chain ends
        // at 13 with seat 1 held and seat 2 free.
        let mut last = None;
        while let Ok(p) = sub.rx.try_recv() {
            last = Some(p);
        }
        let last = last.unwrap();
        assert_eq!(last.position, 13);
        assert!(last.seats.contains(&(2, FREE)));
    }
}
