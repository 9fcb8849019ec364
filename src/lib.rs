//! boxoffice: a seat allocator for high-demand ticket sales.
//!
//! Crate map, from the pure core outwards:
//! - [`domain`]: venues, sections, holds, bookings, best-available search.
//!   Pure: no I/O, no clock, no actix, no sled.
//! - [`layout`]: the versioned event/venue file format and its validation
//!   into domain types.
//! - [`clock`]: the injected clock (system time, or a manual one in tests).
//! - [`journal`]: journal records, the sled store with group commit, and
//!   replay on start-up.
//! - [`actors`]: one actix actor per section, and the registry that routes
//!   to them.
//! - [`http`]: the REST API under `/v1`: routes, DTOs, problem+json errors,
//!   idempotency, OpenAPI.
//! - [`loadgen`]: `boxoffice loadgen`, the flash-sale load generator.
//! - [`mail`]: the durable outbox and the mailer actor that sends the
//!   confirmation and cancellation emails (SMTP via lettre, or `.eml` files).
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`snapshot`]: the snapshot file format: a checksummed logical dump of
//!   every section at a journal position; create, verify, restore.
//! - [`recovery`]: the state rebuilt from the newest snapshot and the
//!   journal after it (start-up, the snapshotter, offline tools).
//! - [`app`]: wiring: open the journal, recover, start actors, bind, serve.
//! - [`cli`]: operator commands against a running server or a data
//!   directory (`outbox list|retry`, `ticket verify`).
//! - [`config`]: command-line flags and `BOXOFFICE_*` environment variables.

pub mod actors;
pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod domain;
pub mod http;
pub mod idempotency;
pub mod journal;
pub mod layout;
pub mod loadgen;
pub mod mail;
pub mod metrics;
pub mod recovery;
pub mod snapshot;
