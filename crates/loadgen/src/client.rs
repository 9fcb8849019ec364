//! One keep-alive HTTP/1.1 connection to the server under load, on hyper.
//!
//! The load generator runs many of these on one or two threads: a
//! connection is a task, not a thread, so the generator's own CPU stays
//! small beside the server's (its ceiling is measured against a minimal
//! handler in BENCHMARKS.md). A connection that fails or times out is
//! dropped and dialled again on the next request.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

/// Where the server is: a resolved address and the `Host` header to send.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

impl Target {
    /// Parses `http://host:port` (plain HTTP: the generator talks to a
    /// server on loopback or in the same network, never through TLS).
    pub async fn resolve(base: &str) -> anyhow::Result<Target> {
        let rest = base
            .trim_end_matches('/')
            .strip_prefix("http://")
            .with_context(|| format!("{base:?}: the load generator speaks plain http://"))?;
        if rest.contains('/') {
            bail!("{base:?}: give the server's base URL, without a path");
        }
        let hostport = if rest.contains(':') {
            rest.to_owned()
        } else {
            format!("{rest}:80")
        };
        let addr = tokio::net::lookup_host(&hostport)
            .await
            .with_context(|| format!("cannot resolve {hostport}"))?
            .next()
            .with_context(|| format!("{hostport} resolves to no address"))?;
        Ok(Target {
            addr,
            host: rest.to_owned(),
        })
    }
}

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    Connect(String),
    Timeout,
    Io(String),
}

impl TransportError {
    /// A short label for the report's status counts.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Connect(_) => "transport:connect",
            TransportError::Timeout => "transport:timeout",
            TransportError::Io(_) => "transport:io",
        }
    }
}

/// An HTTP answer: status, whether it said when to retry, and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The `Retry-After` header was there, as whole seconds.
    pub retry_after: bool,
    pub body: Bytes,
}

pub struct Conn {
    target: Target,
    /// Deadline of one request, connect included.
    timeout: Duration,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(target: Target, timeout: Duration) -> Conn {
        Conn {
            target,
            timeout,
            sender: None,
        }
    }

    /// Sends one request; JSON bodies get `Content-Type: application/json`.
    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer, TransportError> {
        match tokio::time::timeout(self.timeout, self.exchange(method, path, headers, body)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(TransportError::Timeout)
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> Result<Answer, TransportError> {
        self.request(Method::GET, path, &[], None).await
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Answer, TransportError> {
        let io = |e: hyper::Error| TransportError::Io(e.to_string());
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(self.connect().await?);
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await.map_err(io)?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.target.host);
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| TransportError::Io(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(io)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.parse::<u32>().is_ok());
        let body = resp.into_body().collect().await.map_err(io)?.to_bytes();
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }

    /// A `GET` whose answer is read as it comes (server-sent events):
    /// the status within the timeout, then the body's chunks.
    pub async fn open_stream(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<(u16, hyper::body::Incoming), TransportError> {
        let io = |e: hyper::Error| TransportError::Io(e.to_string());
        let timeout = self.timeout;
        let open = async {
            if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
                self.sender = Some(self.connect().await?);
            }
            let sender = self.sender.as_mut().expect("connected above");
            sender.ready().await.map_err(io)?;
            let mut req = Request::builder()
                .method(Method::GET)
                .uri(path)
                .header(hyper::header::HOST, &self.target.host);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| TransportError::Io(e.to_string()))?;
            let resp = sender.send_request(req).await.map_err(io)?;
            Ok((resp.status().as_u16(), resp.into_body()))
        };
        let answer = tokio::time::timeout(timeout, open).await;
        answer.unwrap_or_else(|_| {
            self.sender = None;
            Err(TransportError::Timeout)
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, TransportError> {
        let stream = tokio::net::TcpStream::connect(self.target.addr)
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        // Requests are small and answered one at a time: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        // The connection's I/O runs as its own task; it ends when the
        // sender is dropped or the server closes.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }
}
