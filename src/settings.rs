//! The settings each subsystem runs with, built from the command line's
//! (`config::ServeArgs`) in one place: the subsystems below take their
//! own settings structs and know nothing of clap.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::DecodingKey;

use crate::auth::issuer::LocalIssuer;
use crate::auth::jwt::Trust;
use crate::auth::receipt::{LocalPayments, ReceiptVerifier, SECRET_LEN_MIN};
use crate::auth::{AuthSettings, Keys, Origin, Verifier};
use crate::clock::Clock;
use crate::config::{PanicIn, ServeArgs};
use crate::data_dir::Lineage;
use crate::http::server::HttpSettings;
use crate::http::slots::{StreamLimits, Streams};
use crate::http::{ClientAddresses, Demo, EXPOSED_WARNING};
use crate::journal::JournalConfig;
use crate::mail::{MailSettings, MailSetup, Renderer, TicketKey, Tickets, TransportSpec};
use crate::shard::{ShardMap, Sharding};
use crate::snapshot::scheduler::SnapshotSettings;

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

/// When the server snapshots itself; the answers its snapshots keep are
/// rendered as the API renders them.
pub fn snapshots(args: &ServeArgs) -> SnapshotSettings {
    SnapshotSettings {
        every_records: args.snapshot_every_records,
        every: Duration::from_secs(args.snapshot_every_secs),
        keep: args.snapshot_keep as usize,
        answers: &crate::api::ApiAnswers,
    }
}

/// Checks fans' tokens against the issuer's keys: the JWKS `--jwks`
/// names, or (the demo only) the demo issuer's key in the data directory.
pub fn fan_verifier(args: &ServeArgs, clock: Arc<dyn Clock>) -> anyhow::Result<Verifier> {
    let refresh = Duration::from_secs(args.jwks_refresh_secs);
    let keys = match args.jwks.as_deref().filter(|j| !j.is_empty()) {
        Some(location) => Keys::load(Origin::of(location), refresh),
        // `ServeArgs::check` refused a real sale without a JWKS; this is
        // the second lock on the same door.
        None if !args.demo => {
            anyhow::bail!("a real sale needs --jwks: it never trusts the demo issuer")
        }
        None => {
            let issuer = LocalIssuer::load_or_create(&args.data_dir)?;
            tracing::warn!(
                "no --jwks: fans sign in with the demo issuer's tokens (boxoffice token); never for a real sale"
            );
            Ok(Keys::fixed(issuer.key_set()))
        }
    }
    .map_err(|e| anyhow::anyhow!("--jwks (BOXOFFICE_JWKS): {e}"))?;
    Ok(Verifier::new(
        keys,
        AuthSettings {
            issuer: args.jwt_issuer.clone().filter(|i| !i.is_empty()),
            audience: args.jwt_audience.clone().filter(|a| !a.is_empty()),
            membership_claim: args.jwt_membership_claim.clone(),
            leeway_secs: args.jwt_leeway_secs,
            cache_max: args.jwt_cache_max as usize,
        },
        clock,
    ))
}

/// Checks receipts against `--payment-secret`, `--payment-jwks`, or (the
/// demo only) the demo secret in the data directory.
pub fn receipt_verifier(
    args: &ServeArgs,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ReceiptVerifier> {
    let secret = args.payment_secret.as_deref().filter(|s| !s.is_empty());
    let jwks = args.payment_jwks.as_deref().filter(|j| !j.is_empty());
    let trust = match (secret, jwks) {
        (Some(_), Some(_)) => anyhow::bail!(
            "--payment-secret and --payment-jwks (BOXOFFICE_PAYMENT_*): give one, not both"
        ),
        (Some(secret), None) => {
            if secret.len() < SECRET_LEN_MIN {
                anyhow::bail!(
                    "--payment-secret (BOXOFFICE_PAYMENT_SECRET): at least {SECRET_LEN_MIN} bytes"
                );
            }
            Trust::Secret(
                DecodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| anyhow::anyhow!("--payment-secret: {e}"))?,
            )
        }
        (None, Some(url)) => {
            let refresh = Duration::from_secs(args.jwks_refresh_secs);
            Trust::Keys(
                Keys::load(Origin::of(url), refresh)
                    .map_err(|e| anyhow::anyhow!("--payment-jwks (BOXOFFICE_PAYMENT_JWKS): {e}"))?,
            )
        }
        (None, None) if !args.demo => anyhow::bail!(
            "a real sale needs --payment-secret or --payment-jwks: it never trusts the demo payment secret"
        ),
        (None, None) => {
            let local = LocalPayments::load_or_create(&args.data_dir)?;
            tracing::warn!(
                "no --payment-secret or --payment-jwks: receipts are signed with the demo payment secret (boxoffice receipt); never for a real sale"
            );
            Trust::Secret(local.verifying_key())
        }
    };
    Ok(ReceiptVerifier::new(
        trust,
        args.payment_issuer.clone(),
        args.payment_audience.clone(),
        args.jwt_leeway_secs,
        clock,
    ))
}

/// The mailer's parts from the mail settings; `lineage`: the data
/// directory's, which its tickets name.
pub fn mail(args: &ServeArgs, lineage: Lineage) -> anyhow::Result<MailSetup> {
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
    Ok(MailSetup::new(
        transport,
        Renderer::new(from, Tickets { key, lineage }),
        settings,
    ))
}

/// This server's place among the shards, read and checked at start:
/// `--shard` must name a shard of `--shard-map`.
pub fn sharding(args: &ServeArgs) -> anyhow::Result<Option<Sharding>> {
    let (path, me) = match (&args.shard_map, &args.shard) {
        (None, None) => return Ok(None),
        (Some(path), Some(me)) => (path, me),
        (Some(_), None) => anyhow::bail!(
            "--shard-map (BOXOFFICE_SHARD_MAP) needs --shard (BOXOFFICE_SHARD): which shard of the map is this server?"
        ),
        (None, Some(_)) => anyhow::bail!(
            "--shard (BOXOFFICE_SHARD) needs --shard-map (BOXOFFICE_SHARD_MAP)"
        ),
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--shard-map (BOXOFFICE_SHARD_MAP): cannot read {}",
            path.display()
        )
    })?;
    let map = ShardMap::parse(&text)
        .with_context(|| format!("--shard-map (BOXOFFICE_SHARD_MAP): {}", path.display()))?;
    if !map.has_shard(me) {
        anyhow::bail!(
            "--shard (BOXOFFICE_SHARD): {me:?} is not a shard of {}",
            path.display()
        );
    }
    tracing::info!(shard = %me, "serving this shard's events only");
    Ok(Some(Sharding {
        map,
        me: me.clone(),
    }))
}

/// How the HTTP server treats its clients; `cores` sets the workers when
/// the flag leaves them to the machine.
pub fn http(args: &ServeArgs, cores: usize) -> HttpSettings {
    HttpSettings {
        workers: if args.workers == 0 {
            cores
        } else {
            args.workers as usize
        },
        header_read_timeout: Duration::from_millis(args.header_read_timeout_ms),
        connections_per_worker_max: args.connections_per_worker_max as usize,
        shutdown_timeout_secs: args.shutdown_timeout_secs,
        send_timeout: Duration::from_secs(args.send_timeout_secs),
    }
}

/// The streams' bounds, and which proxies a client's address may come
/// through.
pub fn streams(args: &ServeArgs) -> anyhow::Result<Streams> {
    let addresses = ClientAddresses::parse(args.trusted_proxies.as_deref().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("--trusted-proxies (BOXOFFICE_TRUSTED_PROXIES): {e}"))?;
    let limits = StreamLimits {
        queue: args.queue_streams_max as usize,
        seats: args.seat_streams_max as usize,
        seats_anonymous: args.seat_streams_anonymous_max as usize,
        seats_per_address: u32::try_from(args.seat_streams_per_address_max).unwrap_or(u32::MAX),
        feeds: args.feed_streams_max as usize,
    };
    Ok(Streams::new(&limits, addresses))
}

/// The demo's signing keys, each present only while the server trusts it:
/// the keys the verifiers trust in the data directory (they made them
/// first, so these are the same).
pub fn demo(args: &ServeArgs) -> anyhow::Result<Demo> {
    if !args.demo {
        return Ok(Demo::off());
    }
    let given = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    // A `--jwt-issuer` other than the demo's refuses its tokens: no
    // button whose tokens the server would not take.
    let issuer_ok = args
        .jwt_issuer
        .as_deref()
        .is_none_or(|i| i.is_empty() || i == crate::auth::issuer::LOCAL_ISSUER);
    let issuer = (!given(&args.jwks) && issuer_ok)
        .then(|| LocalIssuer::load_or_create(&args.data_dir))
        .transpose()?;
    // The demo payment page pays only demo fans: with the fan club's
    // real tokens it would book any real fan's seats for free.
    let payments =
        (!given(&args.payment_secret) && !given(&args.payment_jwks) && !given(&args.jwks))
            .then(|| LocalPayments::load_or_create(&args.data_dir))
            .transpose()?;
    if [&args.jwks, &args.payment_secret, &args.payment_jwks]
        .into_iter()
        .any(given)
    {
        tracing::warn!("the demo with real trust settings still trusts the demo's keys for the rest; a sale runs with --demo false, which needs them all");
    }
    let exposed = args.listens_beyond_loopback();
    if exposed {
        tracing::warn!(listen = %args.listen, "{EXPOSED_WARNING}");
        eprintln!("WARNING: {EXPOSED_WARNING} (listening on {})", args.listen);
    }
    let audience = args.jwt_audience.clone().filter(|a| !a.is_empty());
    Ok(Demo::on(issuer, payments, audience, exposed))
}
