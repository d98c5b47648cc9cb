//! Configuration errors, and turning toml's multi-line parse errors into one line that names
//! the file, the line and column, and the key path (`mirror.topics[2]`) of the bad value.

use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

/// Why a configuration could not be loaded. `Display` is one line an operator can act on;
/// no variant ever contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not valid TOML or does not have the expected shape (unknown key, wrong
    /// type, unparsable value). `message` names the line, column and key path.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the text came from (the file path).
        origin: String,
        /// What is wrong, e.g. ``line 3, column 1: mirror.topicz: unknown field `topicz`, ...``.
        message: String,
    },
    /// The configuration parsed but a value is out of range, inconsistent with another value,
    /// or a secret could not be resolved.
    #[error("{field}: {message}")]
    Invalid {
        /// Key path of the offending value, e.g. `mirror.fetch_max_bytes`.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] for `field`.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: escape_controls(&message.into()),
        }
    }
}

/// `value` in double quotes, as written except that control characters are escaped, so an
/// error message stays on one line whatever the value holds. Unlike `{:?}` it leaves
/// backslashes alone: a regex is shown as the operator wrote it.
pub(crate) fn quote(value: &str) -> String {
    format!("\"{}\"", escape_controls(value))
}

fn escape_controls(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped
                .into_iter()
                .flatten()
                .chain((!c.is_control()).then_some(c))
        })
        .collect()
}

/// A toml error as `line L, column C: key.path: message`, on one line.
pub(crate) fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let mut message = escape_controls(&one_line(err.message()));
    let Some(span) = err.span() else {
        return message;
    };
    let path = key_path_at(text, &span);
    if let Some(path) = &path {
        // A wrongly typed password (`password = 12345`) would be echoed by serde's
        // "invalid type: integer `12345`" message; never repeat what sits in a secret's place.
        let secret_slot = path.ends_with(".password") || path == "password";
        if secret_slot && !message.starts_with("unknown field") {
            message = "must be a quoted string (the value is not repeated here: it is a secret)"
                .to_owned();
        }
    }
    let (line, column) = line_column(text, span.start);
    match path {
        // A missing top-level table is located at the start of the file, which would only
        // send the operator looking at line 1.
        None if message.starts_with("missing field") => message,
        // List elements report `[index]: ...` themselves (see `deserialize_patterns`).
        Some(path) if message.starts_with('[') => {
            format!("line {line}, column {column}: {path}{message}")
        }
        Some(path) => format!("line {line}, column {column}: {path}: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text.as_bytes()[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = text
        .get(line_start..at)
        .map_or(at - line_start, |s| s.chars().count())
        + 1;
    (line, column)
}

/// The key path whose key or value the error span points at, e.g. `source.security.tls.ca`
/// for an unknown key or `mirror.topics[2]` for a bad array element. Re-parses the text
/// keeping spans; `None` when it does not parse (a syntax error needs no key path).
fn key_path_at(text: &str, span: &Range<usize>) -> Option<String> {
    let table = DeTable::parse(text).ok()?;
    let mut best = Best::default();
    walk_table(table.get_ref(), "", span, 0, &mut best);
    best.exact.or(best.containing).map(|(_, path)| path)
}

/// Deepest exact match (the span is exactly a key or a value) and deepest match whose value
/// contains the span (for errors inside an inline value).
#[derive(Default)]
struct Best {
    exact: Option<(usize, String)>,
    containing: Option<(usize, String)>,
}

impl Best {
    fn offer(slot: &mut Option<(usize, String)>, depth: usize, path: &str) {
        if slot.as_ref().is_none_or(|(d, _)| depth >= *d) {
            *slot = Some((depth, path.to_owned()));
        }
    }
}

// toml limits nesting while parsing, but this walk does not rely on it.
const MAX_DEPTH: usize = 64;

fn walk_table(
    table: &DeTable<'_>,
    prefix: &str,
    span: &Range<usize>,
    depth: usize,
    best: &mut Best,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for (key, value) in table {
        let path = if prefix.is_empty() {
            quote_key(key.get_ref())
        } else {
            format!("{prefix}.{}", quote_key(key.get_ref()))
        };
        if key.span() == *span {
            Best::offer(&mut best.exact, depth, &path);
        }
        walk_value(value.get_ref(), &value.span(), path, span, depth, best);
    }
}

fn walk_value(
    value: &DeValue<'_>,
    value_span: &Range<usize>,
    path: String,
    span: &Range<usize>,
    depth: usize,
    best: &mut Best,
) {
    if value_span == span {
        Best::offer(&mut best.exact, depth, &path);
    } else if value_span.start <= span.start && span.end <= value_span.end {
        Best::offer(&mut best.containing, depth, &path);
    }
    match value {
        DeValue::Table(inner) => walk_table(inner, &path, span, depth + 1, best),
        DeValue::Array(items) if depth <= MAX_DEPTH => {
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                walk_value(
                    item.get_ref(),
                    &item.span(),
                    item_path,
                    span,
                    depth + 1,
                    best,
                );
            }
        }
        _ => {}
    }
}

/// Keys that are not bare TOML keys are shown quoted, as they would be written.
fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}
