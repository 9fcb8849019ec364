//! Snapshots. The file format, its checks and its writing are the
//! store's (`boxoffice_store::snapshot`, re-exported here whole); above
//! recovery, what runs them: the server's own snapshotter
//! ([`scheduler`]) and the offline create and restore ([`offline`]).

pub use boxoffice_store::snapshot::*;

pub mod offline;
pub mod scheduler;
