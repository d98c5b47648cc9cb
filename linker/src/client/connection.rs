//! One connection to one broker: framing, pipelining by correlation id, API-version
//! negotiation, TLS and SASL.
//!
//! ```text
//!  caller ── encode frame ──► [bounded mpsc] ──► writer task ──► socket (one vectored write)
//!    ▲                                                              │
//!    └──── oneshot (keyed by correlation id) ◄── reader task ◄──────┘
//! ```
//!
//! Requests are written whole by a single writer task, so a caller that is cancelled at any
//! point can never leave half a frame on the wire: either its frame was queued (and will be
//! written in full) or it was not. A cancelled caller's pending entry is removed by a drop
//! guard; if its response arrives later, the reader discards it. When either task fails, the
//! connection is poisoned: every pending and future request gets the same error, and the
//! cluster client opens a new connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::{ClientConfig, SaslConfig};
use super::error::{Error, Result};
use super::{sasl, transport};

/// Frames queued for the writer; small because each frame may be megabytes.
const WRITE_QUEUE: usize = 32;

/// One request as written: length, header and body, in chunks written with vectored writes.
/// Most requests are one chunk; a Produce request's record batches are chunks of their own
/// (`produce_body`), so they are never copied into a request buffer.
type Frame = Vec<Bytes>;

/// Most chunks handed to one vectored write (Linux's IOV_MAX is 1024).
const MAX_IOV: usize = 512;

type Pending = HashMap<i32, oneshot::Sender<std::result::Result<Bytes, Arc<str>>>>;

#[derive(Debug, Default)]
struct State {
    pending: Pending,
    /// Set once the connection has failed; the message every later request gets.
    poisoned: Option<Arc<str>>,
}

/// Supported version range per API key, as advertised by the broker.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions(HashMap<i16, (i16, i16)>);

impl ApiVersions {
    /// The broker's range for an API, if it offers it.
    pub fn range(&self, key: i16) -> Option<(i16, i16)> {
        self.0.get(&key).copied()
    }
}

/// The newest version of each API that strait speaks, where it deliberately stops below what
/// kafka-protocol can encode. One place, with the reason for each cap.
fn version_cap(key: i16) -> Option<i16> {
    match ApiKey::try_from(key).ok()? {
        // v12+ is flexible and v13+ addresses topics by id; v11 carries everything a byte-level
        // mirror needs (isolation level, aborted transactions, log start), and some
        // Kafka-compatible brokers send tagged fields in v12-v15 that strict decoders reject.
        ApiKey::Fetch => Some(11),
        // v10+ only adds leader hints and, from v13, topic ids; v9 is accepted everywhere we
        // test. Its body is encoded by `produce_body`, which knows exactly v3-v9.
        ApiKey::Produce => Some(*super::produce_body::VERSIONS.end()),
        _ => None,
    }
}

/// A live, negotiated (and, when configured, authenticated) connection to one broker.
#[derive(Debug)]
pub struct Connection {
    broker: String,
    client_id: StrBytes,
    queue: mpsc::Sender<Frame>,
    state: Arc<Mutex<State>>,
    next_correlation: AtomicI32,
    versions: ApiVersions,
    request_timeout: Duration,
    tasks: [JoinHandle<()>; 2],
}

impl Drop for Connection {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Removes a pending entry if the caller's future is dropped before its response arrives.
struct PendingGuard {
    state: Arc<Mutex<State>>,
    correlation_id: i32,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        lock(&self.state).pending.remove(&self.correlation_id);
    }
}

/// A request queued for writing (requests on one connection are written, and answered by
/// Kafka brokers, in the order they were queued) whose response is still to come: await it
/// with [`InFlight::response`]. Dropping it abandons the response; the request may still be
/// written and acted on.
pub struct InFlight<R: Request> {
    rx: oneshot::Receiver<std::result::Result<Bytes, Arc<str>>>,
    _guard: PendingGuard,
    state: Arc<Mutex<State>>,
    broker: String,
    version: i16,
    timeout: Duration,
    _request: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> std::fmt::Debug for InFlight<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("api", &api_name(R::KEY))
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl<R: Request> InFlight<R> {
    /// Waits for the response (the request timeout runs from when this is first polled) and
    /// decodes it.
    ///
    /// Cancel safety: dropping this future abandons the response and nothing else.
    pub async fn response(self) -> Result<R::Response> {
        let api = api_name(R::KEY);
        let closed = |fallback: &str| {
            let msg = lock(&self.state)
                .poisoned
                .clone()
                .unwrap_or_else(|| fallback.into());
            Error::Connection {
                broker: self.broker.clone(),
                message: msg,
            }
        };
        let body = match tokio::time::timeout(self.timeout, self.rx).await {
            Err(_) => {
                return Err(Error::Timeout {
                    broker: self.broker.clone(),
                    api,
                    after: self.timeout,
                });
            }
            Ok(Err(_)) => return Err(closed("connection closed")),
            Ok(Ok(Err(msg))) => {
                return Err(Error::Connection {
                    broker: self.broker.clone(),
                    message: msg,
                });
            }
            Ok(Ok(Ok(body))) => body,
        };
        decode::<R>(&self.broker, body, self.version)
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panic while holding this lock cannot leave State inconsistent (single map ops).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Connection {
    /// Opens a TCP (or TLS) connection to `broker`, negotiates API versions and authenticates.
    pub async fn open(broker: &str, config: &ClientConfig) -> Result<Self> {
        let work = async {
            let stream = transport::connect(broker, &config.security).await?;
            Self::handshake(stream, broker, config).await
        };
        tokio::time::timeout(config.connect_timeout, work)
            .await
            .map_err(|_| Error::Connect {
                broker: broker.to_owned(),
                message: format!("timed out after {:?}", config.connect_timeout),
            })?
    }

    /// Runs version negotiation and SASL over an already-open byte stream.
    pub async fn handshake<S>(stream: S, broker: &str, config: &ClientConfig) -> Result<Self>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let mut conn = Self::start(stream, broker, config);
        conn.versions = conn.negotiate_versions().await?;
        if let Some(sasl) = &config.security.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    /// Spawns the reader and writer tasks over `stream`; no request has been sent yet.
    fn start<S>(stream: S, broker: &str, config: &ClientConfig) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let state = Arc::new(Mutex::new(State::default()));
        let (queue, rx) = mpsc::channel(WRITE_QUEUE);
        let writer = tokio::spawn(write_loop(write, rx, Arc::clone(&state)));
        let reader = tokio::spawn(read_loop(
            read,
            Arc::clone(&state),
            config.max_response_bytes,
        ));
        Self {
            broker: broker.to_owned(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            queue,
            state,
            next_correlation: AtomicI32::new(1),
            versions: ApiVersions::default(),
            request_timeout: config.request_timeout,
            tasks: [reader, writer],
        }
    }

    /// `host:port` of the broker.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// API versions the broker advertised.
    pub fn api_versions(&self) -> &ApiVersions {
        &self.versions
    }

    /// Whether the connection has failed and must be replaced.
    pub fn is_poisoned(&self) -> bool {
        lock(&self.state).poisoned.is_some()
    }

    /// The version strait will use for `R` with this broker, or why there is none.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let api = api_name(R::KEY);
        let Some((bmin, bmax)) = self.versions.range(R::KEY) else {
            return Err(Error::UnsupportedApi {
                broker: self.broker.clone(),
                api,
                detail: " (not advertised in ApiVersions)".to_owned(),
            });
        };
        let ours_max = version_cap(R::KEY).map_or(R::VERSIONS.max, |c| c.min(R::VERSIONS.max));
        let (lo, hi) = (bmin.max(R::VERSIONS.min), bmax.min(ours_max));
        if lo > hi {
            return Err(Error::UnsupportedApi {
                broker: self.broker.clone(),
                api,
                detail: format!(
                    " (broker offers v{bmin}-v{bmax}, strait speaks v{}-v{ours_max})",
                    R::VERSIONS.min
                ),
            });
        }
        Ok(hi)
    }

    /// Sends `req` at the negotiated version and waits for its response.
    ///
    /// Cancel safety: dropping the returned future at any point leaves the connection usable;
    /// the request is either fully written or not written at all.
    pub async fn send<R: Request + Sync>(&self, req: &R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_version(req, version, self.request_timeout).await
    }

    /// Like [`send`](Self::send) with extra time on top of the request timeout (for Fetch's
    /// max wait, or a CreateTopics timeout the broker honours).
    pub async fn send_with_extra_time<R: Request + Sync>(
        &self,
        req: &R,
        extra: Duration,
    ) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_version(req, version, self.request_timeout + extra)
            .await
    }

    /// Sends `req` at an explicit `version`.
    pub async fn send_version<R: Request + Sync>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        self.queue_version(req, version, timeout)
            .await?
            .response()
            .await
    }

    /// Queues `req` for writing, with `extra` time on top of the request timeout for its
    /// response, and returns without waiting for the response. Requests queued one after the
    /// other on a connection are written in that order, so a caller that queues them from
    /// one task controls the order in which the broker sees them.
    ///
    /// Cancel safety: if dropped before it returns, the request is either queued whole or not
    /// at all.
    pub async fn queue_with_extra_time<R: Request + Sync>(
        &self,
        req: &R,
        extra: Duration,
    ) -> Result<InFlight<R>> {
        let version = self.version_for::<R>()?;
        self.queue_version(req, version, self.request_timeout + extra)
            .await
    }

    async fn queue_version<R: Request + Sync>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<InFlight<R>> {
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(req, version, correlation_id)?;
        self.enqueue(frame, correlation_id, version, timeout).await
    }

    /// Queues a request of type `R` whose body the caller encodes, in chunks, at the
    /// negotiated version (`body(version)`), with `extra` time on top of the request timeout.
    /// Otherwise as [`queue_with_extra_time`](Self::queue_with_extra_time), with the same
    /// cancel safety.
    pub(crate) async fn queue_body_with_extra_time<R: Request>(
        &self,
        body: impl FnOnce(i16) -> Vec<Bytes>,
        extra: Duration,
    ) -> Result<InFlight<R>> {
        let version = self.version_for::<R>()?;
        let correlation_id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let body = body(version);
        let body_len = body.iter().map(Bytes::len).sum();
        let mut frame = Vec::with_capacity(body.len() + 1);
        frame.push(self.frame_head::<R>(version, correlation_id, body_len)?);
        frame.extend(body);
        self.enqueue(frame, correlation_id, version, self.request_timeout + extra)
            .await
    }

    /// Registers `correlation_id` and queues `frame` for the writer.
    async fn enqueue<R: Request>(
        &self,
        frame: Frame,
        correlation_id: i32,
        version: i16,
        timeout: Duration,
    ) -> Result<InFlight<R>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut st = lock(&self.state);
            if let Some(msg) = &st.poisoned {
                return Err(self.poisoned(msg));
            }
            st.pending.insert(correlation_id, tx);
        }
        let guard = PendingGuard {
            state: Arc::clone(&self.state),
            correlation_id,
        };

        if self.queue.send(frame).await.is_err() {
            let msg = lock(&self.state)
                .poisoned
                .clone()
                .unwrap_or_else(|| "writer stopped".into());
            return Err(self.poisoned(&msg));
        }
        Ok(InFlight {
            rx,
            _guard: guard,
            state: Arc::clone(&self.state),
            broker: self.broker.clone(),
            version,
            timeout,
            _request: std::marker::PhantomData,
        })
    }

    /// `req` as a frame: [`Self::frame_head`], then the body in a buffer sized exactly up
    /// front (growing it while encoding would copy it on every doubling).
    fn encode<R: Request>(&self, req: &R, version: i16, correlation_id: i32) -> Result<Frame> {
        let proto = |e| protocol_error(&self.broker, api_name(R::KEY), e);
        let mut body = BytesMut::with_capacity(req.compute_size(version).map_err(proto)?);
        req.encode(&mut body, version).map_err(proto)?;
        let head = self.frame_head::<R>(version, correlation_id, body.len())?;
        Ok(vec![head, body.freeze()])
    }

    /// A frame's first chunk for a body of `body_len` bytes: the length and the request
    /// header.
    fn frame_head<R: Request>(
        &self,
        version: i16,
        correlation_id: i32,
        body_len: usize,
    ) -> Result<Bytes> {
        let api = api_name(R::KEY);
        let proto = |e| protocol_error(&self.broker, api, e);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let header_len = header.compute_size(header_version).map_err(proto)?;
        let len = i32::try_from(header_len + body_len).map_err(|_| Error::Protocol {
            broker: self.broker.clone(),
            api,
            message: "request larger than 2 GiB".to_owned(),
        })?;
        let mut buf = BytesMut::with_capacity(4 + header_len);
        buf.put_i32(len);
        header.encode(&mut buf, header_version).map_err(proto)?;
        Ok(buf.freeze())
    }

    fn poisoned(&self, msg: &Arc<str>) -> Error {
        Error::Connection {
            broker: self.broker.clone(),
            message: Arc::clone(msg),
        }
    }

    async fn negotiate_versions(&self) -> Result<ApiVersions> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strait"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        // v3 is flexible; a broker that does not speak it answers UNSUPPORTED_VERSION in the
        // v0 layout, which a v3 decode may misread, so fall back to asking in v0.
        let resp = match self.send_version(&req, 3, self.request_timeout).await {
            Ok(r) if r.error_code == 0 => r,
            Ok(_) | Err(Error::Protocol { .. }) => {
                self.send_version(&req, 0, self.request_timeout).await?
            }
            Err(e) => return Err(e),
        };
        if resp.error_code != 0 {
            return Err(Error::broker(
                "ApiVersions",
                resp.error_code,
                Default::default(),
                None::<String>,
            ));
        }
        Ok(ApiVersions(
            resp.api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        ))
    }

    async fn authenticate(&self, cfg: &SaslConfig) -> Result<()> {
        let auth_err = |message: String| Error::Auth {
            broker: self.broker.clone(),
            message,
        };
        let hs = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(cfg.mechanism.name()));
        let resp = self.send_version(&hs, 1, self.request_timeout).await?;
        if resp.error_code != 0 {
            let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(auth_err(format!(
                "broker refused mechanism {} (error {}); it offers {offered:?}",
                cfg.mechanism.name(),
                resp.error_code
            )));
        }
        let (mut exchange, mut msg) = sasl::start(cfg, sasl::nonce());
        loop {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(msg));
            let resp = self.send(&req).await?;
            if resp.error_code != 0 {
                let detail = resp
                    .error_message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                return Err(auth_err(format!(
                    "{} for user `{}`: {detail}",
                    api_error_name(resp.error_code),
                    cfg.username
                )));
            }
            let (next, reply) = sasl::step(exchange, cfg, &resp.auth_bytes).map_err(auth_err)?;
            exchange = next;
            match reply {
                Some(r) => msg = r,
                None => return Ok(()),
            }
        }
    }
}

/// Maps a kafka-protocol codec error (an `anyhow::Error`, named here only by its Display).
fn protocol_error(broker: &str, api: &'static str, e: impl std::fmt::Display) -> Error {
    Error::Protocol {
        broker: broker.to_owned(),
        api,
        message: e.to_string(),
    }
}

fn api_error_name(code: i16) -> String {
    kafka_protocol::ResponseError::try_from_code(code)
        .map_or_else(|| code.to_string(), |e| format!("{e} ({code})"))
}

/// A readable API name for errors and logs.
pub fn api_name(key: i16) -> &'static str {
    let Ok(k) = ApiKey::try_from(key) else {
        return "UnknownApi";
    };
    match k {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::SaslHandshake => "SaslHandshake",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::DescribeAcls => "DescribeAcls",
        ApiKey::CreateAcls => "CreateAcls",
        ApiKey::DeleteAcls => "DeleteAcls",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::SaslAuthenticate => "SaslAuthenticate",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::IncrementalAlterConfigs => "IncrementalAlterConfigs",
        ApiKey::DescribeProducers => "DescribeProducers",
        _ => "OtherApi",
    }
}

async fn write_loop<W: AsyncWrite>(
    write: W,
    mut rx: mpsc::Receiver<Frame>,
    state: Arc<Mutex<State>>,
) {
    tokio::pin!(write);
    while let Some(frame) = rx.recv().await {
        if let Err(e) = write_frame(&mut write, &frame).await {
            poison(&state, format!("write failed: {e}"));
            return;
        }
    }
    // The connection was dropped: close our half politely.
    let _ = write.shutdown().await;
}

/// Writes every chunk of `frame`, in order, with as few vectored writes as the stream takes
/// (one for a produce request on TCP; a stream that is not vectored takes a chunk at a time).
async fn write_frame<W: AsyncWrite + Unpin>(write: &mut W, frame: &[Bytes]) -> std::io::Result<()> {
    let (mut chunk, mut at) = (0, 0); // the next byte to write: frame[chunk][at]
    while chunk < frame.len() {
        if at == frame[chunk].len() {
            (chunk, at) = (chunk + 1, 0);
            continue;
        }
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&frame[chunk][at..])
            .chain(frame[chunk + 1..].iter().map(|c| &c[..]))
            .take(MAX_IOV)
            .map(std::io::IoSlice::new)
            .collect();
        let mut n = write.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let left = frame[chunk].len() - at;
            if n < left {
                at += n;
                n = 0;
            } else {
                n -= left;
                (chunk, at) = (chunk + 1, 0);
            }
        }
    }
    Ok(())
}

async fn read_loop<R: AsyncRead>(read: R, state: Arc<Mutex<State>>, max_frame: usize) {
    tokio::pin!(read);
    loop {
        let len = match read.read_i32().await {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return poison(&state, "broker closed the connection".to_owned());
            }
            Err(e) => return poison(&state, format!("read failed: {e}")),
        };
        let len = match usize::try_from(len) {
            Ok(l) if (4..=max_frame).contains(&l) => l,
            _ => {
                return poison(
                    &state,
                    format!("invalid response frame length {len} (limit {max_frame})"),
                );
            }
        };
        // Read into spare capacity: no zero-filling of up to `fetch_max_bytes` first.
        let mut buf = BytesMut::with_capacity(len);
        let mut frame = (&mut read).take(len as u64);
        while buf.len() < len {
            match frame.read_buf(&mut buf).await {
                Ok(0) => return poison(&state, "response truncated: end of stream".to_owned()),
                Ok(_) => {}
                Err(e) => return poison(&state, format!("response truncated: {e}")),
            }
        }
        let body = buf.freeze();
        let correlation_id = (&body[..4]).get_i32();
        let waiter = lock(&state).pending.remove(&correlation_id);
        if let Some(tx) = waiter {
            // The caller may have gone away in the meantime; then the response is dropped.
            let _ = tx.send(Ok(body));
        }
        // No waiter: a cancelled or timed-out request. Its response is discarded.
    }
}

fn decode<R: Request>(broker: &str, mut body: Bytes, version: i16) -> Result<R::Response> {
    let api = api_name(R::KEY);
    let proto = |e| protocol_error(broker, api, e);
    let hv = <R::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut body, hv).map_err(proto)?;
    R::Response::decode(&mut body, version).map_err(proto)
}

fn poison(state: &Mutex<State>, message: String) {
    let msg: Arc<str> = message.into();
    let mut st = lock(state);
    st.poisoned.get_or_insert_with(|| Arc::clone(&msg));
    for (_, tx) in st.pending.drain() {
        let _ = tx.send(Err(Arc::clone(&msg)));
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
