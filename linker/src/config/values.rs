//! Typed configuration values that operators write as strings: byte sizes (`"256MiB"`),
//! durations (`"5s"`), the mirror start position (`"earliest"`, an RFC 3339 time) and name
//! patterns (anchored regexes), plus the selectors built from those patterns.
//!
//! Each type parses while the TOML is deserialized, so a bad value is reported with its line
//! and key path (see `error.rs`), and a parsed config can never hold an unparsable value.
//! Byte sizes and durations keep the text the operator wrote, so serializing a config back
//! shows `"256MiB"` rather than `268435456`.

use std::borrow::Cow;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use regex::Regex;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::error::quote;

/// A number of bytes, written as an integer (`1048576`) or a string with a unit
/// (`"1MiB"`, `"64 MB"`).
#[derive(Clone, PartialEq, Eq)]
pub struct ByteSize {
    bytes: u64,
    /// What the operator wrote, for serializing back unchanged.
    written: Written,
}

#[derive(Clone, PartialEq, Eq)]
enum Written {
    Integer,
    Text(String),
}

/// Units accepted after the number; binary (IEC) units are powers of 1024, decimal (SI)
/// units powers of 1000, as in Kafka's own documentation.
const BYTE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

impl ByteSize {
    /// A size of exactly `bytes` bytes (serializes as an integer).
    pub fn from_bytes(bytes: u64) -> Self {
        Self {
            bytes,
            written: Written::Integer,
        }
    }

    /// Parses `"256MiB"`, `"64 MB"`, `"1024"` or `"1024B"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (number, unit) = trimmed.split_at(digits_end);
        if number.is_empty() {
            return Err(format!(
                "invalid byte size {}: expected a whole number with an optional unit, e.g. \
                 \"256MiB\"",
                quote(text)
            ));
        }
        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            match BYTE_UNITS.iter().find(|(name, _)| *name == unit) {
                Some((_, m)) => *m,
                None => {
                    return Err(format!(
                        "invalid byte size {}: unknown unit {} (expected B, KB, MB, GB, KiB, MiB \
                         or GiB)",
                        quote(text),
                        quote(unit)
                    ));
                }
            }
        };
        let bytes = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .ok_or_else(|| format!("invalid byte size {}: too large", quote(text)))?;
        Ok(Self {
            bytes,
            written: Written::Text(text.to_owned()),
        })
    }

    /// The size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.written {
            Written::Integer => write!(f, "{} bytes", self.bytes),
            Written::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteSize({self} = {})", self.bytes)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.written {
            Written::Integer => s.serialize_u64(self.bytes),
            Written::Text(text) => s.serialize_str(text),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte size: an integer or a string such as \"256MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize::from_bytes(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize::from_bytes)
                    .map_err(|_| E::custom(format!("invalid byte size {v}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "byte size",
            "type": ["integer", "string"],
            "minimum": 0,
        })
    }
}

/// A duration in [humantime](https://docs.rs/humantime) syntax: `"250ms"`, `"5s"`,
/// `"1m 30s"`, `"2h"`.
#[derive(Clone, PartialEq, Eq)]
pub struct HumanDuration {
    duration: Duration,
    text: String,
}

impl HumanDuration {
    /// Parses humantime syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let duration = humantime::parse_duration(text).map_err(|e| {
            format!(
                "invalid duration {}: {e} (examples: \"250ms\", \"5s\")",
                quote(text)
            )
        })?;
        Ok(Self {
            duration,
            text: text.to_owned(),
        })
    }

    /// A duration written as humantime would format it.
    pub fn from_duration(duration: Duration) -> Self {
        Self {
            duration,
            text: humantime::format_duration(duration).to_string(),
        }
    }

    /// The duration.
    pub fn get(&self) -> Duration {
        self.duration
    }

    /// The text as written in the config file.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HumanDuration({:?})", self.text)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"5s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                HumanDuration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "HumanDuration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "title": "duration", "type": "string" })
    }
}

/// Where mirroring starts in a source partition that has no saved position yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// The oldest record still in the log.
    Earliest,
    /// Only records produced after mirroring starts.
    Latest,
    /// The first record whose timestamp is at or after this many milliseconds since the Unix
    /// epoch (never negative: Kafka's ListOffsets reserves -1 and -2 for latest/earliest).
    Timestamp(i64),
}

impl StartPosition {
    /// Parses `"earliest"`, `"latest"` or an RFC 3339 timestamp with a `Z` or `±HH:MM`
    /// offset.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            _ => parse_rfc3339_ms(text).map(Self::Timestamp).map_err(|why| {
                let mut msg = format!(
                    "{} is not \"earliest\", \"latest\" or an RFC 3339 timestamp",
                    quote(text)
                );
                // Only explain the timestamp problem when the value was meant to be one.
                if text.starts_with(|c: char| c.is_ascii_digit()) {
                    msg.push_str(": ");
                    msg.push_str(&why);
                }
                msg
            }),
        }
    }
}

impl fmt::Display for StartPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Earliest => f.write_str("earliest"),
            Self::Latest => f.write_str("latest"),
            Self::Timestamp(ms) => {
                let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(*ms).unwrap_or(0));
                write!(f, "{}", humantime::format_rfc3339_millis(at))
            }
        }
    }
}

/// Parses RFC 3339 (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.5+02:00`) into Unix
/// milliseconds. humantime only understands the `Z` form, so the offset is split off here.
fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (local, offset_minutes) = if let Some(base) = text.strip_suffix(['Z', 'z']) {
        (base, 0)
    } else {
        // `get` rather than slicing: the input is arbitrary and may not split on char
        // boundaries.
        let split = text.len().saturating_sub(6);
        match (text.get(..split), text.get(split..)) {
            (Some(base), Some(offset)) if offset.starts_with(['+', '-']) => {
                (base, parse_offset(offset)?)
            }
            _ => return Err("has no UTC offset (end it with Z or ±HH:MM)".to_owned()),
        }
    };
    // humantime checks digits and ranges but ignores anything after the seconds, so the
    // shape `YYYY-MM-DDTHH:MM:SS[.fraction]` is checked here. Once it holds, the text is
    // ASCII and slicing it is safe.
    let b = local.as_bytes();
    let shape_ok = b.len() >= 19
        && b.iter().take(19).enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            // RFC 3339 also allows a lower-case `t` or a space here.
            10 => matches!(c, b'T' | b't' | b' '),
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
        && match &b[19..] {
            [] => true,
            [b'.', digits @ ..] => {
                (1..=9).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
            }
            _ => false,
        };
    if !shape_ok {
        return Err("expected YYYY-MM-DDTHH:MM:SS[.fraction] then Z or ±HH:MM".to_owned());
    }
    if &local[..4] < "1970" {
        return Err(BEFORE_EPOCH.to_owned());
    }
    let normalized = format!("{}T{}Z", &local[..10], &local[11..]);
    let at = humantime::parse_rfc3339(&normalized).map_err(|e| e.to_string())?;
    let local_ms = at
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .ok_or_else(|| BEFORE_EPOCH.to_owned())?;
    let utc_ms = local_ms - offset_minutes * 60_000;
    if utc_ms < 0 {
        return Err(BEFORE_EPOCH.to_owned());
    }
    Ok(utc_ms)
}

const BEFORE_EPOCH: &str = "is before 1970-01-01T00:00:00Z, where Kafka timestamps start";

/// `+HH:MM` / `-HH:MM` to signed minutes east of UTC.
fn parse_offset(offset: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "missing or invalid UTC offset {} (end with Z or ±HH:MM)",
            quote(offset)
        )
    };
    let bytes = offset.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return Err(bad());
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(bad()),
    };
    let hours: i64 = offset
        .get(1..3)
        .and_then(|h| h.parse().ok())
        .ok_or_else(bad)?;
    let minutes: i64 = offset
        .get(4..6)
        .and_then(|m| m.parse().ok())
        .ok_or_else(bad)?;
    if hours > 23 || minutes > 59 {
        return Err(bad());
    }
    Ok(sign * (hours * 60 + minutes))
}

impl Serialize for StartPosition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StartPosition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StartPosition;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"earliest\", \"latest\" or an RFC 3339 timestamp string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StartPosition, E> {
                StartPosition::parse(v).map_err(E::custom)
            }
            // An unquoted TOML datetime (`start = 2024-05-01T00:00:00Z`) arrives as a
            // one-entry map holding its text; accept it like the quoted form.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StartPosition, A::Error> {
                match map.next_entry::<String, String>()? {
                    Some((_, text)) => StartPosition::parse(&text).map_err(de::Error::custom),
                    None => Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl schemars::JsonSchema for StartPosition {
    fn schema_name() -> Cow<'static, str> {
        "StartPosition".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "title": "\"earliest\" | \"latest\" | RFC 3339 timestamp",
            "type": "string",
        })
    }
}

/// A regular expression matched against a whole name: `orders` matches only `orders`,
/// `orders\..*` matches `orders.eu` and `orders.us`. Written without `^`/`$` (they are
/// implied, and harmless if present).
#[derive(Clone)]
pub struct Pattern {
    text: String,
    anchored: Regex,
}

impl Pattern {
    /// Compiles `text`, anchored at both ends.
    pub fn new(text: &str) -> Result<Self, String> {
        let anchored = Regex::new(&format!("^(?:{text})$"))
            .map_err(|e| format!("invalid regex {}: {}", quote(text), regex_reason(&e)))?;
        Ok(Self {
            text: text.to_owned(),
            anchored,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        self.anchored.is_match(name)
    }
}

/// regex's syntax errors are multi-line pictures of the pattern with a caret; configuration
/// errors are one line, so keep only the `error: ...` line.
fn regex_reason(e: &regex::Error) -> String {
    let full = e.to_string();
    full.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map(str::to_owned)
        .unwrap_or_else(|| full.split_whitespace().collect::<Vec<_>>().join(" "))
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<'de, str>::deserialize(d)?;
        Pattern::new(&text).map_err(de::Error::custom)
    }
}

impl schemars::JsonSchema for Pattern {
    fn schema_name() -> Cow<'static, str> {
        "Pattern".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "title": "regex", "type": "string", "format": "regex" })
    }
}

/// Deserializes a list of patterns. A failing element is reported as `[index]: reason` (the
/// caller's key path is prepended, giving `mirror.topics[2]: invalid regex ...`): toml
/// locates errors raised inside an array at the array, so the index must be in the message.
pub(crate) fn deserialize_patterns<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<Pattern>, D::Error> {
    struct List;
    impl<'de> Visitor<'de> for List {
        type Value = Vec<Pattern>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of regex strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Pattern>, A::Error> {
            let mut patterns = Vec::new();
            while let Some(element) = seq.next_element::<Element>()? {
                let index = patterns.len();
                let pattern = match element {
                    Element::Text(text) => Pattern::new(&text),
                    Element::Other(what) => {
                        Err(format!("invalid type: {what}, expected a regex string"))
                    }
                };
                patterns.push(pattern.map_err(|e| de::Error::custom(format!("[{index}]: {e}")))?);
            }
            Ok(patterns)
        }
    }
    d.deserialize_seq(List)
}

/// One array element: a string, or a description of what was there instead. Never fails on
/// a well-formed value, so the list can attach the index to the error itself.
enum Element {
    Text(String),
    Other(String),
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a regex string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Element, E> {
                Ok(Element::Other(format!("boolean `{v}`")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Element, E> {
                Ok(Element::Other(format!("integer `{v}`")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Element, E> {
                Ok(Element::Other(format!("integer `{v}`")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Element, E> {
                Ok(Element::Other(format!("float `{v}`")))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Element::Other("array".to_owned()))
            }
            // TOML tables, and datetimes (which serde sees as one-entry maps).
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Element::Other("table or datetime".to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Decides which names (topics or consumer groups) are selected: a name is selected when it
/// matches an include pattern and no exclude pattern. Exclusion wins.
#[derive(Debug, Clone)]
pub struct NameSelector {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
    include_internal: bool,
}

/// Selects the topics to mirror; see [`MirrorConfig::selector`](super::MirrorConfig::selector).
pub type TopicSelector = NameSelector;

/// Selects the consumer groups whose offsets are synced; see
/// [`GroupsConfig::selector`](super::GroupsConfig::selector).
pub type GroupSelector = NameSelector;

impl NameSelector {
    /// A selector from include and exclude patterns. Unless `include_internal`, names
    /// starting with `__` (Kafka's internal topics such as `__consumer_offsets`) are never
    /// selected, whatever the patterns say: a `.*` include must not mirror broker internals.
    pub fn new(include: &[Pattern], exclude: &[Pattern], include_internal: bool) -> Self {
        Self {
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            include_internal,
        }
    }

    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        if !self.include_internal && name.starts_with("__") {
            return false;
        }
        self.include.iter().any(|p| p.matches(name))
            && !self.exclude.iter().any(|p| p.matches(name))
    }
}
