//! Overload is refused, not queued: far more fans at once than the
//! in-flight limits admit, against the real binary. Every refusal is a
//! `503` with `Retry-After` (some are made before the body is read, some
//! by a section), no answer is another 5xx, what was acknowledged adds up,
//! and the server's memory stays bounded. Latency is the benchmarks'
//! business (BENCHMARKS.md, benches/overload.sh), not this test's.

mod common;

use common::*;
use serde_json::Value;

/// Peak resident memory of process `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024
}

/// Resident memory a debug server may reach in this test. It serves
/// 8,000 places and 400 connections; a queue without a bound would grow
/// past it with every request in flight.
const RSS_MIB_MAX: u64 = 200;

#[test]
fn a_flood_of_fans_is_refused_with_retry_after_and_nothing_else_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = spawn_listening(
        common::boxoffice()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--admin-token", ADMIN_TOKEN, "--demo-event", "false"])
            .args(["--mail-enabled", "false", "--fan-holds-per-sec", "0"])
            // Small limits, so that 400 connections overflow them: a
            // section admits 4 at once, the process (two sections) 6.
            .args(["--mailbox-capacity", "4", "--process-inflight-max", "6"])
            .arg("--data-dir")
            .arg(dir.path())
            .env("RUST_LOG", "warn"),
    );
    let event = small_event("flood", &[500; 12], 2_000, 4);
    create_event(&base, &event);

    let out = common::boxoffice()
        .args(["loadgen", "--server", &base, "--event", "flood"])
        .args(["--fans", "4000", "--connections", "400", "--retries", "0"])
        .args(["--quantity-max", "1", "--greedy-ratio", "0", "--seed", "11"])
        .args(["--confirm-ratio", "0.5", "--release-ratio", "0.5", "--json"])
        .arg("--issuer-key")
        .arg(dir.path().join("issuer.key"))
        .arg("--payment-key")
        .arg(dir.path().join("payment.key"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The load generator fails on a 503 without Retry-After, a 5xx other
    // than 503, a fan left unanswered, or a double sale.
    assert!(out.status.success(), "loadgen failed: {stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["refusals_without_retry_after"], 0, "{report}");
    assert_eq!(report["server_errors"], 0, "{report}");
    assert_eq!(report["consistency"]["ok"], true, "{report}");
    let statuses = report["statuses"].as_object().unwrap();
    // 409: a fan who picked seats from the map was beaten to them, a clear
    // answer like the rest.
    for status in statuses.keys() {
        assert!(
            ["200", "201", "204", "409", "503"].contains(&status.as_str()),
            "{status}: {report}"
        );
    }
    // The limits were overflowed (else this tested nothing), and work
    // still got done.
    let shed = statuses["503"].as_u64().unwrap_or(0);
    assert!(shed > 100, "{report}");
    assert!(report["holds"].as_u64().unwrap() > 100, "{report}");
    // Refusals were counted where they were made: by the process (early,
    // or when asking a section) and by the sections.
    let metrics = common::metrics_of(&base);
    let sum = |prefix: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert!(sum("boxoffice_process_shed_total ") > 0.0, "{metrics}");
    assert!(sum("boxoffice_section_shed_total{") > 0.0, "{metrics}");

    let rss = peak_rss_mib(server.id());
    eprintln!("statuses {statuses:?}; server peak RSS {rss} MiB");
    assert!(rss < RSS_MIB_MAX, "peak RSS {rss} MiB");
    server.kill().unwrap();
    server.wait().unwrap();
}
