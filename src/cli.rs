//! The operator commands that talk to a running server or read a data
//! directory: `boxoffice outbox ...` and `boxoffice ticket verify`.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::config::{
    AdminClient, OutboxCommand, ReceiptArgs, ShardsCommand, SnapshotCommand, TicketCommand,
    TokenArgs,
};
use crate::mail::TicketKey;

pub fn outbox(cmd: OutboxCommand) -> anyhow::Result<()> {
    match cmd {
        OutboxCommand::List {
            client,
            state,
            json,
        } => {
            let body = call(
                &client,
                "GET",
                &format!("/v1/admin/outbox?state={state}&limit=1000"),
            )?;
            if json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            println!(
                "{} pending, {} dead",
                body["pending"].as_u64().unwrap_or(0),
                body["dead"].as_u64().unwrap_or(0)
            );
            for e in body["entries"].as_array().into_iter().flatten() {
                println!(
                    "{:<40} {:<8} attempts {:<3} {} {}",
                    e["id"].as_str().unwrap_or(""),
                    e["state"].as_str().unwrap_or(""),
                    e["attempts"].as_u64().unwrap_or(0),
                    e["email"].as_str().unwrap_or(""),
                    e["last_error"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }
        OutboxCommand::Retry { client, id } => {
            let body = call(&client, "POST", &format!("/v1/admin/outbox/{id}/retry"))?;
            println!(
                "{} is {} again",
                body["id"].as_str().unwrap_or(&id),
                body["state"].as_str().unwrap_or("queued")
            );
            Ok(())
        }
    }
}

/// One admin call; a problem+json answer becomes an error with its detail.
fn call(client: &AdminClient, method: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("{}{path}", client.server.trim_end_matches('/'));
    let result = ureq::request(method, &url)
        .set("Authorization", &format!("Bearer {}", client.admin_token))
        .timeout(std::time::Duration::from_secs(30))
        .call();
    match result {
        Ok(resp) => resp
            .into_json()
            .with_context(|| format!("{url} answered something other than JSON")),
        Err(ureq::Error::Status(code, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            bail!(
                "{url}: {code} {}",
                body["detail"]
                    .as_str()
                    .or(body["title"].as_str())
                    .unwrap_or("")
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach {url}")),
    }
}

/// Downloads a binary admin resource.
fn download(client: &AdminClient, path: &str) -> anyhow::Result<Vec<u8>> {
    let url = format!("{}{path}", client.server.trim_end_matches('/'));
    let resp = ureq::get(&url)
        .set("Authorization", &format!("Bearer {}", client.admin_token))
        .timeout(std::time::Duration::from_secs(600))
        .call()
        .with_context(|| format!("cannot download {url}"))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut resp.into_reader(), &mut bytes)
        .with_context(|| format!("reading {url}"))?;
    Ok(bytes)
}

pub fn ticket(cmd: TicketCommand) -> anyhow::Result<()> {
    match cmd {
        TicketCommand::Verify {
            token,
            server: Some(server),
            scanner_token: Some(scanner_token),
            ..
        } => check_in(&server, &scanner_token, &token),
        TicketCommand::Verify {
            token,
            data_dir,
            ticket_key,
            ..
        } => {
            let key = match ticket_key {
                Some(hex) => {
                    TicketKey::from_hex(&hex).map_err(|e| anyhow::anyhow!("--ticket-key: {e}"))?
                }
                None => {
                    let path = data_dir.join(crate::mail::TICKET_KEY_FILE);
                    let hex = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    TicketKey::from_hex(&hex)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
                }
            };
            let t = key.verify(&token)?;
            let what = match (t.n, t.qty) {
                (Some(n), _) => match &t.seat {
                    Some(seat) => format!("seat {seat} (place {n} of the booking)"),
                    None => format!("standing place {n} of the booking"),
                },
                (None, Some(n)) => format!("{n} standing place(s)"),
                (None, None) => format!("seats {}", t.seats.join(", ")),
            };
            println!(
                "valid: event {}, section {}, booking {}, {what}",
                t.e, t.s, t.b
            );
            // Said plainly, every time: the key proves who signed, not
            // what happened since.
            eprintln!(
                "checked offline: the signature only; whether the booking was cancelled or the ticket already scanned, only the server knows"
            );
            Ok(())
        }
    }
}

/// Checks `token` in at `server`: prints what it admits, or fails with
/// why not (the time of the first scan, a cancelled booking, a forgery).
fn check_in(server: &str, scanner_token: &str, token: &str) -> anyhow::Result<()> {
    let url = format!("{}/v1/tickets/check-in", server.trim_end_matches('/'));
    let result = ureq::post(&url)
        .set("Authorization", &format!("Bearer {scanner_token}"))
        .timeout(std::time::Duration::from_secs(10))
        .send_json(serde_json::json!({ "token": token.trim() }));
    match result {
        Ok(resp) => {
            let t: Value = resp
                .into_json()
                .with_context(|| format!("{url} answered something other than JSON"))?;
            println!(
                "admit: {} in section {} of event {}, checked in at {}",
                t["label"].as_str().unwrap_or(""),
                t["section"].as_str().unwrap_or(""),
                t["event"].as_str().unwrap_or(""),
                t["checked_in_at"].as_str().unwrap_or("")
            );
            Ok(())
        }
        Err(ureq::Error::Status(code, resp)) => {
            let body: Value = resp.into_json().unwrap_or(Value::Null);
            let kind = body["type"]
                .as_str()
                .and_then(|t| t.rsplit(':').next())
                .unwrap_or("");
            bail!(
                "do not admit: {code} {kind}: {}",
                body["detail"]
                    .as_str()
                    .or(body["title"].as_str())
                    .unwrap_or("")
            )
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach {url}")),
    }
}

pub fn snapshot(cmd: SnapshotCommand) -> anyhow::Result<()> {
    use crate::snapshot;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match cmd {
        SnapshotCommand::Create {
            out,
            data_dir,
            server,
            admin_token,
        } => {
            let started = std::time::Instant::now();
            let h = match (data_dir, server) {
                (Some(dir), _) => {
                    eprintln!("replaying {} ...", dir.display());
                    let mut progress = crate::recovery::at_most_every_second(|records| {
                        eprintln!(
                            "  {records} journal records replayed ({:.0} s)",
                            started.elapsed().as_secs_f64()
                        );
                    });
                    crate::snapshot::offline::create(
                        &dir,
                        &out,
                        &crate::api::ApiAnswers,
                        now_ms,
                        &mut progress,
                    )?
                }
                (None, Some(server)) => {
                    let client = AdminClient {
                        server,
                        admin_token: admin_token
                            .context("--admin-token is needed with --server")?,
                    };
                    eprintln!("asking {} for a snapshot ...", client.server);
                    let header = call(&client, "POST", "/v1/admin/snapshots")?;
                    let position = header["journal_position"]
                        .as_u64()
                        .context("the server's answer names no journal position")?;
                    let bytes = download(&client, &format!("/v1/admin/snapshots/{position}"))?;
                    let mut snap = snapshot::decode(&bytes).context("the downloaded snapshot")?;
                    snap.restore().context("the downloaded snapshot")?;
                    snapshot::write_atomic(&out, &bytes)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    snap.header
                }
                (None, None) => bail!("give --data-dir (stopped server) or --server URL"),
            };
            println!(
                "wrote {} at journal position {} in {:.1} s: {}",
                out.display(),
                h.journal_position,
                started.elapsed().as_secs_f64(),
                summary(&h)
            );
            Ok(())
        }
        SnapshotCommand::Verify { file } => {
            let started = std::time::Instant::now();
            let mut snap = snapshot::read(&file)?;
            snap.restore()?;
            println!(
                "{}: valid ({}, journal position {}, checked in {:.1} s): {}",
                file.display(),
                snap.header.format,
                snap.header.journal_position,
                started.elapsed().as_secs_f64(),
                summary(&snap.header)
            );
            Ok(())
        }
        SnapshotCommand::Inspect { file, json } => {
            let snap = snapshot::read(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&snap.header)?);
                return Ok(());
            }
            let h = &snap.header;
            println!("format            {}", h.format);
            println!("created           {}", h.created_at);
            println!("journal position  {}", h.journal_position);
            println!("idempotency keys  {}", h.idempotency_answers);
            println!("unsent emails     {}", h.outbox_entries);
            println!(
                "{:<24} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
                "event", "sections", "capacity", "held", "sold", "holds", "bookings"
            );
            for e in &h.events {
                println!(
                    "{:<24} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9}",
                    e.id, e.sections, e.capacity, e.held, e.sold, e.holds, e.bookings
                );
            }
            Ok(())
        }
        SnapshotCommand::Restore {
            file,
            data_dir,
            force,
        } => {
            let h = crate::snapshot::offline::restore(&file, &data_dir, force)?;
            println!(
                "restored {} into {} (journal position {}): {}",
                file.display(),
                data_dir.display(),
                h.journal_position,
                summary(&h)
            );
            Ok(())
        }
    }
}

fn summary(h: &crate::snapshot::Header) -> String {
    let sold: u64 = h.events.iter().map(|e| e.sold).sum();
    let held: u64 = h.events.iter().map(|e| e.held).sum();
    let bookings: u64 = h.events.iter().map(|e| e.bookings).sum();
    format!(
        "{} events, {sold} places sold, {held} held, {bookings} bookings, {} unsent emails",
        h.events.len(),
        h.outbox_entries
    )
}

/// `boxoffice probe`: one GET with a short timeout; any answer but 200 is
/// a failure.
pub fn probe(server: &str, path: &str) -> anyhow::Result<()> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let resp = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(3))
        .call()
        .with_context(|| format!("{url} did not answer 200"))?;
    if resp.status() != 200 {
        bail!("{url} answered {}", resp.status());
    }
    Ok(())
}

pub fn shards(cmd: ShardsCommand) -> anyhow::Result<()> {
    match cmd {
        ShardsCommand::Routes { map, set } => {
            let text = std::fs::read_to_string(&map)
                .with_context(|| format!("cannot read {}", map.display()))?;
            let parsed = crate::shard::ShardMap::parse(&text)
                .with_context(|| format!("{}", map.display()))?;
            let command = format!("boxoffice shards routes --map {}", map.display());
            print!("{}", crate::shard::routes_yaml(&parsed, &set, &command));
            Ok(())
        }
    }
}

/// `boxoffice token`: a fan's token from the demo issuer.
pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    let issuer = crate::auth::issuer::LocalIssuer::load_or_create(&args.data_dir)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    println!(
        "{}",
        issuer.mint_in(
            &args.sub,
            &args.memberships,
            now_s,
            args.ttl_secs,
            args.audience.as_deref(),
            args.locale.as_deref()
        )
    );
    Ok(())
}

/// `boxoffice receipt`: a payment receipt from the demo payment secret.
pub fn receipt(args: ReceiptArgs) -> anyhow::Result<()> {
    let payments = crate::auth::receipt::LocalPayments::load_or_create(&args.data_dir)?;
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let reference = match args.reference {
        Some(r) => r,
        None => {
            let mut n = [0u8; 8];
            rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut n)
                .map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            format!("pay_{:016x}", u64::from_le_bytes(n))
        }
    };
    println!(
        "{}",
        payments.receipt(
            &args.hold,
            args.amount,
            &args.currency,
            &reference,
            now_s,
            args.ttl_secs
        )
    );
    Ok(())
}
