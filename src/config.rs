//! Command-line flags and `BOXOFFICE_*` environment variables (a flag wins
//! over its variable, which wins over the default).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The load generator's own flags live with it (`boxoffice-loadgen`).
pub use boxoffice_loadgen::{LoadgenArgs, QueueWait};

/// How long an `Idempotency-Key`'s answer is kept by default (the
/// store's).
pub const IDEMPOTENCY_TTL_SECS_DEFAULT: u64 = crate::idempotency::TTL_SECS_DEFAULT;

#[derive(Debug, Parser)]
#[command(
    name = "boxoffice",
    version,
    about = "Seat allocator for high-demand ticket sales"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Look at and retry the email outbox of a running server.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Sign a fan's token with the demo issuer's key (the stand-in for the
    /// fan club's sign-in, when the server runs without `--jwks`).
    Token(TokenArgs),
    /// Sign a payment receipt for a hold with the demo payment secret (the
    /// stand-in for the payment page, when the server runs without
    /// `--payment-secret` or `--payment-jwks`).
    Receipt(ReceiptArgs),
    /// Check a ticket token (the content of a ticket's QR code).
    #[command(subcommand)]
    Ticket(TicketCommand),
    /// Create, verify, inspect and restore snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Flash-sale load generator against a running server.
    Loadgen(Box<LoadgenArgs>),
    /// Exit 0 if the server answers `/healthz` (or `--path`) with 200: the
    /// container health check, which needs no curl in the image.
    Probe {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, default_value = "/healthz")]
        path: String,
    },
    /// The shard map: check it, and render the Kubernetes routes from it.
    #[command(subcommand)]
    Shards(ShardsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ShardsCommand {
    /// Print the Services and the Ingress that route each event of the
    /// map to its shard (deploy/base/routes.yaml is this output).
    Routes {
        /// The shard map (TOML).
        #[arg(long)]
        map: PathBuf,
        /// The StatefulSet's name: pods are `<set>-<ordinal>`, Services
        /// `<set>-shard-<ordinal>`, and `<set>` is the Service of all.
        #[arg(long, default_value = "boxoffice")]
        set: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The fan's id (the token's `sub`).
    #[arg(long)]
    pub sub: String,
    /// A membership the fan has (repeat for several), e.g. `fanclub`.
    #[arg(long = "membership")]
    pub memberships: Vec<String>,
    /// How long the token is valid, in seconds.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub ttl_secs: u64,
    /// The data directory whose demo issuer key signs (made if missing).
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The token's `aud`, for a server started with `--jwt-audience`.
    #[arg(long)]
    pub audience: Option<String>,
    /// The token's `locale` (a BCP 47 tag, e.g. `ko-KR`): the language of
    /// the fan's emails.
    #[arg(long)]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ReceiptArgs {
    /// The hold paid for: its id.
    #[arg(long)]
    pub hold: String,
    /// What was paid, in the currency's minor unit: the hold's
    /// `total_price`.
    #[arg(long)]
    pub amount: u64,
    /// ISO 4217 code: the hold's `currency`.
    #[arg(long)]
    pub currency: String,
    /// The payment's reference; a fresh random one by default.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// How long the receipt is valid, in seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub ttl_secs: u64,
    /// The data directory whose demo payment secret signs (made if
    /// missing).
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a running server (`--server`) or a stopped data directory
    /// (`--data-dir`).
    Create {
        /// Where to write the snapshot.
        #[arg(long)]
        out: PathBuf,
        /// The data directory of a stopped server.
        #[arg(long, conflicts_with = "server", required_unless_present = "server")]
        data_dir: Option<PathBuf>,
        /// Base URL of a running server (asks its admin API).
        #[arg(long)]
        server: Option<String>,
        /// The running server's admin token.
        #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
    },
    /// Check a snapshot: checksum, version, and every section's state.
    Verify { file: PathBuf },
    /// Summarize a snapshot.
    Inspect {
        file: PathBuf,
        /// Print the header as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make a data directory hold exactly a snapshot's state.
    Restore {
        file: PathBuf,
        #[arg(long, env = "BOXOFFICE_DATA_DIR")]
        data_dir: PathBuf,
        /// Replace a non-empty data directory.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AdminClient {
    /// Base URL of the running server.
    #[arg(
        long,
        env = "BOXOFFICE_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The server's admin token.
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: String,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List outbox entries (`--state dead` for the dead letters).
    List {
        #[command(flatten)]
        client: AdminClient,
        /// `pending`, `dead` or `all`.
        #[arg(long, default_value = "all")]
        state: String,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put a dead letter back in the queue.
    Retry {
        #[command(flatten)]
        client: AdminClient,
        /// The entry's id, e.g. `demo.A.b42.confirmation`.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TicketCommand {
    /// Verify a ticket token and print what it admits. Offline (with the
    /// ticket key) it checks the signature only; with `--server` it checks
    /// the ticket in at that server: the first scan admits, every later
    /// one (and a cancelled booking's ticket) is refused, exit status 1.
    Verify {
        /// The token, `BXT1.…`.
        token: String,
        /// Data directory whose `ticket.key` signed it.
        #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The key itself (64 hex digits), instead of the data directory's.
        #[arg(long, env = "BOXOFFICE_TICKET_KEY", hide_env_values = true)]
        ticket_key: Option<String>,
        /// Base URL of the running server: check the ticket in there.
        #[arg(long, requires = "scanner_token")]
        server: Option<String>,
        /// The server's scanner token.
        #[arg(long, env = "BOXOFFICE_SCANNER_TOKEN", hide_env_values = true)]
        scanner_token: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// A TOML file of settings (keys are the flag names, with `-` or `_`):
    /// flags win over environment variables, which win over the file,
    /// which wins over the defaults.
    #[arg(long, env = "BOXOFFICE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format: `text` (human-readable) or `json` (one object a line,
    /// for log collectors). The level comes from `RUST_LOG`.
    #[arg(long, env = "BOXOFFICE_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,

    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "BOXOFFICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Address of the Prometheus metrics (`GET /metrics`), a listener of
    /// their own so that they never face the fans: keep it on loopback or
    /// a network only the scraper reaches. Port 0 picks a free port.
    #[arg(
        long,
        env = "BOXOFFICE_METRICS_LISTEN",
        default_value = "127.0.0.1:9090"
    )]
    pub metrics_listen: String,

    /// Directory for the journal; created if missing.
    #[arg(long, env = "BOXOFFICE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Bearer token for the admin endpoints (`POST /v1/events`); they are
    /// disabled without one.
    #[arg(long, env = "BOXOFFICE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Bearer token of the door scanners (`POST /v1/tickets/check-in`);
    /// check-in is disabled without one. Never the admin token: a
    /// scanner's credential lives on many devices at many doors.
    #[arg(long, env = "BOXOFFICE_SCANNER_TOKEN", hide_env_values = true)]
    pub scanner_token: Option<String>,

    /// Bearer token of the services that read the change feed (`GET
    /// /v1/events/{event}/changes`), which carries fans' ids and emails;
    /// the admin token reads it too. Never the admin or scanner token.
    #[arg(long, env = "BOXOFFICE_FEED_TOKEN", hide_env_values = true)]
    pub feed_token: Option<String>,

    /// The shard map (TOML: which shard owns which events). With it (and
    /// `--shard`), the server serves only its own events and answers
    /// `421` naming the owner for any other; without it, it serves every
    /// event.
    #[arg(long, env = "BOXOFFICE_SHARD_MAP")]
    pub shard_map: Option<PathBuf>,

    /// This server's shard name in the shard map: its StatefulSet pod
    /// name (`boxoffice-0`).
    #[arg(long, env = "BOXOFFICE_SHARD")]
    pub shard: Option<String>,

    /// The demo (`true`, the default) or a real sale (`false`). The demo
    /// trusts keys it makes in the data directory for whatever is not
    /// configured (a demo token issuer, a demo payment secret), serves
    /// `/v1/demo/*` (a token for anyone, a receipt for any hold) and
    /// creates the demo event: for trying things, never for a sale. A
    /// real sale starts only with `--jwks`, `--jwt-issuer`,
    /// `--jwt-audience` and `--payment-secret` or `--payment-jwks`, and
    /// never makes, reads or trusts a demo key.
    #[arg(long, env = "BOXOFFICE_DEMO", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo: bool,

    /// In the demo, create the demo event `demo` on first start (a real
    /// sale never does).
    #[arg(long, env = "BOXOFFICE_DEMO_EVENT", default_value_t = true, action = clap::ArgAction::Set)]
    pub demo_event: bool,

    /// Hold time-to-live of the demo event, in seconds (events created over
    /// the API carry their own).
    #[arg(long, env = "BOXOFFICE_HOLD_TTL_SECS", default_value_t = 420,
          value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub hold_ttl_secs: u64,

    /// How long the demo event's fan-club presale (members of `fanclub`
    /// only) runs before its general sale opens, in seconds from its
    /// creation.
    #[arg(long, env = "BOXOFFICE_DEMO_PRESALE_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=31_536_000))]
    pub demo_presale_secs: u64,

    /// Most places one fan may own of the demo event (held plus booked,
    /// across sections); 0: no limit.
    #[arg(long, env = "BOXOFFICE_DEMO_TICKETS_PER_FAN_MAX", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub demo_tickets_per_fan_max: u32,

    /// How often each section looks for expired holds, in milliseconds.
    #[arg(long, env = "BOXOFFICE_SWEEP_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub sweep_interval_ms: u64,

    /// HTTP worker threads; 0 means one per core.
    #[arg(long, env = "BOXOFFICE_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub workers: u64,

    /// Arbiter threads for the section actors; 0 means one per core.
    #[arg(long, env = "BOXOFFICE_ARBITERS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub arbiters: u64,

    /// Deadline for a request's head (request line and headers), in
    /// milliseconds: a client that has not sent it whole by then is
    /// answered `408` and closed (slow or stalled clients cannot hold
    /// connections).
    #[arg(long, env = "BOXOFFICE_HEADER_READ_TIMEOUT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub header_read_timeout_ms: u64,

    /// Deadline for a request's body once its head is in, in
    /// milliseconds; past it, `408` and the connection is closed.
    #[arg(long, env = "BOXOFFICE_BODY_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=300_000))]
    pub body_read_timeout_ms: u64,

    /// A connection whose client has taken none of what was sent to it
    /// for this long, in seconds, is dropped (TCP_USER_TIMEOUT): a client
    /// that stopped reading, whose window stays shut, or that vanished.
    #[arg(long, env = "BOXOFFICE_SEND_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub send_timeout_secs: u64,

    /// Most connections each HTTP worker serves at once; more wait in the
    /// listen backlog.
    #[arg(long, env = "BOXOFFICE_CONNECTIONS_PER_WORKER_MAX", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub connections_per_worker_max: u64,

    /// Most waiting-room streams (`GET .../queue/me/stream`) open at once;
    /// past it fans are told to poll instead (503). Each holds a
    /// connection, so keep it below the connections the workers serve.
    #[arg(long, env = "BOXOFFICE_QUEUE_STREAMS_MAX", default_value_t = 8_192,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub queue_streams_max: u64,

    /// Most seat streams (`GET .../sections/{section}/stream`) open at
    /// once; past it clients are told to read the seat map instead (503).
    /// Each holds a connection and about 1 KB besides.
    #[arg(long, env = "BOXOFFICE_SEAT_STREAMS_MAX", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub seat_streams_max: u64,

    /// Of those, most open without a fan's token (503 past it); the rest
    /// are kept for fans signed in (a stream sent with their token, four a
    /// fan), so a crowd of anonymous clients cannot take the live seat map
    /// from fans.
    #[arg(long, env = "BOXOFFICE_SEAT_STREAMS_ANONYMOUS_MAX", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub seat_streams_anonymous_max: u64,

    /// Of the streams without a token, most from one client address (an
    /// IPv6 client's /64; behind `--trusted-proxies`, the address they
    /// name): past it `429`, so one machine cannot take the places of a
    /// crowd of watchers. Signed-in fans are counted by fan instead.
    #[arg(long, env = "BOXOFFICE_SEAT_STREAMS_PER_ADDRESS_MAX", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub seat_streams_per_address_max: u64,

    /// The proxies in front of the server (the Ingress controller's pods),
    /// as addresses or networks, comma-separated (`10.0.0.0/8,fd00::/8`):
    /// behind them a client's address is the nearest hop of
    /// `X-Forwarded-For` that is not one of them. Without it every client
    /// is its TCP peer, and `X-Forwarded-For` is ignored.
    #[arg(long, env = "BOXOFFICE_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,

    /// Most change feeds (`GET /v1/events/{event}/changes`) open at once;
    /// each reads the journal while it catches up.
    #[arg(long, env = "BOXOFFICE_FEED_STREAMS_MAX", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub feed_streams_max: u64,

    /// Most requests in flight per section, however fast it answers; its
    /// limit moves below this with latency (`--latency-target-ms`), and a
    /// request past it is answered 503 with Retry-After.
    #[arg(long, env = "BOXOFFICE_MAILBOX_CAPACITY", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub mailbox_capacity: u64,

    /// Most requests in flight to all sections at once, however fast they
    /// answer; the process's limit moves below this with latency.
    #[arg(long, env = "BOXOFFICE_PROCESS_INFLIGHT_MAX", default_value_t = 8192,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub process_inflight_max: u64,

    /// The mean time a section takes to answer (its queue, its decision,
    /// the group commit), in milliseconds, above which the limits on
    /// requests in flight drop: excess load is refused (503) rather than
    /// queued past this.
    #[arg(long, env = "BOXOFFICE_LATENCY_TARGET_MS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub latency_target_ms: u64,

    /// Most records in one group commit.
    #[arg(long, env = "BOXOFFICE_BATCH_RECORDS_MAX", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_records_max: u64,

    /// fdatasync sled's data file after every group commit, so that a 2xx
    /// survives power loss. Turning it off keeps crash (not power) safety.
    #[arg(long, env = "BOXOFFICE_FDATASYNC", default_value_t = true, action = clap::ArgAction::Set)]
    pub fdatasync: bool,

    /// How long an Idempotency-Key's answer is kept, in seconds.
    #[arg(long, env = "BOXOFFICE_IDEMPOTENCY_TTL_SECS", default_value_t = IDEMPOTENCY_TTL_SECS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub idempotency_ttl_secs: u64,

    /// Most Idempotency-Keys remembered at once (about 500 bytes each).
    #[arg(long, env = "BOXOFFICE_IDEMPOTENCY_KEYS_MAX", default_value_t = 2_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub idempotency_keys_max: u64,

    /// Most Idempotency-Key answers remembered per fan (and for the admin
    /// token): past it, that fan's oldest go first.
    #[arg(long, env = "BOXOFFICE_IDEMPOTENCY_KEYS_PER_FAN", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub idempotency_keys_per_fan: u64,

    /// SMTP server for the emails, in lettre's URL form:
    /// `smtp://127.0.0.1:2525`, `smtps://user:pass@host`,
    /// `smtp://host?tls=required` (STARTTLS). Without it, emails are written
    /// as `.eml` files under `<data-dir>/mail/`.
    #[arg(long, env = "BOXOFFICE_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Send emails. Off, bookings still queue theirs in the journal, and
    /// the next start with it on sends them all (a pause, not a loss).
    #[arg(long, env = "BOXOFFICE_MAIL_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub mail_enabled: bool,

    /// The From of every email, e.g. `Tickets <tickets@example.com>`.
    #[arg(
        long,
        env = "BOXOFFICE_MAIL_FROM",
        default_value = "boxoffice <tickets@boxoffice.localhost>"
    )]
    pub mail_from: String,

    /// Most emails being sent at once (and pooled SMTP connections).
    #[arg(long, env = "BOXOFFICE_MAIL_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub mail_concurrency: u64,

    /// Changes a second (made durable, over the last quarter second) at
    /// or above which the sale is busy: the mailer then steps aside and
    /// sends at most `--mail-busy-concurrency` emails at once, so that
    /// sending costs the sale as little as it can (0: never step aside).
    #[arg(long, env = "BOXOFFICE_MAIL_BUSY_CHANGES_PER_SEC", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub mail_busy_changes_per_sec: u64,

    /// Most emails being sent at once while the sale is busy.
    #[arg(long, env = "BOXOFFICE_MAIL_BUSY_CONCURRENCY", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=256))]
    pub mail_busy_concurrency: u64,

    /// However busy the sale, once the oldest email due has waited this
    /// long the mailer sends at full `--mail-concurrency` again: a fan
    /// hears back within about this long, rush or not.
    #[arg(long, env = "BOXOFFICE_MAIL_DELAY_MAX_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub mail_delay_max_secs: u64,

    /// Deadline of one whole send (connect to final 250), in milliseconds.
    #[arg(long, env = "BOXOFFICE_MAIL_SEND_TIMEOUT_MS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub mail_send_timeout_ms: u64,

    /// Attempts before an email becomes a dead letter.
    #[arg(long, env = "BOXOFFICE_MAIL_ATTEMPTS_MAX", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub mail_attempts_max: u32,

    /// First retry delay in milliseconds; doubles per attempt, with jitter.
    #[arg(long, env = "BOXOFFICE_MAIL_BACKOFF_MS", default_value_t = 2_000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub mail_backoff_ms: u64,

    /// Longest retry delay in milliseconds.
    #[arg(long, env = "BOXOFFICE_MAIL_BACKOFF_MAX_MS", default_value_t = 600_000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub mail_backoff_max_ms: u64,

    /// The fan club's token issuer: a JWKS (RFC 7517) file, read again when
    /// it changes, or an https URL (plain http only on loopback), fetched
    /// every `--jwks-refresh-secs` and when a token names an unknown key;
    /// a key that leaves it ends its tokens at the next refresh. Without
    /// it the demo trusts only a demo issuer whose key it keeps in
    /// `<data-dir>/issuer.key` (`boxoffice token` signs with it); a real
    /// sale does not start.
    #[arg(long, env = "BOXOFFICE_JWKS")]
    pub jwks: Option<String>,

    /// How often a JWKS URL is fetched again, in seconds.
    #[arg(long, env = "BOXOFFICE_JWKS_REFRESH_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub jwks_refresh_secs: u64,

    /// The `iss` fans' tokens must carry: required with `--jwks` (the
    /// demo issuer's tokens carry `boxoffice-demo`).
    #[arg(long, env = "BOXOFFICE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` fans' tokens must carry (among theirs): required with
    /// `--jwks`, so that a token the same issuer minted for another
    /// application is refused.
    #[arg(long, env = "BOXOFFICE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// The token claim that lists a fan's memberships (a list of strings).
    #[arg(
        long,
        env = "BOXOFFICE_JWT_MEMBERSHIP_CLAIM",
        default_value = "memberships"
    )]
    pub jwt_membership_claim: String,

    /// Clock skew forgiven on a token's `exp` and `nbf`, in seconds.
    #[arg(long, env = "BOXOFFICE_JWT_LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=600))]
    pub jwt_leeway_secs: u64,

    /// Most verified tokens remembered (a fan's later requests skip the
    /// signature check).
    #[arg(long, env = "BOXOFFICE_JWT_CACHE_MAX", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub jwt_cache_max: u64,

    /// The secret (at least 32 bytes) shared with the payment service,
    /// which signs its receipts with HS256. Without it or
    /// `--payment-jwks`, the demo makes a demo secret in
    /// `<data-dir>/payment.key` (`boxoffice receipt` signs with it); a
    /// real sale does not start.
    #[arg(long, env = "BOXOFFICE_PAYMENT_SECRET", hide_env_values = true)]
    pub payment_secret: Option<String>,

    /// Most hold attempts per second per fan, after a burst of
    /// `--fan-holds-burst`; beyond, `429` with `Retry-After`. 0: no limit.
    #[arg(long, env = "BOXOFFICE_FAN_HOLDS_PER_SEC", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub fan_holds_per_sec: u32,

    /// Hold attempts a fan may make at once before the rate applies.
    #[arg(long, env = "BOXOFFICE_FAN_HOLDS_BURST", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fan_holds_burst: u32,

    /// Most fans whose rate the server tracks at once (a fan is tracked
    /// only for a few seconds after its last attempt); beyond, new fans'
    /// holds get `503`.
    #[arg(long, env = "BOXOFFICE_FAN_RATE_KEYS_MAX", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub fan_rate_keys_max: u64,

    /// The payment service's JWKS (a file or an https URL, refreshed as
    /// `--jwks` is): its receipts are signed with ES256, RS256 or EdDSA.
    #[arg(long, env = "BOXOFFICE_PAYMENT_JWKS")]
    pub payment_jwks: Option<String>,

    /// The `iss` receipts must carry: required with `--payment-jwks`,
    /// checked with `--payment-secret` when given.
    #[arg(long, env = "BOXOFFICE_PAYMENT_ISSUER")]
    pub payment_issuer: Option<String>,

    /// The `aud` receipts must carry (among theirs): required with
    /// `--payment-jwks`, checked with `--payment-secret` when given.
    #[arg(long, env = "BOXOFFICE_PAYMENT_AUDIENCE")]
    pub payment_audience: Option<String>,

    /// Key that signs the ticket tokens in the QR codes (64 hex digits).
    /// Without it, a key is made on first start and kept in
    /// `<data-dir>/ticket.key`.
    #[arg(long, env = "BOXOFFICE_TICKET_KEY", hide_env_values = true)]
    pub ticket_key: Option<String>,

    /// On SIGTERM or SIGINT: how long in-flight requests may take before
    /// the server stops anyway, in seconds (below Kubernetes' default 30 s
    /// grace period, which must also cover the last snapshot).
    #[arg(long, env = "BOXOFFICE_SHUTDOWN_TIMEOUT_SECS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub shutdown_timeout_secs: u64,

    /// On SIGTERM: how long to keep serving while `/readyz` already says
    /// 503, so load balancers stop sending traffic first, in milliseconds.
    #[arg(long, env = "BOXOFFICE_SHUTDOWN_DELAY_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub shutdown_delay_ms: u64,

    /// Take a snapshot after this many journal records.
    #[arg(long, env = "BOXOFFICE_SNAPSHOT_EVERY_RECORDS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000_000_000))]
    pub snapshot_every_records: u64,

    /// Take a snapshot at least this often (seconds) while anything changed.
    #[arg(long, env = "BOXOFFICE_SNAPSHOT_EVERY_SECS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub snapshot_every_secs: u64,

    /// Snapshots kept in `<data-dir>/snapshots` (the journal keeps what the
    /// oldest of them needs).
    #[arg(long, env = "BOXOFFICE_SNAPSHOT_KEEP", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub snapshot_keep: u64,

    /// Failpoint for tests: journal writes fail after this many batches.
    #[arg(long, hide = true)]
    pub journal_fail_after_batches: Option<u64>,

    /// Failpoint for tests: every group commit takes this many
    /// milliseconds longer, as on a slow disk.
    #[arg(long, hide = true, default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub journal_delay_ms: u64,

    /// Failpoint for tests: every group commit waits this many
    /// milliseconds with its batch written into sled (readable) but not
    /// yet flushed or synced: nothing may show it meanwhile.
    #[arg(long, hide = true, default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub journal_unsynced_delay_ms: u64,

    /// Failpoint for tests: a panic in a section actor (at the first change
    /// it applies, before journaling it), the journal's flusher (at its
    /// first write) or the mailer (at its first send).
    #[arg(long, hide = true, value_enum)]
    pub panic_in: Option<PanicIn>,
}

/// Shortest admin token taken: anything shorter is guessable online.
pub const ADMIN_TOKEN_LEN_MIN: usize = 16;

impl ServeArgs {
    /// What the flags' own parsers cannot see: secrets that are blank,
    /// padded or too short, and other values given but empty (each would
    /// silently fall back to a default: the demo issuer, `.eml` files).
    /// Refused by name, never echoing a secret.
    pub fn check(&self) -> anyhow::Result<()> {
        let named = [
            ("--admin-token (BOXOFFICE_ADMIN_TOKEN)", &self.admin_token),
            (
                "--scanner-token (BOXOFFICE_SCANNER_TOKEN)",
                &self.scanner_token,
            ),
            (
                "--payment-secret (BOXOFFICE_PAYMENT_SECRET)",
                &self.payment_secret,
            ),
            (
                "--payment-jwks (BOXOFFICE_PAYMENT_JWKS)",
                &self.payment_jwks,
            ),
            ("--jwks (BOXOFFICE_JWKS)", &self.jwks),
            ("--jwt-issuer (BOXOFFICE_JWT_ISSUER)", &self.jwt_issuer),
            (
                "--jwt-audience (BOXOFFICE_JWT_AUDIENCE)",
                &self.jwt_audience,
            ),
            ("--smtp-url (BOXOFFICE_SMTP_URL)", &self.smtp_url),
            ("--ticket-key (BOXOFFICE_TICKET_KEY)", &self.ticket_key),
            ("--feed-token (BOXOFFICE_FEED_TOKEN)", &self.feed_token),
            (
                "--payment-issuer (BOXOFFICE_PAYMENT_ISSUER)",
                &self.payment_issuer,
            ),
            (
                "--payment-audience (BOXOFFICE_PAYMENT_AUDIENCE)",
                &self.payment_audience,
            ),
        ];
        for (name, value) in named {
            let Some(v) = value else { continue };
            if v.trim().is_empty() {
                anyhow::bail!("{name} is blank: give a value, or leave the setting out");
            }
            if v.trim() != v {
                anyhow::bail!("{name} starts or ends with spaces");
            }
        }
        let service_tokens = [
            ("--admin-token (BOXOFFICE_ADMIN_TOKEN)", &self.admin_token),
            (
                "--scanner-token (BOXOFFICE_SCANNER_TOKEN)",
                &self.scanner_token,
            ),
            ("--feed-token (BOXOFFICE_FEED_TOKEN)", &self.feed_token),
        ];
        for (name, token) in service_tokens {
            let Some(token) = token else { continue };
            if token.chars().count() < ADMIN_TOKEN_LEN_MIN {
                anyhow::bail!("{name}: at least {ADMIN_TOKEN_LEN_MIN} characters");
            }
            if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                anyhow::bail!("{name}: no spaces or control characters (it travels in a header)");
            }
        }
        if self.scanner_token.is_some() && self.scanner_token == self.admin_token {
            anyhow::bail!(
                "--scanner-token (BOXOFFICE_SCANNER_TOKEN) is the admin token: give the scanners their own"
            );
        }
        if self.feed_token.is_some()
            && (self.feed_token == self.admin_token || self.feed_token == self.scanner_token)
        {
            anyhow::bail!(
                "--feed-token (BOXOFFICE_FEED_TOKEN) is the admin or the scanner token: give the feed its own"
            );
        }
        self.check_trust()
    }

    /// Whom tokens and receipts are checked against. A JWKS names the
    /// issuer and audience its tokens must carry (one identity provider
    /// often signs for many applications) and is fetched over TLS; a real
    /// sale trusts nothing of the demo's, so it needs every one of them.
    fn check_trust(&self) -> anyhow::Result<()> {
        let jwks = [
            (
                "--jwks (BOXOFFICE_JWKS)",
                &self.jwks,
                [
                    ("--jwt-issuer (BOXOFFICE_JWT_ISSUER)", &self.jwt_issuer),
                    (
                        "--jwt-audience (BOXOFFICE_JWT_AUDIENCE)",
                        &self.jwt_audience,
                    ),
                ],
            ),
            (
                "--payment-jwks (BOXOFFICE_PAYMENT_JWKS)",
                &self.payment_jwks,
                [
                    (
                        "--payment-issuer (BOXOFFICE_PAYMENT_ISSUER)",
                        &self.payment_issuer,
                    ),
                    (
                        "--payment-audience (BOXOFFICE_PAYMENT_AUDIENCE)",
                        &self.payment_audience,
                    ),
                ],
            ),
        ];
        for (name, location, claims) in &jwks {
            let Some(location) = location else { continue };
            check_jwks_location(location).map_err(|why| anyhow::anyhow!("{name}: {why}"))?;
            let missing: Vec<&str> = claims
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| *n)
                .collect();
            if !missing.is_empty() {
                anyhow::bail!(
                    "{name} is set, so {} must be too: without them a token its issuer signed for any other application is taken",
                    missing.join(" and ")
                );
            }
        }
        if self.payment_secret.is_some() && self.payment_jwks.is_some() {
            anyhow::bail!(
                "--payment-secret and --payment-jwks (BOXOFFICE_PAYMENT_*): give one, not both"
            );
        }
        if self.demo {
            return Ok(());
        }
        let mut missing = Vec::new();
        for (name, value) in [
            ("--jwks (BOXOFFICE_JWKS)", &self.jwks),
            ("--jwt-issuer (BOXOFFICE_JWT_ISSUER)", &self.jwt_issuer),
            (
                "--jwt-audience (BOXOFFICE_JWT_AUDIENCE)",
                &self.jwt_audience,
            ),
        ] {
            if value.is_none() {
                missing.push(name);
            }
        }
        if self.payment_secret.is_none() && self.payment_jwks.is_none() {
            missing.push(
                "--payment-secret (BOXOFFICE_PAYMENT_SECRET) or --payment-jwks (BOXOFFICE_PAYMENT_JWKS)",
            );
        }
        if !missing.is_empty() {
            anyhow::bail!(
                "a real sale (--demo false, BOXOFFICE_DEMO=false) trusts no demo key, and it is missing: {}",
                missing.join("; ")
            );
        }
        Ok(())
    }

    /// Whether the server answers beyond this machine: a demo that does
    /// hands tokens and receipts to anyone who can reach it.
    pub fn listens_beyond_loopback(&self) -> bool {
        !is_loopback_host(
            self.listen
                .rsplit_once(':')
                .map_or(&*self.listen, |(h, _)| h),
        )
    }
}

/// Whether `host` (a name, an IPv4 or a bracketed IPv6 address) is this
/// machine's loopback.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A JWKS is a file, or an `https://` URL; plain `http://` only on
/// loopback (a test's own server), where nobody on the path can swap keys.
pub fn check_jwks_location(location: &str) -> Result<(), String> {
    let Some((scheme, _)) = location.split_once("://") else {
        return Ok(()); // a file
    };
    let url = url::Url::parse(location).map_err(|e| format!("not a URL: {e}"))?;
    match scheme {
        "https" => Ok(()),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err("plain http:// lets anyone on the path swap the keys: use https://".into()),
        _ => Err(format!(
            "{scheme}:// is not fetched: give an https:// URL or a file"
        )),
    }
}

/// Where the `--panic-in` failpoint panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PanicIn {
    Section,
    Flusher,
    Mailer,
}

impl Default for ServeArgs {
    /// The defaults the flags declare, and nothing else: no `BOXOFFICE_*`
    /// variable of the environment reaches them (an embedder or a test
    /// that builds `ServeArgs { .., ..ServeArgs::default() }` gets the same
    /// settings wherever it runs).
    fn default() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let command = Cli::command().mut_subcommand("serve", |serve| {
            let ids: Vec<clap::Id> = serve.get_arguments().map(|a| a.get_id().clone()).collect();
            ids.into_iter()
                .fold(serve, |serve, id| serve.mut_arg(id, |a| a.env(None)))
        });
        let parsed = command
            .try_get_matches_from(["boxoffice", "serve"])
            .and_then(|m| Cli::from_arg_matches(&m));
        match parsed {
            Ok(Cli {
                command: Some(Command::Serve(args)),
            }) => *args,
            other => panic!("the default settings parse: {other:?}"),
        }
    }
}

/// Parses the command line with the configuration file layered in: every
/// `serve` setting not given as a flag or an environment variable is taken
/// from the `--config` / `BOXOFFICE_CONFIG` TOML file, if it names it.
/// The file's values go through the same parsing and validation as flags,
/// so a bad value is refused with the setting's name.
pub fn parse_with_config<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let mut argv: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if argv.len() <= 1 {
        // Bare `boxoffice` runs `serve`, with a configuration file too.
        argv.push("serve".into());
    }
    let matches = Cli::command().try_get_matches_from(&argv)?;
    let Some(serve) = matches.subcommand_matches("serve") else {
        return Cli::from_arg_matches(&matches);
    };
    let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
        return Cli::from_arg_matches(&matches);
    };
    let config_error = |message: String| {
        Cli::command().error(
            clap::error::ErrorKind::InvalidValue,
            format!("--config {}: {message}", path.display()),
        )
    };
    let text = std::fs::read_to_string(&path).map_err(|e| config_error(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
    let command = Cli::command();
    let serve_cmd = command
        .find_subcommand("serve")
        .expect("serve is a subcommand");
    let mut extra: Vec<std::ffi::OsString> = Vec::new();
    for (key, value) in &table {
        let id = key.replace('-', "_");
        let Some(arg) = serve_cmd
            .get_arguments()
            .find(|a| a.get_id().as_str() == id && !a.is_hide_set() && id != "config")
        else {
            return Err(config_error(format!("unknown setting {key:?}")));
        };
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                return Err(config_error(format!(
                    "{key}: expected a string, number or boolean"
                )))
            }
        };
        if serve.value_source(&id) == Some(ValueSource::DefaultValue)
            || serve.value_source(&id).is_none()
        {
            let long = arg.get_long().expect("serve settings are long flags");
            extra.push(format!("--{long}").into());
            extra.push(value.into());
        }
    }
    argv.extend(extra);
    let matches = Cli::command().try_get_matches_from(&argv).map_err(|e| {
        config_error(
            e.to_string()
                .trim_start_matches("error: ")
                .trim()
                .to_owned(),
        )
    })?;
    Cli::from_arg_matches(&matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str], file: &str) -> Result<ServeArgs, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("boxoffice.toml");
        std::fs::write(&path, file).unwrap();
        let mut argv = vec!["boxoffice", "serve", "--config", path.to_str().unwrap()];
        argv.extend_from_slice(args);
        match parse_with_config(argv).map_err(|e| e.to_string())? {
            Cli {
                command: Some(Command::Serve(a)),
            } => Ok(*a),
            other => panic!("{other:?}"),
        }
    }

    /// The environment of whoever builds the defaults does not reach them.
    /// Variables are process-wide and the other tests here parse command
    /// lines at the same time, so this one sets a valid value of a setting
    /// none of them looks at.
    #[test]
    fn defaults_ignore_the_environment() {
        std::env::set_var("BOXOFFICE_SNAPSHOT_KEEP", "7");
        let defaults = ServeArgs::default();
        let parsed = parse_with_config(["boxoffice", "serve"]);
        std::env::remove_var("BOXOFFICE_SNAPSHOT_KEEP");
        assert_eq!(defaults.snapshot_keep, 3);
        // The command line does read it: the variable was there.
        match parsed.unwrap().command {
            Some(Command::Serve(a)) => assert_eq!(a.snapshot_keep, 7),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_file_fills_what_flags_leave_and_flags_win() {
        let a = serve(
            &["--listen", "127.0.0.1:9"],
            "listen = \"0.0.0.0:80\"\nmail-concurrency = 7\nfdatasync = false\ndata_dir = \"/srv/bx\"\n",
        )
        .unwrap();
        assert_eq!(a.listen, "127.0.0.1:9");
        assert_eq!(a.mail_concurrency, 7);
        assert!(!a.fdatasync);
        assert_eq!(a.data_dir, PathBuf::from("/srv/bx"));
        // Untouched settings keep their defaults.
        assert_eq!(a.hold_ttl_secs, 420);
    }

    /// The settings deploy/ ships are ones the server takes.
    #[test]
    fn the_shipped_configuration_parses() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/boxoffice.toml");
        let args = [
            "boxoffice",
            "serve",
            "--config",
            file,
            "--shard",
            "boxoffice-0",
        ];
        match parse_with_config(args).map_err(|e| e.to_string()).unwrap() {
            Cli {
                command: Some(Command::Serve(a)),
            } => {
                assert_eq!(
                    a.shard_map,
                    Some(PathBuf::from("/etc/boxoffice/shards.toml"))
                );
                assert_eq!(a.listen, "0.0.0.0:8080");
            }
            other => panic!("{other:?}"),
        }
    }

    fn parse_serve(extra: &[&str]) -> Result<ServeArgs, String> {
        let mut argv = vec!["boxoffice", "serve"];
        argv.extend_from_slice(extra);
        match parse_with_config(argv).map_err(|e| e.to_string())? {
            Cli {
                command: Some(Command::Serve(a)),
            } => Ok(*a),
            other => panic!("{other:?}"),
        }
    }

    /// Every numeric setting has a range: the largest number, 10^18 and a
    /// negative one are refused naming the flag. Found by walking the flags, so a new one cannot slip by.
    #[test]
    fn every_numeric_setting_is_ranged() {
        let serve = <Cli as clap::CommandFactory>::command()
            .find_subcommand("serve")
            .expect("serve")
            .clone();
        let mut numeric = 0;
        for arg in serve.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            let Some(default) = arg.get_default_values().first() else {
                continue;
            };
            let Ok(default) = default.to_string_lossy().parse::<u64>() else {
                continue;
            };
            numeric += 1;
            let flag = format!("--{long}");
            let huge = default.saturating_mul(1000).max(1_000_000_000_000_000);
            for bad in [u64::MAX.to_string(), "-1".to_owned(), huge.to_string()] {
                let e = parse_serve(&[&format!("{flag}={bad}")])
                    .map(|_| ())
                    .unwrap_err();
                assert!(e.contains(&flag), "{flag} {bad}: {e}");
            }
        }
        assert!(numeric >= 28, "found {numeric} numeric settings");
    }

    /// Zero where zero would refuse everything (or divide by it).
    #[test]
    fn zero_is_refused_where_it_would_hurt() {
        for flag in [
            "--idempotency-ttl-secs",
            "--idempotency-keys-max",
            "--idempotency-keys-per-fan",
            "--mailbox-capacity",
            "--batch-records-max",
            "--mail-concurrency",
            "--fan-holds-burst",
            "--fan-rate-keys-max",
            "--jwt-cache-max",
            "--snapshot-every-records",
            "--snapshot-every-secs",
        ] {
            let e = parse_serve(&[flag, "0"]).map(|_| ()).unwrap_err();
            assert!(e.contains(flag), "{flag}: {e}");
        }
    }

    /// Secrets blank, padded or short are refused by name and never
    /// echoed; a good one passes.
    #[test]
    fn weak_secrets_are_refused_by_name() {
        let check = |extra: &[&str]| parse_serve(extra).unwrap().check();
        let refused = |extra: &[&str], name: &str| {
            let e = check(extra).unwrap_err().to_string();
            assert!(e.contains(name), "{extra:?}: {e}");
            for secret in extra.iter().skip(1) {
                if secret.trim().len() > 3 {
                    assert!(!e.contains(secret.trim()), "{e} echoes the secret");
                }
            }
        };
        refused(&["--admin-token", ""], "--admin-token");
        refused(&["--admin-token", "   "], "--admin-token");
        refused(&["--admin-token", "short-token"], "--admin-token");
        refused(&["--admin-token", "fifteen-chars-x"], "at least 16");
        refused(
            &["--admin-token", " padded-admin-token-0 "],
            "--admin-token",
        );
        refused(
            &["--admin-token", "inner space admin token"],
            "--admin-token",
        );
        refused(&["--payment-secret", "  "], "--payment-secret");
        refused(&["--jwks", ""], "--jwks");
        refused(&["--smtp-url", ""], "--smtp-url");
        assert!(check(&["--admin-token", "sixteen-chars-xx"]).is_ok());
        refused(&["--scanner-token", "short-token"], "--scanner-token");
        refused(
            &["--scanner-token", " padded-scanner-token "],
            "--scanner-token",
        );
        let same = check(&[
            "--admin-token",
            "sixteen-chars-xx",
            "--scanner-token",
            "sixteen-chars-xx",
        ])
        .unwrap_err()
        .to_string();
        assert!(same.contains("is the admin token"), "{same}");
        assert!(!same.contains("sixteen-chars-xx"), "{same}");
        assert!(check(&[
            "--admin-token",
            "sixteen-chars-xx",
            "--scanner-token",
            "scanner-chars-xx"
        ])
        .is_ok());
        assert!(check(&[]).is_ok());
    }

    /// A JWKS alone would take a token its issuer signed for any other
    /// application: its issuer and audience come with it, for fans and
    /// payments alike; and it is fetched over TLS, except on loopback.
    #[test]
    fn a_jwks_comes_with_its_issuer_and_audience_over_tls() {
        let check = |extra: &[&str]| {
            parse_serve(extra)
                .unwrap()
                .check()
                .map_err(|e| e.to_string())
        };
        let fans = ["--jwt-issuer", "https://idp", "--jwt-audience", "tickets"];
        let with_fans = |jwks: &str| {
            let mut a = vec!["--jwks", jwks];
            a.extend_from_slice(&fans);
            check(&a)
        };
        let e = check(&["--jwks", "/etc/jwks.json"]).unwrap_err();
        assert!(
            e.contains("--jwt-issuer (BOXOFFICE_JWT_ISSUER) and --jwt-audience"),
            "{e}"
        );
        let e = check(&["--jwks", "/etc/jwks.json", "--jwt-issuer", "https://idp"]).unwrap_err();
        assert!(
            e.contains("--jwt-audience") && !e.contains("--jwt-issuer"),
            "{e}"
        );
        assert!(with_fans("/etc/jwks.json").is_ok());
        assert!(with_fans("https://idp.example/.well-known/jwks.json").is_ok());
        for local in [
            "http://127.0.0.1:8000/jwks.json",
            "http://localhost/jwks",
            "http://[::1]:9/k",
        ] {
            assert!(with_fans(local).is_ok(), "{local}");
        }
        for bad in [
            "http://idp.example/jwks.json",
            "http://10.0.0.1/jwks",
            "http://127.0.0.1.nip.io/jwks",
            "ftp://idp.example/jwks",
        ] {
            let e = with_fans(bad).unwrap_err();
            assert!(e.contains("--jwks (BOXOFFICE_JWKS)"), "{bad}: {e}");
        }
        let e = check(&["--payment-jwks", "/etc/pay.json", "--payment-issuer", "pay"]).unwrap_err();
        assert!(
            e.contains("--payment-audience (BOXOFFICE_PAYMENT_AUDIENCE)"),
            "{e}"
        );
        assert!(check(&[
            "--payment-jwks",
            "/etc/pay.json",
            "--payment-issuer",
            "pay",
            "--payment-audience",
            "tickets"
        ])
        .is_ok());
        let e = check(&[
            "--payment-jwks",
            "http://pay.example/jwks",
            "--payment-issuer",
            "pay",
            "--payment-audience",
            "tickets",
        ])
        .unwrap_err();
        assert!(
            e.contains("--payment-jwks") && e.contains("https://"),
            "{e}"
        );
    }

    /// A real sale names every setting it lacks; the demo needs none.
    #[test]
    fn a_real_sale_needs_its_own_trust() {
        let check = |extra: &[&str]| {
            let mut a = vec!["--demo", "false"];
            a.extend_from_slice(extra);
            parse_serve(&a).unwrap().check().map_err(|e| e.to_string())
        };
        let e = check(&[]).unwrap_err();
        for name in [
            "--jwks (BOXOFFICE_JWKS)",
            "--jwt-issuer",
            "--jwt-audience",
            "--payment-secret (BOXOFFICE_PAYMENT_SECRET) or --payment-jwks",
        ] {
            assert!(e.contains(name), "{name}: {e}");
        }
        let fans = [
            "--jwks",
            "https://idp.example/jwks.json",
            "--jwt-issuer",
            "https://idp.example",
            "--jwt-audience",
            "tickets",
        ];
        let e = check(&fans).unwrap_err();
        assert!(
            e.contains("--payment-secret") && !e.contains("--jwks"),
            "{e}"
        );
        let mut all = fans.to_vec();
        all.extend(["--payment-secret", "a-shared-secret-of-at-least-32-bytes"]);
        assert!(check(&all).is_ok());
        assert!(parse_serve(&[]).unwrap().check().is_ok());
    }

    #[test]
    fn loopback_is_told_apart() {
        for (listen, beyond) in [
            ("127.0.0.1:8080", false),
            ("127.0.0.2:1", false),
            ("localhost:8080", false),
            ("[::1]:8080", false),
            ("0.0.0.0:8080", true),
            ("[::]:8080", true),
            ("10.1.2.3:80", true),
            ("ticketing.example:80", true),
        ] {
            let a = parse_serve(&["--listen", listen]).unwrap();
            assert_eq!(a.listens_beyond_loopback(), beyond, "{listen}");
        }
    }

    #[test]
    fn bad_files_are_refused_naming_the_setting() {
        let e = serve(&[], "mail_concurrency = 0\n").unwrap_err();
        assert!(
            e.contains("--mail-concurrency") && e.contains("boxoffice.toml"),
            "{e}"
        );
        let e = serve(&[], "colour = \"blue\"\n").unwrap_err();
        assert!(e.contains("unknown setting \"colour\""), "{e}");
        let e = serve(&[], "listen = [1, 2]\n").unwrap_err();
        assert!(e.contains("listen"), "{e}");
        let e = serve(&[], "listen = \n").unwrap_err();
        assert!(e.contains("--config"), "{e}");
        // Hidden test settings cannot come from a file.
        let e = serve(&[], "journal_delay_ms = 1\n").unwrap_err();
        assert!(e.contains("unknown setting \"journal_delay_ms\""), "{e}");
        // And there is no setting that makes id secrets predictable.
        let e = serve(&[], "seed = 1\n").unwrap_err();
        assert!(e.contains("unknown setting \"seed\""), "{e}");
    }
}
