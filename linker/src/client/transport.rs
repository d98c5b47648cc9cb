//! Byte streams to brokers: plain TCP, or TLS (rustls, ring) over TCP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::config::{Security, TlsConfig};
use super::error::{Error, Result};

/// A connected stream to a broker.
#[derive(Debug)]
pub enum Transport {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Connects to `broker` (`host:port`) with the configured security.
pub async fn connect(broker: &str, security: &Security) -> Result<Transport> {
    let err = |message: String| Error::Connect {
        broker: broker.to_owned(),
        message,
    };
    let tcp = TcpStream::connect(broker)
        .await
        .map_err(|e| err(e.to_string()))?;
    tcp.set_nodelay(true).map_err(|e| err(e.to_string()))?;
    let Some(tls) = &security.tls else {
        return Ok(Transport::Plain(tcp));
    };
    let connector = connector(tls).map_err(err)?;
    let host = tls
        .server_name
        .clone()
        .unwrap_or_else(|| host_of(broker).to_owned());
    let name = ServerName::try_from(host.clone())
        .map_err(|_| err(format!("`{host}` is not a valid TLS server name")))?;
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Auth {
            broker: broker.to_owned(),
            message: format!("TLS: {e}"),
        })?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Builds a TLS connector that trusts exactly the CA certificates in `ca_file`.
pub fn connector(tls: &TlsConfig) -> std::result::Result<TlsConnector, String> {
    let pem = std::fs::read(&tls.ca_file)
        .map_err(|e| format!("cannot read TLS ca_file {}: {e}", tls.ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert =
            cert.map_err(|e| format!("bad certificate in {}: {e}", tls.ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate in {}: {e}", tls.ca_file.display()))?;
        count += 1;
    }
    if count == 0 {
        return Err(format!(
            "no certificate found in TLS ca_file {}",
            tls.ca_file.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn host_of(broker: &str) -> &str {
    let host = broker.rsplit_once(':').map_or(broker, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Transport::Plain(s) => s.is_write_vectored(),
            Transport::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_extraction() {
        assert_eq!(host_of("broker-1.example:9093"), "broker-1.example");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_clear_error() {
        let missing = TlsConfig {
            ca_file: "/nonexistent/ca.pem".into(),
            server_name: None,
        };
        assert!(
            connector(&missing)
                .err()
                .unwrap()
                .contains("cannot read TLS ca_file")
        );
        let dir = std::env::temp_dir().join(format!("strait-empty-ca-{}", std::process::id()));
        std::fs::write(&dir, b"not a pem").unwrap();
        let empty = TlsConfig {
            ca_file: dir.clone(),
            server_name: None,
        };
        assert!(connector(&empty).err().unwrap().contains("no certificate"));
        let _ = std::fs::remove_file(dir);
    }
}
