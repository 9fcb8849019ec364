//! Wiring: lock the data directory, open the journal, replay it into
//! sections, start the actors, create the demo event, bind, serve.
//!
//! Start-up order is the readiness contract: the listener is bound only
//! after the journal has been replayed, so the first request ever answered
//! already sees every change acknowledged before the last stop.

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use anyhow::{bail, Context};

use crate::actors::{Registry, SectionSettings};
use crate::clock::{Clock, SystemClock};
use crate::config::ServeArgs;
use crate::http::{self, AppState};
use crate::idempotency::IdempotencyStore;
use crate::journal::{JournalConfig, JournalReader, Store};
use crate::layout::{EventSpec, DEMO_EVENT_JSON};
use crate::mail::{
    MailSettings, MailStats, Mailer, Renderer, TicketKey, TransportSpec, TICKET_KEY_FILE,
};
use crate::recovery;
use crate::snapshot;

pub struct Application {
    port: u16,
    server: Server,
    registry: Arc<Registry>,
    flusher: Option<JoinHandle<()>>,
    /// The mailer and its thread; stopped before the journal closes.
    mailer: actix::Addr<Mailer>,
    mail_arbiter: Option<actix::Arbiter>,
    /// Takes snapshots in the background, and a last one at shutdown.
    snapshotter: Arc<Snapshotter>,
    /// Set when a stop signal arrives; `/readyz` reads it.
    shutting_down: Arc<std::sync::atomic::AtomicBool>,
    /// How long to keep serving, not ready, before stopping.
    shutdown_delay: Duration,
    /// Held for the life of the process: one writer per data directory.
    _lock: File,
}

impl Application {
    /// Builds everything and binds the listener. Must run inside an actix
    /// `System` (the section arbiters belong to it).
    pub async fn build(args: ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let data_dir = &args.data_dir;
        repair_interrupted_restore(data_dir)?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let lock = lock_data_dir(data_dir)?;
        let mail_setup = MailSetup::from_args(&args)?;

        let idempotency =
            IdempotencyStore::new(args.idempotency_ttl_secs * 1000, args.idempotency_keys_max);
        let mut store = Store::open(&data_dir.join("journal"))?;
        let started = std::time::Instant::now();
        let reader = store.reader();
        let recovered = recovery::recover(
            data_dir,
            &reader,
            &idempotency,
            clock.now_ms(),
            args.idempotency_ttl_secs * 1000,
            None,
            &mut recovery::at_most_every_second(|records| {
                tracing::info!(records, "replaying the journal");
            }),
        )?;
        store.advance_to(recovered.position);
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
        release_freed_memory();

        let snapshot_reader = store.reader();
        let (journal, flusher) = store.start(JournalConfig {
            batch_records_max: args.batch_records_max as usize,
            queue_capacity: 65_536,
            sync_data: args.fdatasync,
            fail_after_batches: args.journal_fail_after_batches,
        });
        let settings = SectionSettings {
            mailbox_capacity: args.mailbox_capacity as usize,
            sweep_interval: Duration::from_millis(args.sweep_interval_ms),
            seed: args.seed,
        };
        let arbiters = if args.arbiters == 0 {
            cores
        } else {
            args.arbiters
        };
        let snapshotter = Arc::new(Snapshotter::start(SnapshotWorker {
            data_dir: data_dir.to_owned(),
            reader: snapshot_reader,
            journal: journal.clone(),
            clock: Arc::clone(&clock),
            idem_ttl_ms: args.idempotency_ttl_secs * 1000,
            settings: SnapshotSettings {
                every_records: args.snapshot_every_records,
                every: Duration::from_secs(args.snapshot_every_secs),
                keep: args.snapshot_keep as usize,
            },
            last_position: recovered.snapshot.unwrap_or(0),
            last_records: 0,
            last_at: std::time::Instant::now(),
        }));
        let mail_stats = Arc::new(MailStats::default());
        let mail_arbiter = actix::Arbiter::new();
        let mailer = {
            let (outbox, journal, clock, stats) = (
                recovered.state.outbox,
                journal.clone(),
                Arc::clone(&clock),
                Arc::clone(&mail_stats),
            );
            let enabled = args.mail_enabled;
            <Mailer as actix::Actor>::start_in_arbiter(&mail_arbiter.handle(), move |_| {
                // On the mailer's own runtime: the SMTP pool lives there.
                let transport = enabled.then(|| mail_setup.transport.build(&mail_setup.settings));
                Mailer::new(
                    outbox,
                    transport,
                    Arc::new(mail_setup.renderer),
                    journal,
                    clock,
                    mail_setup.settings,
                    stats,
                )
            })
        };
        let registry = Arc::new(Registry::new(
            journal,
            Arc::clone(&clock),
            settings,
            arbiters,
            args.mail_enabled.then(|| mailer.clone().recipient()),
        ));
        for (_, e) in recovered.state.events {
            registry
                .start_event(e.def, e.sections, e.created_at_ms)
                .context("starting the recovered events")?;
        }

        if args.demo && registry.get("demo").is_none() {
            let mut spec = EventSpec::from_json(DEMO_EVENT_JSON.as_bytes())
                .context("the built-in demo event")?;
            spec.hold_ttl_secs = args.hold_ttl_secs;
            let def = spec.build().context("the built-in demo event")?;
            registry
                .create_event(&spec, def, None)
                .await
                .context("creating the demo event")?;
            tracing::info!("created the demo event");
        }

        let prune_store = Arc::clone(&idempotency);
        let prune_clock = Arc::clone(&clock);
        actix_web::rt::spawn(async move {
            let mut tick = actix_web::rt::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                prune_store.prune(prune_clock.now_ms());
            }
        });

        let metrics = Arc::new(crate::metrics::Metrics::new(
            registry.journal(),
            &mail_stats,
        ));
        let shutting_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let state = web::Data::new(AppState {
            registry: Arc::clone(&registry),
            idempotency,
            admin_token: args.admin_token.clone().filter(|t| !t.is_empty()),
            mailer: mailer.clone(),
            mail_stats,
            snapshotter: Arc::clone(&snapshotter),
            data_dir: data_dir.to_owned(),
            metrics,
            shutting_down: Arc::clone(&shutting_down),
        });
        let listener = TcpListener::bind(&args.listen)
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let port = listener.local_addr()?.port();
        let workers = if args.workers == 0 {
            cores
        } else {
            args.workers
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(actix_web::middleware::from_fn(http::observe))
                .configure(http::configure)
        })
        .workers(workers)
        .backlog(4096)
        // Signals are ours (`serve`): readiness must turn 503 first.
        .disable_signals()
        .shutdown_timeout(args.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            registry,
            flusher: Some(flusher),
            mailer,
            mail_arbiter: Some(mail_arbiter),
            snapshotter,
            shutting_down,
            shutdown_delay: Duration::from_millis(args.shutdown_delay_ms),
            _lock: lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// On SIGTERM or SIGINT: mark not ready, wait the shutdown delay,
    /// then stop gracefully (stop accepting, finish in-flight requests
    /// within the shutdown timeout; `run_until_stopped` then drains the
    /// journal and takes a last snapshot).
    pub fn stop_on_signals(&self) {
        let handle = self.server.handle();
        let flag = Arc::clone(&self.shutting_down);
        let delay = self.shutdown_delay;
        actix_web::rt::spawn(async move {
            let signal = wait_for_stop_signal().await;
            tracing::info!(signal, "stopping: not ready, finishing in-flight requests");
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            actix_web::rt::time::sleep(delay).await;
            handle.stop(true).await;
        });
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM, or a handle),
    /// then stops the sections and lets the journal drain.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let result = (&mut self.server).await;
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

/// Hands memory freed by recovery (at start-up, and in the snapshotter)
/// back to the OS. Decoding a snapshot and replaying the journal allocate
/// and free a copy of the state; glibc keeps
/// freed memory mapped (below the heap top, in per-thread arenas) unless
/// asked, and a server that just recovered a stadium would carry that copy
/// as resident memory for its whole life.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the OS; it touches no
    // memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs `boxoffice serve` on the system clock until stopped.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(args.clone(), Arc::new(SystemClock)).await?;
        println!(
            "boxoffice listening on http://{}",
            with_port(&args.listen, app.port())
        );
        app.stop_on_signals();
        app.run_until_stopped().await?;
        tracing::info!("stopped");
        Ok(())
    })
}

/// Waits for SIGTERM (Kubernetes, systemd) or SIGINT (a terminal).
async fn wait_for_stop_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

fn with_port(listen: &str, port: u16) -> String {
    match listen.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{listen}:{port}"),
    }
}

fn lock_data_dir(dir: &Path) -> anyhow::Result<File> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the data directory {} is in use by another boxoffice process (one writer per directory)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// `boxoffice snapshot create --data-dir`: a snapshot of a stopped data
/// directory (the lock keeps a running server out), at the end of its
/// journal. Returns the header written.
pub fn snapshot_data_dir(
    data_dir: &Path,
    out: &Path,
    now_ms: u64,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<snapshot::Header> {
    if !data_dir.join("journal").exists() {
        bail!("{} holds no boxoffice journal", data_dir.display());
    }
    let _lock = lock_data_dir(data_dir)
        .context("stop the server first, or ask it with --server (admin API)")?;
    let defaults = ServeArgs::default();
    let store = Store::open(&data_dir.join("journal"))?;
    let (header, bytes) = recovery::take_snapshot(
        data_dir,
        &store.reader(),
        defaults.idempotency_ttl_secs * 1000,
        None,
        now_ms,
        progress,
    )?;
    snapshot::write_atomic(out, &bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(header)
}

/// When the server snapshots itself.
#[derive(Debug, Clone)]
pub struct SnapshotSettings {
    /// After this many journal records since the last snapshot.
    pub every_records: u64,
    /// And at least this often while anything changed.
    pub every: Duration,
    /// Snapshots kept in `<data-dir>/snapshots`; the journal keeps what
    /// the oldest of them needs.
    pub keep: usize,
}

enum SnapshotRequest {
    Take(tokio::sync::oneshot::Sender<Result<snapshot::Header, String>>),
    /// A last snapshot (if anything changed), then stop: graceful shutdown.
    FinalAndStop,
}

/// The snapshotter thread: takes snapshots of the live server in the
/// background (a replay of the durable journal, so no section stops),
/// prunes old ones and lets the journal drop what they cover.
pub struct Snapshotter {
    tx: crossbeam_channel::Sender<SnapshotRequest>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Snapshotter {
    fn start(worker: SnapshotWorker) -> Snapshotter {
        let (tx, rx) = crossbeam_channel::bounded::<SnapshotRequest>(16);
        let mut worker = worker;
        let thread = std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                // Background work: the sections come first.
                crate::mail::lower_thread_priority(crate::mail::MAILER_NICE);
                worker.compact();
                loop {
                    match rx.recv_timeout(Duration::from_millis(200)) {
                        Ok(SnapshotRequest::Take(reply)) => {
                            let _ = reply.send(worker.take().map_err(|e| format!("{e:#}")));
                        }
                        Ok(SnapshotRequest::FinalAndStop) => {
                            if worker.journal.durable_position() > worker.last_position {
                                if let Err(e) = worker.take() {
                                    tracing::error!(error = %format!("{e:#}"), "shutdown snapshot failed");
                                }
                            }
                            break;
                        }
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                            if worker.due() {
                                if let Err(e) = worker.take() {
                                    tracing::error!(error = %format!("{e:#}"), "automatic snapshot failed");
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawn the snapshotter");
        Snapshotter {
            tx,
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    /// Takes a snapshot now and waits for it.
    pub async fn take(&self) -> Result<snapshot::Header, String> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.tx
            .try_send(SnapshotRequest::Take(reply))
            .map_err(|_| "the snapshotter is busy or stopped".to_owned())?;
        rx.await.map_err(|_| "the snapshotter stopped".to_owned())?
    }

    /// Takes a last snapshot if anything changed, then stops the thread.
    /// Call once the journal has drained.
    pub fn stop_with_snapshot(&self) {
        let _ = self.tx.send(SnapshotRequest::FinalAndStop);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

struct SnapshotWorker {
    data_dir: std::path::PathBuf,
    reader: JournalReader,
    journal: crate::journal::Journal,
    clock: Arc<dyn Clock>,
    idem_ttl_ms: u64,
    settings: SnapshotSettings,
    last_position: u64,
    last_records: u64,
    last_at: std::time::Instant,
}

impl SnapshotWorker {
    fn records(&self) -> u64 {
        self.journal
            .stats()
            .records
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn due(&self) -> bool {
        let changed = self.journal.durable_position() > self.last_position;
        changed
            && (self.records() - self.last_records >= self.settings.every_records
                || self.last_at.elapsed() >= self.settings.every)
    }

    /// Snapshots everything durable now, unless nothing changed since the
    /// last snapshot (then that one is the answer).
    fn take(&mut self) -> anyhow::Result<snapshot::Header> {
        let started = std::time::Instant::now();
        let records = self.records();
        let end = self.journal.durable_position();
        if end <= self.last_position {
            // Only the header is needed: no reason to read and check the
            // whole file (it was checked when written or loaded).
            if let Some((_, path)) = snapshot::list(&self.data_dir)?.first() {
                if let Ok(h) = snapshot::read_header(path) {
                    if h.journal_position == self.last_position {
                        return Ok(h);
                    }
                }
            }
        }
        let (header, bytes) = recovery::take_snapshot(
            &self.data_dir,
            &self.reader,
            self.idem_ttl_ms,
            Some(end),
            self.clock.now_ms(),
            &mut |_| {},
        )?;
        std::fs::create_dir_all(self.data_dir.join(snapshot::DIR))?;
        let path = snapshot::path_for(&self.data_dir, header.journal_position);
        snapshot::write_atomic(&path, &bytes)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let size = bytes.len();
        // The replayed copy of the state and its encoding are gone now;
        // without this their pages stay resident (glibc keeps them in this
        // thread's arena), and RSS ratchets up by a state per snapshot.
        drop(bytes);
        release_freed_memory();
        self.last_position = header.journal_position;
        self.last_records = records;
        self.last_at = std::time::Instant::now();
        tracing::info!(
            path = %path.display(),
            position = header.journal_position,
            bytes = size,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        );
        self.prune()?;
        self.compact();
        Ok(header)
    }

    fn prune(&self) -> anyhow::Result<()> {
        let listed = snapshot::list(&self.data_dir)?;
        for (_, path) in listed.iter().skip(self.settings.keep.max(1)) {
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    /// The journal keeps what the oldest kept snapshot needs, so that any
    /// of them can still start the server.
    fn compact(&self) {
        let listed = snapshot::list(&self.data_dir).unwrap_or_default();
        let oldest = listed
            .iter()
            .take(self.settings.keep.max(1))
            .map(|(p, _)| *p)
            .min();
        if let Some(below) = oldest.map(|o| o.min(self.last_position)) {
            self.journal.compact_below(below);
        }
    }
}

/// `boxoffice snapshot restore`: checks `file`, builds a fresh data
/// directory beside `data_dir` holding only that snapshot, and swaps it
/// in when complete. A non-empty `data_dir` is replaced only with `force`,
/// and never while a server holds it.
pub fn restore_snapshot(
    file: &Path,
    data_dir: &Path,
    force: bool,
) -> anyhow::Result<snapshot::Header> {
    repair_interrupted_restore(data_dir)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let snap = snapshot::decode(&bytes).with_context(|| format!("{}", file.display()))?;
    snap.restore()
        .with_context(|| format!("{}", file.display()))?;
    let non_empty = std::fs::read_dir(data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        bail!(
            "{} is not empty: restoring replaces everything in it; pass --force to do that",
            data_dir.display()
        );
    }
    let _lock = if non_empty {
        Some(lock_data_dir(data_dir)?)
    } else {
        None
    };
    let name = data_dir
        .file_name()
        .context("the data directory needs a name")?
        .to_string_lossy()
        .into_owned();
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let tmp = parent.join(format!(".{name}.restoring"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("cannot clear {}", tmp.display()))?;
    }
    std::fs::create_dir_all(tmp.join(snapshot::DIR))?;
    snapshot::write_atomic(
        &snapshot::path_for(&tmp, snap.header.journal_position),
        &bytes,
    )?;
    // The ticket key is not in the snapshot (a secret stays out of backup
    // files): the directory being replaced keeps its own, or the tickets
    // already in fans' emails would stop verifying at the door.
    let key = data_dir.join(TICKET_KEY_FILE);
    if key.exists() {
        let copied = tmp.join(TICKET_KEY_FILE);
        std::fs::copy(&key, &copied).with_context(|| format!("cannot keep {}", key.display()))?;
        File::open(&copied)?.sync_all()?;
    }
    File::open(&tmp)?.sync_all()?;
    // Swap: the old directory moves aside, the new one takes its name, and
    // only then is the old one removed. A crash in between leaves either
    // the old directory in place or the new one (and a leftover to clean).
    let old = parent.join(format!(".{name}.replaced"));
    if data_dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(data_dir, &old)
            .with_context(|| format!("cannot move {} aside", data_dir.display()))?;
    }
    std::fs::rename(&tmp, data_dir)
        .with_context(|| format!("cannot move the restored data into {}", data_dir.display()))?;
    File::open(parent)?.sync_all()?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(snap.header)
}

/// The mailer's parts, built and checked before anything else starts, so a
/// bad setting is refused at once with the setting's name.
struct MailSetup {
    transport: TransportSpec,
    renderer: Renderer,
    settings: MailSettings,
}

impl MailSetup {
    fn from_args(args: &ServeArgs) -> anyhow::Result<MailSetup> {
        let settings = MailSettings {
            concurrency: args.mail_concurrency as usize,
            send_timeout: Duration::from_millis(args.mail_send_timeout_ms),
            attempts_max: args.mail_attempts_max,
            backoff_base_ms: args.mail_backoff_ms,
            backoff_max_ms: args.mail_backoff_max_ms.max(args.mail_backoff_ms),
            seed: args.seed,
        };
        let from = args.mail_from.parse().map_err(|e| {
            anyhow::anyhow!(
                "--mail-from (BOXOFFICE_MAIL_FROM): {:?} is not an email address: {e}",
                args.mail_from
            )
        })?;
        let key = match &args.ticket_key {
            Some(hex) => TicketKey::from_hex(hex)
                .map_err(|e| anyhow::anyhow!("--ticket-key (BOXOFFICE_TICKET_KEY): {e}"))?,
            None => TicketKey::load_or_create(&args.data_dir)?,
        };
        let transport = match args.smtp_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => TransportSpec::smtp(url)
                .map_err(|e| anyhow::anyhow!("--smtp-url (BOXOFFICE_SMTP_URL): {e}"))?,
            None => {
                let dir = args.data_dir.join("mail");
                TransportSpec::files(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?
            }
        };
        Ok(MailSetup {
            transport,
            renderer: Renderer::new(from, key),
            settings,
        })
    }
}

/// The names a restore uses beside `data_dir`: the directory being built,
/// and the old directory moved aside during the swap.
fn restore_names(data_dir: &Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let name = data_dir.file_name()?.to_string_lossy().into_owned();
    let parent = data_dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some((
        parent.join(format!(".{name}.restoring")),
        parent.join(format!(".{name}.replaced")),
    ))
}

/// Finishes or undoes a restore that a crash interrupted, so the data
/// directory is the old state or the new one, never missing or mixed: a
/// half-built new directory is dropped; if the crash fell between moving
/// the old directory aside and moving the new one in, the old one comes
/// back.
pub fn repair_interrupted_restore(data_dir: &Path) -> anyhow::Result<()> {
    let Some((restoring, replaced)) = restore_names(data_dir) else {
        return Ok(());
    };
    if replaced.exists() {
        if data_dir.exists() {
            std::fs::remove_dir_all(&replaced)
                .with_context(|| format!("cannot remove {}", replaced.display()))?;
        } else {
            tracing::warn!(dir = %data_dir.display(), "a restore was interrupted mid-swap; putting the old data back");
            std::fs::rename(&replaced, data_dir)
                .with_context(|| format!("cannot move {} back", replaced.display()))?;
        }
    }
    if restoring.exists() {
        std::fs::remove_dir_all(&restoring)
            .with_context(|| format!("cannot remove {}", restoring.display()))?;
    }
    Ok(())
}
