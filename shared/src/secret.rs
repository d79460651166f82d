//! Secrets: a string that is never printed (DSNs and tokens live in it), and `DsnRef`, where
//! pipeline.yaml says a secret comes from (never the secret itself).

use std::fmt;

use serde::Deserialize;

/// Holds a secret; `Debug` and `Display` print `***`, and it is deliberately not `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a connection string (or another secret, like a webhook URL) comes from; never
/// written inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DsnRef {
    /// The name of an environment variable holding the DSN.
    Env(String),
    /// A Secret Manager secret (`projects/P/secrets/S`, optionally `/versions/V`).
    Secret(String),
}

/// `dsn:` as written: `{env: VAR}` or `{secret: projects/P/secrets/S}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DsnSpec {
    /// The name of an environment variable holding the DSN.
    env: Option<String>,
    /// A Secret Manager secret name.
    secret: Option<String>,
}

impl TryFrom<DsnSpec> for DsnRef {
    type Error = String;

    fn try_from(s: DsnSpec) -> std::result::Result<Self, String> {
        match (s.env, s.secret) {
            (Some(e), None) => Ok(DsnRef::Env(e)),
            (None, Some(n)) => Ok(DsnRef::Secret(n)),
            _ => Err("give exactly one of `env: VAR` or `secret: projects/P/secrets/S`".into()),
        }
    }
}

/// A map is read as `DsnSpec`; anything else is refused without repeating it, since a value
/// written inline is most likely the secret itself.
impl<'de> Deserialize<'de> for DsnRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DsnRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`{env: VAR}` or `{secret: projects/P/secrets/S}`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                m: A,
            ) -> std::result::Result<DsnRef, A::Error> {
                let spec = DsnSpec::deserialize(serde::de::value::MapAccessDeserializer::new(m))?;
                DsnRef::try_from(spec).map_err(serde::de::Error::custom)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<DsnRef, E> {
                Err(E::custom(INLINE))
            }
            fn visit_string<E: serde::de::Error>(
                self,
                _: String,
            ) -> std::result::Result<DsnRef, E> {
                Err(E::custom(INLINE))
            }
        }
        d.deserialize_any(V)
    }
}

const INLINE: &str = "a secret is never written in pipeline.yaml (the value is not repeated here): name an environment variable `{env: VAR}` or a Secret Manager secret `{secret: projects/P/secrets/S}`";

#[cfg(test)]
mod tests {
    #[test]
    fn never_printed() {
        let s = super::Secret::new("postgres://u:pw@h/db");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }
}
