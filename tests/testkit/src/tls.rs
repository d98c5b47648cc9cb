//! A throw-away CA and a server certificate for `127.0.0.1` / `localhost`.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};

#[derive(Debug)]
pub(crate) struct TlsFiles {
    pub(crate) dir: PathBuf,
    /// The CA certificate clients trust.
    pub(crate) ca_pem: PathBuf,
    /// The server's PKCS#8 private key followed by its certificate and the CA certificate
    /// (what Kafka's `ssl.keystore.type=PEM` expects).
    pub(crate) server_pem: PathBuf,
}

pub(crate) fn generate(dir: &Path) -> TlsFiles {
    try_generate(dir).unwrap_or_else(|e| {
        panic!(
            "strait-testkit: generating test certificates in {} failed: {e}",
            dir.display()
        )
    })
}

fn try_generate(dir: &Path) -> Result<TlsFiles, Box<dyn std::error::Error>> {
    fs::create_dir_all(dir)?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "strait test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = date_time_ymd(2020, 1, 1);
    ca_params.not_after = date_time_ymd(2099, 1, 1);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2099, 1, 1);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;

    let ca_pem = dir.join("ca.pem");
    let server_pem = dir.join("server.pem");
    fs::write(&ca_pem, ca_cert.pem())?;
    fs::write(
        &server_pem,
        format!("{}{}{}", key.serialize_pem(), cert.pem(), ca_cert.pem()),
    )?;
    Ok(TlsFiles {
        dir: dir.to_path_buf(),
        ca_pem,
        server_pem,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_pkcs8_key_and_chain() {
        let dir = std::env::temp_dir().join(crate::unique("strait-tls"));
        let files = super::generate(&dir);
        let server = std::fs::read_to_string(&files.server_pem).unwrap();
        assert!(
            server.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{server}"
        );
        assert_eq!(server.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(
            std::fs::read_to_string(&files.ca_pem)
                .unwrap()
                .contains("BEGIN CERTIFICATE")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
