//! The metadata of a table, whoever lands it: `owner` (who alerts mention), `description` (for
//! the catalog) and `freshness` (the monitor's SLA). A table of a source, a replicated table
//! (`cdc.per_table`) and an event type (`events.types`) each carry them, and the `cdc:` and
//! `events:` blocks carry the defaults of theirs.
//!
//! The fields are declared once, by `table_meta!`, and appended to each struct that carries
//! them, rather than being a `#[serde(flatten)] meta: TableMeta` field: serde reads a flattened
//! struct from a buffered copy of the mapping, so a struct with one no longer names the
//! expected keys when a key is unknown (`deny_unknown_fields`) and places a wrong key or value
//! at the start of the mapping, not on its own line, without its key path.

use std::time::Duration;

use serde::Deserialize;

/// Declares a config struct with the table metadata among its fields, at the place of a line
/// `meta;` (`owner`, `description`, `freshness`) or `meta_defaults;` (`owner`, `freshness`: the
/// defaults of a block's tables, which have no common description). Every other field is
/// written `pub`. The fields are read like any other (`t.owner`); with `meta;` the struct also
/// gets `meta()`, the three as a `TableMeta`.
macro_rules! table_meta {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fa:meta])* pub $f:ident : $ft:ty, )*
            meta;
            $( $(#[$ga:meta])* pub $g:ident : $gt:ty, )*
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $( $(#[$fa])* pub $f: $ft, )*
            /// A key of `owners:`; alerts about the table mention them (default: the
            /// enclosing block's, then the source's `owner`).
            #[serde(default)]
            pub owner: Option<String>,
            /// What the table holds, for the catalog.
            #[serde(default)]
            pub description: Option<String>,
            /// How old the table may get before the monitor warns, then errors.
            #[serde(default)]
            pub freshness: Option<$crate::config::Freshness>,
            $( $(#[$ga])* pub $g: $gt, )*
        }

        impl $name {
            /// Owner, description and freshness.
            pub fn meta(&self) -> $crate::config::TableMeta {
                $crate::config::TableMeta {
                    owner: self.owner.clone(),
                    description: self.description.clone(),
                    freshness: self.freshness,
                }
            }
        }
    };
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fa:meta])* pub $f:ident : $ft:ty, )*
            meta_defaults;
            $( $(#[$ga:meta])* pub $g:ident : $gt:ty, )*
        }
    ) => {
        $(#[$attr])*
        $vis struct $name {
            $( $(#[$fa])* pub $f: $ft, )*
            /// Default owner (a key of `owners:`) of the tables of this block (default: the
            /// source's `owner`, where there is one).
            #[serde(default)]
            pub owner: Option<String>,
            /// Default freshness SLA of the tables of this block (default: none).
            #[serde(default)]
            pub freshness: Option<$crate::config::Freshness>,
            $( $(#[$ga])* pub $g: $gt, )*
        }
    };
}
pub(super) use table_meta;

table_meta! {
    /// `owner`, `description` and `freshness` of one table (or event type, or CDC table).
    #[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
    #[serde(deny_unknown_fields)]
    pub struct TableMeta {
        meta;
    }
}

impl TableMeta {
    /// This table's settings, each falling back to `default`'s.
    pub fn or(&self, default: &TableMeta) -> TableMeta {
        TableMeta {
            owner: self.owner.clone().or_else(|| default.owner.clone()),
            description: self
                .description
                .clone()
                .or_else(|| default.description.clone()),
            freshness: self.freshness.or(default.freshness),
        }
    }
}

/// A freshness SLA: the age of the newest successful load past which the monitor warns and
/// past which it errors.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Freshness {
    #[serde(default, deserialize_with = "super::duration::opt_age")]
    pub warn_after: Option<Duration>,
    #[serde(default, deserialize_with = "super::duration::opt_age")]
    pub error_after: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_settings_fall_back_to_the_defaults() {
        let t: TableMeta = serde_yaml::from_str("{owner: ana}").unwrap();
        let d: TableMeta =
            serde_yaml::from_str("{owner: bo, description: x, freshness: {warn_after: 2h}}")
                .unwrap();
        let m = t.or(&d);
        assert_eq!(m.owner.as_deref(), Some("ana"));
        assert_eq!(m.description.as_deref(), Some("x"));
        assert_eq!(
            m.freshness.unwrap().warn_after,
            Some(Duration::from_secs(7200))
        );
    }

    #[test]
    fn a_wrong_key_beside_the_metadata_is_named_on_its_line() {
        table_meta! {
            #[derive(Debug, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub struct Table {
                pub mode: String,
                meta;
                #[serde(default)]
                pub large: bool,
            }
        }
        let t: Table = serde_yaml::from_str("mode: full\nowner: ana\nlarge: true\n").unwrap();
        assert_eq!((t.mode.as_str(), t.large), ("full", true));
        assert_eq!(t.meta().owner.as_deref(), Some("ana"));
        assert_eq!((t.description, t.freshness), (None, None));
        let e = serde_yaml::from_str::<Table>("mode: full\nowner: ana\nmodee: x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "unknown field `modee`, expected one of `mode`, `owner`, `description`, `freshness`, `large` at line 3 column 1"
        );
        let e = serde_yaml::from_str::<Table>("mode: full\nfreshness: {warn_after: soon}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("freshness: `soon`"), "{e}");
        assert!(e.contains("line 2"), "{e}");
    }
}
