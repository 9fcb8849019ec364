//! Slow and stalled clients cannot hold the server: a connection that
//! sends part of a head, or a whole head and then no body, is answered
//! `408` and closed by its deadline, and fans keep holding meanwhile; a
//! seat stream whose client stops reading is dropped by the send
//! deadline, holding no memory that grows meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

/// Stalled connections of each kind.
const STALLED: usize = 500;

/// Taken by each test for its whole run: both load a server of their own
/// with a thousand sockets or a churn, and measure times; side by side on
/// two cores, each slowed the other past its bounds (CI once closed the
/// stalled clients in 8.03 s, where alone it takes 5).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Raises this process's open-file limit to its hard limit (the server's
/// children inherit it): a thousand sockets on each side.
fn raise_fd_limit() -> u64 {
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        let mut l = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        l.rlim_cur
    }
}

/// Reads until the server closes; what it said first, if anything.
fn until_closed(mut s: TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(String::from_utf8_lossy(&got).into_owned())
            }
            Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&got))),
        }
    }
}

#[test]
fn stalled_clients_are_closed_by_the_deadlines_and_fans_still_hold() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let limit = raise_fd_limit();
    assert!(limit >= 4 * STALLED as u64, "open-file limit {limit}");
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = common::serve(
        dir.path(),
        &[
            "--header-read-timeout-ms",
            "1000",
            "--body-read-timeout-ms",
            "1000",
            "--fan-holds-per-sec",
            "0",
        ],
    );
    let addr = base.trim_start_matches("http://").to_owned();
    let token = common::token(dir.path(), "patient-fan");
    let started = Instant::now();
    let connect = |head: &str| {
        let mut s = TcpStream::connect(&addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s
    };
    // Half a head: the request line and one header, never the blank line.
    let heads: Vec<TcpStream> = (0..STALLED)
        .map(|_| connect("POST /v1/events/demo/holds HTTP/1.1\r\nHost: boxoffice\r\n"))
        .collect();
    // A whole head that promises a body, then nothing.
    let whole_head = format!(
        "POST /v1/events/demo/holds HTTP/1.1\r\nHost: boxoffice\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 64\r\n\r\n"
    );
    let bodies: Vec<TcpStream> = (0..STALLED).map(|_| connect(&whole_head)).collect();

    // Meanwhile a fan holds, as usual.
    let fan = common::token(dir.path(), "fan-in-a-hurry");
    let r = common::request(
        "POST",
        &format!("{base}/v1/events/demo/holds"),
        Some(json!({"section": "A", "quantity": 2}).to_string()),
        &[
            ("Authorization", &format!("Bearer {fan}")),
            ("Content-Type", "application/json"),
        ],
    );
    assert_eq!(r.status, 201, "{r:?}");

    // Every stalled connection is answered 408 and closed.
    for s in heads {
        let said = until_closed(s).unwrap();
        assert!(said.starts_with("HTTP/1.1 408"), "{said:?}");
    }
    for s in bodies {
        let said = until_closed(s).unwrap();
        assert!(said.starts_with("HTTP/1.1 408"), "{said:?}");
        assert!(said.contains("request-timeout"), "{said:?}");
    }
    let took = started.elapsed();
    // Deadlines of one second; the closes come from them, not from the
    // ten-second read timeout above.
    assert!(took < Duration::from_secs(8), "closed after {took:?}");

    // And the server is as good as new.
    let r = common::request("GET", &format!("{base}/v1/events/demo"), None, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A connection to `addr` whose receive window is as small as the
/// kernel allows (set before connecting, as it must be): a client that
/// stops reading shuts it at once.
fn tiny_window(addr: &str) -> TcpStream {
    use std::os::fd::FromRawFd;
    let addr: std::net::SocketAddrV4 = addr.parse().unwrap();
    // SAFETY: a fresh socket, options on it, a connect to a sockaddr_in
    // built here; the descriptor is handed to the TcpStream that owns it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: addr.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*addr.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A metric's value as `/metrics` says it.
fn metric(base: &str, name: &str) -> f64 {
    let text = common::metrics_of(base);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Clients that open a seat stream and never read are dropped by the
/// send deadline (two seconds here) while the section changes forty times
/// a second, and the server's memory does not grow with them; a client
/// that reads keeps its stream throughout.
#[test]
fn a_seat_stream_that_is_not_read_is_dropped() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    const STUCK: usize = 50;
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, base) = common::serve(
        dir.path(),
        &[
            "--send-timeout-secs",
            "2",
            "--fan-holds-per-sec",
            "0",
            // Every stuck client is this test, on one address.
            "--seat-streams-per-address-max",
            "1000",
        ],
    );
    let addr = base.trim_start_matches("http://").to_owned();
    let head = "GET /v1/events/demo/sections/A/stream HTTP/1.1\r\nHost: boxoffice\r\n\r\n";
    // A client that reads, all along.
    let mut reader = TcpStream::connect(&addr).unwrap();
    reader.write_all(head.as_bytes()).unwrap();
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reading = {
        let read = std::sync::Arc::clone(&read);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let stuck: Vec<TcpStream> = (0..STUCK)
        .map(|_| {
            let mut s = tiny_window(&addr);
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&base, "boxoffice_seat_streams") < (STUCK + 1) as f64 {
        assert!(Instant::now() < deadline, "the streams never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_before = rss_kib(server.id());

    // The section changes all the time: a fan holds and releases a seat.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (stop, base) = (std::sync::Arc::clone(&stop), base.clone());
        let auth = format!("Bearer {}", common::token(dir.path(), "churner"));
        std::thread::spawn(move || {
            let mut changes = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = common::request(
                    "POST",
                    &format!("{base}/v1/events/demo/holds"),
                    Some(json!({"section": "A", "seats": ["A/3/3", "A/3/4", "A/3/5"]}).to_string()),
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                );
                assert_eq!(r.status, 201, "{r:?}");
                let id = r.body["id"].as_str().unwrap();
                let r = common::request(
                    "DELETE",
                    &format!("{base}/v1/holds/{id}"),
                    None,
                    &[("Authorization", &auth)],
                );
                assert_eq!(r.status, 204, "{r:?}");
                changes += 2;
            }
            changes
        })
    };
    // Every stuck stream is dropped: only the reader's is left.
    let began = Instant::now();
    let mut rss_max = rss_before;
    while metric(&base, "boxoffice_seat_streams") > 1.0 {
        rss_max = rss_max.max(rss_kib(server.id()));
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "{} streams still open after a minute",
            metric(&base, "boxoffice_seat_streams")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = began.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = churn.join().unwrap();
    let rss_after = rss_kib(server.id());
    eprintln!(
        "{STUCK} unread streams dropped {took:?} into {changes} changes; \
         RSS {rss_before} KiB before, {rss_max} KiB at most, {rss_after} KiB after"
    );
    // Nothing queues per stream: a few MiB of journal and allocator
    // churn, not a buffer per client.
    assert!(
        rss_max < rss_before + 16 * 1024,
        "RSS grew {rss_before} -> {rss_max} KiB"
    );
    // The reader kept its stream, and was sent the changes.
    assert_eq!(metric(&base, "boxoffice_seat_streams"), 1.0);
    assert!(read.load(std::sync::atomic::Ordering::Relaxed) > 10_000);
    // A stuck client finds its connection gone when it reads at last.
    for mut s in stuck {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut ended = false;
        for _ in 0..64 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => {
                    ended = true;
                    break;
                }
                Ok(_) => {}
            }
        }
        assert!(ended, "a dropped stream's connection is closed");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    drop(reading);
}
