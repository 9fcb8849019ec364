//! boxoffice: a seat allocator for high-demand ticket sales.
//!
//! Crate map, from the pure core outwards (the layers of ARCHITECTURE.md;
//! `tests/tidy.rs` holds imports to them):
//! - [`domain`]: the `boxoffice-domain` crate (`crates/domain`), re-exported:
//!   venues, sections, holds, bookings, best-available search, waiting
//!   rooms. Pure: no I/O, no clock, no actix, no sled, and its manifest
//!   keeps it so.
//! - [`clock`], [`data_dir`], [`layout`], [`idempotency`], [`journal`],
//!   [`recovery`], `snapshot`'s format and `mail`'s outbox: the
//!   `boxoffice-store` crate (`crates/store`), re-exported under these
//!   paths: formats and durable state, below everything that runs.
//! - [`clock`]: the injected clock (system time, or a manual one in tests).
//! - [`threads`]: the calling thread's name and priority.
//! - [`config`]: command-line flags, `BOXOFFICE_*` variables, the TOML file.
//! - [`data_dir`]: the data directory's layout and its lock.
//! - [`layout`]: the versioned event/venue file format and its validation
//!   into domain types.
//! - [`idempotency`]: remembered answers per `Idempotency-Key`.
//! - [`auth`]: the `boxoffice-auth` crate (`crates/auth`), re-exported:
//!   fans known by signed JWTs (the issuer's keys, the demo issuer, the
//!   verifier and its cache), payment receipts, admissions.
//! - [`shard`]: the shard map (which shard owns which events) and the
//!   Kubernetes routes rendered from it.
//! - [`journal`]: journal records and the sled store with group commit.
//! - [`mail`]: the durable outbox, rendering, and the mailer actor that
//!   sends the confirmation and cancellation emails (SMTP or `.eml`).
//! - [`snapshot`]: the snapshot file format; above recovery, the server's
//!   snapshotter (`snapshot::scheduler`) and the offline create and
//!   restore (`snapshot::offline`).
//! - [`api`]: the REST API's wire types, and the answer of every change.
//! - [`recovery`]: the state rebuilt from the newest snapshot and the
//!   journal after it (start-up, the snapshotter, offline tools).
//! - [`actors`], [`mail`]'s mailer, [`snapshot`]'s snapshotter and offline
//!   tools, [`metrics`], [`shard`], [`threads`]: the `boxoffice-runtime`
//!   crate (`crates/runtime`), re-exported: what runs below HTTP.
//! - [`actors`]: one actix actor per section, and the registry that routes
//!   to them.
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`http`]: the `boxoffice-http` crate (`crates/http`), re-exported,
//!   with its wire types as [`api`]: the REST API under `/v1` on
//!   actix-web: routes, body reading, idempotency, problem+json errors,
//!   OpenAPI, the fan's page.
//! - [`app`]: wiring: recover, start everything, bind, serve, stop.
//! - [`loadgen`]: the `boxoffice-loadgen` crate (`crates/loadgen`),
//!   re-exported: `boxoffice loadgen`, the flash-sale load generator, a
//!   client that needs nothing of the server but the demo's keys.
//! - [`cli`]: operator commands against a running server or a data
//!   directory (`outbox`, `ticket verify`, `snapshot`).

pub mod app;
pub mod cli;
pub mod config;
pub use boxoffice_auth as auth;
pub use boxoffice_domain as domain;
pub use boxoffice_http as http;
pub use boxoffice_http::api;
pub use boxoffice_loadgen as loadgen;
pub use boxoffice_runtime::{actors, mail, metrics, shard, snapshot, threads};
pub use boxoffice_store::{clock, data_dir, idempotency, journal, layout, recovery};
pub mod settings;
