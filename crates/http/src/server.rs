//! The HTTP server around the routes: workers, connection caps and read
//! deadlines. What a slow or idle client can hold is bounded here: a
//! connection must finish its request head within the header deadline and
//! its body within the body deadline ([`read_body`](super::read_body)), or
//! it is answered `408` and closed; each worker serves at most so many
//! connections at once, and the rest wait in the listen backlog. A client
//! that stops reading is dropped once what was sent to it has waited
//! unread for the send deadline (the kernel's `TCP_USER_TIMEOUT`, which
//! also ends a connection whose window stays shut); a long-lived stream
//! also keeps its socket's send buffer small ([`Socket::cap_send_buffer`]),
//! so such a client holds little memory until then and meets the
//! deadline soon.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};

use super::AppState;

/// How the HTTP server treats its clients.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub workers: usize,
    /// Deadline for a request's head (line and headers), from its first
    /// byte or from the previous answer on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Most connections one worker serves at once.
    pub connections_per_worker_max: usize,
    pub shutdown_timeout_secs: u64,
    /// How long sent data may wait unacknowledged (a shut window
    /// included) before the kernel drops the connection.
    pub send_timeout: Duration,
}

/// Serves the routes on `listener` with every middleware.
pub fn start(
    state: web::Data<AppState>,
    listener: TcpListener,
    settings: &HttpSettings,
) -> std::io::Result<Server> {
    let send_timeout_ms = u32::try_from(settings.send_timeout.as_millis()).unwrap_or(u32::MAX);
    let workers_named = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Ok(HttpServer::new(move || {
        // Called once on each worker's thread, as it starts.
        let n = workers_named.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::threads::name_current(&format!("http-{n}"));
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(super::refuse_early))
            .wrap(actix_web::middleware::from_fn(super::observe))
            .configure(super::configure)
    })
    .on_connect(move |conn, ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let socket = Socket(tcp.as_raw_fd());
            socket.set_send_timeout(send_timeout_ms);
            ext.insert(socket);
        }
    })
    .workers(settings.workers)
    .backlog(4096)
    .max_connections(settings.connections_per_worker_max)
    .client_request_timeout(settings.header_read_timeout)
    // Signals are ours (`serve`): readiness must turn 503 first.
    .disable_signals()
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .listen(listener)?
    .run())
}

/// Serves `GET /metrics` alone on `listen`, the scraper's own: the fans'
/// listener does not have it (what the server counts is not theirs to
/// read, and a scrape must not queue behind a crowd). One worker, run as
/// a task of the current system; returns its handle (the application
/// stops it after the fans' server) and the port bound.
pub fn start_metrics(
    state: web::Data<AppState>,
    listen: &str,
) -> anyhow::Result<(ServerHandle, u16)> {
    use actix_web::http::Method;
    use anyhow::Context;
    let listener = TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen} (--metrics-listen)"))?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::method(Method::GET).to(super::ops::metrics))
            .default_service(web::to(super::error::not_found))
    })
    .workers(1)
    .max_connections(64)
    .client_request_timeout(Duration::from_secs(5))
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Ok((handle, port))
}

/// What a client dials for `listen` bound at `port` (port 0 picked one).
pub fn address(listen: &str, port: u16) -> String {
    match listen.rsplit_once(':') {
        Some((host, _)) => format!("{host}:{port}"),
        None => format!("{listen}:{port}"),
    }
}

/// A connection's socket, for what a handler may tune on it while the
/// connection lasts (it owns the descriptor: a handler's request keeps
/// the connection, and so the descriptor, open).
#[derive(Debug, Clone, Copy)]
pub struct Socket(RawFd);

/// The send buffer a long-lived stream keeps: its events are small, and
/// a client that stops reading holds no more than this (the kernel
/// doubles it for its own bookkeeping) until the send deadline drops it.
pub const STREAM_SEND_BUFFER: i32 = 16 << 10;

impl Socket {
    fn set_send_timeout(self, ms: u32) {
        self.set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms as libc::c_int);
    }

    /// Caps the socket's send buffer at `STREAM_SEND_BUFFER`.
    pub fn cap_send_buffer(self) {
        self.set(libc::SOL_SOCKET, libc::SO_SNDBUF, STREAM_SEND_BUFFER);
    }

    fn set(self, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
        // SAFETY: a setsockopt of an int on a descriptor this connection
        // owns; a failure only leaves the kernel's default.
        let r = unsafe {
            libc::setsockopt(
                self.0,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            tracing::debug!(
                "setsockopt({level}, {name}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

/// A graceful stop, in the server's own hands: requests in flight are
/// counted (by the `observe` middleware), so that the stop waits exactly
/// until they are answered. actix-server's own graceful stop notices
/// that its connections are done only on a one-second tick, which made
/// every restart at least a second long.
#[derive(Debug, Default)]
pub struct Drain {
    shutting_down: AtomicBool,
    in_flight: AtomicUsize,
    /// Set once nothing was in flight: a request that reaches a handler
    /// after this is refused (503) rather than served while the sections
    /// stop behind it.
    closed: AtomicBool,
}

/// One request in flight, until dropped.
pub struct InFlight<'a>(&'a Drain);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often the stop looks whether requests are still in flight.
const DRAIN_POLL: Duration = Duration::from_millis(2);

impl Drain {
    pub fn enter(&self) -> InFlight<'_> {
        // SeqCst, with `closed`: a request either sees the drain closed
        // or is counted before the drain's last look (see `stop`).
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self)
    }

    /// Whether requests are refused now: the server is about to stop.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Set once a stop has begun: `/readyz` says 503, and every answer
    /// closes its connection.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Not ready at once; after `delay` (load balancers stop sending),
    /// no new connections; once every request in flight is answered (or
    /// after `timeout`), the server stops.
    pub async fn stop(&self, server: ServerHandle, delay: Duration, timeout: Duration) {
        self.shutting_down.store(true, Ordering::Release);
        actix_web::rt::time::sleep(delay).await;
        server.pause().await;
        let deadline = Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            actix_web::rt::time::sleep(DRAIN_POLL).await;
        }
        // A connection accepted before the pause may still bring a
        // request: from now on it is refused, and those that came in
        // before are answered first. Only then may the sections stop.
        self.closed.store(true, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            actix_web::rt::time::sleep(DRAIN_POLL).await;
        }
        server.stop(false).await;
    }
}

/// Stops a server as a signal does (not ready, streams end, what is in
/// flight is answered within the timeout), without the delay for load
/// balancers: for whoever embeds the server (tests, benches).
#[derive(Clone)]
pub struct StopHandle {
    pub server: ServerHandle,
    pub drain: Arc<Drain>,
    pub timeout: Duration,
}

impl StopHandle {
    pub async fn stop(&self) {
        let server = self.server.clone();
        self.drain.stop(server, Duration::ZERO, self.timeout).await;
    }
}
