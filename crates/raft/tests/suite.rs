//! openraft's own conformance suite over our log store and state machine:
//! votes, appends, truncations, purges, membership and snapshots exactly
//! as openraft relies on them.

mod support;

use boxoffice_raft::{LogStore, Machine, Shard, StorageError};
use openraft::testing::{StoreBuilder, Suite};

struct Replica;

impl StoreBuilder<Shard, LogStore, Machine, tempfile::TempDir> for Replica {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, Machine), StorageError> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = support::log(dir.path());
        let machine = support::machine(dir.path());
        Ok((dir, log, machine))
    }
}

#[test]
fn the_log_and_the_machine_pass_openrafts_suite() {
    Suite::test_all(Replica).expect("the suite passes");
}
