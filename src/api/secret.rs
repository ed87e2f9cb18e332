//! Secrets (keys and session tokens) that cannot be printed by accident.
//!
//! `Debug` and `Display` show `***`; the value is reachable only through `expose`, which the
//! client calls when it builds a request body or header.

use std::fmt;

/// A key or token. Compares by value; never formats it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
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

/// Why a key pair is refused before any request; each names the fix (and never the key).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No organization key.
    #[error("HSPQ_ORG_KEY is not set: export your organization key (hsp_org_..., shown under Settings → API)")]
    NoOrgKey,
    /// No API key.
    #[error("HSPQ_API_KEY is not set: export your API key (hsp_..., shown once when the key was created)")]
    NoApiKey,
    /// The API key is where the organization key belongs.
    #[error(
        "HSPQ_ORG_KEY and HSPQ_API_KEY look swapped: the organization key starts with hsp_org_"
    )]
    Swapped,
    /// The organization key has the wrong form.
    #[error("HSPQ_ORG_KEY does not look like an organization key: it starts with hsp_org_ (Settings → API)")]
    NotAnOrgKey,
    /// The API key has the wrong form.
    #[error("HSPQ_API_KEY does not look like an API key: it starts with hsp_ but not hsp_org_")]
    NotAnApiKey,
}

/// The key pair that creates sessions.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub(crate) organization_key: Secret,
    pub(crate) api_key: Secret,
}

impl Credentials {
    /// Checks the formats (`hsp_org_...` and `hsp_...`) so a swapped or truncated pair fails
    /// before any request, with the fix.
    pub fn new(organization_key: &str, api_key: &str) -> Result<Credentials, KeyError> {
        let (org, api) = (organization_key.trim(), api_key.trim());
        if org.is_empty() {
            return Err(KeyError::NoOrgKey);
        }
        if api.is_empty() {
            return Err(KeyError::NoApiKey);
        }
        if !org.starts_with("hsp_org_") {
            return Err(if api.starts_with("hsp_org_") {
                KeyError::Swapped
            } else {
                KeyError::NotAnOrgKey
            });
        }
        if !api.starts_with("hsp_") || api.starts_with("hsp_org_") {
            return Err(KeyError::NotAnApiKey);
        }
        Ok(Credentials {
            organization_key: Secret::new(org),
            api_key: Secret::new(api),
        })
    }

    /// Reads `HSPQ_ORG_KEY` and `HSPQ_API_KEY` (never flags: flags leak into shell history).
    pub fn from_env() -> Result<Credentials, KeyError> {
        let get = |name: &str| std::env::var(name).unwrap_or_default();
        Credentials::new(&get("HSPQ_ORG_KEY"), &get("HSPQ_API_KEY"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let c = Credentials::new("hsp_org_abcdef", "hsp_secretvalue").unwrap();
        let shown = format!("{c:?} {} {:?}", c.api_key, c.organization_key);
        assert!(
            !shown.contains("abcdef") && !shown.contains("secretvalue"),
            "{shown}"
        );
    }

    #[test]
    fn bad_pairs_are_refused_with_the_fix() {
        let refused = |org: &str, api: &str| Credentials::new(org, api).unwrap_err();
        assert_eq!(refused("hsp_x", "hsp_org_y"), KeyError::Swapped);
        assert!(refused("hsp_x", "hsp_org_y")
            .to_string()
            .contains("swapped"));
        assert_eq!(refused("", "hsp_x"), KeyError::NoOrgKey);
        assert_eq!(refused("hsp_org_x", ""), KeyError::NoApiKey);
        assert_eq!(refused("hsp_x", "hsp_y"), KeyError::NotAnOrgKey);
        assert_eq!(refused("hsp_org_x", "key"), KeyError::NotAnApiKey);
    }
}
