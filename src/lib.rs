//! boxoffice: a seat allocator for high-demand ticket sales.
//!
//! The server and its commands. Each layer below is a crate of the
//! workspace (ARCHITECTURE.md, "Crates"), re-exported here under the path
//! the tests and benches name it by:
//! - [`domain`] (`boxoffice-domain`): venues, sections, holds, bookings,
//!   best-available search, waiting rooms, sale phases; pure, no I/O.
//! - [`clock`], [`data_dir`], [`layout`], [`idempotency`], [`journal`],
//!   [`recovery`] (`boxoffice-store`): formats and durable state, with
//!   the snapshot format (in [`snapshot`]) and the outbox (in [`mail`]).
//! - [`auth`] (`boxoffice-auth`): fans' JWTs, payment receipts,
//!   admissions and tickets.
//! - [`actors`], [`mail`], [`snapshot`], [`metrics`], [`shard`],
//!   [`threads`] (`boxoffice-runtime`): what runs below HTTP.
//! - [`http`] and its wire types [`api`] (`boxoffice-http`): the REST API,
//!   problem+json, OpenAPI, the fan's page.
//! - [`loadgen`] (`boxoffice-loadgen`): `boxoffice loadgen`, a client.
//!
//! This crate's own modules:
//! - [`config`]: command-line flags, `BOXOFFICE_*` variables, the TOML file.
//! - [`settings`]: each subsystem's settings, built from the flags.
//! - [`app`]: wiring: recover, start everything, bind, serve, stop.
//! - [`cli`]: operator commands against a running server or a data
//!   directory (`outbox`, `ticket`, `token`, `receipt`, `snapshot`,
//!   `probe`, `shards`).

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
