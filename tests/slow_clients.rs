//! Slow and stalled clients cannot hold the server: a connection that
//! sends part of a head, or a whole head and then no body, is answered
//! `408` and closed by its deadline, and fans keep holding meanwhile.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;

/// Stalled connections of each kind.
const STALLED: usize = 500;

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
