//! Generates the configuration reference (`docs/configuration.md`) from the JSON schema of
//! [`StraitConfig`], so the doc comments on the config types are the single source of the
//! operator documentation. A test fails when the checked-in file is stale.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    ApiConfig, ClusterConfig, ClusterSecurity, GroupsConfig, LogConfig, MirrorConfig, SaslSettings,
    StateConfig, StraitConfig,
};
use crate::client::config::TlsConfig;

/// The command that rewrites `docs/configuration.md`; printed by the staleness test.
pub(crate) const REGENERATE: &str = "STRAIT_REGENERATE_DOCS=1 cargo test -p strait-linker config";

/// The configuration reference as Markdown: one section per TOML table, one row per key with
/// its type, default and description.
pub fn reference_markdown() -> String {
    let schema = schemars::schema_for!(StraitConfig);
    let root = schema.as_value();
    let empty = Map::new();
    let defs = root
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let generator = Generator {
        defs,
        orders: field_orders(),
    };
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from the doc comments in linker/src/config/ by reference_markdown(). \
         Do not edit; regenerate with `{REGENERATE}`. -->\n"
    );
    if let Some(intro) = root.get("description").and_then(Value::as_str) {
        out.push_str(&paragraphs(intro, "\n\n"));
        out.push_str("\n\n");
    }
    out.push_str(
        "Values written as *byte size* are an integer number of bytes or a string with a unit: \
         `B`, `KB`, `MB`, `GB` (powers of 1000), `KiB`, `MiB`, `GiB` (powers of 1024), e.g. \
         `\"256MiB\"`. Values written as *duration* are strings such as `\"250ms\"`, `\"5s\"`, \
         `\"1m 30s\"`. Values written as *regex* are regular expressions matched against the \
         whole name. See `strait.example.toml` for a complete example.\n",
    );
    generator.table(&mut out, "", "StraitConfig", root, None, true);
    out
}

struct Generator<'a> {
    defs: &'a Map<String, Value>,
    /// Declaration order of each struct's fields, by schema name (the JSON schema's
    /// properties are sorted alphabetically, which would scatter related keys).
    orders: HashMap<String, &'static [&'static str]>,
}

impl Generator<'_> {
    /// Writes the section for one table (none for the root), then its sub-tables.
    fn table(
        &self,
        out: &mut String,
        path: &str,
        type_name: &str,
        schema: &Value,
        field_doc: Option<&str>,
        required: bool,
    ) {
        if !path.is_empty() {
            let _ = write!(out, "\n## `[{path}]`\n\n");
            // The field's doc says what the table is for in this place (`[source]` and
            // `[target]` share one struct); the struct's doc is the fallback.
            let doc = field_doc.or_else(|| schema.get("description").and_then(Value::as_str));
            let mut intro: Vec<String> = doc.map(|d| paragraphs(d, "\n\n")).into_iter().collect();
            intro.push(if required {
                "This table is required.".to_owned()
            } else {
                "This table is optional.".to_owned()
            });
            out.push_str(&intro.join("\n\n"));
            out.push('\n');
        }
        let required_keys: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut subtables = Vec::new();
        for (key, property) in self.ordered_properties(type_name, schema) {
            let (target, def_name) = self.resolve(property);
            let is_required = required_keys.contains(&key.as_str());
            if target.get("properties").is_some() {
                subtables.push((key, property, target, def_name, is_required));
            } else {
                rows.push(self.row(&key, property, target, is_required));
            }
        }
        if !rows.is_empty() {
            out.push_str("\n| Key | Type | Default | Description |\n");
            out.push_str("|-----|------|---------|-------------|\n");
            for row in rows {
                out.push_str(&row);
            }
        }
        for (key, property, target, def_name, is_required) in subtables {
            let sub_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            let doc = property.get("description").and_then(Value::as_str);
            let name = def_name.unwrap_or_default();
            self.table(out, &sub_path, &name, target, doc, is_required);
        }
    }

    fn row(&self, key: &str, property: &Value, target: &Value, required: bool) -> String {
        let default = if required {
            "required".to_owned()
        } else {
            match property.get("default") {
                Some(Value::Null) | None => "unset".to_owned(),
                Some(v) => format!("`{}`", Toml(v)),
            }
        };
        let description = property
            .get("description")
            .or_else(|| target.get("description"))
            .and_then(Value::as_str)
            .map(|d| paragraphs(d, "<br><br>"))
            .unwrap_or_default();
        format!(
            "| `{key}` | {} | {} | {} |\n",
            cell(&self.type_label(target)),
            cell(&default),
            cell(&description)
        )
    }

    /// Properties in declaration order; any the order table does not know go last.
    fn ordered_properties<'s>(
        &self,
        type_name: &str,
        schema: &'s Value,
    ) -> Vec<(String, &'s Value)> {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        let order = self.orders.get(type_name).copied().unwrap_or(&[]);
        let position = |k: &str| order.iter().position(|f| *f == k).unwrap_or(usize::MAX);
        let mut keyed: Vec<(String, &Value)> =
            properties.iter().map(|(k, v)| (k.clone(), v)).collect();
        keyed.sort_by_key(|(k, _)| (position(k), k.clone()));
        keyed
    }

    /// Follows `$ref` and strips the `null` alternative of an optional value; returns the
    /// schema and, for a reference, the definition's name.
    fn resolve<'v>(&'v self, schema: &'v Value) -> (&'v Value, Option<String>) {
        let mut current = schema;
        let mut name = None;
        for _ in 0..8 {
            if let Some(reference) = current.get("$ref").and_then(Value::as_str) {
                let def = reference.rsplit('/').next().unwrap_or_default();
                match self.defs.get(def) {
                    Some(target) => {
                        name = Some(def.to_owned());
                        current = target;
                        continue;
                    }
                    None => break,
                }
            }
            let alternatives = current.get("anyOf").and_then(Value::as_array);
            if let Some(alts) = alternatives {
                let non_null: Vec<&Value> = alts.iter().filter(|a| !is_null(a)).collect();
                if let [only] = non_null[..] {
                    current = only;
                    continue;
                }
            }
            break;
        }
        (current, name)
    }

    fn type_label(&self, schema: &Value) -> String {
        if let Some(title) = schema.get("title").and_then(Value::as_str) {
            return title.to_owned();
        }
        let variants = schema
            .get("oneOf")
            .or_else(|| schema.get("anyOf"))
            .and_then(Value::as_array);
        if let Some(variants) = variants {
            let consts: Vec<String> = variants
                .iter()
                .filter_map(|v| v.get("const"))
                .map(|c| format!("`{}`", Toml(c)))
                .collect();
            if !consts.is_empty() {
                return consts.join(" \\| ");
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let values: Vec<String> = values.iter().map(|c| format!("`{}`", Toml(c))).collect();
            return values.join(" \\| ");
        }
        match schema.get("type") {
            Some(Value::String(t)) if t == "array" => {
                let items = schema.get("items").map(|i| self.resolve(i).0);
                match items {
                    Some(items) => format!("array of {}", self.type_label(items)),
                    None => "array".to_owned(),
                }
            }
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect::<Vec<_>>()
                .join(" or "),
            _ => "value".to_owned(),
        }
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// Reflows a doc comment: lines within a paragraph are joined, paragraphs separated by `sep`.
fn paragraphs(doc: &str, sep: &str) -> String {
    doc.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(sep)
}

/// A table cell: pipes would end the cell.
fn cell(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        // Already-escaped pipes (in type labels) stay as they are.
        if c == '|' && previous != Some('\\') {
            escaped.push('\\');
        }
        escaped.push(c);
        previous = Some(c);
    }
    escaped
}

/// A JSON default rendered as the TOML an operator would write.
struct Toml<'a>(&'a Value);

impl fmt::Display for Toml<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Null => f.write_str("unset"),
            // JSON string escapes are valid TOML basic-string escapes.
            Value::String(s) => write!(f, "{}", Value::String(s.clone())),
            Value::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Toml(item))?;
                }
                f.write_str("]")
            }
            Value::Object(_) => f.write_str("{ ... }"),
            other => write!(f, "{other}"),
        }
    }
}

/// Declaration order of every config struct, by schema name.
fn field_orders() -> HashMap<String, &'static [&'static str]> {
    [
        fields_of::<StraitConfig>(),
        fields_of::<ClusterConfig>(),
        fields_of::<ClusterSecurity>(),
        fields_of::<TlsConfig>(),
        fields_of::<SaslSettings>(),
        fields_of::<MirrorConfig>(),
        fields_of::<StateConfig>(),
        fields_of::<GroupsConfig>(),
        fields_of::<ApiConfig>(),
        fields_of::<LogConfig>(),
    ]
    .into_iter()
    .collect()
}

/// A struct's field names in declaration order, as serde's derive hands them to
/// `deserialize_struct`; read by a deserializer that stops right there.
fn fields_of<T: for<'de> Deserialize<'de> + schemars::JsonSchema>()
-> (String, &'static [&'static str]) {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    (T::schema_name().into_owned(), fields)
}

struct FieldProbe<'a>(&'a mut &'static [&'static str]);

#[derive(Debug)]
struct ProbeDone;

impl fmt::Display for ProbeDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeDone {}

impl serde::de::Error for ProbeDone {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ProbeDone
    }
}

impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
    type Error = ProbeDone;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeDone> {
        Err(ProbeDone)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeDone> {
        *self.0 = fields;
        Err(ProbeDone)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
pub(crate) fn known_struct_names() -> Vec<String> {
    field_orders().into_keys().collect()
}
