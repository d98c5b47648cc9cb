//! [`FaultProxy`]: a fault-injecting TCP proxy between a Kafka client (strait) and one broker.
//!
//! # Wiring
//!
//! A Kafka client bootstraps from one address and then connects to the addresses the broker
//! *advertises* in its Metadata (and FindCoordinator, DescribeCluster) responses. The testkit's
//! brokers advertise their own `127.0.0.1:PORT`, so a plain TCP proxy would only carry the
//! bootstrap connection. Instead of restarting brokers with other `advertised.listeners`
//! (which would need a dedicated broker per proxy, and tansu has no such hook in the testkit),
//! the proxy understands Kafka's framing (4-byte size, then the request header with API key and
//! correlation id): it remembers which API each request called and, in Metadata (3),
//! FindCoordinator (10) and DescribeCluster (60) responses, replaces the broker's advertised
//! `host` + `port` with its own port. The replacement is length-preserving (the host string
//! stays, only the 4-byte port changes) and only applies where the host is preceded by a
//! valid string length prefix. So every connection strait makes to that cluster goes through
//! the proxy, including to shared brokers, and test clients that connect to the broker directly
//! are unaffected.
//!
//! # Faults (all switchable at runtime, from any thread)
//!
//! * [`set_latency`](FaultProxy::set_latency): every frame, both directions, waits this long.
//! * [`drop_connections`](FaultProxy::drop_connections): closes every open connection (FIN)
//!   now; new connections work.
//! * [`reset_next_response`](FaultProxy::reset_next_response): the next response frame of at
//!   least 32 bytes is cut in half: its first half is forwarded, then the client connection is
//!   reset (`SO_LINGER` 0, so the client sees RST) and the broker connection closed.
//! * [`blackhole`](FaultProxy::blackhole): for N seconds nothing is forwarded in either
//!   direction and new connections are accepted but not connected to the broker; bytes wait in
//!   the socket buffers and flow again afterwards, like a network partition healing before TCP
//!   gives up.
//! * [`set_bandwidth`](FaultProxy::set_bandwidth): a bytes-per-second cap shared by all
//!   connections and both directions.
//! * [`corrupt_next_fetches`](FaultProxy::corrupt_next_fetches): in the next N Fetch (1)
//!   responses that carry a record batch, one byte inside a batch is flipped. The batch is
//!   located exactly (magic 2, a length that fits, and a CRC-32C that verifies), and the
//!   flipped byte is the batch's last, inside the CRC-covered area, so a client that checks
//!   CRCs must notice.
//! * [`delay_responses`](FaultProxy::delay_responses): every response to one API (Metadata,
//!   say) waits this long. Responses on a connection keep their order, so the ones behind it
//!   on the same connection wait too, as they would behind a slow broker.
//!
//! [`stats`](FaultProxy::stats) counts connections and every fault actually injected.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports;

const METADATA: i16 = 3;
const FETCH: i16 = 1;
const FIND_COORDINATOR: i16 = 10;
const DESCRIBE_CLUSTER: i16 = 60;
/// Largest frame the proxy accepts (well above any test's fetch size).
const MAX_FRAME: usize = 256 << 20;

/// Counters of what the proxy did; see [`FaultProxy::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Client connections accepted.
    pub connections: u64,
    /// Response frames forwarded (whole).
    pub responses: u64,
    /// Responses whose advertised broker address was rewritten to the proxy's.
    pub rewrites: u64,
    /// Connections closed by [`FaultProxy::drop_connections`].
    pub dropped: u64,
    /// Responses cut in half followed by a reset.
    pub resets: u64,
    /// Fetch responses with a flipped byte in a record batch.
    pub corrupted: u64,
    /// Blackhole periods started.
    pub blackholes: u64,
}

#[derive(Debug)]
struct Counters {
    connections: AtomicU64,
    responses: AtomicU64,
    rewrites: AtomicU64,
    dropped: AtomicU64,
    resets: AtomicU64,
    corrupted: AtomicU64,
    blackholes: AtomicU64,
    /// Requests forwarded, by API key (keys above the array's end are not counted).
    requests: [AtomicU64; API_KEYS],
}

/// API keys counted by [`FaultProxy::requests`] (Kafka's keys are below 100).
const API_KEYS: usize = 128;

// By hand: `Default` for arrays stops at 32 elements.
impl Default for Counters {
    fn default() -> Self {
        Counters {
            connections: AtomicU64::default(),
            responses: AtomicU64::default(),
            rewrites: AtomicU64::default(),
            dropped: AtomicU64::default(),
            resets: AtomicU64::default(),
            corrupted: AtomicU64::default(),
            blackholes: AtomicU64::default(),
            requests: std::array::from_fn(|_| AtomicU64::default()),
        }
    }
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// `host` bytes and big-endian port the broker advertises, and the proxy's port.
    advertised_host: Vec<u8>,
    upstream_port: u16,
    listen_port: u16,
    latency_ms: AtomicU64,
    /// Bytes per second; 0 = unlimited.
    bandwidth: AtomicU64,
    /// Virtual clock of the bandwidth limiter: when the link is free again.
    link_free_at: Mutex<Instant>,
    blackhole_until: Mutex<Option<Instant>>,
    reset_pending: AtomicU32,
    corrupt_pending: AtomicU32,
    /// Responses to this API key wait this long ([`FaultProxy::delay_responses`]).
    response_delay: Mutex<Option<(i16, Duration)>>,
    /// Open connections: id → (client side, broker side) handles, for drop_connections.
    conns: Mutex<HashMap<u64, (TcpStream, Option<TcpStream>)>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    counters: Counters,
}

/// A fault-injecting proxy in front of one broker; stopped (every connection closed) on drop.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream` (`127.0.0.1:PORT`, as
    /// [`crate::Broker::bootstrap`] returns it).
    pub fn start(upstream: &str) -> FaultProxy {
        let (host, port) = upstream
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("FaultProxy: `{upstream}` is not HOST:PORT"));
        let upstream_port: u16 = port.parse().expect("FaultProxy: upstream port");
        let upstream_addr = upstream
            .to_socket_addrs()
            .expect("FaultProxy: resolve upstream")
            .next()
            .expect("FaultProxy: upstream address");
        let listener = (0..20)
            .find_map(|_| TcpListener::bind(("127.0.0.1", ports::free_port())).ok())
            .expect("FaultProxy: no free port");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            upstream: upstream_addr,
            advertised_host: host.as_bytes().to_vec(),
            upstream_port,
            listen_port: addr.port(),
            latency_ms: AtomicU64::new(0),
            bandwidth: AtomicU64::new(0),
            link_free_at: Mutex::new(Instant::now()),
            blackhole_until: Mutex::new(None),
            reset_pending: AtomicU32::new(0),
            corrupt_pending: AtomicU32::new(0),
            response_delay: Mutex::new(None),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let s = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || accept_loop(&listener, &s))
            .expect("spawn proxy thread");
        FaultProxy {
            shared,
            addr,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT` of the proxy: give this to the client instead of the broker's.
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Delays every forwarded frame (both directions) by `latency`; zero turns it off.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }

    /// Caps throughput to `bytes_per_sec` over all connections and both directions; `None`
    /// removes the cap.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        *lock(&self.shared.link_free_at) = Instant::now();
        self.shared
            .bandwidth
            .store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// Closes every open connection (both sides); returns how many there were.
    pub fn drop_connections(&self) -> usize {
        let conns: Vec<_> = lock(&self.shared.conns).drain().collect();
        for (_, (client, upstream)) in &conns {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(u) = upstream {
                let _ = u.shutdown(Shutdown::Both);
            }
        }
        self.shared
            .counters
            .dropped
            .fetch_add(conns.len() as u64, Ordering::Relaxed);
        conns.len()
    }

    /// Arms one reset: the next response of at least 32 bytes is cut in half and the client
    /// connection reset.
    pub fn reset_next_response(&self) {
        self.shared.reset_pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Forwards nothing for `duration` (see the module docs).
    pub fn blackhole(&self, duration: Duration) {
        *lock(&self.shared.blackhole_until) = Some(Instant::now() + duration);
        self.shared
            .counters
            .blackholes
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Flips one byte inside a record batch of each of the next `n` Fetch responses that
    /// carry one.
    pub fn corrupt_next_fetches(&self, n: u32) {
        self.shared.corrupt_pending.fetch_add(n, Ordering::Relaxed);
    }

    /// Holds every response to API `api_key` (3 Metadata, ...) for `delay` before it is
    /// forwarded; zero turns it off.
    pub fn delay_responses(&self, api_key: i16, delay: Duration) {
        *lock(&self.shared.response_delay) = (!delay.is_zero()).then_some((api_key, delay));
    }

    /// Armed one-shot faults not injected yet: (resets, corruptions).
    pub fn pending(&self) -> (u32, u32) {
        (
            self.shared.reset_pending.load(Ordering::Relaxed),
            self.shared.corrupt_pending.load(Ordering::Relaxed),
        )
    }

    /// Turns every fault off (latency, bandwidth, blackhole, response delay, armed resets and
    /// corruptions).
    pub fn clear(&self) {
        self.set_latency(Duration::ZERO);
        *lock(&self.shared.response_delay) = None;
        self.set_bandwidth(None);
        *lock(&self.shared.blackhole_until) = None;
        self.shared.reset_pending.store(0, Ordering::Relaxed);
        self.shared.corrupt_pending.store(0, Ordering::Relaxed);
    }

    /// Requests forwarded so far that called API `api_key` (30 CreateAcls, 0 Produce, ...),
    /// over every connection: how many round trips the client spent on something.
    pub fn requests(&self, api_key: i16) -> u64 {
        usize::try_from(api_key)
            .ok()
            .and_then(|k| self.shared.counters.requests.get(k))
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProxyStats {
            connections: get(&c.connections),
            responses: get(&c.responses),
            rewrites: get(&c.rewrites),
            dropped: get(&c.dropped),
            resets: get(&c.resets),
            corrupted: get(&c.corrupted),
            blackholes: get(&c.blackholes),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        self.drop_connections();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = stream else { continue };
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let s = Arc::clone(shared);
        let _ = thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || serve(client, &s));
    }
}

/// One client connection: connects to the broker (after any blackhole), then forwards
/// requests on this thread and responses on a second one.
fn serve(client: TcpStream, shared: &Arc<Shared>) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let Ok(registered) = client.try_clone() else {
        return;
    };
    lock(&shared.conns).insert(id, (registered, None));
    wait_blackhole(shared);
    let upstream = match TcpStream::connect_timeout(&shared.upstream, Duration::from_secs(5)) {
        Ok(u) => u,
        Err(_) => {
            lock(&shared.conns).remove(&id);
            return; // the broker is down: the client sees the connection close
        }
    };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    match lock(&shared.conns).get_mut(&id) {
        Some(entry) => entry.1 = upstream.try_clone().ok(),
        None => return, // dropped while connecting
    }
    let in_flight: Arc<Mutex<HashMap<i32, i16>>> = Arc::default();
    let responses = {
        let (Ok(from), Ok(to)) = (upstream.try_clone(), client.try_clone()) else {
            lock(&shared.conns).remove(&id);
            return;
        };
        let (s, f) = (Arc::clone(shared), Arc::clone(&in_flight));
        thread::spawn(move || forward_responses(from, to, &s, &f))
    };
    forward_requests(&client, &upstream, shared, &in_flight);
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = responses.join();
    lock(&shared.conns).remove(&id);
}

fn read_frame(from: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut size = [0u8; 4];
    from.read_exact(&mut size)?;
    let n = i32::from_be_bytes(size);
    if n < 0 || n as usize > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad frame size"));
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&size);
    from.read_exact(&mut frame[4..])?;
    Ok(frame)
}

fn forward_requests(
    client: &TcpStream,
    upstream: &TcpStream,
    shared: &Shared,
    in_flight: &Mutex<HashMap<i32, i16>>,
) {
    let (mut from, mut to) = (client, upstream);
    loop {
        let Ok(frame) = read_frame(&mut from) else {
            return;
        };
        if frame.len() >= 12 {
            let api_key = i16::from_be_bytes([frame[4], frame[5]]);
            let correlation = i32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
            lock(in_flight).insert(correlation, api_key);
            if let Some(n) = usize::try_from(api_key)
                .ok()
                .and_then(|k| shared.counters.requests.get(k))
            {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
        delay(shared);
        if write_paced(&mut to, &frame, shared).is_err() {
            return;
        }
    }
}

fn forward_responses(
    mut from: TcpStream,
    mut to: TcpStream,
    shared: &Shared,
    in_flight: &Mutex<HashMap<i32, i16>>,
) {
    loop {
        let Ok(mut frame) = read_frame(&mut from) else {
            // The broker closed: close the client side too (request thread then ends).
            let _ = to.shutdown(Shutdown::Both);
            return;
        };
        let api_key = (frame.len() >= 8)
            .then(|| i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]))
            .and_then(|c| lock(in_flight).remove(&c));
        match api_key {
            Some(METADATA | FIND_COORDINATOR | DESCRIBE_CLUSTER)
                if rewrite_address(&mut frame[8..], shared) =>
            {
                shared.counters.rewrites.fetch_add(1, Ordering::Relaxed);
            }
            Some(FETCH) if take_one(&shared.corrupt_pending) => {
                if corrupt_batch(&mut frame[8..]) {
                    shared.counters.corrupted.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.corrupt_pending.fetch_add(1, Ordering::Relaxed); // no batch: later
                }
            }
            _ => {}
        }
        let held = *lock(&shared.response_delay);
        if let (Some(key), Some((slow, d))) = (api_key, held)
            && key == slow
        {
            thread::sleep(d);
        }
        delay(shared);
        if frame.len() >= 32 && take_one(&shared.reset_pending) {
            reset_mid_frame(&from, &mut to, &frame);
            shared.counters.resets.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if write_paced(&mut to, &frame, shared).is_err() {
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        shared.counters.responses.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the first half of `frame`, then resets the client connection: with `SO_LINGER` 0 the
/// last close of the socket sends RST. Shutting down our read side wakes the request thread
/// (which then drops its handle) without sending anything.
fn reset_mid_frame(upstream: &TcpStream, client: &mut TcpStream, frame: &[u8]) {
    let _ = client.write_all(&frame[..frame.len() / 2]);
    let _ = client.flush();
    let _ = socket2::SockRef::from(&*client).set_linger(Some(Duration::ZERO));
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Read);
}

fn take_one(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn wait_blackhole(shared: &Shared) {
    loop {
        let until = *lock(&shared.blackhole_until);
        match until {
            Some(t) if t > Instant::now() => thread::sleep(Duration::from_millis(20)),
            _ => return,
        }
    }
}

/// Blackhole and latency, before a frame of `len` bytes is forwarded.
fn delay(shared: &Shared) {
    wait_blackhole(shared);
    let ms = shared.latency_ms.load(Ordering::Relaxed);
    if ms > 0 {
        thread::sleep(Duration::from_millis(ms));
    }
}

/// Writes `frame` in 4 KiB chunks, each waiting for its share of the bandwidth cap.
fn write_paced(to: &mut impl Write, frame: &[u8], shared: &Shared) -> io::Result<()> {
    for chunk in frame.chunks(4096) {
        let rate = shared.bandwidth.load(Ordering::Relaxed);
        if rate > 0 {
            let cost = Duration::from_secs_f64(chunk.len() as f64 / rate as f64);
            let ready = {
                let mut free = lock(&shared.link_free_at);
                let start = (*free).max(Instant::now());
                *free = start + cost;
                *free
            };
            let now = Instant::now();
            if ready > now {
                thread::sleep(ready - now);
            }
        }
        to.write_all(chunk)?;
    }
    to.flush()
}

/// Replaces the advertised broker port after every `host` string (with a valid compact or
/// classic length prefix) in a response body; true if anything changed.
fn rewrite_address(body: &mut [u8], shared: &Shared) -> bool {
    let host = &shared.advertised_host;
    let old = i32::from(shared.upstream_port).to_be_bytes();
    let new = i32::from(shared.listen_port).to_be_bytes();
    let mut changed = false;
    let mut i = 1;
    while i + host.len() + 4 <= body.len() {
        let j = i + host.len();
        let prefixed = body[i - 1] as usize == host.len() + 1 // compact string
            || (i >= 2 && body[i - 2] == 0 && body[i - 1] as usize == host.len()); // int16 length
        if prefixed && &body[i..j] == host.as_slice() && body[j..j + 4] == old {
            body[j..j + 4].copy_from_slice(&new);
            changed = true;
            i = j + 4;
        } else {
            i += 1;
        }
    }
    changed
}

/// Finds the first record batch in `body` (v2: magic 2, a batch length that fits, a CRC-32C
/// that verifies) and flips its last byte; false if there is none.
fn corrupt_batch(body: &mut [u8]) -> bool {
    const HEADER: usize = 61; // a v2 batch header
    let mut i = 0;
    while i + HEADER <= body.len() {
        if body[i + 16] == 2 {
            let len = i32::from_be_bytes([body[i + 8], body[i + 9], body[i + 10], body[i + 11]]);
            if len >= (HEADER - 12) as i32 && i + 12 + len as usize <= body.len() {
                let end = i + 12 + len as usize;
                let crc =
                    u32::from_be_bytes([body[i + 17], body[i + 18], body[i + 19], body[i + 20]]);
                if crc32c(&body[i + 21..end]) == crc {
                    body[end - 1] ^= 0xff;
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}

/// CRC-32C (Castagnoli), as Kafka record batches use it.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (n, slot) in t.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0x82f6_3b78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    let mut crc = !0u32;
    for b in data {
        crc = table[((crc ^ u32::from(*b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn corrupts_only_a_verified_batch() {
        // A minimal batch: base offset, length, epoch, magic 2, CRC over attributes.., padding.
        let mut batch = vec![0u8; 12 + 49 + 5];
        let len = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        batch[16] = 2;
        for (i, b) in batch.iter_mut().enumerate().skip(21) {
            *b = i as u8;
        }
        let crc = crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let mut body = vec![7u8; 30];
        body.extend_from_slice(&batch);
        body.extend_from_slice(&[0, 0]);
        let before = body.clone();
        assert!(corrupt_batch(&mut body));
        let diff: Vec<usize> = (0..body.len()).filter(|&i| body[i] != before[i]).collect();
        assert_eq!(diff, vec![30 + batch.len() - 1]);
        assert_ne!(crc32c(&body[30 + 21..30 + batch.len()]), crc);
        let mut noise = vec![2u8; 200];
        assert!(!corrupt_batch(&mut noise));
    }
}
