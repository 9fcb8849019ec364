//! The mailer's set-up from the server's settings: every mail setting
//! checked (by name) before anything starts, then the mailer started on
//! its own arbiter.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context;

use super::{MailSettings, MailStats, Mailer, Outbox, Renderer, TicketKey, Tickets, TransportSpec};
use crate::clock::Clock;
use crate::config::{PanicIn, ServeArgs};
use crate::data_dir::Lineage;
use crate::journal::Journal;

/// The mailer's parts, built and checked before anything else starts, so a
/// bad setting is refused at once with the setting's name.
pub struct MailSetup {
    transport: TransportSpec,
    renderer: Renderer,
    settings: MailSettings,
}

impl MailSetup {
    /// `lineage`: the data directory's, which its tickets name.
    pub fn from_args(args: &ServeArgs, lineage: Lineage) -> anyhow::Result<MailSetup> {
        let settings = MailSettings {
            concurrency: args.mail_concurrency as usize,
            busy_changes_per_sec: args.mail_busy_changes_per_sec,
            busy_concurrency: args.mail_busy_concurrency as usize,
            delay_max_ms: args.mail_delay_max_secs.saturating_mul(1000),
            send_timeout: Duration::from_millis(args.mail_send_timeout_ms),
            attempts_max: args.mail_attempts_max,
            backoff_base_ms: args.mail_backoff_ms,
            backoff_max_ms: args.mail_backoff_max_ms.max(args.mail_backoff_ms),
            panic_on_send: args.panic_in == Some(PanicIn::Mailer),
        };
        let from = args.mail_from.parse().map_err(|e| {
            anyhow::anyhow!(
                "--mail-from (BOXOFFICE_MAIL_FROM): {:?} is not an email address: {e}",
                args.mail_from
            )
        })?;
        let key = match &args.ticket_key {
            Some(hex) => TicketKey::from_hex(hex)
                .map_err(|e| anyhow::anyhow!("--ticket-key (BOXOFFICE_TICKET_KEY): {e}"))?,
            None => TicketKey::load_or_create(&args.data_dir)?,
        };
        let transport = match args.smtp_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => TransportSpec::smtp(url)
                .map_err(|e| anyhow::anyhow!("--smtp-url (BOXOFFICE_SMTP_URL): {e}"))?,
            None => {
                let dir = args.data_dir.join("mail");
                TransportSpec::files(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?
            }
        };
        Ok(MailSetup {
            transport,
            renderer: Renderer::new(from, Tickets { key, lineage }),
            settings,
        })
    }

    /// What signs and checks tickets, for the API's reads of bookings and
    /// the door.
    pub fn tickets(&self) -> Tickets {
        self.renderer.tickets_of().clone()
    }

    /// Starts the mailer on an arbiter of its own (the SMTP pool is built
    /// there, on the runtime that uses it), sending when `enabled`, with
    /// the outbox recovery rebuilt.
    pub fn start(
        self,
        enabled: bool,
        outbox: Outbox,
        journal: Journal,
        clock: Arc<dyn Clock>,
        stats: Arc<MailStats>,
    ) -> (Addr<Mailer>, Arbiter) {
        let arbiter = Arbiter::new();
        let mailer = Mailer::start_in_arbiter(&arbiter.handle(), move |_| {
            let transport = enabled.then(|| self.transport.build(&self.settings));
            Mailer::new(
                outbox,
                transport,
                Arc::new(self.renderer),
                journal,
                clock,
                self.settings,
                stats,
            )
        });
        (mailer, arbiter)
    }
}
