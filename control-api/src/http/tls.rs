//! HTTPS for the control API (`[api] tls_cert` / `tls_key`): the certificate chain and key
//! are loaded once at startup (rustls, ring provider), and a listener hands axum only
//! connections whose TLS handshake completed. Handshakes run in their own tasks with a
//! deadline, so a slow or silent client delays nobody else; a plain-HTTP client fails the
//! handshake and is disconnected.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completed handshakes waiting for axum to pick them up.
const ACCEPT_QUEUE: usize = 64;

/// The API's TLS certificate or key could not be used. The message names the config field
/// and the file, never key material.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {}: {message}", path.display())]
pub struct TlsSetupError {
    /// `api.tls_cert` or `api.tls_key`.
    pub field: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// The TLS server configuration for the certificate chain in `cert` and the private key in
/// `key` (PEM).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let cert_err = |message: String| TlsSetupError {
        field: "api.tls_cert",
        path: cert.to_owned(),
        message,
    };
    let key_err = |message: String| TlsSetupError {
        field: "api.tls_key",
        path: key.to_owned(),
        message,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot read: {e}")))?;
    let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err(
            "no PEM certificate (BEGIN CERTIFICATE) found".into(),
        ));
    }
    let key_pem = std::fs::read(key).map_err(|e| key_err(format!("cannot read: {e}")))?;
    // The parser's error says where parsing stopped, not what the bytes were.
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| key_err(format!("not a PEM key file: {e}")))?
        .ok_or_else(|| key_err("no PEM private key (PKCS#8, PKCS#1 or SEC1) found".to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            key_err(format!(
                "does not match the certificate or is unusable: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An axum listener yielding connections whose TLS handshake is complete.
#[derive(Debug)]
pub(super) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Accepts TCP connections on `listener` until `cancel` fires, handshaking each in its
    /// own task.
    pub(super) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        cancel: CancellationToken,
    ) -> io::Result<Self> {
        let addr = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(ACCEPT_QUEUE);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    () = cancel.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, keep serving.
                            tracing::warn!(error = %e, "control API: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "control API: TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "control API: TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(Self { ready, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept task stopped (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA (its PEM) and a `127.0.0.1` server certificate and key signed by it, as files.
    struct Files {
        dir: tempfile::TempDir,
        ca_pem: String,
        cert: PathBuf,
        key: PathBuf,
    }

    fn files() -> Files {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Files {
            dir,
            ca_pem: ca_cert.pem(),
            cert: cert_path,
            key: key_path,
        }
    }

    fn client(ca_pem: &str) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    async fn serve(files: &Files, cancel: &CancellationToken) -> SocketAddr {
        let config = server_config(&files.cert, &files.key).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listener = TlsListener::new(tcp, config, cancel.clone()).unwrap();
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let app = axum::Router::new().route("/hello", axum::routing::get(|| async { "hello" }));
        tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(cancel.clone().cancelled_owned())
                .into_future(),
        );
        addr
    }

    #[tokio::test]
    async fn serves_https_and_refuses_plain_http() {
        let files = files();
        let cancel = CancellationToken::new();
        let addr = serve(&files, &cancel).await;

        // A client that does not trust the CA fails the handshake...
        let other = self::files();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let err = client(&other.ca_pem)
            .connect(name.clone(), tcp)
            .await
            .expect_err("an untrusted certificate");
        assert!(
            err.to_string().contains("invalid peer certificate"),
            "{err}"
        );

        // ...a silent client does not hold up the others, and plain HTTP gets no answer...
        let _silent = TcpStream::connect(addr).await.unwrap();
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer))
            .await
            .expect("the server closes a plain-HTTP connection");
        assert!(
            !answer.starts_with(b"HTTP/"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );

        // ...and a client trusting the CA is served.
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut tls = client(&files.ca_pem).connect(name, tcp).await.unwrap();
        tls.write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
        cancel.cancel();
    }

    #[test]
    fn bad_files_are_errors_naming_the_field() {
        let files = files();
        let missing = files.dir.path().join("missing.pem");
        let message = |cert: &Path, key: &Path| server_config(cert, key).unwrap_err().to_string();

        let m = message(&missing, &files.key);
        assert!(
            m.starts_with("api.tls_cert: ") && m.contains("cannot read"),
            "{m}"
        );
        let m = message(&files.cert, &missing);
        assert!(
            m.starts_with("api.tls_key: ") && m.contains("cannot read"),
            "{m}"
        );
        // The key file as certificate: no certificate in it.
        let m = message(&files.key, &files.key);
        assert!(
            m.starts_with("api.tls_cert: ") && m.contains("no PEM certificate"),
            "{m}"
        );
        // The certificate file as key: no key in it.
        let m = message(&files.cert, &files.cert);
        assert!(
            m.starts_with("api.tls_key: ") && m.contains("no PEM private key"),
            "{m}"
        );
        // Another certificate's key.
        let other = self::files();
        let m = message(&files.cert, &other.key);
        assert!(
            m.starts_with("api.tls_key: ") && m.contains("does not match"),
            "{m}"
        );
        let key_pem = std::fs::read_to_string(&other.key).unwrap();
        let body = key_pem.lines().nth(1).unwrap();
        assert!(!m.contains(body), "key material in an error: {m}");
        // One file holding key and chain, as many tools write it, works for both.
        let both = files.dir.path().join("both.pem");
        let text = std::fs::read_to_string(&files.key).unwrap()
            + &std::fs::read_to_string(&files.cert).unwrap();
        std::fs::write(&both, text).unwrap();
        server_config(&both, &both).unwrap();
    }
}
