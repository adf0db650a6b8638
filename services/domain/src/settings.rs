//! Reading a service's own settings from environment variables, the same way in every service:
//! unset or blank means the default, and a malformed value is a [`SettingError`] naming the
//! variable, so a typo stops the service at start-up with a one-line reason.

use std::net::SocketAddr;
use std::time::Duration;

/// A malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{} is invalid: {reason}", shown(value))]
pub struct SettingError {
    /// The variable.
    pub variable: &'static str,
    /// Its value; `None` for a value that may hold a secret (a URL's password), never shown.
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
}

fn shown(value: &Option<String>) -> String {
    value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default()
}

/// Settings read through a lookup function (the process environment, or a test's table).
pub struct Settings<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Settings<F> {
    /// Settings read through `lookup`.
    pub fn new(lookup: F) -> Self {
        Settings { lookup }
    }

    /// The trimmed value of `key`; `None` when unset or blank.
    pub fn get(&self, key: &str) -> Option<String> {
        (self.lookup)(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// A whole number from 1 to `u32::MAX`.
    pub fn positive(&self, key: &'static str, default: u32) -> Result<u32, SettingError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => match value.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(SettingError {
                    variable: key,
                    value: Some(value),
                    reason: "expected a positive whole number".into(),
                }),
            },
        }
    }

    /// A positive number of milliseconds.
    pub fn millis(&self, key: &'static str, default: u32) -> Result<Duration, SettingError> {
        self.positive(key, default).map(|ms| Duration::from_millis(ms.into()))
    }

    /// A `host:port` socket address.
    pub fn addr(&self, key: &'static str, default: SocketAddr) -> Result<SocketAddr, SettingError> {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| SettingError {
                variable: key,
                value: Some(value),
                reason: "expected host:port, e.g. 0.0.0.0:8000".into(),
            }),
        }
    }

    /// A URL with one of `schemes` (e.g. `postgres://`), or `default`. A URL may carry a password,
    /// so a malformed one is not echoed: the error names the variable and the schemes expected.
    pub fn url(
        &self,
        key: &'static str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, SettingError> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) if schemes.iter().any(|s| v.starts_with(s) && v.len() > s.len()) => Ok(v),
            Some(_) => Err(SettingError {
                variable: key,
                value: None,
                reason: format!(
                    "expected a URL starting with {} (the value is not shown: it may hold a password)",
                    schemes.join(" or ")
                ),
            }),
        }
    }
}

/// The Postgres URL schemes.
pub const POSTGRES_SCHEMES: &[&str] = &["postgres://", "postgresql://"];
/// `DATABASE_URL` when unset: the native stack's database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orgraph";

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        pairs: &'static [(&'static str, &'static str)],
    ) -> Settings<impl Fn(&str) -> Option<String>> {
        Settings::new(move |k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn blank_is_unset_and_bad_values_name_their_variable() {
        let s = settings(&[("A", " "), ("N", "0"), ("M", "12"), ("U", "mysql://x"), ("H", "x")]);
        assert_eq!(s.positive("A", 7), Ok(7));
        assert_eq!(s.positive("N", 7).unwrap_err().variable, "N");
        assert_eq!(s.millis("M", 1), Ok(Duration::from_millis(12)));
        assert_eq!(s.url("U", "d", POSTGRES_SCHEMES).unwrap_err().variable, "U");
        assert_eq!(s.addr("H", SocketAddr::from(([127, 0, 0, 1], 1))).unwrap_err().variable, "H");
        assert_eq!(
            s.url("X", DEFAULT_DATABASE_URL, POSTGRES_SCHEMES).unwrap(),
            DEFAULT_DATABASE_URL
        );
        assert_eq!(
            s.positive("N", 7).unwrap_err().to_string(),
            r#"N="0" is invalid: expected a positive whole number"#
        );
    }

    #[test]
    fn a_malformed_url_is_named_never_echoed() {
        let s = settings(&[("DATABASE_URL", "postgress://orgraph:hunter2@db:5432/orgraph")]);
        let message = s.url("DATABASE_URL", "d", POSTGRES_SCHEMES).unwrap_err().to_string();
        assert!(
            message
                .starts_with("DATABASE_URL is invalid: expected a URL starting with postgres://"),
            "{message}"
        );
        assert!(!message.contains("hunter2") && !message.contains("orgraph:"), "{message}");
    }
}
