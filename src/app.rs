//! Wiring: lock the data directory, open the journal, replay it into
//! sections, start the actors, create the demo event, bind, serve.
//!
//! Start-up order is the readiness contract: the listener is bound only
//! after the journal has been replayed, so the first request ever answered
//! already sees every change acknowledged before the last stop.

use std::fs::File;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::web;
use anyhow::Context;

use crate::actors::{Registry, SectionSettings};
use crate::auth::admission::AdmissionKey;
use crate::clock::{Clock, SystemClock};
use crate::config::{PanicIn, ServeArgs};
use crate::data_dir;
use crate::http::rate::FanRate;
use crate::http::server::{Drain, StopHandle};
use crate::http::{self, AppState};
use crate::idempotency::IdempotencyStore;
use crate::journal::Store;
use crate::layout::{demo_event, DemoSettings};
use crate::mail::{MailStats, Mailer};
use crate::recovery;
use crate::settings;
use crate::snapshot::offline::repair_interrupted_restore;
use crate::snapshot::scheduler::{snapshot_long_replay, Snapshotter};

pub struct Application {
    port: u16,
    server: Server,
    /// `GET /metrics`, on the scraper's own listener (its server runs as
    /// a task of its own).
    metrics_server: actix_web::dev::ServerHandle,
    metrics_port: u16,
    registry: Arc<Registry>,
    flusher: Option<JoinHandle<()>>,
    /// The mailer and its thread; stopped before the journal closes.
    mailer: actix::Addr<Mailer>,
    mail_arbiter: Option<actix::Arbiter>,
    /// Takes snapshots in the background, and a last one at shutdown.
    snapshotter: Arc<Snapshotter>,
    /// Requests in flight and the stop; `/readyz` reads it.
    drain: Arc<Drain>,
    /// How long to keep serving, not ready, before stopping.
    shutdown_delay: Duration,
    /// How long requests in flight may take once the stop begins.
    shutdown_timeout: Duration,
    /// Held for the life of the process: one writer per data directory.
    _lock: File,
}

impl Application {
    /// Builds everything and binds the listener. Must run inside an actix
    /// `System` (the section arbiters belong to it).
    pub async fn build(args: ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        args.check()?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let data_dir = &args.data_dir;
        repair_interrupted_restore(data_dir)?;
        data_dir::create_dir_durable(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let lock = data_dir::lock(data_dir)?;
        let (lineage, begun) = data_dir::Lineage::load_or_create(data_dir, clock.now_ms())?;
        let mail_setup = settings::mail(&args, lineage)?;
        let mut tickets = mail_setup.tickets();
        let sharding = settings::sharding(&args)?;
        let auth = Arc::new(settings::fan_verifier(&args, Arc::clone(&clock))?);
        let receipts = Arc::new(settings::receipt_verifier(&args, Arc::clone(&clock))?);
        let fan_rate = FanRate::new(
            args.fan_holds_per_sec,
            args.fan_holds_burst,
            args.fan_rate_keys_max as usize,
        )
        .map(Arc::new);

        let idempotency = IdempotencyStore::new(
            args.idempotency_ttl_secs * 1000,
            args.idempotency_keys_max as usize,
            Some(args.idempotency_keys_per_fan as usize),
        );
        let mut store = Store::open(&data_dir.join(data_dir::JOURNAL_DIR))?;
        let started = std::time::Instant::now();
        let reader = store.reader();
        let recovered = recovery::recover(
            data_dir,
            &reader,
            recovery::Remember {
                store: &idempotency,
                answers: &crate::api::ApiAnswers,
                now_ms: clock.now_ms(),
                ttl_ms: args.idempotency_ttl_secs * 1000,
            },
            None,
            &mut recovery::at_most_every_second(|records| {
                tracing::info!(records, "replaying the journal");
            }),
        )?;
        store.advance_to(recovered.position);
        if begun {
            tickets.lineage = lineage.after(recovered.state.newest_confirmed_ms(), data_dir)?;
        }
        drop(reader);
        let store = store.reopen()?;
        tracing::info!(
            records = recovered.records,
            events = recovered.state.events.len(),
            unsent_emails = recovered.state.outbox.len(),
            snapshot = ?recovered.snapshot,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "journal replayed"
        );
        recovery::release_freed_memory();

        let snapshot_reader = store.reader();
        let (journal, flusher) = store.start(settings::journal(&args));
        let settings = SectionSettings {
            mailbox_capacity: args.mailbox_capacity as usize,
            process_inflight_max: args.process_inflight_max as usize,
            latency_target: Duration::from_millis(args.latency_target_ms),
            sweep_interval: Duration::from_millis(args.sweep_interval_ms),
            panic_on_change: args.panic_in == Some(PanicIn::Section),
        };
        let arbiters = if args.arbiters == 0 {
            cores
        } else {
            args.arbiters as usize
        };
        let snapshotter = Arc::new(Snapshotter::start(
            data_dir,
            snapshot_reader,
            journal.clone(),
            Arc::clone(&clock),
            args.idempotency_ttl_secs * 1000,
            settings::snapshots(&args),
            snapshot_long_replay(
                data_dir,
                &recovered,
                &idempotency,
                args.idempotency_ttl_secs * 1000,
                args.snapshot_every_records,
                clock.now_ms(),
            ),
        ));
        let mail_stats = Arc::new(MailStats::default());
        let (mailer, mail_arbiter) = mail_setup.start(
            args.mail_enabled,
            recovered.state.outbox,
            journal.clone(),
            Arc::clone(&clock),
            Arc::clone(&mail_stats),
        );
        let registry = Arc::new(Registry::new(
            journal,
            Arc::clone(&clock),
            settings,
            arbiters,
            args.mail_enabled.then(|| mailer.clone().recipient()),
        ));
        registry
            .start_recovered(recovered.state.events.into_values())
            .context("starting the recovered events")?;

        let demo_is_ours = sharding.as_ref().is_none_or(|s| s.check("demo").is_ok());
        if args.demo && args.demo_event && demo_is_ours && registry.get("demo").is_none() {
            let spec = demo_event(
                clock.now_ms(),
                DemoSettings {
                    hold_ttl_secs: args.hold_ttl_secs,
                    presale_secs: args.demo_presale_secs,
                    tickets_per_fan_max: args.demo_tickets_per_fan_max,
                },
            );
            let def = spec.build().context("the built-in demo event")?;
            registry
                .create_event(&spec, def, None)
                .await
                .context("creating the demo event")?;
            tracing::info!("created the demo event");
        }

        http::keep_tidy(&idempotency, fan_rate.as_ref(), &clock);

        let metrics = Arc::new(crate::metrics::Metrics::new(
            registry.journal(),
            &mail_stats,
        ));
        let drain = Arc::new(Drain::default());
        let state = web::Data::new(AppState {
            registry: Arc::clone(&registry),
            idempotency,
            admin_token: args.admin_token.clone(),
            mailer: mailer.clone(),
            mail_stats,
            snapshotter: Arc::clone(&snapshotter),
            data_dir: data_dir.to_owned(),
            metrics,
            drain: Arc::clone(&drain),
            sharding,
            auth,
            receipts,
            fan_rate,
            body_read_timeout: Duration::from_millis(args.body_read_timeout_ms),
            tickets,
            scanner_token: args.scanner_token.clone(),
            check_ins_refused: Default::default(),
            admission_key: AdmissionKey::load_or_create(data_dir)?,
            feed_token: args.feed_token.clone(),
            streams: settings::streams(&args)?,
            demo: settings::demo(&args)?,
        });
        let listener = TcpListener::bind(&args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let port = listener.local_addr()?.port();
        let (metrics_server, metrics_port) =
            http::server::start_metrics(state.clone(), &args.metrics_listen)?;
        let server = http::server::start(state, listener, &settings::http(&args, cores))?;
        Ok(Application {
            port,
            server,
            metrics_server,
            metrics_port,
            registry,
            flusher: Some(flusher),
            mailer,
            mail_arbiter: Some(mail_arbiter),
            snapshotter,
            drain,
            shutdown_delay: Duration::from_millis(args.shutdown_delay_ms),
            shutdown_timeout: Duration::from_secs(args.shutdown_timeout_secs),
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn metrics_port(&self) -> u16 {
        self.metrics_port
    }

    pub fn handle(&self) -> StopHandle {
        let (drain, timeout) = (Arc::clone(&self.drain), self.shutdown_timeout);
        StopHandle {
            server: self.server.handle(),
            drain,
            timeout,
        }
    }

    /// On SIGTERM or SIGINT: mark not ready, wait the shutdown delay,
    /// then stop gracefully (stop accepting, finish in-flight requests
    /// within the shutdown timeout; `run_until_stopped` then drains the
    /// journal and takes a last snapshot).
    pub fn stop_on_signals(&self) -> std::io::Result<()> {
        let handle = self.server.handle();
        let drain = Arc::clone(&self.drain);
        let (delay, timeout) = (self.shutdown_delay, self.shutdown_timeout);
        // Registered now, not when the task first runs: a signal that
        // comes right after start-up must find our handler.
        let stop = stop_signal()?;
        actix_web::rt::spawn(async move {
            let signal = stop.await;
            tracing::info!(signal, "stopping: not ready, finishing in-flight requests");
            drain.stop(handle, delay, timeout).await;
        });
        Ok(())
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, or a handle),
    /// then stops the sections and lets the journal drain.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let result = (&mut self.server).await;
        self.metrics_server.stop(false).await;
        let _ = self.mailer.send(crate::mail::StopMailer).await;
        let registry = Arc::clone(&self.registry);
        let flusher = self.flusher.take();
        let mail_arbiter = self.mail_arbiter.take();
        let snapshotter = Arc::clone(&self.snapshotter);
        // Joining threads blocks: keep it off the runtime's thread.
        let _ = actix_web::rt::task::spawn_blocking(move || {
            // Sends in flight are abandoned: unsent entries stay in the
            // journal and go out after the restart.
            if let Some(a) = mail_arbiter {
                a.stop();
                let _ = a.join();
            }
            registry.shutdown();
            if let Some(f) = flusher {
                let _ = f.join();
            }
            // The journal has drained: the last snapshot holds everything.
            snapshotter.stop_with_snapshot();
        })
        .await;
        result
    }
}

/// Runs `boxoffice serve` on the system clock until stopped.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    crate::threads::abort_on_panic();
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(args.clone(), Arc::new(SystemClock)).await?;
        app.stop_on_signals()?;
        // The metrics first: whoever waits for the second line has both.
        let address = http::server::address;
        println!(
            "boxoffice metrics on http://{}",
            address(&args.metrics_listen, app.metrics_port())
        );
        println!(
            "boxoffice listening on http://{}",
            address(&args.listen, app.port())
        );
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Handles SIGTERM (Kubernetes, systemd) and SIGINT (a terminal) from now
/// on; the future resolves to the name of the first that arrives.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
