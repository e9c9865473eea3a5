//! Token auth and entitlements.
//!
//! The auth file (`--auth-file`, TOML) lists tokens by their SHA-256 hash, so
//! the file never holds a usable secret:
//!
//! ```toml
//! [[tokens]]
//! name = "desk-1"            # shown in logs, never the token
//! sha256 = "9f86d081…"       # hex SHA-256 of the token (`printf %s TOKEN | sha256sum`)
//! entitlement = "realtime"   # or "delayed"
//! max_connections = 4        # open connections allowed at once
//! ```
//!
//! A client presents the token as `Authorization: Bearer <token>` or as
//! `?token=<token>` on the WebSocket URL. An [`Authenticator`] admits a
//! connection by handing out a [`Grant`], which holds one of the token's
//! connection slots until it is dropped.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What a token may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entitlement {
    /// Events as soon as they are committed.
    Realtime,
    /// Events released only once their trade time is older than the
    /// gateway's delay (15 minutes by default), the market-data norm for
    /// non-professional users.
    Delayed,
}

/// One token of the auth file.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenSpec {
    pub name: String,
    pub sha256: [u8; 32],
    pub entitlement: Entitlement,
    pub max_connections: u32,
}

/// The parsed auth file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthConfig {
    pub tokens: Vec<TokenSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("auth file: {0}")]
    Toml(String),
    #[error("auth file: token {name:?}: sha256 must be 64 hex digits (the SHA-256 of the token)")]
    BadHash { name: String },
    #[error("auth file: tokens {first:?} and {second:?} have the same hash")]
    Duplicate { first: String, second: String },
    #[error("auth file: token {name:?}: max_connections must be at least 1")]
    NoConnections { name: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<FileToken>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    name: String,
    sha256: String,
    entitlement: Entitlement,
    max_connections: u32,
}

/// The lower-case hex SHA-256 of a token: the form the auth file stores.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<AuthConfig, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.display().to_string(),
            source,
        })?;
        AuthConfig::parse(&text)
    }

    pub fn parse(text: &str) -> Result<AuthConfig, AuthError> {
        let file: File = toml::from_str(text).map_err(|e| AuthError::Toml(e.to_string()))?;
        let mut tokens: Vec<TokenSpec> = Vec::with_capacity(file.tokens.len());
        for t in file.tokens {
            let sha256 = parse_hex32(&t.sha256).ok_or_else(|| AuthError::BadHash {
                name: t.name.clone(),
            })?;
            if t.max_connections == 0 {
                return Err(AuthError::NoConnections { name: t.name });
            }
            if let Some(first) = tokens.iter().find(|s| s.sha256 == sha256) {
                return Err(AuthError::Duplicate {
                    first: first.name.clone(),
                    second: t.name,
                });
            }
            tokens.push(TokenSpec {
                name: t.name,
                sha256,
                entitlement: t.entitlement,
                max_connections: t.max_connections,
            });
        }
        Ok(AuthConfig { tokens })
    }

    /// Whether any token has the delayed entitlement.
    pub fn has_delayed(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| t.entitlement == Entitlement::Delayed)
    }
}

/// Admits connections: checks tokens and counts open connections per token.
pub(crate) struct Authenticator {
    /// `None`: anonymous clients are admitted (no auth file).
    tokens: Option<Tokens>,
}

struct Tokens {
    by_hash: HashMap<[u8; 32], usize>,
    specs: Vec<TokenSpec>,
    open: Arc<Mutex<Vec<u32>>>,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or one not in the auth file: HTTP 401.
    Unauthorized,
    /// The token's connection cap is reached: HTTP 429.
    AtCapacity,
}

/// An admitted connection; holds a slot of its token's cap until dropped.
pub(crate) struct Grant {
    pub entitlement: Entitlement,
    /// The token's name (`None` for anonymous clients).
    pub name: Option<String>,
    slot: Option<(Arc<Mutex<Vec<u32>>>, usize)>,
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some((open, i)) = self.slot.take() {
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(i) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

impl Authenticator {
    pub(crate) fn new(config: Option<&AuthConfig>) -> Authenticator {
        Authenticator {
            tokens: config.map(|c| Tokens {
                by_hash: c
                    .tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.sha256, i))
                    .collect(),
                open: Arc::new(Mutex::new(vec![0; c.tokens.len()])),
                specs: c.tokens.clone(),
            }),
        }
    }

    /// Admits a client presenting `token` (or none).
    pub(crate) fn admit(&self, token: Option<&str>) -> Result<Grant, Refusal> {
        let Some(tokens) = &self.tokens else {
            return Ok(Grant {
                entitlement: Entitlement::Realtime,
                name: None,
                slot: None,
            });
        };
        let token = token.ok_or(Refusal::Unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let i = *tokens.by_hash.get(&digest).ok_or(Refusal::Unauthorized)?;
        let spec = &tokens.specs[i];
        let mut open = tokens.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.get_mut(i).ok_or(Refusal::Unauthorized)?;
        if *n >= spec.max_connections {
            return Err(Refusal::AtCapacity);
        }
        *n += 1;
        Ok(Grant {
            entitlement: spec.entitlement,
            name: Some(spec.name.clone()),
            slot: Some((tokens.open.clone(), i)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> String {
        format!(
            "[[tokens]]\nname = \"pro\"\nsha256 = \"{}\"\nentitlement = \"realtime\"\nmax_connections = 2\n\
             [[tokens]]\nname = \"retail\"\nsha256 = \"{}\"\nentitlement = \"delayed\"\nmax_connections = 1\n",
            hash_token("s3cret"),
            hash_token("other").to_uppercase()
        )
    }

    #[test]
    fn tokens_are_checked_by_hash_and_capped() {
        let config = AuthConfig::parse(&file()).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.has_delayed());
        let auth = Authenticator::new(Some(&config));
        assert_eq!(auth.admit(None).err(), Some(Refusal::Unauthorized));
        assert_eq!(auth.admit(Some("wrong")).err(), Some(Refusal::Unauthorized));
        let a = auth
            .admit(Some("s3cret"))
            .unwrap_or_else(|_| panic!("admit"));
        assert_eq!(a.entitlement, Entitlement::Realtime);
        let b = auth
            .admit(Some("s3cret"))
            .unwrap_or_else(|_| panic!("admit"));
        assert_eq!(auth.admit(Some("s3cret")).err(), Some(Refusal::AtCapacity));
        drop(a);
        let c = auth.admit(Some("s3cret"));
        assert!(c.is_ok(), "a closed connection frees its slot");
        drop(b);
        let d = auth
            .admit(Some("other"))
            .unwrap_or_else(|_| panic!("admit"));
        assert_eq!(
            (d.entitlement, d.name.as_deref()),
            (Entitlement::Delayed, Some("retail"))
        );
    }

    #[test]
    fn anonymous_without_auth_file() {
        let auth = Authenticator::new(None);
        let g = auth.admit(None).unwrap_or_else(|_| panic!("admit"));
        assert_eq!(g.entitlement, Entitlement::Realtime);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let bad_hash = "[[tokens]]\nname = \"x\"\nsha256 = \"abc\"\nentitlement = \"realtime\"\nmax_connections = 1\n";
        assert!(matches!(
            AuthConfig::parse(bad_hash),
            Err(AuthError::BadHash { .. })
        ));
        let h = hash_token("t");
        let dup = format!(
            "[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nentitlement = \"realtime\"\nmax_connections = 1\n\
             [[tokens]]\nname = \"b\"\nsha256 = \"{h}\"\nentitlement = \"delayed\"\nmax_connections = 1\n"
        );
        assert!(matches!(
            AuthConfig::parse(&dup),
            Err(AuthError::Duplicate { .. })
        ));
        let zero = format!(
            "[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nentitlement = \"realtime\"\nmax_connections = 0\n"
        );
        assert!(matches!(
            AuthConfig::parse(&zero),
            Err(AuthError::NoConnections { .. })
        ));
        let typo = format!("[[tokens]]\nname = \"a\"\nsha256 = \"{h}\"\nentitlement = \"live\"\nmax_connections = 1\n");
        assert!(matches!(AuthConfig::parse(&typo), Err(AuthError::Toml(_))));
        assert_eq!(
            hash_token("test"),
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
    }
}
