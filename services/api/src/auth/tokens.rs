//! The API's tokens, read once at start-up from `API_TOKENS_FILE`. The file holds no token, only
//! each token's SHA-256 hash (a token is 256 random bits, so an unsalted hash is enough: nothing
//! can be guessed from it), one token per line:
//!
//! ```text
//! # name    role   sha256 of the token
//! ops       admin  sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! grafana   read   sha256:...
//! ```
//!
//! Names are for people and logs (never a metric label); blank lines and `#` comments are
//! skipped. A presented token is hashed and compared with every stored hash in constant time
//! (`subtle`), so the time a check takes says nothing about how close a guess was.

use super::policy::Role;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The longest token accepted (tokens issued here are 64 characters).
const MAX_TOKEN_LEN: usize = 512;

/// Who a request comes from, once its token is verified: put in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The token's name in the tokens file.
    pub name: Arc<str>,
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    hash: [u8; 32],
    caller: Caller,
}

/// The known tokens (as hashes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    entries: Vec<Entry>,
}

/// Why the tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    #[error("cannot read the tokens file {path} (API_TOKENS_FILE): {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line} (API_TOKENS_FILE): {reason}")]
    Line { path: PathBuf, line: usize, reason: String },
    #[error("{path} (API_TOKENS_FILE) holds no token: every request to /api/* would be refused")]
    Empty { path: PathBuf },
}

impl Tokens {
    /// Reads the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokensError::Read { path: path.to_owned(), source })?;
        Tokens::parse(&text).map_err(|(line, reason)| match line {
            0 => TokensError::Empty { path: path.to_owned() },
            line => TokensError::Line { path: path.to_owned(), line, reason },
        })
    }

    /// Parses a tokens file's text; the error is the line (1-based; 0: no token at all) and why.
    pub fn parse(text: &str) -> Result<Tokens, (usize, String)> {
        let mut entries: Vec<Entry> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry = parse_line(line).map_err(|reason| (index + 1, reason))?;
            if entries.iter().any(|e| e.caller.name == entry.caller.name) {
                return Err((index + 1, format!("the name `{}` is used twice", entry.caller.name)));
            }
            if entries.iter().any(|e| e.hash == entry.hash) {
                return Err((index + 1, "this hash is listed twice".to_string()));
            }
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err((0, String::new()));
        }
        Ok(Tokens { entries })
    }

    /// The caller a presented token belongs to, if it is one of ours. Every stored hash is
    /// compared, in constant time, whatever the answer.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        if presented.is_empty() || presented.len() > MAX_TOKEN_LEN {
            return None;
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.hash.ct_eq(&digest)) {
                found = Some(entry.caller.clone());
            }
        }
        found
    }

    /// How many tokens there are of each role (for the start-up log line).
    pub fn count(&self, role: Role) -> usize {
        self.entries.iter().filter(|e| e.caller.role == role).count()
    }
}

/// One line: `<name> <role> sha256:<64 hex digits>`.
fn parse_line(line: &str) -> Result<Entry, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [name, role, hash] = fields.as_slice() else {
        return Err(format!(
            "expected `<name> <role> sha256:<hex>`, found {} field(s)",
            fields.len()
        ));
    };
    let valid_name = name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !valid_name {
        return Err(format!("the name `{name}` must be 1 to 64 letters, digits, `-`, `_` or `.`"));
    }
    let role: Role = role.parse()?;
    let hex = hash.strip_prefix("sha256:").ok_or_else(|| {
        "the hash must be written `sha256:<hex>` (the token itself never goes in this file)"
            .to_string()
    })?;
    let hash = decode_hex(hex).ok_or_else(|| {
        format!("`sha256:{hex}` is not a SHA-256 hash: expected 64 hexadecimal digits")
    })?;
    Ok(Entry { hash, caller: Caller { name: Arc::from(*name), role } })
}

fn decode_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The tokens-file line of `token` (what an operator appends after generating a token).
pub fn line(name: &str, role: Role, token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name} {role} sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_token_is_its_caller_and_anything_else_is_nobody() {
        let text = format!(
            "# comment\n\n{}\n  {}  \n",
            line("ops", Role::Admin, "secret-one"),
            line("dash", Role::Read, "secret-two")
        );
        let tokens = Tokens::parse(&text).expect("parses");
        let ops = tokens.verify("secret-one").expect("known");
        assert_eq!((&*ops.name, ops.role), ("ops", Role::Admin));
        assert_eq!(tokens.verify("secret-two").map(|c| c.role), Some(Role::Read));
        for unknown in ["", "secret-on", "secret-one ", "SECRET-ONE", &"x".repeat(10_000)] {
            assert_eq!(tokens.verify(unknown), None, "{unknown:.20}");
        }
        assert_eq!((tokens.count(Role::Admin), tokens.count(Role::Write)), (1, 0));
    }

    #[test]
    fn bad_lines_are_named_with_their_reason() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        let cases = [
            ("ops admin".to_string(), "found 2 field(s)"),
            (format!("ops root {hash}"), "unknown role `root`"),
            (format!("o/ps read {hash}"), "the name `o/ps`"),
            ("ops read secret-token".to_string(), "never goes in this file"),
            ("ops read sha256:abc".to_string(), "64 hexadecimal digits"),
            (format!("ops read {hash}\nops write sha256:{}", "cd".repeat(32)), "used twice"),
            (format!("a read {hash}\nb write {hash}"), "listed twice"),
        ];
        for (text, reason) in cases {
            let (line, got) = Tokens::parse(&text).expect_err(&text);
            assert!(line >= 1 && got.contains(reason), "{text}: line {line}: {got}");
        }
        assert_eq!(Tokens::parse("# nothing\n").unwrap_err().0, 0);
    }

    #[test]
    fn loading_names_the_file() {
        let missing = Tokens::load(Path::new("/nonexistent/tokens")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/tokens") && missing.contains("API_TOKENS_FILE"));
    }
}
