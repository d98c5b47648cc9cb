//! Bearer-token authentication of the `/v1` routes.
//!
//! Tokens come from `[api] token_file` (one `NAME:TOKEN` per line, `#` comments and blank
//! lines ignored) and from the environment variable `STRAIT_API_TOKEN` (named `env`). Only
//! SHA-256 digests of the tokens are kept; a presented token is hashed and compared with
//! every digest in constant time (no early exit, and the fixed-length digests hide the
//! tokens' lengths). The matching token's name is the actor recorded by the cutover service.
//! Tokens never appear in errors, logs, `Debug` output or responses.

use std::fmt;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::error::ApiError;

/// The environment variable holding a token (its name is [`ENV_TOKEN_NAME`]).
pub const TOKEN_ENV: &str = "STRAIT_API_TOKEN";
/// The actor name of the token from [`TOKEN_ENV`].
pub const ENV_TOKEN_NAME: &str = "env";

/// A token file or the environment could not give a usable set of tokens. The messages name
/// the file and line, never a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("api.token_file: cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of the file is not `NAME:TOKEN`, or repeats a name or a token.
    #[error("api.token_file: {}, line {line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (never the line's text).
        message: String,
    },
    /// The API is enabled but no token is configured.
    #[error(
        "api.listen is set but no API token is configured: set api.token_file or the \
         {TOKEN_ENV} environment variable"
    )]
    NoTokens,
}

/// The accepted tokens: names and SHA-256 digests.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
}

impl Tokens {
    /// Loads the tokens of `token_file` (if any) and `env_token` (the value of
    /// [`TOKEN_ENV`], if set and not empty). Fails when the file is bad or there is no token.
    pub fn load(token_file: Option<&Path>, env_token: Option<String>) -> Result<Self, TokenError> {
        let mut tokens = match token_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::parse(&text, path)?
            }
            None => Self::default(),
        };
        if let Some(token) = env_token.filter(|t| !t.trim().is_empty()) {
            tokens
                .add(ENV_TOKEN_NAME, token.trim())
                .map_err(|message| TokenError::Line {
                    path: PathBuf::from(format!("${TOKEN_ENV}")),
                    line: 1,
                    message,
                })?;
        }
        if tokens.entries.is_empty() {
            return Err(TokenError::NoTokens);
        }
        Ok(tokens)
    }

    /// Parses a token file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokenError> {
        let mut tokens = Self::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| TokenError::Line {
                path: path.to_owned(),
                line: index + 1,
                message,
            };
            let Some((name, token)) = line.split_once(':') else {
                return Err(error("expected NAME:TOKEN".into()));
            };
            tokens.add(name.trim(), token.trim()).map_err(error)?;
        }
        Ok(tokens)
    }

    /// Adds one token; the error never contains the token.
    fn add(&mut self, name: &str, token: &str) -> Result<(), String> {
        if !valid_name(name) {
            return Err(
                "the NAME before ':' must be letters, digits, '.', '_', '@' or '-'".to_owned(),
            );
        }
        if token.is_empty() {
            return Err(format!("the token of {name:?} is empty"));
        }
        if token.chars().any(char::is_whitespace) {
            return Err(format!("the token of {name:?} contains whitespace"));
        }
        if self.entries.iter().any(|(n, _)| n == name) {
            return Err(format!("the name {name:?} is used twice"));
        }
        let d = digest(token.as_bytes());
        if self.entries.iter().any(|(_, e)| *e == d) {
            return Err(format!(
                "the token of {name:?} is also given to another name"
            ));
        }
        self.entries.push((name.to_owned(), d));
        Ok(())
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the token `presented`, if it is one. Compares with every token in constant
    /// time, whichever matches.
    pub fn check(&self, presented: &[u8]) -> Option<&str> {
        let presented = digest(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, (_, d)) in self.entries.iter().enumerate() {
            let hit = presented.ct_eq(d);
            index = u64::conditional_select(&index, &(i as u64), hit);
            found |= hit;
        }
        if bool::from(found) {
            self.entries
                .get(usize::try_from(index).ok()?)
                .map(|(n, _)| n.as_str())
        } else {
            None
        }
    }

    /// The actor for an `Authorization` header value, or the 401 to answer.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Actor, ApiError> {
        let Some(value) = header else {
            return Err(unauthorized(
                "missing bearer token (Authorization: Bearer TOKEN)",
            ));
        };
        let token = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer TOKEN`"))?;
        let token = token.trim_ascii();
        self.check(token)
            .map(|name| Actor(name.to_owned()))
            .ok_or_else(|| unauthorized("unknown bearer token"))
    }
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(crate::ErrorCode::Unauthorized, message)
}

/// The authenticated token's name, added to the request by [`require_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Actor>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route without authentication asked for the actor"))
    }
}

/// Middleware of the `/v1` routes: 401 without a known bearer token, else the request goes on
/// with its [`Actor`].
pub async fn require_token(
    State(tokens): State<std::sync::Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let header = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    match tokens.authenticate(header) {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(e) => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"strait\""),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-DO-NOT-LEAK";

    fn file(text: &str) -> Result<Tokens, TokenError> {
        Tokens::parse(text, Path::new("/etc/strait/tokens"))
    }

    #[test]
    fn parses_names_tokens_comments_and_blank_lines() {
        let tokens = file(&format!(
            "# operators\n\nalice: {SECRET}\n  # indented comment\nci-bot.1:tok:with:colons\n"
        ))
        .unwrap();
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens.check(SECRET.as_bytes()), Some("alice"));
        assert_eq!(tokens.check(b"tok:with:colons"), Some("ci-bot.1"));
        assert_eq!(tokens.check(b"tok"), None);
        assert_eq!(tokens.check(b""), None);
        assert_eq!(tokens.check(format!("{SECRET}x").as_bytes()), None);
        assert!(!format!("{tokens:?}").contains(SECRET));
    }

    #[test]
    fn file_errors_name_file_and_line_never_the_token() {
        let cases = [
            (format!("ok:a\n{SECRET}\n"), "line 2: expected NAME:TOKEN"),
            (format!("bad name:{SECRET}\n"), "line 1: the NAME"),
            (format!(":{SECRET}\n"), "line 1: the NAME"),
            (
                "alice:\n".to_owned(),
                "line 1: the token of \"alice\" is empty",
            ),
            (
                format!("alice:{SECRET} more\n"),
                "line 1: the token of \"alice\" contains whitespace",
            ),
            (
                format!("a:{SECRET}\n\nb:{SECRET}\n"),
                "line 3: the token of \"b\" is also given to another name",
            ),
            (
                "a:x\na:y\n".to_owned(),
                "line 2: the name \"a\" is used twice",
            ),
        ];
        for (text, needle) in cases {
            let message = file(&text).unwrap_err().to_string();
            assert!(
                message.starts_with("api.token_file: /etc/strait/tokens, "),
                "{message}"
            );
            assert!(message.contains(needle), "{message} lacks {needle}");
            assert!(!message.contains(SECRET), "{message} leaks the token");
        }
    }

    #[test]
    fn load_combines_file_and_env_and_requires_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "alice:a-token\n").unwrap();
        let both = Tokens::load(Some(&path), Some("env-token".into())).unwrap();
        assert_eq!(both.check(b"a-token"), Some("alice"));
        assert_eq!(both.check(b"env-token"), Some(ENV_TOKEN_NAME));
        let env_only = Tokens::load(None, Some(" env-token\n".into())).unwrap();
        assert_eq!(env_only.check(b"env-token"), Some("env"));

        let none = Tokens::load(None, Some(String::new()))
            .unwrap_err()
            .to_string();
        assert!(none.contains("api.token_file"), "{none}");
        assert!(none.contains(TOKEN_ENV), "{none}");
        std::fs::write(&path, "# nothing\n").unwrap();
        assert!(matches!(
            Tokens::load(Some(&path), None),
            Err(TokenError::NoTokens)
        ));
        let missing = dir.path().join("missing");
        let message = Tokens::load(Some(&missing), None).unwrap_err().to_string();
        assert!(message.contains("missing"), "{message}");
        std::fs::write(&path, "alice:same\n").unwrap();
        let message = Tokens::load(Some(&path), Some("same".into()))
            .unwrap_err()
            .to_string();
        assert!(message.contains("also given"), "{message}");
        assert!(!message.contains("same\""), "{message}");
    }

    #[test]
    fn authenticate_maps_headers_to_actor_or_401() {
        let tokens = file(&format!("alice:{SECRET}\nbob:other\n")).unwrap();
        let ok = tokens.authenticate(Some(format!("Bearer {SECRET}").as_bytes()));
        assert_eq!(ok.unwrap(), Actor("alice".into()));
        assert_eq!(
            tokens.authenticate(Some(b"Bearer other")).unwrap(),
            Actor("bob".into())
        );
        for header in [
            None,
            Some(&b"Bearer wrong"[..]),
            Some(&b"Basic YWxpY2U6eA=="[..]),
            Some(SECRET.as_bytes()),
            Some(&b"Bearer "[..]),
        ] {
            let err = tokens.authenticate(header).unwrap_err();
            assert_eq!(err.code, crate::ErrorCode::Unauthorized, "{header:?}");
            assert!(!err.message.contains(SECRET));
        }
    }

    /// The comparison does the same work whichever token matches, and none: every digest is
    /// compared (no early exit) and the answer is selected without branching on secrets.
    /// Timing is too noisy to assert on; this checks the observable contract instead: the
    /// last of many tokens is found as well as the first, and prefixes of tokens never match.
    #[test]
    fn check_compares_every_token() {
        let text: String = (0..50).map(|i| format!("n{i}:token-{i}\n")).collect();
        let tokens = file(&text).unwrap();
        assert_eq!(tokens.check(b"token-0"), Some("n0"));
        assert_eq!(tokens.check(b"token-49"), Some("n49"));
        assert_eq!(tokens.check(b"token-4"), Some("n4"));
        assert_eq!(tokens.check(b"token-"), None);
        assert_eq!(tokens.check(b"token-50"), None);
    }
}
