//! Confirmation emails: the durable outbox, rendering, transports and the
//! mailer actor that sends.
//!
//! - [`outbox`]: which emails are still owed (pure state);
//! - [`render`]: entry → email (templates, QR code, Message-ID);
//! - [`ticket`]: the signed ticket token the QR code carries (from
//!   `boxoffice-auth`, which the door scanner's check shares);
//! - [`Mailer`]: the actor that takes due entries, sends them over SMTP
//!   (or into `.eml` files), and journals what happened.
//!
//! Architecture invariants:
//! - an outbox entry is born from the journal record of its booking change,
//!   and the section hands it to the mailer only once that record is
//!   durable: no booking without its email, no email for a lost booking;
//! - an entry leaves the outbox only after the server's final `250`;
//!   after a crash every entry not yet journaled as sent is sent again,
//!   with the same Message-ID;
//! - the mailer runs on its own arbiter and nothing waits for it: a slow
//!   or dead mail server never slows down a hold or a confirm;
//! - every send has its own timeout (lettre's covers only the connect,
//!   lettre#1027) and at most `concurrency` sends are in flight.

pub use boxoffice_store::outbox;
pub mod render;
mod setup;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use boxoffice_auth::ticket;
pub use outbox::{
    can_send_to, MailEntry, MailKey, MailKind, MailOutcome, Outbox, RetryError, SlotState,
};
pub use render::{qr_png, seat_name, Renderer};
pub use setup::MailSetup;
pub use ticket::{Ticket, TicketError, TicketKey, Tickets, TICKET_KEY_FILE};

use crate::clock::Clock;
use crate::journal::Journal;
use boxoffice_store::outbox_record::mail_record;

/// Nice value of the mailer's thread. Emails are background work: under a
/// sale's full CPU load the sections come first and the mailer catches up
/// after the rush (measured in BENCHMARKS.md).
pub const MAILER_NICE: i32 = 10;

/// How often the mailer looks for entries whose retry time has come.
const TICK: Duration = Duration::from_millis(50);
/// Longest error text kept per entry (SMTP servers can be chatty).
const ERROR_LEN_MAX: usize = 300;
/// Most entries one admin listing returns.
pub const LIST_LEN_MAX: usize = 1000;

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Most sends in flight at once (and SMTP connections in the pool).
    pub concurrency: usize,
    /// Changes a second at or above which the sale is busy (0: never).
    pub busy_changes_per_sec: u64,
    /// Most sends in flight while the sale is busy.
    pub busy_concurrency: usize,
    /// How long the oldest due email may wait for a busy sale before the
    /// mailer sends at full concurrency again.
    pub delay_max_ms: u64,
    /// Deadline of one whole send: connect, greeting, envelope, data.
    pub send_timeout: Duration,
    /// Attempts before an entry becomes a dead letter.
    pub attempts_max: u32,
    /// First retry delay; doubles per attempt, with jitter.
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Failpoint for tests: panic at the first send.
    pub panic_on_send: bool,
}

/// Where messages go, checked but not yet connected: the SMTP pool spawns
/// a task on the runtime that builds it, so the mailer builds it on its
/// own arbiter ([`TransportSpec::build`]).
#[derive(Debug, Clone)]
pub enum TransportSpec {
    Smtp(String),
    Files(std::path::PathBuf),
}

impl TransportSpec {
    /// An SMTP server in lettre's URL form (`smtp://host:port`,
    /// `smtps://user:pass@host`, `smtp://host?tls=required`).
    pub fn smtp(url: &str) -> Result<TransportSpec, String> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| format!("{e}"))?;
        Ok(TransportSpec::Smtp(url.to_owned()))
    }

    /// `.eml` files in `dir` (created now, so a bad path fails at start).
    pub fn files(dir: &Path) -> std::io::Result<TransportSpec> {
        crate::data_dir::create_dir_durable(dir)?;
        Ok(TransportSpec::Files(dir.to_owned()))
    }

    /// Builds the transport; call it on the runtime that will use it.
    pub fn build(&self, settings: &MailSettings) -> Transport {
        match self {
            TransportSpec::Smtp(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .expect("checked by TransportSpec::smtp")
                    .timeout(Some(settings.send_timeout))
                    .pool_config(PoolConfig::new().max_size(settings.concurrency as u32))
                    .build(),
            ),
            TransportSpec::Files(dir) => Transport::File(Arc::new(dir.clone())),
        }
    }
}

/// Where messages go.
#[derive(Clone)]
pub enum Transport {
    /// Pooled SMTP connections.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a directory: the embedded default. One file per
    /// email, named by its outbox key and written whole (synced, renamed
    /// into place, the directory synced): a reader never sees half a
    /// message, "sent" is journaled only once the file's name survives a
    /// power cut, and a resend after a crash replaces the file rather
    /// than adding one.
    /// (lettre's file transport writes in place, under a random name.)
    File(Arc<PathBuf>),
}

impl Transport {
    pub fn describe(&self) -> &'static str {
        match self {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "eml files",
        }
    }

    async fn send(&self, key: &MailKey, msg: Message) -> Result<(), String> {
        match self {
            Transport::Smtp(t) => t.send(msg).await.map(|_| ()).map_err(|e| e.to_string()),
            Transport::File(dir) => {
                let path = dir.join(format!("{key}.eml"));
                let tmp = dir.join(format!(".{key}.eml.tmp"));
                let bytes = msg.formatted();
                let dir = Arc::clone(dir);
                let write = move || -> std::io::Result<()> {
                    let mut f = std::fs::File::create(&tmp)?;
                    std::io::Write::write_all(&mut f, &bytes)?;
                    f.sync_data()?;
                    std::fs::rename(&tmp, &path)?;
                    // The rename lives in the directory: without this, a
                    // power cut can undo it after "sent" is journaled.
                    std::fs::File::open(dir.as_path())?.sync_all()
                };
                match tokio::task::spawn_blocking(write).await {
                    Ok(written) => written.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

/// Counters and gauges of the mailer, for `/metrics`.
#[derive(Debug)]
pub struct MailStats {
    pub queued: AtomicU64,
    pub attempts: AtomicU64,
    pub sent: AtomicU64,
    pub failures: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Entries not yet sent (dead letters included).
    pub depth: AtomicU64,
    pub dead: AtomicU64,
    pub in_flight: AtomicU64,
    /// 1 while the mailer steps aside for a busy sale, else 0.
    pub yielding: AtomicU64,
    /// Seconds per send attempt, success or not.
    pub send_seconds: prometheus::Histogram,
}

impl Default for MailStats {
    fn default() -> Self {
        MailStats {
            queued: AtomicU64::new(0),
            attempts: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            depth: AtomicU64::new(0),
            dead: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            yielding: AtomicU64::new(0),
            send_seconds: prometheus::Histogram::with_opts(
                prometheus::HistogramOpts::new(
                    "boxoffice_mail_send_seconds",
                    "Time of one email send attempt",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
                ]),
            )
            .expect("a valid histogram"),
        }
    }
}

impl MailStats {
    fn observe(&self, elapsed: Duration) {
        self.send_seconds.observe(elapsed.as_secs_f64());
    }
}

/// Hands a durable booking change's email to the mailer.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue(pub MailEntry);

/// One outbox entry as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub id: String,
    pub kind: MailKind,
    pub email: String,
    pub state: SlotState,
    pub attempts: u32,
    pub next_at_ms: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxList {
    pub items: Vec<OutboxItem>,
    pub pending: usize,
    pub dead: usize,
}

/// Lists the outbox: `dead: Some(true)` only dead letters, `Some(false)`
/// only live ones, `None` all.
#[derive(Message)]
#[rtype(result = "OutboxList")]
pub struct ListOutbox {
    pub dead: Option<bool>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailAdminError {
    #[error(transparent)]
    Retry(#[from] RetryError),
    #[error("the journal is unavailable")]
    Unavailable,
}

/// Puts a dead letter back in the queue, durably.
#[derive(Message)]
#[rtype(result = "Result<OutboxItem, MailAdminError>")]
pub struct RetryDead(pub MailKey);

/// Stops the mailer on its own runtime, dropping the SMTP pool there (its
/// drop spawns a task, which needs the runtime). Sends in flight are
/// abandoned; their entries are still in the journal and go out after the
/// restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopMailer;

/// How fast the sale changes, from the journal's count of durable
/// records: emails wait for a rush (up to `MailSettings::delay_max_ms`),
/// sales do not.
struct Pace {
    /// When `records` was read.
    at: Instant,
    records: u64,
    /// Records the mailer journaled itself since (not the sale's).
    own: u64,
    /// Changes a second over the last sample.
    per_sec: u64,
}

/// How often the sale's pace is measured.
const PACE_SAMPLE: Duration = Duration::from_millis(250);

pub struct Mailer {
    outbox: Outbox,
    pace: Pace,
    /// `None` once stopped.
    transport: Option<Transport>,
    renderer: Arc<Renderer>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    settings: MailSettings,
    in_flight: usize,
    /// Draws the retry jitter.
    rng: StdRng,
    stats: Arc<MailStats>,
}

impl Mailer {
    /// A mailer without a transport keeps its outbox and sends nothing.
    pub fn new(
        outbox: Outbox,
        transport: Option<Transport>,
        renderer: Arc<Renderer>,
        journal: Journal,
        clock: Arc<dyn Clock>,
        settings: MailSettings,
        stats: Arc<MailStats>,
    ) -> Mailer {
        assert!(settings.concurrency >= 1 && settings.attempts_max >= 1);
        let rng = StdRng::from_os_rng();
        let journal_records = journal.stats().records.load(Ordering::Relaxed);
        let m = Mailer {
            outbox,
            transport,
            renderer,
            journal,
            clock,
            settings,
            in_flight: 0,
            rng,
            stats,
            pace: Pace {
                at: Instant::now(),
                records: journal_records,
                own: 0,
                per_sec: 0,
            },
        };
        m.publish();
        m
    }

    fn publish(&self) {
        self.stats
            .depth
            .store(self.outbox.len() as u64, Ordering::Relaxed);
        self.stats
            .dead
            .store(self.outbox.dead_len() as u64, Ordering::Relaxed);
        self.stats
            .in_flight
            .store(self.in_flight as u64, Ordering::Relaxed);
    }

    /// Journals an outcome (nobody waits for it: if it is lost in a crash,
    /// the email is sent again, same Message-ID) and applies it.
    fn record(&mut self, key: &MailKey, outcome: MailOutcome) {
        self.pace.own += 1;
        if self
            .journal
            .append_unacked(mail_record(key, &outcome))
            .is_err()
        {
            // Fail-stop: the journal refuses everything now; pump() stops.
            tracing::error!(mail = %key, "cannot journal a mail outcome");
        }
        self.outbox.apply(key, &outcome);
        #[cfg(debug_assertions)]
        self.outbox.check_invariants();
        self.publish();
    }

    /// Retry delay after `attempts` failures: exponential, capped, with
    /// "equal jitter" (half fixed, half random) so that a server coming
    /// back is not hit by every entry at once.
    fn backoff_ms(&mut self, attempts: u32) -> u64 {
        let exp = self
            .settings
            .backoff_base_ms
            .saturating_mul(1u64 << attempts.saturating_sub(1).min(32))
            .min(self.settings.backoff_max_ms)
            .max(1);
        exp / 2 + self.rng.random_range(0..=exp - exp / 2)
    }

    /// How many sends may be in flight now: all of `concurrency`, unless
    /// the sale is busy and the oldest due email has not yet waited
    /// `delay_max_ms`.
    fn concurrency_now(&self, now_ms: u64) -> usize {
        let full = self.settings.concurrency;
        let busy = self.settings.busy_changes_per_sec;
        let yielding = busy > 0
            && self.pace.per_sec >= busy
            && self
                .outbox
                .oldest_due_at()
                .is_some_and(|at| now_ms.saturating_sub(at) < self.settings.delay_max_ms);
        self.stats
            .yielding
            .store(u64::from(yielding), Ordering::Relaxed);
        if yielding {
            self.settings.busy_concurrency.clamp(1, full)
        } else {
            full
        }
    }

    /// Measures the sale's changes a second since the last sample: durable
    /// journal records other than the mailer's own.
    fn sample_pace(&mut self) {
        let elapsed = self.pace.at.elapsed().as_secs_f64().max(1e-3);
        let records = self.journal.stats().records.load(Ordering::Relaxed);
        let sale = records
            .saturating_sub(self.pace.records)
            .saturating_sub(self.pace.own);
        self.pace = Pace {
            at: Instant::now(),
            records,
            own: 0,
            per_sec: (sale as f64 / elapsed) as u64,
        };
    }

    /// Starts sends for due entries, up to the concurrency bound.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.journal.is_failed() {
            return;
        }
        let Some(transport) = self.transport.clone() else {
            return;
        };
        let now = self.clock.now_ms();
        let free = self.concurrency_now(now).saturating_sub(self.in_flight);
        if free == 0 {
            return;
        }
        for entry in self.outbox.take_due(now, free) {
            if self.settings.panic_on_send {
                panic!("failpoint: the mailer panics at its first send");
            }
            let key = entry.key.clone();
            let message = match self.renderer.render(&entry) {
                Ok(m) => m,
                Err(e) => {
                    // Rendering is deterministic: trying again cannot help.
                    tracing::error!(mail = %key, error = %e, "cannot render; dead-lettered");
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    let attempts = self.outbox.get(&key).map_or(0, |s| s.attempts) + 1;
                    self.record(
                        &key,
                        MailOutcome::Dead {
                            attempts,
                            error: truncate(e.to_string()),
                        },
                    );
                    continue;
                }
            };
            self.in_flight += 1;
            self.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let transport = transport.clone();
            let timeout = self.settings.send_timeout;
            let span = tracing::info_span!("mail.send", mail = %key, to = %entry.booking.email());
            let sent_key = key.clone();
            let fut = async move {
                let started = Instant::now();
                let sending = transport.send(&sent_key, message);
                let result = match tokio::time::timeout(timeout, sending).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                };
                (result, started.elapsed())
            };
            let fut = tracing::Instrument::instrument(fut, span);
            ctx.spawn(
                fut.into_actor(self)
                    .map(move |(result, elapsed), act, ctx| {
                        act.finished(key, result, elapsed);
                        act.pump(ctx);
                    }),
            );
        }
        self.publish();
    }

    fn finished(&mut self, key: MailKey, result: Result<(), String>, elapsed: Duration) {
        self.in_flight -= 1;
        self.stats.observe(elapsed);
        let now = self.clock.now_ms();
        let outcome = match result {
            Ok(()) => {
                tracing::info!(mail = %key, elapsed_ms = elapsed.as_millis() as u64, "sent");
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                MailOutcome::Sent { at_ms: now }
            }
            Err(error) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                let attempts = self.outbox.get(&key).map_or(0, |s| s.attempts) + 1;
                let error = truncate(error);
                if attempts >= self.settings.attempts_max {
                    tracing::error!(mail = %key, attempts, %error, "giving up; dead-lettered");
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    MailOutcome::Dead { attempts, error }
                } else {
                    let next_at_ms = now + self.backoff_ms(attempts);
                    tracing::warn!(mail = %key, attempts, %error, next_at_ms, "send failed; will retry");
                    MailOutcome::Failed {
                        attempts,
                        error,
                        next_at_ms,
                    }
                }
            }
        };
        self.record(&key, outcome);
    }

    fn item(key: &MailKey, slot: outbox::Slot<'_>) -> OutboxItem {
        OutboxItem {
            id: key.to_string(),
            kind: key.kind,
            email: slot.booking.email().to_owned(),
            state: slot.state,
            attempts: slot.attempts,
            next_at_ms: slot.next_at_ms,
            last_error: slot.last_error.map(str::to_owned),
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > ERROR_LEN_MAX {
        let mut end = ERROR_LEN_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        crate::threads::name_current("mailer");
        crate::threads::lower_priority(MAILER_NICE);
        tracing::info!(
            transport = self.transport.as_ref().map_or("none", Transport::describe),
            unsent = self.outbox.len(),
            dead = self.outbox.dead_len(),
            "mailer started"
        );
        self.pump(ctx);
        ctx.run_interval(TICK, |act, ctx| act.pump(ctx));
        // The sale's pace, measured on a clock of its own: sampled only
        // when sends start, a quiet spell before a rush would hide it.
        ctx.run_interval(PACE_SAMPLE, |act, ctx| {
            act.sample_pace();
            act.pump(ctx);
        });
    }
}

impl Handler<StopMailer> for Mailer {
    type Result = ();

    fn handle(&mut self, _: StopMailer, ctx: &mut Context<Self>) {
        self.transport = None;
        ctx.stop();
    }
}

impl Handler<Enqueue> for Mailer {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        self.outbox.add(msg.0, self.clock.now_ms());
        self.publish();
        self.pump(ctx);
    }
}

impl Handler<ListOutbox> for Mailer {
    type Result = MessageResult<ListOutbox>;

    fn handle(&mut self, msg: ListOutbox, _: &mut Context<Self>) -> Self::Result {
        MessageResult(OutboxList {
            items: self
                .outbox
                .list(msg.dead, msg.limit.min(LIST_LEN_MAX))
                .into_iter()
                .map(|(key, slot)| Mailer::item(&key, slot))
                .collect(),
            pending: self.outbox.len() - self.outbox.dead_len(),
            dead: self.outbox.dead_len(),
        })
    }
}

impl Handler<RetryDead> for Mailer {
    type Result = ResponseFuture<Result<OutboxItem, MailAdminError>>;

    fn handle(&mut self, msg: RetryDead, ctx: &mut Context<Self>) -> Self::Result {
        let key = msg.0;
        let result = (|| {
            self.outbox.check_retry(&key)?;
            if self.journal.is_failed() {
                return Err(MailAdminError::Unavailable);
            }
            let outcome = MailOutcome::Requeued {
                at_ms: self.clock.now_ms(),
            };
            let receipt = self
                .journal
                .append(mail_record(&key, &outcome))
                .map_err(|_| MailAdminError::Unavailable)?;
            self.outbox.apply(&key, &outcome);
            self.publish();
            let item = self.outbox.get(&key).map(|slot| Mailer::item(&key, slot));
            Ok((receipt, item))
        })();
        self.pump(ctx);
        Box::pin(async move {
            let (receipt, item) = result?;
            match receipt.await {
                Ok(Ok(_)) => item.ok_or(MailAdminError::Retry(RetryError::NotFound)),
                _ => Err(MailAdminError::Unavailable),
            }
        })
    }
}
