//! Prometheus metrics at `GET /metrics` (the `prometheus` crate's text
//! format).
//!
//! Request counters and latencies are recorded as requests finish (the
//! HTTP middleware in `http::observe`). Everything the actors, the journal
//! and the mailer already count in atomics is copied into the registry at
//! scrape time, so the hot paths pay nothing for metrics they already keep.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::actors::{
    Registry as Sections, RoomHandle, ADMISSION_REFUSALS, CHANGE_KINDS, WAIT_BUCKETS_S,
};
use crate::auth::receipt::ReceiptVerifier;
use crate::auth::{Verifier, REASONS};
use crate::domain::CategoryCounts;
use crate::journal::Journal;
use crate::mail::MailStats;

/// The admitted fans' waits as a Prometheus histogram, written here from
/// the buckets the rooms count (the `prometheus` crate's histograms take
/// single observations, and a room counts its own).
fn render_waits(text: &mut String, sections: &Sections) {
    use std::fmt::Write;
    let rooms: Vec<_> = sections
        .events()
        .into_iter()
        .filter_map(|e| e.room())
        .collect();
    if rooms.is_empty() {
        return;
    }
    let name = "boxoffice_waiting_room_wait_seconds";
    let _ = writeln!(
        text,
        "# HELP {name} How long admitted fans waited in the queue (from their join, or the opening if later)\n# TYPE {name} histogram"
    );
    for room in rooms {
        let event = &room.event;
        let mut count = 0;
        for (i, n) in room.stats.waits.iter().enumerate() {
            count += n.load(Ordering::Relaxed);
            let le = WAIT_BUCKETS_S
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                text,
                "{name}_bucket{{event=\"{event}\",le=\"{le}\"}} {count}"
            );
        }
        let sum = room.stats.waited_ms.load(Ordering::Relaxed) as f64 / 1000.0;
        let _ = writeln!(text, "{name}_sum{{event=\"{event}\"}} {sum}");
        let _ = writeln!(text, "{name}_count{{event=\"{event}\"}} {count}");
    }
}

/// What the HTTP layer counts itself, as a scrape reads it.
pub struct EdgeCounts<'a> {
    /// Hold attempts refused for their fan's pace.
    pub fan_rate_limited: u64,
    /// Check-ins refused, by reason.
    pub check_ins_refused: &'a [(&'a str, u64)],
    /// Seat streams open now, and cut since start for falling behind.
    pub seat_streams_open: usize,
    /// Of those, opened without a fan's token.
    pub seat_streams_anonymous: usize,
    pub seat_streams_cut: u64,
    /// Idempotency-Key answers remembered now, and forgotten since start
    /// to make room for others' keys.
    pub idempotency_keys: usize,
    pub idempotency_evicted: u64,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    seats: IntGaugeVec,
    changes: IntCounterVec,
    inflight: IntGaugeVec,
    section_limit: IntGaugeVec,
    shed: IntCounterVec,
    /// In flight to all sections, the process's limit on it, and what
    /// that limit refused (early or when a section was asked).
    process: IntGaugeVec,
    process_shed: prometheus::IntCounter,
    journal_batches: prometheus::IntCounter,
    journal_records: prometheus::IntCounter,
    journal_bytes: prometheus::IntCounter,
    journal_durable_position: IntGauge,
    mail_counters: IntCounterVec,
    mail_gauges: IntGaugeVec,
    auth_refused: IntCounterVec,
    holds_refused: IntCounterVec,
    receipts_refused: IntCounterVec,
    fan_rate_limited: prometheus::IntCounter,
    seat_streams: IntGauge,
    seat_streams_anonymous: IntGauge,
    seat_streams_cut: prometheus::IntCounter,
    idempotency_keys: IntGauge,
    idempotency_evicted: prometheus::IntCounter,
    check_ins_refused: IntCounterVec,
    room_fans: IntGaugeVec,
    room_changes: IntCounterVec,
    room_rate: prometheus::GaugeVec,
    room_paused: IntGaugeVec,
    /// Scrapes copy counters in with reset + add; one at a time.
    scrape: Mutex<()>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new(journal: &Journal, mail: &MailStats) -> Metrics {
        let registry = Registry::new();
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "boxoffice_http_request_seconds",
                "Time to answer a request, by route",
            )
            .buckets(vec![
                0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0,
            ]),
            &["route"],
        )
        .expect("a valid metric");
        registry
            .register(Box::new(http_seconds.clone()))
            .expect("unique");
        let counter = |name: &str, help: &str| {
            let c = prometheus::IntCounter::new(name, help).expect("a valid metric");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let journal_batches = counter(
            "boxoffice_journal_batches_total",
            "Group commits (durable flushes) since start",
        );
        let journal_records = counter(
            "boxoffice_journal_records_total",
            "Journal records made durable since start",
        );
        let journal_bytes = counter(
            "boxoffice_journal_bytes_total",
            "Journal bytes made durable since start",
        );
        let journal_durable_position = IntGauge::new(
            "boxoffice_journal_durable_position",
            "Position after the last durable journal batch",
        )
        .expect("a valid metric");
        registry
            .register(Box::new(journal_durable_position.clone()))
            .expect("unique");
        for h in [
            &journal.stats().flush_seconds,
            &journal.stats().batch_records,
            &mail.send_seconds,
        ] {
            registry.register(Box::new(h.clone())).expect("unique");
        }
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique");
        Metrics {
            http_requests: counter_vec(
                &registry,
                "boxoffice_http_requests_total",
                "HTTP requests answered, by route, method and status",
                &["route", "method", "status"],
            ),
            http_seconds,
            seats: gauge_vec(
                &registry,
                "boxoffice_seats",
                "Places by event, section and state (free, held, sold)",
                &["event", "section", "state"],
            ),
            changes: counter_vec(
                &registry,
                "boxoffice_changes_total",
                "Changes applied since start, by event, section and kind (hold, release, expiry, confirm, cancel, check_in: a ticket's first scan at the door)",
                &["event", "section", "kind"],
            ),
            inflight: gauge_vec(
                &registry,
                "boxoffice_section_inflight",
                "Requests queued at or in flight through a section's actor",
                &["event", "section"],
            ),
            section_limit: gauge_vec(
                &registry,
                "boxoffice_section_limit",
                "A section's limit on requests in flight, as latency moved it",
                &["event", "section"],
            ),
            shed: counter_vec(
                &registry,
                "boxoffice_section_shed_total",
                "Requests refused with 503 because a section (or the process) was at its in-flight limit",
                &["event", "section"],
            ),
            process: gauge_vec(
                &registry,
                "boxoffice_process_inflight",
                "Requests in flight to all sections (state=inflight) and the process's limit on it, as latency moved it (state=limit)",
                &["state"],
            ),
            process_shed: {
                let c = prometheus::IntCounter::new(
                    "boxoffice_process_shed_total",
                    "Requests refused with 503 because the process was at its in-flight limit",
                )
                .expect("a valid metric");
                registry.register(Box::new(c.clone())).expect("unique");
                c
            },
            journal_batches,
            journal_records,
            journal_bytes,
            journal_durable_position,
            mail_counters: counter_vec(
                &registry,
                "boxoffice_mail_total",
                "Mailer events since start: queued, attempts, sent, failures, dead_lettered",
                &["event"],
            ),
            mail_gauges: gauge_vec(
                &registry,
                "boxoffice_mail_outbox",
                "Emails in the outbox: unsent (dead letters included), dead, in_flight; yielding is 1 while the mailer steps aside for a busy sale",
                &["state"],
            ),
            auth_refused: counter_vec(
                &registry,
                "boxoffice_auth_refused_total",
                "Fans' tokens refused, by reason",
                &["reason"],
            ),
            holds_refused: counter_vec(
                &registry,
                "boxoffice_holds_refused_total",
                "Holds refused since start by event and reason: fan_limit (the fan owns its tickets_per_fan_max), not_open, membership_required, closed (the sale phases)",
                &["event", "reason"],
            ),
            receipts_refused: counter_vec(
                &registry,
                "boxoffice_receipts_refused_total",
                "Payment receipts that proved nothing, by reason",
                &["reason"],
            ),
            fan_rate_limited: {
                let c = prometheus::IntCounter::new(
                    "boxoffice_fan_rate_limited_total",
                    "Hold attempts refused because their fan tried too fast (429), or the rate limiter tracked too many fans (503)",
                )
                .expect("a valid metric");
                registry.register(Box::new(c.clone())).expect("unique");
                c
            },
            seat_streams: {
                let g = IntGauge::new("boxoffice_seat_streams", "Seat streams open")
                    .expect("a valid metric");
                registry.register(Box::new(g.clone())).expect("unique");
                g
            },
            seat_streams_anonymous: {
                let g = IntGauge::new(
                    "boxoffice_seat_streams_anonymous",
                    "Seat streams open without a fan's token (at most --seat-streams-anonymous-max)",
                )
                .expect("a valid metric");
                registry.register(Box::new(g.clone())).expect("unique");
                g
            },
            seat_streams_cut: {
                let c = prometheus::IntCounter::new(
                    "boxoffice_seat_streams_cut_total",
                    "Seat streams ended for falling too far behind (their clients reconnect and catch up)",
                )
                .expect("a valid metric");
                registry.register(Box::new(c.clone())).expect("unique");
                c
            },
            idempotency_keys: {
                let g = IntGauge::new(
                    "boxoffice_idempotency_keys",
                    "Idempotency-Key answers remembered (at most --idempotency-keys-max)",
                )
                .expect("a valid metric");
                registry.register(Box::new(g.clone())).expect("unique");
                g
            },
            idempotency_evicted: {
                let c = prometheus::IntCounter::new(
                    "boxoffice_idempotency_evicted_total",
                    "Idempotency-Key answers forgotten before their TTL to make room for other keys (the store was full: raise --idempotency-keys-max if this moves)",
                )
                .expect("a valid metric");
                registry.register(Box::new(c.clone())).expect("unique");
                c
            },
            check_ins_refused: counter_vec(
                &registry,
                "boxoffice_check_ins_refused_total",
                "Tickets refused at the door, by reason (the problem type: already-checked-in, ticket-cancelled, ticket-invalid, ...); check-ins admitted are boxoffice_changes_total{kind=\"check_in\"}",
                &["reason"],
            ),
            room_fans: gauge_vec(
                &registry,
                "boxoffice_waiting_room_fans",
                "Fans in an event's waiting room: pre_queue (joined before the shuffle), waiting (numbered, not admitted yet) and active (admitted, admission still valid)",
                &["event", "state"],
            ),
            room_changes: counter_vec(
                &registry,
                "boxoffice_waiting_room_total",
                "What happened in waiting rooms since start: joined, admitted, expired (admitted, unused in time), done (admitted, booked)",
                &["event", "kind"],
            ),
            room_rate: {
                let g = prometheus::GaugeVec::new(
                    Opts::new(
                        "boxoffice_waiting_room_rate",
                        "A waiting room's admissions per second (measured over 10 s) and the wait it implies for the last fan in the queue, in seconds",
                    ),
                    &["event", "what"],
                )
                .expect("a valid metric");
                registry.register(Box::new(g.clone())).expect("unique");
                g
            },
            room_paused: gauge_vec(
                &registry,
                "boxoffice_waiting_room_paused",
                "1 while an operator has paused an event's waiting room (joining goes on, admission does not)",
                &["event"],
            ),
            registry,
            scrape: Mutex::new(()),
        }
    }

    /// An event's waiting room (all zero while it is off).
    fn render_room(
        &self,
        event: &str,
        room: Option<&RoomHandle>,
        set: &dyn Fn(&prometheus::IntCounter, u64),
    ) {
        let (view, stats) = match room {
            Some(r) => (Some(r.view()), Some(&r.stats)),
            None => (None, None),
        };
        // Before the shuffle every fan is in the pre-queue: nobody is
        // admitted yet, and none of them waits on admission (an alert on
        // "waiting, nobody admitted" must not fire all through it).
        let shuffled = view.is_some_and(|v| v.shuffle_seed.is_some());
        let joined = view.map_or(0, |v| v.joined);
        let (pre_queue, waiting) = match view {
            Some(v) if shuffled => (0, v.joined.saturating_sub(v.serving)),
            _ => (joined, 0),
        };
        let active = view.map_or(0, |v| u64::from(v.active));
        let paused = view.is_some_and(|v| v.settings.paused);
        for (state, n) in [
            ("pre_queue", pre_queue),
            ("waiting", waiting),
            ("active", active),
        ] {
            self.room_fans
                .with_label_values(&[event, state])
                .set(n as i64);
        }
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (kind, n) in [
            ("joined", stats.map_or(0, |s| count(&s.joined))),
            ("admitted", stats.map_or(0, |s| count(&s.admitted))),
            ("expired", stats.map_or(0, |s| count(&s.expired))),
            ("done", stats.map_or(0, |s| count(&s.done))),
        ] {
            set(&self.room_changes.with_label_values(&[event, kind]), n);
        }
        let rate = view.map_or(0.0, |v| v.admitted_per_sec);
        let wait = if rate > 0.0 {
            waiting as f64 / rate
        } else {
            0.0
        };
        self.room_rate
            .with_label_values(&[event, "admitted_per_sec"])
            .set(rate);
        self.room_rate
            .with_label_values(&[event, "wait_secs"])
            .set(wait);
        self.room_paused
            .with_label_values(&[event])
            .set(i64::from(paused));
    }

    /// Copies the counters kept elsewhere into the registry and renders
    /// the Prometheus text format.
    pub fn render(
        &self,
        sections: &Sections,
        journal: &Journal,
        mail: &MailStats,
        auth: &Verifier,
        receipts: &ReceiptVerifier,
        edge: EdgeCounts<'_>,
    ) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        let set = |c: &prometheus::IntCounter, v: u64| {
            c.reset();
            c.inc_by(v);
        };
        for e in sections.events() {
            let event = e.def.id.as_str();
            set(
                &self.holds_refused.with_label_values(&[event, "fan_limit"]),
                e.ledger.refused(),
            );
            for (reason, n) in ADMISSION_REFUSALS.iter().zip(e.refused_by_phase()) {
                set(&self.holds_refused.with_label_values(&[event, reason]), n);
            }
            self.render_room(event, e.room().as_deref(), &set);
            for s in e.sections() {
                let (event, section) = (e.def.id.as_str(), s.layout.id.as_str());
                let c: CategoryCounts = s.board.view().counts.total;
                for (state, v) in [("free", c.free), ("held", c.held), ("sold", c.sold)] {
                    self.seats
                        .with_label_values(&[event, section, state])
                        .set(i64::from(v));
                }
                for (kind, v) in CHANGE_KINDS.iter().zip(s.stats.changes()) {
                    set(&self.changes.with_label_values(&[event, section, kind]), v);
                }
                self.inflight
                    .with_label_values(&[event, section])
                    .set(s.inflight() as i64);
                self.section_limit
                    .with_label_values(&[event, section])
                    .set(i64::from(s.limit()));
                set(&self.shed.with_label_values(&[event, section]), s.shed());
            }
        }
        let js = journal.stats();
        set(&self.journal_batches, js.batches.load(Ordering::Relaxed));
        set(&self.journal_records, js.records.load(Ordering::Relaxed));
        set(&self.journal_bytes, js.bytes.load(Ordering::Relaxed));
        self.journal_durable_position
            .set(journal.durable_position() as i64);
        for (name, v) in [
            ("queued", &mail.queued),
            ("attempts", &mail.attempts),
            ("sent", &mail.sent),
            ("failures", &mail.failures),
            ("dead_lettered", &mail.dead_lettered),
        ] {
            set(
                &self.mail_counters.with_label_values(&[name]),
                v.load(Ordering::Relaxed),
            );
        }
        for (name, v) in [
            ("unsent", &mail.depth),
            ("dead", &mail.dead),
            ("in_flight", &mail.in_flight),
            ("yielding", &mail.yielding),
        ] {
            self.mail_gauges
                .with_label_values(&[name])
                .set(v.load(Ordering::Relaxed) as i64);
        }
        for (reason, n) in REASONS.iter().zip(auth.refused()) {
            set(&self.auth_refused.with_label_values(&[reason]), n);
        }
        for (reason, n) in REASONS.iter().zip(receipts.refused()) {
            set(&self.receipts_refused.with_label_values(&[reason]), n);
        }
        set(&self.fan_rate_limited, edge.fan_rate_limited);
        self.seat_streams.set(edge.seat_streams_open as i64);
        self.seat_streams_anonymous
            .set(edge.seat_streams_anonymous as i64);
        set(&self.seat_streams_cut, edge.seat_streams_cut);
        self.idempotency_keys.set(edge.idempotency_keys as i64);
        set(&self.idempotency_evicted, edge.idempotency_evicted);
        for (reason, n) in edge.check_ins_refused {
            set(&self.check_ins_refused.with_label_values(&[reason]), *n);
        }
        let process = sections.process_limit();
        for (state, v) in [
            ("inflight", process.in_flight()),
            ("limit", process.limit()),
        ] {
            self.process.with_label_values(&[state]).set(i64::from(v));
        }
        set(&self.process_shed, process.refused());
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("the text format always encodes");
        let mut text = String::from_utf8(out).expect("the text format is UTF-8");
        render_waits(&mut text, sections);
        text
    }
}
