//! Connection tests over `tokio::io::duplex`: a scripted broker on the other end of an
//! in-memory pipe. These test framing and pipelining logic only; everything that talks to a
//! real broker lives in the integration tests.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, MetadataRequest, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::client::error::Retry;

/// A request as the scripted broker sees it.
struct Incoming {
    api_key: i16,
    version: i16,
    correlation_id: i32,
}

async fn read_request(s: &mut DuplexStream) -> Option<Incoming> {
    let len = s.read_i32().await.ok()?;
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await.ok()?;
    let mut b = &buf[..];
    Some(Incoming {
        api_key: b.get_i16(),
        version: b.get_i16(),
        correlation_id: b.get_i32(),
    })
}

fn frame<R: Encodable + HeaderVersion>(correlation_id: i32, version: i16, body: &R) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, R::header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

fn api_versions_frame(req: &Incoming, keys: &[(ApiKey, i16, i16)]) -> Bytes {
    let resp = ApiVersionsResponse::default().with_api_keys(
        keys.iter()
            .map(|(k, lo, hi)| {
                ApiVersion::default()
                    .with_api_key(*k as i16)
                    .with_min_version(*lo)
                    .with_max_version(*hi)
            })
            .collect(),
    );
    frame(req.correlation_id, req.version, &resp)
}

fn metadata_frame(req: &Incoming, cluster: &str) -> Bytes {
    let resp = MetadataResponse::default()
        .with_cluster_id(Some(StrBytes::from_string(cluster.to_owned())))
        .with_controller_id(BrokerId(1));
    frame(req.correlation_id, req.version, &resp)
}

/// Answers the ApiVersions handshake, advertising Metadata v0-v12 only.
async fn serve_handshake(s: &mut DuplexStream) {
    let req = read_request(s).await.expect("ApiVersions request");
    assert_eq!(req.api_key, ApiKey::ApiVersions as i16);
    s.write_all(&api_versions_frame(
        &req,
        &[(ApiKey::ApiVersions, 0, 3), (ApiKey::Metadata, 0, 12)],
    ))
    .await
    .unwrap();
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new("test:9092");
    c.request_timeout = Duration::from_secs(5);
    c
}

async fn connected(cfg: ClientConfig) -> (Connection, DuplexStream) {
    let (client_side, mut broker_side) = tokio::io::duplex(1 << 20);
    let handshake = tokio::spawn(async move {
        serve_handshake(&mut broker_side).await;
        broker_side
    });
    let conn = Connection::handshake(client_side, "test:9092", &cfg)
        .await
        .unwrap();
    (conn, handshake.await.unwrap())
}

fn cluster_of(r: &MetadataResponse) -> String {
    r.cluster_id.as_ref().unwrap().to_string()
}

#[tokio::test]
async fn negotiates_and_picks_the_highest_common_version() {
    let (conn, _broker) = connected(config()).await;
    assert_eq!(conn.version_for::<MetadataRequest>().unwrap(), 12);
    let err = conn
        .version_for::<kafka_protocol::messages::FetchRequest>()
        .unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedApi { api: "Fetch", .. }),
        "{err}"
    );
}

#[tokio::test]
async fn responses_split_into_tiny_writes_are_reassembled() {
    let (conn, mut broker) = connected(config()).await;
    let server = tokio::spawn(async move {
        let req = read_request(&mut broker).await.unwrap();
        for byte in metadata_frame(&req, "dribbled").iter() {
            broker.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        broker
    });
    let resp = conn.send(&MetadataRequest::default()).await.unwrap();
    assert_eq!(cluster_of(&resp), "dribbled");
    let _ = server.await;
}

#[tokio::test]
async fn pipelined_responses_out_of_order_reach_their_callers() {
    let (conn, mut broker) = connected(config()).await;
    let server = tokio::spawn(async move {
        let a = read_request(&mut broker).await.unwrap();
        let b = read_request(&mut broker).await.unwrap();
        // Answer the second request first.
        broker
            .write_all(&metadata_frame(&b, &format!("c{}", b.correlation_id)))
            .await
            .unwrap();
        broker
            .write_all(&metadata_frame(&a, &format!("c{}", a.correlation_id)))
            .await
            .unwrap();
        (a.correlation_id, b.correlation_id, broker)
    });
    let req = MetadataRequest::default();
    let (ra, rb) = tokio::join!(conn.send(&req), conn.send(&req));
    let (ca, cb, _broker) = server.await.unwrap();
    let mut got = [cluster_of(&ra.unwrap()), cluster_of(&rb.unwrap())];
    got.sort();
    let mut want = [format!("c{ca}"), format!("c{cb}")];
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn queued_requests_reach_the_broker_in_queue_order() {
    let (conn, mut broker) = connected(config()).await;
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let r = read_request(&mut broker).await.unwrap();
            seen.push(r.correlation_id);
            broker
                .write_all(&metadata_frame(&r, &format!("c{}", r.correlation_id)))
                .await
                .unwrap();
        }
        (seen, broker)
    });
    let req = MetadataRequest::default();
    let mut queued = Vec::new();
    for _ in 0..3 {
        queued.push(
            conn.queue_with_extra_time(&req, Duration::ZERO)
                .await
                .unwrap(),
        );
    }
    // Answers are awaited only after all three were queued, last first.
    let mut got = Vec::new();
    for q in queued.into_iter().rev() {
        got.push(cluster_of(&q.response().await.unwrap()));
    }
    let (seen, _broker) = server.await.unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "written out of order: {seen:?}"
    );
    let want: Vec<String> = seen.iter().rev().map(|c| format!("c{c}")).collect();
    assert_eq!(got, want, "each answer reaches its own request");
}

#[tokio::test]
async fn hang_up_mid_response_fails_pending_and_later_requests() {
    let (conn, mut broker) = connected(config()).await;
    let server = tokio::spawn(async move {
        let req = read_request(&mut broker).await.unwrap();
        let f = metadata_frame(&req, "cut");
        broker.write_all(&f[..f.len() / 2]).await.unwrap();
        drop(broker); // hang up with half a response sent
    });
    let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    server.await.unwrap();
    assert!(conn.is_poisoned());
    let again = conn.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(matches!(again, Error::Connection { .. }), "{again}");
    assert_eq!(again.retry(), Retry::Reconnect);
}

#[tokio::test]
async fn a_request_cancelled_mid_flight_leaves_the_connection_usable() {
    let (conn, mut broker) = connected(config()).await;
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let first = read_request(&mut broker).await.unwrap();
        seen_tx.send(()).unwrap();
        let second = read_request(&mut broker).await.unwrap();
        // The cancelled request's response arrives late, then the live one's.
        broker
            .write_all(&metadata_frame(&first, "stale"))
            .await
            .unwrap();
        broker
            .write_all(&metadata_frame(&second, "fresh"))
            .await
            .unwrap();
        broker
    });
    let req = MetadataRequest::default();
    {
        let pending = conn.send(&req);
        tokio::pin!(pending);
        tokio::select! {
            _ = &mut pending => panic!("no response was sent yet"),
            _ = seen_rx => {} // the broker has the whole request; now drop the caller
        }
    }
    assert!(
        lock(&conn.state).pending.is_empty(),
        "the drop guard removed the cancelled entry"
    );
    let resp = conn.send(&req).await.unwrap();
    assert_eq!(cluster_of(&resp), "fresh");
    assert!(!conn.is_poisoned());
    let _ = server.await;
}

#[tokio::test]
async fn a_timed_out_request_does_not_poison_the_connection() {
    let mut cfg = config();
    cfg.request_timeout = Duration::from_millis(100);
    let (conn, mut broker) = connected(cfg).await;
    let server = tokio::spawn(async move {
        let slow = read_request(&mut broker).await.unwrap();
        let next = read_request(&mut broker).await.unwrap();
        broker
            .write_all(&metadata_frame(&slow, "late"))
            .await
            .unwrap();
        broker
            .write_all(&metadata_frame(&next, "ok"))
            .await
            .unwrap();
        broker
    });
    let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                api: "Metadata",
                ..
            }
        ),
        "{err}"
    );
    let resp = conn
        .send_version(&MetadataRequest::default(), 12, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(cluster_of(&resp), "ok");
    let _ = server.await;
}

#[tokio::test]
async fn an_oversized_frame_poisons_with_a_clear_message() {
    let mut cfg = config();
    cfg.max_response_bytes = 1024;
    let (conn, mut broker) = connected(cfg).await;
    let server = tokio::spawn(async move {
        let _req = read_request(&mut broker).await.unwrap();
        broker
            .write_all(&(1_000_000i32).to_be_bytes())
            .await
            .unwrap();
        broker
    });
    let err = conn.send(&MetadataRequest::default()).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("invalid response frame length 1000000"),
        "{err}"
    );
    let _ = server.await;
}

#[tokio::test]
async fn broker_closing_during_handshake_is_a_connection_error() {
    let (client_side, broker_side) = tokio::io::duplex(1024);
    drop(broker_side);
    let err = Connection::handshake(client_side, "test:9092", &config())
        .await
        .unwrap_err();
    assert_eq!(err.retry(), Retry::Reconnect, "{err}");
}

/// A writer that takes at most `step` bytes per call, wherever they fall: across chunks when
/// `vectored`, else from the first non-empty one.
struct Trickle {
    out: Vec<u8>,
    step: usize,
    vectored: bool,
}

impl tokio::io::AsyncWrite for Trickle {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let n = buf.len().min(self.step);
        self.out.extend_from_slice(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if !self.vectored {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(self.step - n);
            self.out.extend_from_slice(&b[..take]);
            n += take;
            if n == self.step {
                break;
            }
        }
        std::task::Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_frame_of_chunks_is_written_whole_and_in_order_however_the_stream_splits_it() {
    let sizes = [4usize, 0, 61, 16_384, 0, 3, 1, 61, 700];
    let frame: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| Bytes::from((0..*n).map(|k| (i * 31 + k) as u8).collect::<Vec<_>>()))
        .collect();
    let want: Vec<u8> = frame.iter().flat_map(|c| c.iter().copied()).collect();
    // More chunks than one vectored write takes.
    let many: Vec<Bytes> = (0..MAX_IOV * 2 + 7)
        .map(|i| Bytes::from(vec![i as u8; i % 5]))
        .collect();
    let want_many: Vec<u8> = many.iter().flat_map(|c| c.iter().copied()).collect();
    for vectored in [true, false] {
        for step in [1, 5, 61, 65, 100, 70_000] {
            let mut w = Trickle {
                out: Vec::new(),
                step,
                vectored,
            };
            write_frame(&mut w, &frame).await.unwrap();
            assert_eq!(w.out, want, "step {step}, vectored {vectored}");
            w.out.clear();
            write_frame(&mut w, &many).await.unwrap();
            assert_eq!(w.out, want_many, "step {step}, vectored {vectored}");
        }
    }
    let mut stuck = Trickle {
        out: Vec::new(),
        step: 0,
        vectored: true,
    };
    let e = write_frame(&mut stuck, &frame).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
}
