//! The outbox's types in the journal: conversions, by hand, between
//! [`MailKind`] / [`MailOutcome`] and the journal's mail records. They live
//! here, not in `journal`, because the journal knows nothing of mail.

use crate::journal::{encode, MailKindRecord, MailOutcomeRecord, Record};
use crate::outbox::{MailKey, MailKind, MailOutcome};

/// The journal record of what happened to one outbox entry.
pub fn mail_record(key: &MailKey, outcome: &MailOutcome) -> Vec<u8> {
    encode(&Record::Mail {
        event: key.event().to_string(),
        section: key.section().to_string(),
        booking: key.booking,
        kind: key.kind.into(),
        outcome: outcome.into(),
    })
}

impl From<MailKind> for MailKindRecord {
    fn from(k: MailKind) -> MailKindRecord {
        match k {
            MailKind::Confirmation => MailKindRecord::Confirmation,
            MailKind::Cancellation => MailKindRecord::Cancellation,
        }
    }
}

impl From<MailKindRecord> for MailKind {
    fn from(k: MailKindRecord) -> MailKind {
        match k {
            MailKindRecord::Confirmation => MailKind::Confirmation,
            MailKindRecord::Cancellation => MailKind::Cancellation,
        }
    }
}

impl From<&MailOutcome> for MailOutcomeRecord {
    fn from(o: &MailOutcome) -> MailOutcomeRecord {
        match o {
            MailOutcome::Sent { at_ms } => MailOutcomeRecord::Sent { at_ms: *at_ms },
            MailOutcome::Failed {
                attempts,
                error,
                next_at_ms,
            } => MailOutcomeRecord::Failed {
                attempts: *attempts,
                error: error.clone(),
                next_at_ms: *next_at_ms,
            },
            MailOutcome::Dead { attempts, error } => MailOutcomeRecord::Dead {
                attempts: *attempts,
                error: error.clone(),
            },
            MailOutcome::Requeued { at_ms } => MailOutcomeRecord::Requeued { at_ms: *at_ms },
        }
    }
}

impl From<MailOutcomeRecord> for MailOutcome {
    fn from(o: MailOutcomeRecord) -> MailOutcome {
        match o {
            MailOutcomeRecord::Sent { at_ms } => MailOutcome::Sent { at_ms },
            MailOutcomeRecord::Failed {
                attempts,
                error,
                next_at_ms,
            } => MailOutcome::Failed {
                attempts,
                error,
                next_at_ms,
            },
            MailOutcomeRecord::Dead { attempts, error } => MailOutcome::Dead { attempts, error },
            MailOutcomeRecord::Requeued { at_ms } => MailOutcome::Requeued { at_ms },
        }
    }
}
