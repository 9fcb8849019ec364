//! boxoffice's formats and durable state, below everything that runs.
//!
//! - [`clock`]: the injected clock, and times as RFC 3339.
//! - [`data_dir`]: the data directory's layout, lock, secrets and lineage.
//! - [`layout`]: the versioned event/venue file format and its validation
//!   into domain types.
//! - [`idempotency`]: remembered answers per `Idempotency-Key`.
//! - [`journal`]: journal records and the sled store with group commit.
//! - [`outbox`]: which emails are still owed (pure state), and
//!   [`outbox_record`]: its types as journal records.
//! - [`snapshot`]: the snapshot file format and its checks.
//! - [`recovery`]: the state rebuilt from the newest snapshot and the
//!   journal after it.
//!
//! Architecture invariant: this crate knows nothing of actors, HTTP, the
//! API's wire types, mail transports or the command line; its manifest
//! names the domain and no other crate of the workspace. The answers a
//! replay remembers are rendered by whoever recovers
//! ([`recovery::Answers`]). The `boxoffice` crate re-exports each module
//! under its old path (`boxoffice::journal`, ...).

// `crate::domain::…` reads as it did when these modules were the
// server's.
use boxoffice_domain as domain;

pub mod clock;
pub mod data_dir;
pub mod idempotency;
pub mod journal;
pub mod layout;
pub mod outbox;
pub mod outbox_record;
pub mod recovery;
pub mod snapshot;
