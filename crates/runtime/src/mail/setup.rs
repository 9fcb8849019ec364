//! The mailer's set-up from the server's settings: every mail setting
//! checked (by name) before anything starts, then the mailer started on
//! its own arbiter.

use std::sync::Arc;

use actix::prelude::*;

use super::{MailSettings, MailStats, Mailer, Outbox, Renderer, Tickets, TransportSpec};
use crate::clock::Clock;
use crate::journal::Journal;

/// The mailer's parts, built and checked before anything else starts, so a
/// bad setting is refused at once with the setting's name.
pub struct MailSetup {
    transport: TransportSpec,
    renderer: Renderer,
    settings: MailSettings,
}

impl MailSetup {
    /// The mailer's parts: how it sends, how it renders (and signs the
    /// tickets), and its settings.
    pub fn new(transport: TransportSpec, renderer: Renderer, settings: MailSettings) -> MailSetup {
        MailSetup {
            transport,
            renderer,
            settings,
        }
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
