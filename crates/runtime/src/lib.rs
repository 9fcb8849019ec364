//! boxoffice-runtime: what runs, below HTTP.
//!
//! - [`actors`]: one actix actor per section, the registry that routes to
//!   them, the waiting rooms and the views they publish;
//! - [`mail`]: the mailer actor, rendering and its set-up (the outbox
//!   itself is the store's);
//! - [`snapshot`]: the store's file format, and above recovery what runs
//!   it: the server's snapshotter and the offline create and restore;
//! - [`metrics`]: the Prometheus registry of all of the above;
//! - [`shard`]: the shard map (which shard owns which events);
//! - [`threads`]: the calling thread's name and priority.
//!
//! Each subsystem takes its own settings struct, built by the server's
//! `settings` module from the command line: nothing here knows clap,
//! actix-web or the REST wire types.

// The layers below, under the paths the modules name them by.
use boxoffice_auth as auth;
use boxoffice_domain as domain;
use boxoffice_store::{clock, data_dir, idempotency, journal, layout, recovery};

pub mod actors;
pub mod mail;
pub mod metrics;
pub mod shard;
pub mod snapshot;
pub mod threads;
