//! SASL client mechanisms: PLAIN and SCRAM-SHA-256/512 (RFC 5802, RFC 7677).
//!
//! These are pure state machines over byte strings; the connection layer carries their
//! messages in SaslAuthenticate requests. No function here logs or formats a password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::config::{SaslConfig, SaslMechanism};

/// A SASL exchange in progress.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// PLAIN is a single message.
    Plain,
    /// SCRAM: client-first sent, waiting for server-first.
    ScramStart(Scram),
    /// SCRAM: client-final sent, waiting for server-final to verify the server signature.
    ScramFinal { server_signature: Vec<u8> },
    /// Finished.
    Done,
}

#[derive(Debug)]
pub(crate) struct Scram {
    mechanism: SaslMechanism,
    client_first_bare: String,
    nonce: String,
}

/// Starts an exchange, returning the first client message.
pub(crate) fn start(config: &SaslConfig, nonce: String) -> (Exchange, Vec<u8>) {
    match config.mechanism {
        SaslMechanism::Plain => {
            let mut msg = Vec::new();
            msg.push(0);
            msg.extend_from_slice(config.username.as_bytes());
            msg.push(0);
            msg.extend_from_slice(config.password.expose().as_bytes());
            (Exchange::Plain, msg)
        }
        mechanism => {
            let client_first_bare = format!("n={},r={nonce}", escape_username(&config.username));
            let msg = format!("n,,{client_first_bare}").into_bytes();
            (
                Exchange::ScramStart(Scram {
                    mechanism,
                    client_first_bare,
                    nonce,
                }),
                msg,
            )
        }
    }
}

/// Feeds a server message; returns the next client message, if the exchange continues.
pub(crate) fn step(
    exchange: Exchange,
    config: &SaslConfig,
    server: &[u8],
) -> Result<(Exchange, Option<Vec<u8>>), String> {
    match exchange {
        Exchange::Plain | Exchange::Done => Ok((Exchange::Done, None)),
        Exchange::ScramStart(scram) => {
            let server_first =
                std::str::from_utf8(server).map_err(|_| "server-first is not UTF-8".to_owned())?;
            let (final_msg, server_signature) = scram.client_final(config, server_first)?;
            Ok((
                Exchange::ScramFinal { server_signature },
                Some(final_msg.into_bytes()),
            ))
        }
        Exchange::ScramFinal { server_signature } => {
            let server_final =
                std::str::from_utf8(server).map_err(|_| "server-final is not UTF-8".to_owned())?;
            if let Some(err) = server_final.strip_prefix("e=") {
                return Err(format!("server rejected SCRAM proof: {err}"));
            }
            let v = attr(server_final, 'v').ok_or("server-final has no signature")?;
            let v = B64
                .decode(v)
                .map_err(|_| "server signature is not base64".to_owned())?;
            if v != server_signature {
                return Err(
                    "server signature does not match: the broker may not be the \
                            one that holds this user's credentials"
                        .to_owned(),
                );
            }
            Ok((Exchange::Done, None))
        }
    }
}

impl Scram {
    fn client_final(
        &self,
        config: &SaslConfig,
        server_first: &str,
    ) -> Result<(String, Vec<u8>), String> {
        let nonce = attr(server_first, 'r').ok_or("server-first has no nonce")?;
        if !nonce.starts_with(&self.nonce) {
            return Err("server nonce does not extend the client nonce".to_owned());
        }
        let salt = attr(server_first, 's').ok_or("server-first has no salt")?;
        let salt = B64
            .decode(salt)
            .map_err(|_| "salt is not base64".to_owned())?;
        let iterations: u32 = attr(server_first, 'i')
            .and_then(|i| i.parse().ok())
            .filter(|i| *i > 0)
            .ok_or("server-first has no valid iteration count")?;
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let password = config.password.expose().as_bytes();
        let (proof, server_signature) = match self.mechanism {
            SaslMechanism::ScramSha256 => {
                scram_proof_sha256(password, &salt, iterations, &auth_message)
            }
            _ => scram_proof_sha512(password, &salt, iterations, &auth_message),
        };
        Ok((
            format!("{without_proof},p={}", B64.encode(proof)),
            server_signature,
        ))
    }
}

/// Defines `$name(password, salt, iterations, auth_message) -> (client proof, server
/// signature)` for one hash; a macro because the digest crates' trait bounds make a generic
/// function far harder to read than two instances.
macro_rules! scram_proof_fn {
    ($name:ident, $hash:ty) => {
        fn $name(password: &[u8], salt: &[u8], iterations: u32, auth: &str) -> (Vec<u8>, Vec<u8>) {
            let mac = |key: &[u8], data: &[u8]| -> Vec<u8> {
                let mut m = <Hmac<$hash> as Mac>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            };
            let mut salted = vec![0u8; <$hash as Digest>::output_size()];
            pbkdf2::pbkdf2_hmac::<$hash>(password, salt, iterations, &mut salted);
            let client_key = mac(&salted, b"Client Key");
            let stored_key = <$hash as Digest>::digest(&client_key).to_vec();
            let client_signature = mac(&stored_key, auth.as_bytes());
            let proof = client_key
                .iter()
                .zip(&client_signature)
                .map(|(a, b)| a ^ b)
                .collect();
            let server_key = mac(&salted, b"Server Key");
            (proof, mac(&server_key, auth.as_bytes()))
        }
    };
}

scram_proof_fn!(scram_proof_sha256, Sha256);
scram_proof_fn!(scram_proof_sha512, Sha512);

fn attr(msg: &str, name: char) -> Option<&str> {
    msg.split(',')
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

/// RFC 5802 username escaping.
fn escape_username(u: &str) -> String {
    u.replace('=', "=3D").replace(',', "=2C")
}

/// A fresh client nonce.
pub(crate) fn nonce() -> String {
    let bytes: [u8; 18] = rand::random();
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::config::Secret;

    /// The SCRAM-SHA-256 example exchange from RFC 7677, section 3.
    #[test]
    fn rfc7677_example() {
        let cfg = SaslConfig {
            mechanism: SaslMechanism::ScramSha256,
            username: "user".into(),
            password: Secret::new("pencil"),
        };
        let (ex, first) = start(&cfg, "rOprNGfwEbeRWgbNEkqO".into());
        assert_eq!(first, b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let (ex, fin) = step(ex, &cfg, server_first).unwrap();
        assert_eq!(
            String::from_utf8(fin.unwrap()).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let (ex, none) = step(ex, &cfg, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").unwrap();
        assert!(none.is_none());
        assert!(matches!(ex, Exchange::Done));
    }

    #[test]
    fn wrong_server_signature_is_rejected() {
        let cfg = SaslConfig {
            mechanism: SaslMechanism::ScramSha512,
            username: "a,b=c".into(),
            password: Secret::new("pw"),
        };
        let (ex, first) = start(&cfg, "abc".into());
        assert_eq!(first, b"n,,n=a=2Cb=3Dc,r=abc");
        let (ex, _) = step(ex, &cfg, b"r=abcdef,s=c2FsdA==,i=4096").unwrap();
        let err = step(ex, &cfg, b"v=AAAA").unwrap_err();
        assert!(err.contains("does not match"));
        assert!(!err.contains("pw"));
    }

    #[test]
    fn server_nonce_must_extend_ours() {
        let cfg = SaslConfig {
            mechanism: SaslMechanism::ScramSha256,
            username: "u".into(),
            password: Secret::new("p"),
        };
        let (ex, _) = start(&cfg, "mine".into());
        assert!(step(ex, &cfg, b"r=other,s=c2FsdA==,i=1").is_err());
    }

    #[test]
    fn plain_message() {
        let cfg = SaslConfig {
            mechanism: SaslMechanism::Plain,
            username: "u".into(),
            password: Secret::new("p"),
        };
        assert_eq!(start(&cfg, String::new()).1, b"\0u\0p");
    }
}
