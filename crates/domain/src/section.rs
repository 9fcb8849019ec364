//! One section's seats, holds and bookings, and the rules that change them.
//!
//! Invariants kept here (checked by [`Section::check_invariants`] after every
//! `apply` in debug builds and in every test):
//! - a seat is owned by at most one hold or booking, and the owner knows it;
//! - free + held + sold = capacity, per category and per row;
//! - a standing section never holds or sells more than its capacity;
//! - a ticket (one place of a booking) is checked in at most once.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::lang::Lang;
use super::venue::{Limits, SectionKind, SectionLayout};

/// How many holds, by number, a section remembers the end of, so that
/// confirming a hold that expired answers "expired" rather than "not
/// found": at least the last `HOLD_TOMBSTONES_MAX` holds created. Older
/// ones are forgotten (8 bytes each are kept, live or ended).
pub const HOLD_TOMBSTONES_MAX: usize = 65_536;

/// Stale expiry entries (of holds that ended otherwise) a section keeps
/// beyond twice its live holds before it rebuilds the expiry heap.
const EXPIRIES_STALE_MAX: usize = 1_024;

/// What a hold claims: explicit seats of a seated section (as indices into
/// its `SeatMap`), or a number of places in a standing section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    Seats(Seats),
    Quantity(u32),
}

/// Seats a claim keeps inline; more go on the heap.
const SEATS_INLINE: usize = 4;

/// The seats of a claim, as a slice: up to four inline (a presale's holds
/// are of one to four seats, and a boxed slice of them cost every hold
/// and booking an allocation of 32 bytes), more on the heap. 24 bytes.
#[derive(Clone)]
pub struct Seats(SeatsRepr);

#[derive(Clone)]
enum SeatsRepr {
    Inline { len: u8, seats: [u32; SEATS_INLINE] },
    Heap(Box<[u32]>),
}

impl std::ops::Deref for Seats {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match &self.0 {
            SeatsRepr::Inline { len, seats } => &seats[..usize::from(*len)],
            SeatsRepr::Heap(seats) => seats,
        }
    }
}

impl From<&[u32]> for Seats {
    fn from(seats: &[u32]) -> Seats {
        if seats.len() <= SEATS_INLINE {
            let mut inline = [0; SEATS_INLINE];
            inline[..seats.len()].copy_from_slice(seats);
            Seats(SeatsRepr::Inline {
                len: seats.len() as u8,
                seats: inline,
            })
        } else {
            Seats(SeatsRepr::Heap(seats.into()))
        }
    }
}

impl From<Vec<u32>> for Seats {
    fn from(seats: Vec<u32>) -> Seats {
        if seats.len() <= SEATS_INLINE {
            Seats::from(&seats[..])
        } else {
            Seats(SeatsRepr::Heap(seats.into_boxed_slice()))
        }
    }
}

impl FromIterator<u32> for Seats {
    /// Inline, with no allocation, when there are at most four. Not
    /// inlined: best-available's row scan, which ends in one, counts
    /// 10% more instructions when it is.
    #[inline(never)]
    fn from_iter<I: IntoIterator<Item = u32>>(seats: I) -> Seats {
        let mut inline = [0; SEATS_INLINE];
        let mut seats = seats.into_iter();
        for len in 0..=SEATS_INLINE {
            let Some(seat) = seats.next() else {
                return Seats(SeatsRepr::Inline {
                    len: len as u8,
                    seats: inline,
                });
            };
            if len == SEATS_INLINE {
                let mut all = inline.to_vec();
                all.push(seat);
                all.extend(seats);
                return Seats(SeatsRepr::Heap(all.into_boxed_slice()));
            }
            inline[len] = seat;
        }
        unreachable!("the loop returns by its last turn")
    }
}

impl<const N: usize> From<[u32; N]> for Seats {
    fn from(seats: [u32; N]) -> Seats {
        Seats::from(&seats[..])
    }
}

impl Default for Seats {
    /// None.
    fn default() -> Seats {
        Seats::from(&[][..])
    }
}

impl PartialEq for Seats {
    fn eq(&self, other: &Seats) -> bool {
        **self == **other
    }
}

impl Eq for Seats {}

impl std::fmt::Debug for Seats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Claim {
    pub fn count(&self) -> u32 {
        match self {
            Claim::Seats(seats) => seats.len() as u32,
            Claim::Quantity(n) => *n,
        }
    }
}

/// A fan, as its token's `sub` names it. Every hold and booking belongs to
/// one; shared, since a fan holds several.
pub type FanId = Arc<str>;

/// Who asks about a booking: the fan it belongs to, or the organiser's
/// support staff (who may read and cancel any booking).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Fan(FanId),
    Support,
}

impl Caller {
    fn may_see(&self, owner: &str) -> bool {
        match self {
            Caller::Fan(fan) => &**fan == owner,
            Caller::Support => true,
        }
    }
}

/// A 64-bit tag of a fan's id (FNV-1a): an ended hold's secret is kept
/// masked by it, so the end of a hold answers only the fan who held it,
/// at no cost in memory. Part of the snapshot format: never change it.
/// Unkeyed, so a fan could search for a `sub` of the same tag as
/// another's; what that buys is the end of the other fan's hold (and its
/// booking's id, never usable without that fan's token), and only for
/// whoever has that hold's id and secret already. Fans' lists, which
/// anyone's tag would reach, use a keyed tag (`actors::fan_lists::tag`).
pub fn fan_tag(fan: &str) -> u64 {
    fan.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The tag of a booking that its tickets carry: the first 8 bytes of a
/// SHA-256 of its secret. It ties a ticket to this booking, not merely to
/// its number (which a fresh start or an older snapshot gives again),
/// without putting the booking's id in every fan's QR code.
pub fn booking_tag(secret: u64) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"boxoffice ticket of booking\0")
        .chain_update(secret.to_le_bytes())
        .finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// What ties a scanned ticket to a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TicketBinding {
    /// The ticket names its booking's tag ([`booking_tag`]).
    Booking(u64),
    /// A ticket from before tickets named their booking: it can be of a
    /// booking confirmed before this time only (when the data directory's
    /// lineage began), and proves only the booking's number.
    Unbound { confirmed_before_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub seq: u64,
    pub secret: u64,
    pub fan: FanId,
    pub claim: Claim,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Whether a booking stands, or when it was cancelled: one `u64` (an
/// enum holding the time would take 16 bytes, in every booking).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BookingStatus(u64);

impl BookingStatus {
    pub const CONFIRMED: BookingStatus = BookingStatus(u64::MAX);

    /// Cancelled at `at_ms` (a time no clock reaches is kept one less).
    pub fn cancelled(at_ms: u64) -> BookingStatus {
        BookingStatus(at_ms.min(u64::MAX - 1))
    }

    /// When it was cancelled, if it was.
    pub fn cancelled_at(self) -> Option<u64> {
        (self != BookingStatus::CONFIRMED).then_some(self.0)
    }

    pub fn is_confirmed(self) -> bool {
        self == BookingStatus::CONFIRMED
    }
}

impl std::fmt::Debug for BookingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cancelled_at() {
            None => f.write_str("Confirmed"),
            Some(at_ms) => write!(f, "Cancelled {{ at_ms: {at_ms} }}"),
        }
    }
}

/// Longest email address a booking keeps (RFC 5321's path limit).
pub const EMAIL_LEN_MAX: usize = 254;

/// Longest fan id (a token's `sub`): what holds, bookings and snapshots
/// may name.
pub const FAN_ID_LEN_MAX: usize = 128;

/// Longest payment reference a booking keeps.
pub const PAYMENT_REF_LEN_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booking {
    pub seq: u64,
    pub secret: u64,
    pub hold_seq: u64,
    /// The fan whose hold this booking confirmed.
    pub fan: FanId,
    pub claim: Claim,
    /// Where its emails go, in which language, and what paid for it.
    pub texts: BookingTexts,
    pub confirmed_at_ms: u64,
    pub status: BookingStatus,
}

impl Booking {
    pub fn email(&self) -> &str {
        self.texts.email()
    }

    /// The language of its emails.
    pub fn lang(&self) -> Lang {
        self.texts.lang
    }

    pub fn payment_ref(&self) -> &str {
        self.texts.payment_ref()
    }
}

/// A booking's email address and payment reference, one after the other
/// in one allocation, and the language of its emails: 24 bytes and one
/// malloc chunk, where two boxed strings took 32 bytes and two chunks.
#[derive(Clone, PartialEq, Eq)]
pub struct BookingTexts {
    text: Box<str>,
    email_len: u32,
    pub lang: Lang,
}

impl BookingTexts {
    pub fn new(email: &str, lang: Lang, payment_ref: &str) -> BookingTexts {
        let mut text = String::with_capacity(email.len() + payment_ref.len());
        text.push_str(email);
        text.push_str(payment_ref);
        BookingTexts {
            text: text.into_boxed_str(),
            // Emails are at most `EMAIL_LEN_MAX` bytes wherever they come
            // from; past 4 GiB the split would fall short, never panic.
            email_len: u32::try_from(email.len()).unwrap_or(u32::MAX),
            lang,
        }
    }

    fn split(&self) -> usize {
        let at = (self.email_len as usize).min(self.text.len());
        if self.text.is_char_boundary(at) {
            at
        } else {
            self.text.len()
        }
    }

    pub fn email(&self) -> &str {
        &self.text[..self.split()]
    }

    pub fn payment_ref(&self) -> &str {
        &self.text[self.split()..]
    }
}

impl std::fmt::Debug for BookingTexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingTexts")
            .field("email", &self.email())
            .field("lang", &self.lang)
            .field("payment_ref", &self.payment_ref())
            .finish()
    }
}

/// Where a booking's emails go, and in which language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressee {
    pub email: String,
    pub lang: Lang,
}

impl From<&str> for Addressee {
    /// In English.
    fn from(email: &str) -> Addressee {
        Addressee::from(email.to_owned())
    }
}

impl From<String> for Addressee {
    /// In English.
    fn from(email: String) -> Addressee {
        Addressee {
            email,
            lang: Lang::En,
        }
    }
}

/// A booking as read, with when each of its places checked in (by
/// place, from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRead {
    pub booking: Arc<Booking>,
    pub checked_in: Vec<Option<u64>>,
}

/// Places a change gives to or takes from a fan ([`Section::places_moved`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacesMoved {
    Taken { fan: FanId, places: u32 },
    Freed { fan: FanId, places: u32 },
}

/// How a hold ended; remembered (bounded) so later requests get the right
/// answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    Released,
    Expired,
    Confirmed { booking: u64 },
}

/// The whole state of a section, as a snapshot keeps it; see
/// [`Section::parts`] and [`Section::from_parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionParts {
    pub next_hold: u64,
    pub next_booking: u64,
    pub holds: Vec<Hold>,
    pub bookings: Vec<Booking>,
    /// (hold, the low 32 bits of its secret masked by its fan's
    /// [`fan_tag`] (all a section keeps, [`ended_check`]), how it
    /// ended), oldest first.
    pub ended: Vec<(u64, u64, HoldEnd)>,
    /// Tickets checked in: (booking, place from 1, when), in that order.
    pub check_ins: Vec<(u64, u32, u64)>,
}

/// Everything that can happen to a section. A `Change` is decided once,
/// written to the journal, and applied both live and on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    HoldCreated {
        hold: u64,
        secret: u64,
        fan: FanId,
        claim: Claim,
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
        lang: Lang,
        payment_ref: String,
        at_ms: u64,
    },
    BookingCancelled {
        booking: u64,
        at_ms: u64,
    },
    /// A door scanned the ticket of place `place` (from 1) of `booking`.
    TicketCheckedIn {
        booking: u64,
        place: u32,
        at_ms: u64,
    },
}

/// What a change leaves for whoever asked for it (see [`Section::outcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Held(Hold),
    Released,
    /// The new booking.
    Confirmed(Arc<Booking>),
    /// The booking, now cancelled.
    Cancelled(Arc<Booking>),
    /// A ticket of the booking checked in: its place (from 1), and when.
    CheckedIn {
        booking: Arc<Booking>,
        place: u32,
        at_ms: u64,
    },
}

/// A hold as its fan may read it: live, or confirmed into a booking (the
/// hold's history; a released or expired hold is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldView {
    Live(Hold),
    Confirmed {
        hold: u64,
        secret: u64,
        booking: Arc<Booking>,
    },
}

/// Why a command was refused. Every variant is the client's business (a 4xx
/// at the HTTP edge), never a fault of the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("a hold needs at least one seat")]
    Empty,
    #[error("at most {max} seats per hold")]
    TooMany { max: u32 },
    #[error("seat listed twice")]
    DuplicateSeat(u32),
    #[error("seats are not free")]
    SeatsUnavailable(Vec<u32>),
    #[error("no {wanted} adjacent seats are free; the largest free block has {largest}")]
    NoAdjacentBlock { wanted: u32, largest: u32 },
    #[error("only {available} places are free")]
    NotEnoughPlaces { wanted: u32, available: u32 },
    #[error("this is a standing section: ask for a quantity, not seats")]
    StandingSection,
    #[error("hold not found")]
    HoldNotFound,
    #[error("hold expired")]
    HoldExpired,
    #[error("hold was released")]
    HoldReleased,
    #[error("hold was already confirmed")]
    HoldConfirmed { booking: u64, booking_secret: u64 },
    #[error("booking not found")]
    BookingNotFound,
    #[error("booking already cancelled")]
    BookingCancelled,
    /// The fan owns `owned` places of the event (held or booked, in any
    /// section): this hold would take it past `limit`.
    #[error("a fan may own at most {limit} places of this event; you own {owned}")]
    FanLimitReached { limit: u32, owned: u32 },
    /// The receipt pays another amount than the hold's total.
    #[error("the receipt pays {paid}, the hold costs {due}")]
    WrongAmount { due: u64, paid: u64 },
    #[error("the receipt pays in {paid}, the event sells in {due}")]
    WrongCurrency { due: String, paid: String },
    /// The receipt's payment reference booked before.
    #[error("this payment has already been used for a booking")]
    PaymentAlreadyUsed,
    /// No booking has the place a ticket names.
    #[error("no such ticket")]
    TicketNotFound,
    /// The ticket's booking was cancelled: the ticket is void.
    #[error("the ticket's booking was cancelled")]
    TicketCancelled,
    #[error("the ticket was already checked in")]
    AlreadyCheckedIn { at_ms: u64 },
    /// A fan's cancel of a booking whose ticket was used at the door.
    #[error("a ticket of this booking was used at the door")]
    BookingUsed,
}

/// A change that does not fit the state it is applied to. Live, that is a
/// bug (decide and apply disagree); on replay, a journal that does not
/// belong to this layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("change does not apply: {0}")]
pub struct ApplyError(pub String);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CategoryCounts {
    pub free: u32,
    pub held: u32,
    pub sold: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SectionCounts {
    pub total: CategoryCounts,
    /// Indexed by the event's category index.
    pub by_category: Vec<CategoryCounts>,
}

/// The state of one seat: one byte, since a stadium has a million of
/// them. Which hold or booking owns a held or sold seat is written in the
/// hold or booking (its claim), not here: nothing on a hot path asks, and
/// `check_invariants` proves the two agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Place {
    Free,
    Held,
    Sold,
}

/// One step of a place's life; see `Section::move_places`.
#[derive(Debug, Clone, Copy)]
enum Move {
    Hold,
    Unhold,
    Sell,
    Cancel,
}

impl std::ops::AddAssign for CategoryCounts {
    fn add_assign(&mut self, other: CategoryCounts) {
        self.free += other.free;
        self.held += other.held;
        self.sold += other.sold;
    }
}

impl std::iter::Sum for CategoryCounts {
    fn sum<I: Iterator<Item = CategoryCounts>>(iter: I) -> CategoryCounts {
        iter.fold(CategoryCounts::default(), |mut total, c| {
            total += c;
            total
        })
    }
}

impl CategoryCounts {
    /// Every place, whatever its state.
    pub fn capacity(&self) -> u32 {
        self.free + self.held + self.sold
    }

    fn slot(&mut self, p: Place) -> &mut u32 {
        match p {
            Place::Free => &mut self.free,
            Place::Held => &mut self.held,
            Place::Sold => &mut self.sold,
        }
    }
}

#[derive(Debug)]
enum Places {
    Seated {
        /// One per seat of the map, in seat order.
        owner: Vec<Place>,
        /// Free seats per row, so best-available skips full rows at once.
        row_free: Vec<u32>,
    },
    Standing {
        held: u32,
        sold: u32,
    },
}

/// Slots per chunk of the tombstone window (4 KiB): the window grows and
/// drops a chunk at a time, so it costs 8 bytes a hold and at most one
/// chunk of slack, where a ring that doubles would keep up to twice that.
const TOMBSTONE_CHUNK: usize = 512;

type TombstoneChunk = Box<[(u32, u32); TOMBSTONE_CHUNK]>;

/// What an ended hold keeps of its secret, masked by its fan's tag: the
/// low 32 bits. Enough, since only the fan who held it (its token) ever
/// gets an answer, and only with the hold's number and this check: a
/// fan guessing their own hold's check learns, at odds of 2^-32 a try,
/// how a hold of theirs ended.
pub fn ended_check(secret: u64, fan: &str) -> u64 {
    u64::from((secret ^ fan_tag(fan)) as u32)
}

/// How the holds numbered `first..first + len` ended: a window over at
/// least the last `HOLD_TOMBSTONES_MAX` hold numbers (and fewer than
/// `TOMBSTONE_CHUNK` more), one 8-byte slot each, found by subtraction.
#[derive(Debug, Default)]
struct Tombstones {
    /// A multiple of `TOMBSTONE_CHUNK`.
    first: u64,
    len: usize,
    /// ([`ended_check`], `end_code`) by hold number from `first`; the
    /// last chunk may be partly used.
    chunks: VecDeque<TombstoneChunk>,
}

/// A hold's end as one number: 0 not ended (live, or never known),
/// 1 released, 2 expired, 3 + n confirmed as booking n, and
/// `CONFIRMED_FAR` confirmed as a booking numbered past what 32 bits
/// hold (never in a sale: each booking takes a seat), found by its hold.
fn end_code(end: HoldEnd) -> u32 {
    match end {
        HoldEnd::Released => 1,
        HoldEnd::Expired => 2,
        HoldEnd::Confirmed { booking } => u32::try_from(booking)
            .ok()
            .and_then(|b| b.checked_add(3))
            .filter(|&c| c != CONFIRMED_FAR)
            .unwrap_or(CONFIRMED_FAR),
    }
}

const CONFIRMED_FAR: u32 = u32::MAX;

/// How a hold ended, from its code; `None` for a hold not ended, and
/// `Some(Err(()))` for one confirmed as a booking to look up by hold.
fn end_of(code: u32) -> Option<Result<HoldEnd, ()>> {
    match code {
        0 => None,
        1 => Some(Ok(HoldEnd::Released)),
        2 => Some(Ok(HoldEnd::Expired)),
        CONFIRMED_FAR => Some(Err(())),
        n => Some(Ok(HoldEnd::Confirmed {
            booking: u64::from(n - 3),
        })),
    }
}

impl Tombstones {
    /// The window live operation leaves once holds `0..next` were
    /// created, with no end known.
    fn before(next: u64) -> Tombstones {
        let first = next.saturating_sub(HOLD_TOMBSTONES_MAX as u64) / TOMBSTONE_CHUNK as u64
            * TOMBSTONE_CHUNK as u64;
        let len = (next - first) as usize;
        Tombstones {
            first,
            len,
            chunks: (0..len.div_ceil(TOMBSTONE_CHUNK))
                .map(|_| Box::new([(0, 0); TOMBSTONE_CHUNK]))
                .collect(),
        }
    }

    /// Makes room for hold `seq`, the next one; forgets the oldest chunk
    /// once the window is a chunk longer than it needs to be.
    fn created(&mut self, seq: u64) {
        debug_assert_eq!(seq, self.first + self.len as u64);
        if self.len.is_multiple_of(TOMBSTONE_CHUNK) {
            self.chunks.push_back(Box::new([(0, 0); TOMBSTONE_CHUNK]));
        }
        self.len += 1;
        if self.len >= HOLD_TOMBSTONES_MAX + TOMBSTONE_CHUNK {
            self.chunks.pop_front();
            self.first += TOMBSTONE_CHUNK as u64;
            self.len -= TOMBSTONE_CHUNK;
        }
    }

    fn index(&self, seq: u64) -> Option<usize> {
        let i = usize::try_from(seq.checked_sub(self.first)?).ok()?;
        (i < self.len).then_some(i)
    }

    fn slot(&mut self, seq: u64) -> Option<&mut (u32, u32)> {
        let i = self.index(seq)?;
        Some(&mut self.chunks[i / TOMBSTONE_CHUNK][i % TOMBSTONE_CHUNK])
    }

    /// The check and end code of hold `seq`, if it ended.
    fn ended(&self, seq: u64) -> Option<(u64, Result<HoldEnd, ()>)> {
        let i = self.index(seq)?;
        let (check, code) = self.chunks[i / TOMBSTONE_CHUNK][i % TOMBSTONE_CHUNK];
        Some((u64::from(check), end_of(code)?))
    }

    /// (seq, check, end code) of every remembered end, by hold number.
    fn iter(&self) -> impl Iterator<Item = (u64, u64, Result<HoldEnd, ()>)> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .take(self.len)
            .zip(self.first..)
            .filter_map(|(&(check, code), seq)| Some((seq, u64::from(check), end_of(code)?)))
    }
}

#[derive(Debug)]
pub struct Section {
    layout: Arc<SectionLayout>,
    limits: Limits,
    places: Places,
    holds: FxHashMap<u64, Hold>,
    /// Every booking ever made here, by number (a booking is never
    /// removed; a cancelled one stays, cancelled). Shared with the emails
    /// the outbox owes for them, so a pending email costs no copy.
    bookings: Vec<Arc<Booking>>,
    /// How recent holds ended.
    ended: Tombstones,
    /// Min-heap of (expires_at_ms, hold seq). Entries of holds that ended
    /// otherwise stay until they surface and are skipped (lazy deletion),
    /// or until there are too many (`EXPIRIES_STALE_MAX`) and the heap is
    /// rebuilt from the live holds.
    expiries: BinaryHeap<Reverse<(u64, u64)>>,
    next_hold: u64,
    next_booking: u64,
    counts: Vec<CategoryCounts>,
    /// When each ticket checked in, by (booking, place from 1).
    check_ins: FxHashMap<(u64, u32), u64>,
}

impl Section {
    pub fn new(layout: Arc<SectionLayout>, limits: Limits) -> Section {
        assert!(limits.seats_per_hold_max >= 1);
        let mut counts = vec![CategoryCounts::default(); usize::from(layout.category_count)];
        let places = match &layout.kind {
            SectionKind::Seated(map) => {
                for row in &map.rows {
                    counts[usize::from(row.category)].free += row.len;
                }
                Places::Seated {
                    owner: vec![Place::Free; map.len() as usize],
                    row_free: map.rows.iter().map(|r| r.len).collect(),
                }
            }
            SectionKind::Standing {
                capacity, category, ..
            } => {
                counts[usize::from(*category)].free = *capacity;
                Places::Standing { held: 0, sold: 0 }
            }
        };
        Section {
            layout,
            limits,
            places,
            holds: FxHashMap::default(),
            bookings: Vec::new(),
            ended: Tombstones::default(),
            expiries: BinaryHeap::new(),
            next_hold: 0,
            next_booking: 0,
            counts,
            check_ins: FxHashMap::default(),
        }
    }

    pub fn layout(&self) -> &Arc<SectionLayout> {
        &self.layout
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn hold(&self, seq: u64) -> Option<&Hold> {
        self.holds.get(&seq)
    }

    pub fn booking(&self, seq: u64) -> Option<&Booking> {
        self.booking_shared(seq).map(|b| &**b)
    }

    /// A booking as the shared value the outbox keeps for its emails.
    pub fn booking_shared(&self, seq: u64) -> Option<&Arc<Booking>> {
        self.bookings.get(usize::try_from(seq).ok()?)
    }

    pub fn holds(&self) -> impl Iterator<Item = &Hold> {
        self.holds.values()
    }

    /// By number.
    pub fn bookings(&self) -> impl Iterator<Item = &Booking> {
        self.bookings.iter().map(|b| &**b)
    }

    pub fn counts(&self) -> SectionCounts {
        SectionCounts {
            total: self.counts.iter().copied().sum(),
            by_category: self.counts.clone(),
        }
    }

    /// What `change`, just applied, leaves for whoever asked for it: the
    /// substance of its answer, live and on replay alike. `None` for an
    /// expiry (nobody asked) or a change this section did not just apply.
    pub fn outcome(&self, change: &Change) -> Option<Outcome> {
        match change {
            Change::HoldCreated { hold, .. } => self.hold(*hold).cloned().map(Outcome::Held),
            Change::HoldReleased { .. } => Some(Outcome::Released),
            Change::HoldExpired { .. } => None,
            Change::HoldConfirmed { booking, .. } => self
                .booking_shared(*booking)
                .cloned()
                .map(Outcome::Confirmed),
            Change::BookingCancelled { booking, .. } => self
                .booking_shared(*booking)
                .cloned()
                .map(Outcome::Cancelled),
            Change::TicketCheckedIn {
                booking,
                place,
                at_ms,
            } => self.booking_shared(*booking).map(|b| Outcome::CheckedIn {
                booking: Arc::clone(b),
                place: *place,
                at_ms: *at_ms,
            }),
        }
    }

    /// A booking `by` may see (see [`Section::find_booking`]), with when
    /// each of its places checked in.
    pub fn read_booking(
        &self,
        seq: u64,
        secret: u64,
        by: &Caller,
    ) -> Result<BookingRead, CommandError> {
        let b = self.find_booking(seq, secret, by)?;
        Ok(BookingRead {
            checked_in: (1..=b.claim.count())
                .map(|place| self.checked_in(seq, place))
                .collect(),
            booking: Arc::clone(b),
        })
    }

    /// When place `place` (from 1) of `booking` checked in, if it has.
    pub fn checked_in(&self, booking: u64, place: u32) -> Option<u64> {
        self.check_ins.get(&(booking, place)).copied()
    }

    /// One character per seat, in seat order: `f` free, `h` held, `s` sold.
    /// Empty for a standing section. This is what a seat map draws.
    pub fn seat_states(&self) -> String {
        match &self.places {
            Places::Seated { owner, .. } => owner
                .iter()
                .map(|o| match o {
                    Place::Free => 'f',
                    Place::Held => 'h',
                    Place::Sold => 's',
                })
                .collect(),
            Places::Standing { .. } => String::new(),
        }
    }

    // ---- decide: validate a command, return the change it makes ----

    /// Hold the given seats (indices into the seat map), all or none,
    /// for `fan`.
    pub fn decide_hold_seats(
        &self,
        seats: &[u32],
        fan: &FanId,
        now_ms: u64,
        secret: u64,
    ) -> Result<Change, CommandError> {
        let Places::Seated { owner, .. } = &self.places else {
            return Err(CommandError::StandingSection);
        };
        self.check_count(seats.len())?;
        let mut sorted: Vec<u32> = seats.to_vec();
        sorted.sort_unstable();
        if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
            return Err(CommandError::DuplicateSeat(w[0]));
        }
        let taken: Vec<u32> = seats
            .iter()
            .copied()
            .filter(|&s| owner[s as usize] != Place::Free)
            .collect();
        if !taken.is_empty() {
            return Err(CommandError::SeatsUnavailable(taken));
        }
        Ok(self.hold_created(Claim::Seats(seats.into()), fan, now_ms, secret))
    }

    /// Hold `quantity` places: the best `quantity` adjacent seats of one row
    /// (nearest the stage first, then nearest the middle of the row) in a
    /// seated section, or `quantity` places in a standing section. A group
    /// is never split: when no block is large enough the error names the
    /// largest block still free.
    pub fn decide_hold_best(
        &self,
        quantity: u32,
        fan: &FanId,
        now_ms: u64,
        secret: u64,
    ) -> Result<Change, CommandError> {
        self.check_count(quantity as usize)?;
        let claim = match &self.places {
            Places::Seated { .. } => Claim::Seats(self.best_block(quantity)?),
            Places::Standing { held, sold } => {
                let available = self.layout.capacity() - held - sold;
                if quantity > available {
                    return Err(CommandError::NotEnoughPlaces {
                        wanted: quantity,
                        available,
                    });
                }
                Claim::Quantity(quantity)
            }
        };
        Ok(self.hold_created(claim, fan, now_ms, secret))
    }

    pub fn decide_release(
        &self,
        hold: u64,
        secret: u64,
        fan: &str,
        now_ms: u64,
    ) -> Result<Change, CommandError> {
        self.live_hold(hold, secret, fan)?;
        Ok(Change::HoldReleased {
            hold,
            at_ms: now_ms,
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn decide_confirm(
        &self,
        hold: u64,
        secret: u64,
        fan: &str,
        to: Addressee,
        payment_ref: String,
        now_ms: u64,
        booking_secret: u64,
    ) -> Result<Change, CommandError> {
        let h = self.live_hold(hold, secret, fan)?;
        // The actor expires due holds before every command; this is the
        // belt to those braces, for a caller that did not.
        if now_ms >= h.expires_at_ms {
            return Err(CommandError::HoldExpired);
        }
        Ok(Change::HoldConfirmed {
            hold,
            booking: self.next_booking,
            secret: booking_secret,
            email: to.email,
            lang: to.lang,
            payment_ref,
            at_ms: now_ms,
        })
    }

    pub fn decide_cancel(
        &self,
        booking: u64,
        secret: u64,
        by: &Caller,
        now_ms: u64,
    ) -> Result<Change, CommandError> {
        let b = self.find_booking(booking, secret, by)?;
        if b.status != BookingStatus::CONFIRMED {
            return Err(CommandError::BookingCancelled);
        }
        // A ticket used at the door: its seat is taken tonight, so the fan
        // cannot hand it back for resale. Support may still cancel.
        let used = (1..=b.claim.count()).any(|p| self.checked_in(booking, p).is_some());
        if used && matches!(by, Caller::Fan(_)) {
            return Err(CommandError::BookingUsed);
        }
        Ok(Change::BookingCancelled {
            booking,
            at_ms: now_ms,
        })
    }

    /// Check in the ticket of place `place` (from 1) of `booking`. A
    /// ticket names its seat too (`seat`, an index into the seat map):
    /// it must be that place's, or the ticket is not this booking's.
    pub fn decide_check_in(
        &self,
        booking: u64,
        place: u32,
        seat: Option<u32>,
        binding: TicketBinding,
        now_ms: u64,
    ) -> Result<Change, CommandError> {
        let b = self.booking(booking).ok_or(CommandError::TicketNotFound)?;
        let this_booking = match binding {
            TicketBinding::Booking(tag) => booking_tag(b.secret) == tag,
            TicketBinding::Unbound {
                confirmed_before_ms,
            } => b.confirmed_at_ms < confirmed_before_ms,
        };
        if !this_booking {
            // A ticket of a booking that had this number in another life
            // of the data (a lost booking, a reused event id).
            return Err(CommandError::TicketNotFound);
        }
        let fits = match (&b.claim, seat) {
            (Claim::Seats(seats), Some(seat)) => {
                place >= 1 && seats.get(place as usize - 1) == Some(&seat)
            }
            (Claim::Quantity(n), None) => (1..=*n).contains(&place),
            _ => false,
        };
        if !fits {
            return Err(CommandError::TicketNotFound);
        }
        if !b.status.is_confirmed() {
            return Err(CommandError::TicketCancelled);
        }
        if let Some(at_ms) = self.checked_in(booking, place) {
            return Err(CommandError::AlreadyCheckedIn { at_ms });
        }
        Ok(Change::TicketCheckedIn {
            booking,
            place,
            at_ms: now_ms,
        })
    }

    /// Whether `place` (from 1) is a place of booking `b`.
    fn has_place(b: &Booking, place: u32) -> bool {
        (1..=b.claim.count()).contains(&place)
    }

    // ---- places per fan: what the event's fan limit counts ----

    /// The places each hold and live booking of the section gives its fan,
    /// one entry per hold or booking.
    pub fn places_by_fan(&self) -> impl Iterator<Item = (&FanId, u32)> {
        let held = self.holds.values().map(|h| (&h.fan, h.claim.count()));
        let booked = self
            .bookings
            .iter()
            .filter(|b| b.status == BookingStatus::CONFIRMED)
            .map(|b| (&b.fan, b.claim.count()));
        held.chain(booked)
    }

    /// The places `change` gives a fan (a new hold), or, asked before it
    /// is applied, takes back from one (a hold released or expired, a
    /// booking cancelled). A confirmation moves places from a hold to a
    /// booking of the same fan: none.
    pub fn places_moved(&self, change: &Change) -> Option<PlacesMoved> {
        match change {
            Change::HoldCreated { fan, claim, .. } => Some(PlacesMoved::Taken {
                fan: Arc::clone(fan),
                places: claim.count(),
            }),
            Change::HoldReleased { hold, .. } | Change::HoldExpired { hold, .. } => {
                let h = self.holds.get(hold)?;
                Some(PlacesMoved::Freed {
                    fan: Arc::clone(&h.fan),
                    places: h.claim.count(),
                })
            }
            Change::BookingCancelled { booking, .. } => {
                let b = self.booking(*booking)?;
                Some(PlacesMoved::Freed {
                    fan: Arc::clone(&b.fan),
                    places: b.claim.count(),
                })
            }
            Change::HoldConfirmed { .. } | Change::TicketCheckedIn { .. } => None,
        }
    }

    /// The holds whose time has come, as `HoldExpired` changes to journal
    /// and apply. Takes `&mut self` only to drop stale heap entries.
    pub fn decide_expiries(&mut self, now_ms: u64, max: usize) -> Vec<Change> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&Reverse((at, seq))) = self.expiries.peek() else {
                break;
            };
            if at > now_ms {
                break;
            }
            self.expiries.pop();
            if self.holds.get(&seq).is_some_and(|h| h.expires_at_ms == at) {
                due.push(Change::HoldExpired {
                    hold: seq,
                    at_ms: now_ms,
                });
            }
        }
        due
    }

    /// `fan`'s live hold by seq and secret, or why there is none. Another
    /// fan's hold is not found, exactly as one that does not exist.
    pub fn find_hold(&self, seq: u64, secret: u64, fan: &str) -> Result<&Hold, CommandError> {
        self.live_hold(seq, secret, fan)
    }

    /// `fan`'s hold as it may read it: live, or the booking it became
    /// (while the section remembers how the hold ended). A released or
    /// expired hold is refused as gone, another fan's as not found.
    pub fn hold_view(&self, seq: u64, secret: u64, fan: &str) -> Result<HoldView, CommandError> {
        match self.live_hold(seq, secret, fan) {
            Ok(h) => Ok(HoldView::Live(h.clone())),
            Err(CommandError::HoldConfirmed { booking, .. }) => {
                let booking = self
                    .booking_shared(booking)
                    .ok_or(CommandError::HoldNotFound)?;
                Ok(HoldView::Confirmed {
                    hold: seq,
                    secret,
                    booking: Arc::clone(booking),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// A booking by seq and secret, if `by` may see it (its fan, or
    /// support); otherwise not found, as one that does not exist.
    pub fn find_booking(
        &self,
        seq: u64,
        secret: u64,
        by: &Caller,
    ) -> Result<&Arc<Booking>, CommandError> {
        match self.booking_shared(seq) {
            Some(b) if b.secret == secret && by.may_see(&b.fan) => Ok(b),
            _ => Err(CommandError::BookingNotFound),
        }
    }

    /// How hold `seq` ended, its code read: a booking number past 32
    /// bits is found by its hold (`from_parts` checked it is there).
    fn end(&self, seq: u64, end: Result<HoldEnd, ()>) -> HoldEnd {
        end.unwrap_or_else(|()| {
            let booking = self.bookings.iter().rev().find(|b| b.hold_seq == seq);
            debug_assert!(booking.is_some(), "hold {seq} confirmed as a booking");
            HoldEnd::Confirmed {
                booking: booking.map_or(u64::MAX, |b| b.seq),
            }
        })
    }

    fn live_hold(&self, seq: u64, secret: u64, fan: &str) -> Result<&Hold, CommandError> {
        if let Some(h) = self.holds.get(&seq) {
            if h.secret == secret && &*h.fan == fan {
                return Ok(h);
            }
            return Err(CommandError::HoldNotFound);
        }
        match self.ended.ended(seq) {
            Some((check, end)) if check == ended_check(secret, fan) => {
                Err(match self.end(seq, end) {
                    HoldEnd::Released => CommandError::HoldReleased,
                    HoldEnd::Expired => CommandError::HoldExpired,
                    HoldEnd::Confirmed { booking } => CommandError::HoldConfirmed {
                        booking,
                        booking_secret: self.booking(booking).map_or(0, |b| b.secret),
                    },
                })
            }
            _ => Err(CommandError::HoldNotFound),
        }
    }

    fn check_count(&self, n: usize) -> Result<(), CommandError> {
        if n == 0 {
            return Err(CommandError::Empty);
        }
        if n > self.limits.seats_per_hold_max as usize {
            return Err(CommandError::TooMany {
                max: self.limits.seats_per_hold_max,
            });
        }
        Ok(())
    }

    fn hold_created(&self, claim: Claim, fan: &FanId, now_ms: u64, secret: u64) -> Change {
        Change::HoldCreated {
            hold: self.next_hold,
            secret,
            fan: Arc::clone(fan),
            claim,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(self.limits.hold_ttl_ms),
        }
    }

    fn best_block(&self, n: u32) -> Result<Seats, CommandError> {
        let (SectionKind::Seated(map), Places::Seated { owner, row_free }) =
            (&self.layout.kind, &self.places)
        else {
            unreachable!("seated places belong to a seated layout")
        };
        let mut largest = 0;
        for (ri, row) in map.rows.iter().enumerate() {
            if row_free[ri] < n {
                // A row cannot hold a block longer than its free seats:
                // only walk it when that could raise `largest` (a full
                // row, the common case in a sale, costs nothing).
                if row_free[ri] > largest {
                    largest = largest.max(longest_run(owner, row.first, row.len));
                }
                continue;
            }
            // Doubled coordinates keep the centre arithmetic in integers.
            let centre2 = i64::from(row.len) - 1;
            let mut best: Option<(i64, u32)> = None; // (distance, start)
            let mut run_start = None;
            for i in 0..=row.len {
                let free = i < row.len && owner[(row.first + i) as usize] == Place::Free;
                match (free, run_start) {
                    (true, None) => run_start = Some(i),
                    (false, Some(a)) => {
                        run_start = None;
                        let len = i - a;
                        largest = largest.max(len);
                        if len < n {
                            continue;
                        }
                        let ideal = (centre2 - i64::from(n - 1)).div_euclid(2);
                        let start = ideal.clamp(i64::from(a), i64::from(i - n));
                        let distance = (2 * start + i64::from(n - 1) - centre2).abs();
                        if best.is_none_or(|(d, _)| distance < d) {
                            best = Some((distance, start as u32));
                        }
                    }
                    _ => {}
                }
            }
            if let Some((_, start)) = best {
                return Ok((0..n).map(|k| row.first + start + k).collect());
            }
        }
        Err(CommandError::NoAdjacentBlock { wanted: n, largest })
    }

    // ---- parts: the whole state, for snapshots ----

    /// Everything needed to rebuild this section exactly, in a canonical
    /// order (holds, bookings and ended holds by number).
    pub fn parts(&self) -> SectionParts {
        let mut holds: Vec<Hold> = self.holds.values().cloned().collect();
        holds.sort_by_key(|h| h.seq);
        let bookings: Vec<Booking> = self.bookings().cloned().collect();
        let ended = self
            .ended
            .iter()
            .map(|(seq, check, end)| (seq, check, self.end(seq, end)))
            .collect();
        let mut check_ins: Vec<(u64, u32, u64)> = self
            .check_ins
            .iter()
            .map(|(&(b, p), &at)| (b, p, at))
            .collect();
        check_ins.sort_unstable();
        SectionParts {
            next_hold: self.next_hold,
            next_booking: self.next_booking,
            holds,
            bookings,
            ended,
            check_ins,
        }
    }

    /// Rebuilds a section from `parts`, which may come from a file: every
    /// claim is checked (seats exist, are not listed twice and have one
    /// owner; standing places fit) and an inconsistent state is an error,
    /// never a panic.
    pub fn from_parts(
        layout: Arc<SectionLayout>,
        limits: Limits,
        parts: SectionParts,
    ) -> Result<Section, ApplyError> {
        let mut s = Section::new(layout, limits);
        let check_claim = |s: &Section, claim: &Claim, what: &str| -> Result<(), ApplyError> {
            s.check_claim_free(claim)
                .map_err(|e| ApplyError(format!("{what}: {}", e.0)))
        };
        if parts.bookings.len() as u64 != parts.next_booking {
            return Err(ApplyError(format!(
                "{} bookings, numbered up to {}",
                parts.bookings.len(),
                parts.next_booking
            )));
        }
        for (i, b) in parts.bookings.into_iter().enumerate() {
            if b.seq != i as u64 {
                return Err(ApplyError(format!("booking {} is out of sequence", b.seq)));
            }
            if b.status == BookingStatus::CONFIRMED {
                check_claim(&s, &b.claim, &format!("booking {}", b.seq))?;
                s.move_places(&b.claim, Move::Hold);
                s.move_places(&b.claim, Move::Sell);
            }
            s.bookings.push(Arc::new(b));
        }
        for h in parts.holds {
            if h.seq >= parts.next_hold || s.holds.contains_key(&h.seq) {
                return Err(ApplyError(format!("hold {} is out of sequence", h.seq)));
            }
            check_claim(&s, &h.claim, &format!("hold {}", h.seq))?;
            s.move_places(&h.claim, Move::Hold);
            s.expiries.push(Reverse((h.expires_at_ms, h.seq)));
            s.holds.insert(h.seq, h);
        }
        if parts.ended.len() >= HOLD_TOMBSTONES_MAX + TOMBSTONE_CHUNK {
            return Err(ApplyError("too many ended holds".into()));
        }
        // The window over the last hold numbers, as live operation leaves
        // it; ends older than the window (which only a snapshot of an
        // older version can hold) are forgotten, as they would have been.
        s.ended = Tombstones::before(parts.next_hold);
        for (seq, secret, end) in parts.ended {
            if seq >= parts.next_hold || s.holds.contains_key(&seq) {
                return Err(ApplyError(format!("ended hold {seq} is out of sequence")));
            }
            if let Some(slot) = s.ended.slot(seq) {
                if slot.1 != 0 {
                    return Err(ApplyError(format!("hold {seq} ended twice")));
                }
                *slot = (secret as u32, end_code(end));
                if slot.1 == CONFIRMED_FAR
                    && !s
                        .bookings
                        .iter()
                        .any(|b| b.hold_seq == seq && end == HoldEnd::Confirmed { booking: b.seq })
                {
                    return Err(ApplyError(format!(
                        "hold {seq} ended in a booking it did not make"
                    )));
                }
            }
        }
        for (booking, place, at_ms) in parts.check_ins {
            let known = s
                .booking(booking)
                .is_some_and(|b| Self::has_place(b, place));
            if !known {
                return Err(ApplyError(format!(
                    "check-in of place {place} of booking {booking}, which does not have it"
                )));
            }
            if s.check_ins.insert((booking, place), at_ms).is_some() {
                return Err(ApplyError(format!(
                    "place {place} of booking {booking} checked in twice"
                )));
            }
        }
        s.next_hold = parts.next_hold;
        s.next_booking = parts.next_booking;
        #[cfg(debug_assertions)]
        s.check_invariants();
        Ok(s)
    }

    // ---- apply: the one place state changes ----

    pub fn apply(&mut self, change: &Change) -> Result<(), ApplyError> {
        let result = self.apply_inner(change);
        #[cfg(debug_assertions)]
        self.check_invariants();
        result
    }

    fn apply_inner(&mut self, change: &Change) -> Result<(), ApplyError> {
        match change {
            Change::HoldCreated {
                hold,
                secret,
                fan,
                claim,
                created_at_ms,
                expires_at_ms,
            } => {
                if *hold != self.next_hold {
                    return Err(ApplyError(format!(
                        "hold {hold} is out of sequence (the next is {})",
                        self.next_hold
                    )));
                }
                self.check_claim_free(claim)?;
                self.move_places(claim, Move::Hold);
                self.holds.insert(
                    *hold,
                    Hold {
                        seq: *hold,
                        secret: *secret,
                        fan: Arc::clone(fan),
                        claim: claim.clone(),
                        created_at_ms: *created_at_ms,
                        expires_at_ms: *expires_at_ms,
                    },
                );
                self.expiries.push(Reverse((*expires_at_ms, *hold)));
                self.ended.created(*hold);
                self.next_hold = hold + 1;
            }
            Change::HoldReleased { hold, .. } | Change::HoldExpired { hold, .. } => {
                let h = self
                    .holds
                    .remove(hold)
                    .ok_or_else(|| ApplyError(format!("hold {hold} is not live")))?;
                self.move_places(&h.claim, Move::Unhold);
                let end = if matches!(change, Change::HoldReleased { .. }) {
                    HoldEnd::Released
                } else {
                    HoldEnd::Expired
                };
                self.remember_end(&h, end);
                self.compact_expiries();
            }
            Change::HoldConfirmed {
                hold,
                booking,
                secret,
                email,
                lang,
                payment_ref,
                at_ms,
            } => {
                if *booking != self.next_booking {
                    return Err(ApplyError(format!(
                        "booking {booking} is out of sequence (the next is {})",
                        self.next_booking
                    )));
                }
                let h = self
                    .holds
                    .remove(hold)
                    .ok_or_else(|| ApplyError(format!("hold {hold} is not live")))?;
                self.move_places(&h.claim, Move::Sell);
                self.remember_end(&h, HoldEnd::Confirmed { booking: *booking });
                self.bookings.push(Arc::new(Booking {
                    seq: *booking,
                    secret: *secret,
                    hold_seq: *hold,
                    fan: h.fan,
                    claim: h.claim,
                    texts: BookingTexts::new(email, *lang, payment_ref),
                    confirmed_at_ms: *at_ms,
                    status: BookingStatus::CONFIRMED,
                }));
                self.next_booking = booking + 1;
                self.compact_expiries();
            }
            Change::BookingCancelled { booking, at_ms } => {
                let b = usize::try_from(*booking)
                    .ok()
                    .and_then(|i| self.bookings.get_mut(i))
                    .filter(|b| b.status == BookingStatus::CONFIRMED)
                    .ok_or_else(|| ApplyError(format!("booking {booking} is not confirmed")))?;
                // An email still owed for the confirmation keeps the
                // booking as it was; this copies it only then.
                Arc::make_mut(b).status = BookingStatus::cancelled(*at_ms);
                let claim = b.claim.clone();
                self.move_places(&claim, Move::Cancel);
            }
            Change::TicketCheckedIn {
                booking,
                place,
                at_ms,
            } => {
                let b = self
                    .booking(*booking)
                    .filter(|b| b.status == BookingStatus::CONFIRMED && Self::has_place(b, *place))
                    .ok_or_else(|| {
                        ApplyError(format!(
                            "booking {booking} has no confirmed place {place} to check in"
                        ))
                    })?;
                let key = (b.seq, *place);
                if self.check_ins.contains_key(&key) {
                    return Err(ApplyError(format!(
                        "place {place} of booking {booking} is already checked in"
                    )));
                }
                self.check_ins.insert(key, *at_ms);
            }
        }
        Ok(())
    }

    /// Whether `claim` may move from free to held: within the hold limit,
    /// every seat exists, is free and is listed once (or the standing
    /// places fit). Changes come from the journal and snapshots too, so
    /// this is an error, never a panic.
    fn check_claim_free(&self, claim: &Claim) -> Result<(), ApplyError> {
        let max = self.limits.seats_per_hold_max;
        match (&self.places, claim) {
            (Places::Seated { owner, .. }, Claim::Seats(seats)) => {
                if seats.is_empty() || seats.len() > max as usize {
                    return Err(ApplyError(format!(
                        "a claim of {} seats (1..={max})",
                        seats.len()
                    )));
                }
                for (k, &s) in seats.iter().enumerate() {
                    if owner.get(s as usize) != Some(&Place::Free) {
                        return Err(ApplyError(format!("seat {s} is not free")));
                    }
                    if seats[..k].contains(&s) {
                        return Err(ApplyError(format!("seat {s} is claimed twice")));
                    }
                }
                Ok(())
            }
            (Places::Standing { held, sold }, Claim::Quantity(n)) => {
                if *n == 0 || *n > max || held + sold + n > self.layout.capacity() {
                    return Err(ApplyError(format!("{n} places are not free")));
                }
                Ok(())
            }
            _ => Err(ApplyError("claim does not match the section kind".into())),
        }
    }

    /// Moves the claimed places one step along free → held → sold → free,
    /// keeping every count in step. The caller has checked the move is
    /// legal; the assertions here catch a caller that did not.
    fn move_places(&mut self, claim: &Claim, mv: Move) {
        let (from, to) = match mv {
            Move::Hold => (Place::Free, Place::Held),
            Move::Unhold => (Place::Held, Place::Free),
            Move::Sell => (Place::Held, Place::Sold),
            Move::Cancel => (Place::Sold, Place::Free),
        };
        match (&mut self.places, &self.layout.kind) {
            (Places::Seated { owner, row_free }, SectionKind::Seated(map)) => {
                let Claim::Seats(seats) = claim else {
                    unreachable!("seated claims are seats")
                };
                // A claim's seats are mostly one row: look the row up
                // once, not per seat.
                let mut ri = map.row_of(seats[0]) as usize;
                for &s in seats.iter() {
                    let was = owner[s as usize];
                    assert_eq!(was, from, "seat {s}: {mv:?} from {was:?}");
                    let row = &map.rows[ri];
                    if !(row.first..row.first + row.len).contains(&s) {
                        ri = map.row_of(s) as usize;
                    }
                    let c = &mut self.counts[usize::from(map.rows[ri].category)];
                    *c.slot(from) -= 1;
                    *c.slot(to) += 1;
                    match (from, to) {
                        (Place::Free, _) => row_free[ri] -= 1,
                        (_, Place::Free) => row_free[ri] += 1,
                        _ => {}
                    }
                    owner[s as usize] = to;
                }
            }
            (Places::Standing { held, sold }, SectionKind::Standing { category, .. }) => {
                let Claim::Quantity(n) = *claim else {
                    unreachable!("standing claims are quantities")
                };
                let c = &mut self.counts[usize::from(*category)];
                *c.slot(from) -= n;
                *c.slot(to) += n;
                *held = c.held;
                *sold = c.sold;
            }
            _ => unreachable!("places match the layout kind"),
        }
    }

    fn remember_end(&mut self, h: &Hold, end: HoldEnd) {
        // A hold older than the window is forgotten, as if it had ended
        // long ago.
        if let Some(slot) = self.ended.slot(h.seq) {
            *slot = (ended_check(h.secret, &h.fan) as u32, end_code(end));
        }
    }

    /// Rebuilds the expiry heap from the live holds once the entries of
    /// holds that ended otherwise (released, confirmed) outnumber them, so
    /// the heap stays within twice the live holds (plus slack), however
    /// long the sale.
    fn compact_expiries(&mut self) {
        if self.expiries.len() > 2 * self.holds.len() + EXPIRIES_STALE_MAX {
            self.expiries = self
                .holds
                .values()
                .map(|h| Reverse((h.expires_at_ms, h.seq)))
                .collect();
        }
    }

    /// Recounts everything from the seats, holds and bookings and panics on
    /// any disagreement. O(seats + holds + bookings): debug builds and tests.
    pub fn check_invariants(&self) {
        let mut counts = vec![CategoryCounts::default(); self.counts.len()];
        match (&self.places, &self.layout.kind) {
            (Places::Seated { owner, row_free }, SectionKind::Seated(map)) => {
                assert_eq!(owner.len(), map.len() as usize);
                // Who claims each seat, from the holds and bookings: a
                // seat in two claims, or a claim whose seat's state says
                // otherwise, is a broken invariant.
                let mut claimed: Vec<Option<Place>> = vec![None; owner.len()];
                let mut claim = |seats: &Claim, state: Place, who: String| {
                    let Claim::Seats(seats) = seats else {
                        panic!("{who}: a seated claim is seats")
                    };
                    for &s in seats.iter() {
                        let slot = &mut claimed[s as usize];
                        assert!(slot.is_none(), "seat {s} is claimed twice ({who})");
                        *slot = Some(state);
                        assert_eq!(owner[s as usize], state, "{who} owns seat {s}");
                    }
                };
                for h in self.holds.values() {
                    claim(&h.claim, Place::Held, format!("hold {}", h.seq));
                }
                for b in self.bookings() {
                    if b.status == BookingStatus::CONFIRMED {
                        claim(&b.claim, Place::Sold, format!("booking {}", b.seq));
                    }
                }
                let mut rows = vec![0u32; map.rows.len()];
                for (i, (o, c)) in owner.iter().zip(&claimed).enumerate() {
                    let ri = map.row_of(i as u32) as usize;
                    assert_eq!(
                        *o,
                        c.unwrap_or(Place::Free),
                        "seat {i}: its state matches its claim"
                    );
                    *counts[usize::from(map.rows[ri].category)].slot(*o) += 1;
                    if *o == Place::Free {
                        rows[ri] += 1;
                    }
                }
                assert_eq!(&rows, row_free, "free seats per row");
            }
            (
                Places::Standing { held, sold },
                SectionKind::Standing {
                    capacity, category, ..
                },
            ) => {
                let h: u32 = self.holds.values().map(|h| h.claim.count()).sum();
                let s: u32 = self
                    .bookings()
                    .filter(|b| b.status == BookingStatus::CONFIRMED)
                    .map(|b| b.claim.count())
                    .sum();
                assert_eq!((*held, *sold), (h, s));
                assert!(held + sold <= *capacity);
                let c = &mut counts[usize::from(*category)];
                *c = CategoryCounts {
                    free: capacity - held - sold,
                    held: *held,
                    sold: *sold,
                };
            }
            _ => panic!("places match the layout kind"),
        }
        assert_eq!(counts, self.counts, "counts per category");
        assert!(self.holds.keys().all(|&h| h < self.next_hold));
        assert!(self.bookings().zip(0..).all(|(b, i)| b.seq == i));
        assert_eq!(self.bookings.len() as u64, self.next_booking);
        for &(booking, place) in self.check_ins.keys() {
            let b = self.booking(booking).expect("a check-in's booking exists");
            assert!(
                Self::has_place(b, place),
                "booking {booking} has the place {place} that checked in"
            );
        }
        let t = &self.ended;
        assert!(t.len < HOLD_TOMBSTONES_MAX + TOMBSTONE_CHUNK);
        assert_eq!(t.first % TOMBSTONE_CHUNK as u64, 0);
        assert_eq!(t.chunks.len(), t.len.div_ceil(TOMBSTONE_CHUNK));
        assert_eq!(
            t.first + t.len as u64,
            self.next_hold,
            "the tombstone window ends at the next hold"
        );
        assert!(
            self.holds.keys().all(|&h| self.ended.ended(h).is_none()),
            "a live hold has not ended"
        );
        assert!(self.expiries.len() <= 2 * self.holds.len() + EXPIRIES_STALE_MAX + 1);
    }
}

/// Longest run of free seats in `owner[first..first+len]`.
fn longest_run(owner: &[Place], first: u32, len: u32) -> u32 {
    let mut best = 0;
    let mut run = 0;
    for o in &owner[first as usize..(first + len) as usize] {
        if *o == Place::Free {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::{Row, SeatMap};

    #[test]
    fn a_bookings_texts_split_where_the_email_ends() {
        let t = BookingTexts::new("fan@example.com", Lang::Ko, "pi_123");
        assert_eq!(
            (t.email(), t.payment_ref(), t.lang),
            ("fan@example.com", "pi_123", Lang::Ko)
        );
        let t = BookingTexts::new("", Lang::En, "");
        assert_eq!((t.email(), t.payment_ref()), ("", ""));
        let t = BookingTexts::new("팬@example.com", Lang::Ko, "결제-1");
        assert_eq!((t.email(), t.payment_ref()), ("팬@example.com", "결제-1"));
        assert_eq!(BookingStatus::cancelled(7).cancelled_at(), Some(7));
        assert_eq!(
            BookingStatus::cancelled(u64::MAX).cancelled_at(),
            Some(u64::MAX - 1)
        );
        assert_eq!(BookingStatus::CONFIRMED.cancelled_at(), None);
        assert!(
            BookingStatus::CONFIRMED.is_confirmed() && !BookingStatus::cancelled(0).is_confirmed()
        );
        assert_eq!(
            format!("{:?}", BookingStatus::cancelled(5)),
            "Cancelled { at_ms: 5 }"
        );
    }

    #[test]
    fn seats_are_a_slice_kept_inline_up_to_four() {
        for n in 0..=9u32 {
            let v: Vec<u32> = (0..n).map(|i| i * 3 + 1).collect();
            let (a, b) = (Seats::from(v.clone()), Seats::from(&v[..]));
            let c: Seats = v.iter().copied().collect();
            assert_eq!((&*a, &*b, &*c), (&v[..], &v[..], &v[..]));
            assert_eq!(a, b);
            assert_eq!(
                matches!(c.0, SeatsRepr::Inline { .. }),
                v.len() <= SEATS_INLINE
            );
            assert_eq!(
                matches!(a.0, SeatsRepr::Inline { .. }),
                v.len() <= SEATS_INLINE,
                "{n} seats"
            );
            assert_eq!(format!("{a:?}"), format!("{v:?}"));
        }
        assert_ne!(Seats::from([1, 2]), Seats::from([1, 2, 0]));
        assert_eq!(Seats::default().len(), 0);
        // What every booking keeps: a claim of up to four seats with no
        // allocation, and the booking in 104 bytes (with its Arc's
        // counts, 120: one 128-byte malloc chunk; 8 more would take 144).
        assert_eq!(std::mem::size_of::<Claim>(), 24);
        assert_eq!(std::mem::size_of::<BookingTexts>(), 24);
        assert!(
            std::mem::size_of::<Booking>() <= 104,
            "{}",
            std::mem::size_of::<Booking>()
        );
    }

    #[test]
    fn an_end_fits_its_code_whatever_the_booking_number() {
        for end in [
            HoldEnd::Released,
            HoldEnd::Expired,
            HoldEnd::Confirmed { booking: 0 },
            HoldEnd::Confirmed {
                booking: u64::from(u32::MAX) - 4,
            },
        ] {
            assert_eq!(end_of(end_code(end)), Some(Ok(end)), "{end:?}");
        }
        // Past 32 bits, the code says "confirmed, look up the booking by
        // its hold" rather than a wrong number.
        for booking in [u64::from(u32::MAX) - 3, u64::from(u32::MAX), 1 << 40] {
            let code = end_code(HoldEnd::Confirmed { booking });
            assert_eq!(end_of(code), Some(Err(())), "{booking}");
        }
        assert_eq!(end_of(0), None);
        // A check is what the section compares: 32 bits of the masked
        // secret, the same from live operation and from a snapshot.
        let fan = "member-1";
        assert_eq!(ended_check(0xdead_beef_0123_4567, fan) >> 32, 0);
        assert_ne!(ended_check(1, fan), ended_check(2, fan));
        assert_ne!(ended_check(1, fan), ended_check(1, "member-2"));
    }

    const TTL_MS: u64 = 60_000;

    /// Fan `a`, who makes the holds of these tests.
    fn a() -> FanId {
        "a".into()
    }

    /// A seated section drawn as rows, nearest the stage first: `.` a free
    /// seat, `x` a seat held by someone else.
    fn seated(rows: &[&str]) -> Section {
        let mut map_rows = Vec::new();
        let mut first = 0;
        for (r, line) in rows.iter().enumerate() {
            map_rows.push(Row {
                label: (r + 1).to_string(),
                first,
                len: line.len() as u32,
                first_number: 1,
                category: 0,
                x: 0.0,
                y: r as f32,
                dx: 1.0,
                dy: 0.0,
            });
            first += line.len() as u32;
        }
        let layout = Arc::new(SectionLayout {
            id: "T".into(),
            name: "Test".into(),
            kind: SectionKind::Seated(SeatMap::new("T", map_rows)),
            category_count: 1,
        });
        let mut s = Section::new(layout, limits());
        let taken: Vec<u32> = rows
            .concat()
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'x')
            .map(|(i, _)| i as u32)
            .collect();
        for seat in taken {
            let c = s.decide_hold_seats(&[seat], &a(), 0, 7).unwrap();
            s.apply(&c).unwrap();
        }
        s
    }

    fn limits() -> Limits {
        Limits {
            seats_per_hold_max: 6,
            hold_ttl_ms: TTL_MS,
            tickets_per_fan_max: None,
        }
    }

    /// Asks `rows` for the best `n` seats and draws the answer: the chosen
    /// seats as `#`, or the error.
    fn check_best(rows: &[&str], n: u32, expect: &[&str]) {
        let s = seated(rows);
        let got: Vec<String> = match s.decide_hold_best(n, &a(), 0, 1) {
            Ok(Change::HoldCreated {
                claim: Claim::Seats(seats),
                ..
            }) => {
                let mut pic: Vec<u8> = rows.concat().into_bytes();
                for &seat in seats.iter() {
                    pic[seat as usize] = b'#';
                }
                let mut out = Vec::new();
                let mut at = 0;
                for r in rows {
                    out.push(String::from_utf8(pic[at..at + r.len()].to_vec()).unwrap());
                    at += r.len();
                }
                out
            }
            Ok(other) => panic!("unexpected change {other:?}"),
            Err(e) => vec![format!("{e:?}")],
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn best_available_takes_the_front_row_centre() {
        check_best(&["........", "........"], 2, &["...##...", "........"]);
        check_best(&[".......", "......."], 3, &["..###..", "......."]);
        // Odd leftovers lean to the stage-left side of the middle.
        check_best(&["........"], 3, &["..###..."]);
    }

    #[test]
    fn best_available_never_splits_a_group() {
        // Four free seats in the front row, but not together.
        check_best(&["..xx..", "x....x"], 4, &["..xx..", "x####x"]);
        // The nearest block to the middle wins within a row.
        check_best(&["...x.x.....x"], 2, &["...x.x##...x"]);
        check_best(&["..x...xx"], 3, &["..x###xx"]);
    }

    #[test]
    fn best_available_answers_the_largest_block_when_none_fits() {
        check_best(
            &["..x..", "x...x"],
            4,
            &["NoAdjacentBlock { wanted: 4, largest: 3 }"],
        );
        check_best(
            &["xxxx", "xxxx"],
            1,
            &["NoAdjacentBlock { wanted: 1, largest: 0 }"],
        );
    }

    #[test]
    fn hold_counts_are_checked_before_the_seats() {
        let s = seated(&["........"]);
        assert_eq!(s.decide_hold_best(0, &a(), 0, 1), Err(CommandError::Empty));
        assert_eq!(
            s.decide_hold_best(7, &a(), 0, 1),
            Err(CommandError::TooMany { max: 6 })
        );
        assert_eq!(
            s.decide_hold_seats(&[1, 2, 1], &a(), 0, 1),
            Err(CommandError::DuplicateSeat(1))
        );
    }

    #[test]
    fn a_hold_lives_until_it_is_confirmed_released_or_expired() {
        let mut s = seated(&["....", "...."]);
        let c = s.decide_hold_seats(&[0, 1], &a(), 1_000, 11).unwrap();
        s.apply(&c).unwrap();
        let h = s.holds().next().unwrap().seq;
        // Taken seats are refused, naming them.
        assert_eq!(
            s.decide_hold_seats(&[1, 2], &a(), 1_000, 12),
            Err(CommandError::SeatsUnavailable(vec![1]))
        );
        // A wrong secret is no hold at all.
        assert_eq!(s.find_hold(h, 99, "a"), Err(CommandError::HoldNotFound));
        // Expiry is due exactly at created + TTL, not a millisecond before.
        assert!(s.decide_expiries(1_000 + TTL_MS - 1, 16).is_empty());
        let due = s.decide_expiries(1_000 + TTL_MS, 16);
        assert_eq!(due.len(), 1);
        for c in &due {
            s.apply(c).unwrap();
        }
        assert_eq!(s.counts().by_category[0].free, 8);
        assert_eq!(
            s.decide_confirm(h, 11, "a", "a@b.c".into(), "p".into(), 1_000 + TTL_MS, 5),
            Err(CommandError::HoldExpired)
        );
        assert_eq!(
            s.decide_release(h, 11, "a", 1_000 + TTL_MS),
            Err(CommandError::HoldExpired)
        );
    }

    #[test]
    fn confirm_then_cancel_returns_the_seats() {
        let mut s = seated(&["...."]);
        let c = s.decide_hold_best(2, &a(), 0, 11).unwrap();
        s.apply(&c).unwrap();
        let h = s.holds().next().unwrap().seq;
        let c = s
            .decide_confirm(h, 11, "a", "a@b.c".into(), "pay-1".into(), 10, 21)
            .unwrap();
        s.apply(&c).unwrap();
        assert_eq!(s.seat_states(), "fssf");
        let Change::HoldConfirmed { booking, .. } = c else {
            panic!()
        };
        // Confirming twice names the booking it already made.
        assert_eq!(
            s.decide_confirm(h, 11, "a", "a@b.c".into(), "pay-1".into(), 20, 22),
            Err(CommandError::HoldConfirmed {
                booking,
                booking_secret: 21
            })
        );
        let c = s.decide_cancel(booking, 21, &Caller::Fan(a()), 30).unwrap();
        s.apply(&c).unwrap();
        assert_eq!(s.seat_states(), "ffff");
        assert_eq!(
            s.decide_cancel(booking, 21, &Caller::Fan(a()), 40),
            Err(CommandError::BookingCancelled)
        );
        assert_eq!(
            s.decide_cancel(booking, 22, &Caller::Fan(a()), 40),
            Err(CommandError::BookingNotFound)
        );
    }

    /// A hold and its booking answer their own fan only; another fan is
    /// told there is no such hold or booking, exactly as for an id that
    /// does not exist. Support may read and cancel any booking.
    #[test]
    fn holds_and_bookings_answer_their_own_fan_only() {
        let mut s = seated(&["...."]);
        let b: FanId = "b".into();
        let c = s.decide_hold_best(2, &a(), 0, 11).unwrap();
        s.apply(&c).unwrap();
        let h = s.holds().next().unwrap().seq;
        assert_eq!(s.holds().next().unwrap().fan, a());
        assert_eq!(s.find_hold(h, 11, "b"), Err(CommandError::HoldNotFound));
        assert_eq!(
            s.decide_release(h, 11, "b", 1),
            Err(CommandError::HoldNotFound)
        );
        assert_eq!(
            s.decide_confirm(h, 11, "b", "b@b.c".into(), "p".into(), 1, 21),
            Err(CommandError::HoldNotFound)
        );
        let c = s
            .decide_confirm(h, 11, "a", "a@b.c".into(), "p".into(), 1, 21)
            .unwrap();
        s.apply(&c).unwrap();
        let Change::HoldConfirmed { booking, .. } = c else {
            panic!()
        };
        // The ended hold tells its own fan what became of it, no one else.
        assert!(matches!(
            s.find_hold(h, 11, "a"),
            Err(CommandError::HoldConfirmed { .. })
        ));
        assert_eq!(s.find_hold(h, 11, "b"), Err(CommandError::HoldNotFound));
        let by_b = Caller::Fan(b);
        assert_eq!(
            s.find_booking(booking, 21, &by_b).map(|b| b.seq),
            Err(CommandError::BookingNotFound)
        );
        assert_eq!(
            s.decide_cancel(booking, 21, &by_b, 2),
            Err(CommandError::BookingNotFound)
        );
        let seen = s.find_booking(booking, 21, &Caller::Support).unwrap();
        assert_eq!(seen.fan, a());
        let c = s.decide_cancel(booking, 21, &Caller::Support, 3).unwrap();
        s.apply(&c).unwrap();
        assert_eq!(s.seat_states(), "ffff");
    }

    #[test]
    fn a_change_from_a_file_that_does_not_fit_is_an_error_not_a_panic() {
        let mut s = seated(&["....", "...."]);
        let created = |claim: Claim| Change::HoldCreated {
            hold: 0,
            secret: 1,
            fan: a(),
            claim,
            created_at_ms: 0,
            expires_at_ms: TTL_MS,
        };
        for (claim, why) in [
            (
                Claim::Seats(Vec::new().into()),
                "a claim of 0 seats (1..=6)",
            ),
            (
                Claim::Seats(vec![0; 7].into()),
                "a claim of 7 seats (1..=6)",
            ),
            (
                Claim::Seats(vec![1, 2, 1].into()),
                "seat 1 is claimed twice",
            ),
            (Claim::Seats(vec![8].into()), "seat 8 is not free"),
            (Claim::Quantity(2), "claim does not match the section kind"),
        ] {
            assert_eq!(
                s.apply(&created(claim)),
                Err(ApplyError(why.into())),
                "{why}"
            );
        }
        assert_eq!(s.seat_states(), "ffffffff", "nothing changed");
        let mut floor = standing(5);
        for n in [0, 6, u32::MAX] {
            assert!(floor.apply(&created(Claim::Quantity(n))).is_err(), "{n}");
        }
        assert_eq!(floor.counts().by_category[0].free, 5);
    }

    #[test]
    fn the_last_holds_are_remembered_and_older_ones_forgotten() {
        let mut s = seated(&["...."]);
        let n = (HOLD_TOMBSTONES_MAX + TOMBSTONE_CHUNK + 10) as u64;
        for i in 0..n {
            let c = s.decide_hold_best(1, &a(), i, i).unwrap();
            s.apply(&c).unwrap();
            let c = s.decide_release(i, i, "a", i).unwrap();
            s.apply(&c).unwrap();
        }
        // The oldest chunk fell out of the window once it was a chunk
        // longer than needed; the rest say how they ended, to their
        // holder only.
        let oldest = TOMBSTONE_CHUNK as u64;
        assert_eq!(
            s.find_hold(oldest - 1, oldest - 1, "a"),
            Err(CommandError::HoldNotFound)
        );
        assert_eq!(
            s.find_hold(oldest, oldest, "a"),
            Err(CommandError::HoldReleased)
        );
        assert_eq!(
            s.find_hold(n - 1, n - 1, "a"),
            Err(CommandError::HoldReleased)
        );
        assert_eq!(s.find_hold(n - 1, 7, "a"), Err(CommandError::HoldNotFound));
        // Released holds leave no pile of expiry entries behind.
        assert!(s.expiries.len() <= EXPIRIES_STALE_MAX + 1);
        // A snapshot of it rebuilds the same window.
        let parts = s.parts();
        assert_eq!(parts.ended.len(), HOLD_TOMBSTONES_MAX + 10);
        let back = Section::from_parts(Arc::clone(s.layout()), s.limits(), parts.clone()).unwrap();
        assert_eq!(back.parts(), parts);
        assert_eq!(
            back.find_hold(oldest, oldest, "a"),
            Err(CommandError::HoldReleased)
        );
        assert_eq!(
            back.find_hold(oldest - 1, oldest - 1, "a"),
            Err(CommandError::HoldNotFound)
        );
        // A window that has not yet dropped a chunk rebuilds whole, too.
        let mut t = seated(&["...."]);
        for i in 0..(TOMBSTONE_CHUNK as u64 + 3) {
            let c = t.decide_hold_best(1, &a(), i, i).unwrap();
            t.apply(&c).unwrap();
            let c = t.decide_release(i, i, "a", i).unwrap();
            t.apply(&c).unwrap();
        }
        let parts = t.parts();
        let back = Section::from_parts(Arc::clone(t.layout()), t.limits(), parts.clone()).unwrap();
        assert_eq!(back.parts(), parts);
        assert_eq!(back.find_hold(0, 0, "a"), Err(CommandError::HoldReleased));
    }

    fn standing(capacity: u32) -> Section {
        let layout = Arc::new(SectionLayout {
            id: "F".into(),
            name: "Floor".into(),
            kind: SectionKind::Standing {
                capacity,
                category: 0,
                area: None,
            },
            category_count: 1,
        });
        Section::new(layout, limits())
    }

    #[test]
    fn a_standing_section_never_exceeds_its_capacity() {
        let mut s = standing(5);
        let c = s.decide_hold_best(4, &a(), 0, 1).unwrap();
        s.apply(&c).unwrap();
        assert_eq!(
            s.decide_hold_best(2, &a(), 0, 2),
            Err(CommandError::NotEnoughPlaces {
                wanted: 2,
                available: 1
            })
        );
        assert_eq!(
            s.decide_hold_seats(&[0], &a(), 0, 3),
            Err(CommandError::StandingSection)
        );
        let c = s.decide_hold_best(1, &a(), 0, 2).unwrap();
        s.apply(&c).unwrap();
        let counts = s.counts().by_category[0];
        assert_eq!((counts.free, counts.held, counts.sold), (0, 5, 0));
    }

    /// What the tickets of the tests' bookings (secret 21) carry.
    fn tag() -> TicketBinding {
        TicketBinding::Booking(booking_tag(21))
    }

    /// A ticket admits its own booking only, not whichever booking has its
    /// number now (a lost booking's number given again after a restore of
    /// an older snapshot, or on a fresh volume); a ticket from before
    /// tickets named their booking admits only a booking confirmed before
    /// the data directory's lineage began.
    #[test]
    fn a_ticket_admits_its_own_booking_only() {
        let (s, b) = booked();
        let with = |binding| s.decide_check_in(b, 1, Some(1), binding, 100);
        assert_eq!(
            with(TicketBinding::Booking(booking_tag(22))),
            Err(CommandError::TicketNotFound)
        );
        assert!(with(tag()).is_ok());
        assert_ne!(booking_tag(21), booking_tag(22));
        // Confirmed at 10.
        assert!(with(TicketBinding::Unbound {
            confirmed_before_ms: 11
        })
        .is_ok());
        assert_eq!(
            with(TicketBinding::Unbound {
                confirmed_before_ms: 10
            }),
            Err(CommandError::TicketNotFound)
        );
    }

    /// A booking of places 1..=2 on seats 1 and 2 of `....`.
    fn booked() -> (Section, u64) {
        let mut s = seated(&["...."]);
        let c = s.decide_hold_best(2, &a(), 0, 11).unwrap();
        s.apply(&c).unwrap();
        let h = s.holds().next().unwrap().seq;
        let c = s
            .decide_confirm(h, 11, "a", "a@b.c".into(), "pay-1".into(), 10, 21)
            .unwrap();
        s.apply(&c).unwrap();
        (s, 0)
    }

    /// Each place checks in once; the second scan names the first's
    /// time; a place the booking does not have, or a seat that is not
    /// the place's, is no ticket; a cancelled booking's tickets are void.
    #[test]
    fn a_ticket_checks_in_once() {
        let (mut s, b) = booked();
        assert_eq!(s.seat_states(), "fssf");
        let c = s.decide_check_in(b, 1, Some(1), tag(), 100).unwrap();
        assert_eq!(s.places_moved(&c), None);
        s.apply(&c).unwrap();
        assert_eq!(s.checked_in(b, 1), Some(100));
        assert_eq!(
            s.decide_check_in(b, 1, Some(1), tag(), 200),
            Err(CommandError::AlreadyCheckedIn { at_ms: 100 })
        );
        // Applying it twice (a journal that does not fit) is an error.
        assert!(s.apply(&c).is_err());
        // The other place is its own ticket.
        assert_eq!(s.checked_in(b, 2), None);
        for (place, seat) in [(0, Some(1)), (3, Some(3)), (2, Some(1)), (2, None)] {
            assert_eq!(
                s.decide_check_in(b, place, seat, tag(), 300),
                Err(CommandError::TicketNotFound),
                "place {place}, seat {seat:?}"
            );
        }
        assert_eq!(
            s.decide_check_in(b + 1, 1, Some(1), tag(), 300),
            Err(CommandError::TicketNotFound)
        );
        assert_eq!(
            s.decide_cancel(b, 21, &Caller::Fan(a()), 400),
            Err(CommandError::BookingUsed),
            "a used booking is not its fan's to hand back"
        );
        let c = s.decide_cancel(b, 21, &Caller::Support, 400).unwrap();
        s.apply(&c).unwrap();
        assert_eq!(
            s.decide_check_in(b, 2, Some(2), tag(), 500),
            Err(CommandError::TicketCancelled)
        );
        // The check-in of place 1 outlives the cancellation, as history.
        // (Its fan could not have cancelled: support did.)
        assert_eq!(s.checked_in(b, 1), Some(100));
        let outcome = s.outcome(&Change::TicketCheckedIn {
            booking: b,
            place: 1,
            at_ms: 100,
        });
        assert!(matches!(
            outcome,
            Some(Outcome::CheckedIn {
                place: 1,
                at_ms: 100,
                ..
            })
        ));
    }

    /// Check-ins travel with the parts, and parts that check in a place
    /// no booking has, or one place twice, are refused.
    #[test]
    fn check_ins_survive_parts_and_bad_ones_are_refused() {
        let (mut s, b) = booked();
        let c = s.decide_check_in(b, 2, Some(2), tag(), 100).unwrap();
        s.apply(&c).unwrap();
        let parts = s.parts();
        assert_eq!(parts.check_ins, vec![(b, 2, 100)]);
        let back = Section::from_parts(Arc::clone(s.layout()), limits(), parts.clone()).unwrap();
        assert_eq!(back.checked_in(b, 2), Some(100));
        assert_eq!(back.parts(), parts);
        for bad in [
            vec![(b, 3, 100)],
            vec![(b + 1, 1, 100)],
            vec![(b, 0, 100)],
            vec![(b, 1, 100), (b, 1, 200)],
        ] {
            let mut p = parts.clone();
            p.check_ins = bad.clone();
            assert!(
                Section::from_parts(Arc::clone(s.layout()), limits(), p).is_err(),
                "{bad:?}"
            );
        }
    }

    /// A standing booking's places are numbered 1..=n and carry no seat.
    #[test]
    fn standing_tickets_are_numbered_places() {
        let mut s = standing(5);
        let c = s.decide_hold_best(3, &a(), 0, 1).unwrap();
        s.apply(&c).unwrap();
        let c = s
            .decide_confirm(0, 1, "a", "a@b.c".into(), "pay-1".into(), 10, 21)
            .unwrap();
        s.apply(&c).unwrap();
        assert_eq!(
            s.decide_check_in(0, 4, None, tag(), 20),
            Err(CommandError::TicketNotFound)
        );
        assert_eq!(
            s.decide_check_in(0, 3, Some(0), tag(), 20),
            Err(CommandError::TicketNotFound)
        );
        let c = s.decide_check_in(0, 3, None, tag(), 20).unwrap();
        s.apply(&c).unwrap();
        assert_eq!(s.checked_in(0, 3), Some(20));
    }
}
