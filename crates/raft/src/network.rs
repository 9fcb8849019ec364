//! Raft's messages between the replicas of a shard: HTTP/1.1 on a
//! listener of their own (never the public API's, so an Ingress that
//! exposes the API cannot expose this), kept-alive connections, bodies in
//! postcard.
//!
//! A request carries the shard's peer secret (`Authorization: Bearer`),
//! checked before its body is read; a body is read up to
//! `PeerConfig::body_bytes_max`; a connection that sends no head within
//! `HEAD_TIMEOUT` is closed. An answer is `0 | postcard(answer)` or
//! `1 | JSON(RaftError)`: openraft's errors carry free-form sources that
//! only a self-describing format keeps whole, and they are rare.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Node, NodeId, Raft, Shard};

/// How long a peer may take to send a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What the replicas of a shard share to talk to each other.
#[derive(Clone)]
pub struct PeerConfig {
    /// Every request carries it; a request without it is refused unread.
    pub secret: Arc<str>,
    /// Largest request body a replica reads (an append of many entries,
    /// a snapshot's chunk), and largest answer it reads back.
    pub body_bytes_max: usize,
    /// Largest snapshot a replica takes from a leader: a chunk that would
    /// reach past it is refused before openraft writes it (a chunk at a
    /// far offset would make the receiving buffer that large).
    pub snapshot_bytes_max: u64,
}

/// Most peer connections served at once (the replicas of a shard need a
/// handful; the rest is someone else).
pub const CONNECTIONS_MAX: usize = 64;

impl std::fmt::Debug for PeerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("secret", &"<hidden>")
            .field("body_bytes_max", &self.body_bytes_max)
            .field("snapshot_bytes_max", &self.snapshot_bytes_max)
            .finish()
    }
}

/// openraft's way to the other replicas: one pooled HTTP client.
#[derive(Clone)]
pub struct Network {
    id: NodeId,
    client: Client<HttpConnector, Full<Bytes>>,
    config: PeerConfig,
}

impl Network {
    /// The network of replica `id`.
    pub fn new(id: NodeId, config: PeerConfig) -> Network {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Network { id, client, config }
    }
}

/// A connection to one replica (the pool keeps the sockets).
pub struct Peer {
    from: NodeId,
    target: NodeId,
    addr: String,
    client: Client<HttpConnector, Full<Bytes>>,
    config: PeerConfig,
}

impl RaftNetworkFactory<Shard> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Peer {
        Peer {
            from: self.id,
            target,
            addr: node.peer.clone(),
            client: self.client.clone(),
            config: self.config.clone(),
        }
    }
}

type Rpc<T, E> = Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>;

// openraft's error types are what they are.
#[allow(clippy::result_large_err)]
impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
    ) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = postcard::to_allocvec(req).map_err(network)?;
        let uri = format!("http://{}/raft/{}", self.addr, path(action));
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.config.secret),
            )
            .header(hyper::header::CONTENT_TYPE, "application/postcard")
            .body(Full::new(Bytes::from(body)))
            .map_err(network)?;
        let ttl = option.hard_ttl();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    network(e)
                }
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), self.config.body_bytes_max)
                .collect()
                .await
                .map_err(|e| network(std::io::Error::other(e.to_string())))?
                .to_bytes();
            if status != StatusCode::OK {
                return Err(network(std::io::Error::other(format!(
                    "replica {} answered {status}: {}",
                    self.target,
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))));
            }
            decode_answer::<Resp, RaftError<NodeId, E>>(&bytes)
                .map_err(network)?
                .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
        };
        match tokio::time::timeout(ttl, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(RPCError::Timeout(Timeout {
                action,
                id: self.from,
                target: self.target,
                timeout: ttl,
            })),
        }
    }
}

impl RaftNetwork<Shard> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<Shard>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<Shard>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.call(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.call(RPCTypes::Vote, &rpc, &option).await
    }
}

fn path(action: RPCTypes) -> &'static str {
    match action {
        RPCTypes::Vote => "vote",
        RPCTypes::AppendEntries => "append",
        RPCTypes::InstallSnapshot => "snapshot",
    }
}

fn network<E: std::error::Error>(e: impl std::error::Error + 'static) -> RPCError<NodeId, Node, E> {
    RPCError::Network(NetworkError::new(&e))
}

fn encode_answer<T: Serialize, E: Serialize>(answer: Result<T, E>) -> Vec<u8> {
    match answer {
        Ok(t) => {
            let mut out = vec![0];
            out.extend(postcard::to_allocvec(&t).expect("postcard encodes Raft's answers"));
            out
        }
        Err(e) => {
            let mut out = vec![1];
            out.extend(serde_json::to_vec(&e).expect("JSON encodes Raft's errors"));
            out
        }
    }
}

fn decode_answer<T: DeserializeOwned, E: DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<T, E>, std::io::Error> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    match bytes.split_first() {
        Some((0, rest)) => postcard::from_bytes(rest)
            .map(Ok)
            .map_err(|e| bad(format!("an answer that does not decode: {e}"))),
        Some((1, rest)) => serde_json::from_slice(rest)
            .map(Err)
            .map_err(|e| bad(format!("an error that does not decode: {e}"))),
        _ => Err(bad("an answer of no known kind".into())),
    }
}

/// Serves Raft's messages to `raft` on `listener` until the task is
/// dropped or the listener fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    raft: Raft,
    config: PeerConfig,
) -> std::io::Result<()> {
    let secret = Arc::new(Sha256::digest(format!("Bearer {}", config.secret)));
    let connections = Arc::new(tokio::sync::Semaphore::new(CONNECTIONS_MAX));
    loop {
        // A failed accept (no file descriptors left, a connection reset
        // before it was taken) must not end the listener for good.
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "the peer listener could not accept; trying again");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many peer connections; closing this one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let secret = secret.clone();
        let limits = (config.body_bytes_max, config.snapshot_bytes_max);
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                handle(req, raft.clone(), secret.clone(), limits, peer)
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "a peer connection ended");
            }
        });
    }
}

type Answer = Response<Full<Bytes>>;

fn plain(status: StatusCode, text: &str) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(text.to_owned())));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    raft: Raft,
    secret: Arc<sha2::digest::Output<Sha256>>,
    (limit, snapshot_max): (usize, u64),
    peer: SocketAddr,
) -> Result<Answer, Infallible> {
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .map(|v| Sha256::digest(v.as_bytes()));
    if given.as_ref() != Some(&*secret) {
        tracing::warn!(%peer, "a Raft request without the peer secret, refused");
        return Ok(plain(
            StatusCode::UNAUTHORIZED,
            "the peer secret is missing or wrong",
        ));
    }
    if req.method() != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
    }
    let route = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("the body could not be read within {limit} bytes: {e}"),
            ))
        }
    };
    let answer = match route.as_str() {
        "/raft/append" => match postcard::from_bytes(&body) {
            Ok(rpc) => encode_answer(raft.append_entries(rpc).await),
            Err(e) => return Ok(undecodable(e)),
        },
        "/raft/vote" => match postcard::from_bytes(&body) {
            Ok(rpc) => encode_answer(raft.vote(rpc).await),
            Err(e) => return Ok(undecodable(e)),
        },
        "/raft/snapshot" => match postcard::from_bytes::<InstallSnapshotRequest<Shard>>(&body) {
            Ok(rpc) if rpc.offset.saturating_add(rpc.data.len() as u64) > snapshot_max => {
                return Ok(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a snapshot beyond {snapshot_max} bytes is refused"),
                ))
            }
            Ok(rpc) => encode_answer(raft.install_snapshot(rpc).await),
            Err(e) => return Ok(undecodable(e)),
        },
        _ => return Ok(plain(StatusCode::NOT_FOUND, "no such Raft message")),
    };
    Ok(Response::new(Full::new(Bytes::from(answer))))
}

fn undecodable(e: postcard::Error) -> Answer {
    plain(
        StatusCode::BAD_REQUEST,
        &format!("the body is not this message: {e}"),
    )
}
