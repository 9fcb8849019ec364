//! `boxoffice loadgen`'s flags: what a run offers the server, and how
//! its fans behave.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct LoadgenArgs {
    /// Base URL of the server under load (plain http://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// The demo issuer's key file of the server under load
    /// (`<data-dir>/issuer.key`): every simulated fan signs in with a
    /// token of its own, minted with it.
    #[arg(long, default_value = "./data/issuer.key")]
    pub issuer_key: PathBuf,
    /// The demo payment secret of the server under load
    /// (`<data-dir>/payment.key`): every confirm pays with a receipt
    /// signed with it.
    #[arg(long, default_value = "./data/payment.key")]
    pub payment_key: PathBuf,
    /// Distinct fans signing in: arriving fan k signs in as fan k mod N,
    /// so each identity's token is verified once and then found in the
    /// server's cache (0: every fan its own identity, every first request
    /// a signature check).
    #[arg(long, default_value_t = 0)]
    pub fan_pool: usize,
    /// Share of fans who, holding, try a second hold that would take them
    /// past the event's `tickets_per_fan_max`: each must be refused.
    #[arg(long, default_value_t = 0.1)]
    pub greedy_ratio: f64,
    /// The memberships every simulated fan's token lists, comma-separated
    /// (`""`: none); the demo event's presale admits `fanclub`.
    #[arg(long, default_value = "fanclub", value_delimiter = ',')]
    pub memberships: Vec<String>,
    /// The event on sale.
    #[arg(long, default_value = "demo")]
    pub event: String,
    /// Fans arriving (at most).
    #[arg(long, default_value_t = 10_000)]
    pub fans: usize,
    /// Fans arrive evenly over this many seconds (0: all at once).
    #[arg(long, default_value_t = 0.0, conflicts_with = "rate")]
    pub ramp_secs: f64,
    /// Fans arriving per second (instead of --ramp-secs): a rate limit on
    /// arrivals. Without either, every fan arrives at once (open loop,
    /// bounded by --connections).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop arrivals after this many seconds even if fans are left.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Stop arrivals once the event has no free place left.
    #[arg(long)]
    pub until_sold_out: bool,
    /// Concurrent keep-alive connections; each runs one fan at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub connections: u64,
    /// Threads the generator runs its connections on.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub threads: u64,
    /// Each fan holds 1..=this many seats together.
    #[arg(long, default_value_t = 4)]
    pub quantity_max: u32,
    /// Share of fans in seated sections who pick their seats from the seat
    /// map (GET .../seats, then a hold of those seat ids; someone faster
    /// means a fresh map and another pick) instead of asking for the best
    /// available.
    #[arg(long, default_value_t = 0.1)]
    pub explicit_ratio: f64,
    /// Popularity skew over sections in layout order (0: uniform; 1:
    /// Zipf, the first section hottest).
    #[arg(long, default_value_t = 1.0)]
    pub skew: f64,
    /// Share of holds confirmed.
    #[arg(long, default_value_t = 0.7)]
    pub confirm_ratio: f64,
    /// Share of holds released (the rest expire).
    #[arg(long, default_value_t = 0.2)]
    pub release_ratio: f64,
    /// Per-request timeout, after which the fan retries with the same key.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// Retries of one request after a transport failure or a 503 (with
    /// the same key, after 50 ms times the attempt). 0: a fan refused
    /// once goes away, as in an open-loop overload test.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub retries: u32,
    /// Places already sold before this run (for the consistency check on
    /// a server that was not fresh).
    #[arg(long, default_value_t = 0)]
    pub sold_before: u64,
    /// Seed of the run; printed, so a run can be repeated.
    #[arg(long)]
    pub seed: Option<u64>,
    /// After the sale, open this many doors: every ticket of every
    /// booking is scanned once (`POST /v1/tickets/check-in`), and each
    /// must admit exactly once. Needs `--scanner-token`.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=4096))]
    pub doors: u64,
    /// The server's scanner token, for `--doors`.
    #[arg(long, env = "BOXOFFICE_SCANNER_TOKEN", hide_env_values = true)]
    pub scanner_token: Option<String>,
    /// Share of tickets scanned a second time at another door (a
    /// screenshot passed on): each must be refused.
    #[arg(long, default_value_t = 0.1)]
    pub rescan_ratio: f64,
    /// Fans go through the event's waiting room (it must be on): join,
    /// wait for their turn, then shop with their admission.
    #[arg(long)]
    pub queue: bool,
    /// How a fan waits, with `--queue`: `poll` (the public serving number,
    /// read by one poller for everyone, then its own standing once its
    /// turn came) or `stream` (its own server-sent event stream, one
    /// connection each; polling when the server keeps no more streams).
    #[arg(long, value_enum, default_value_t = QueueWait::Poll)]
    pub queue_wait: QueueWait,
    /// How often, with `--queue`, the public room is read to see whose
    /// turn came.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub queue_poll_ms: u64,
    /// How long, with `--queue`, a fan waits for its admission before it
    /// gives up.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub queue_patience_secs: u64,
    /// Clients that keep a section's seat stream open meanwhile (as
    /// browsers showing the live map would), reconnecting when the server
    /// ends a stream; the report gives what they received and the delay
    /// from a hold's answer to the frame showing it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub watchers: u64,
    /// The section the watchers stream (default: the event's first seated
    /// section, the hottest seated one with --skew).
    #[arg(long)]
    pub watch_section: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// How the load generator's fans wait in a waiting room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueWait {
    Poll,
    Stream,
}
