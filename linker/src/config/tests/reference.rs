//! The generated reference and the checked-in docs/configuration.md.

use std::path::Path;

use super::*;
use crate::config::reference as generator;

#[test]
fn configuration_reference_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let generated = reference_markdown();
    if std::env::var_os("STRAIT_REGENERATE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/configuration.md is out of date with the config doc comments; regenerate it with \
         `{}`",
        generator::REGENERATE
    );
}

#[test]
fn reference_covers_every_table_in_declaration_order() {
    let schema = schemars::schema_for!(StraitConfig);
    let known = generator::known_struct_names();
    for (name, def) in schema.as_value()["$defs"].as_object().unwrap() {
        if def.get("properties").is_some() {
            assert!(
                known.contains(name),
                "add {name} to generator::field_orders"
            );
        }
    }
    let doc = reference_markdown();
    let sections: Vec<&str> = doc.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(
        sections[..3],
        [
            "## `[source]`",
            "## `[source.security]`",
            "## `[source.security.tls]`"
        ]
    );
    assert_eq!(sections.last(), Some(&"## `[log]`"));
    let mirror = doc.split("## `[mirror]`").nth(1).unwrap();
    let first_row = mirror.lines().find(|l| l.starts_with("| `")).unwrap();
    assert!(
        first_row.starts_with("| `topics` | array of regex | required |"),
        "{first_row}"
    );
}
