//! The settings each subsystem runs with, built from the command line's
//! (`config::ServeArgs`) in one place: the subsystems below take their
//! own settings structs and know nothing of clap.

use crate::config::{PanicIn, ServeArgs};
use crate::journal::JournalConfig;

/// The journal `boxoffice serve` runs with these settings.
pub fn journal(args: &ServeArgs) -> JournalConfig {
    let ms = std::time::Duration::from_millis;
    JournalConfig {
        batch_records_max: args.batch_records_max as usize,
        queue_capacity: 65_536,
        sync_data: args.fdatasync,
        fail_after_batches: args.journal_fail_after_batches,
        panic_at_write: args.panic_in == Some(PanicIn::Flusher),
        write_delay: ms(args.journal_delay_ms),
        unsynced_delay: ms(args.journal_unsynced_delay_ms),
    }
}
