//! Reading settings from environment variables, one way for every reader (telemetry's `OTEL_*`
//! in [`crate::Config`], each service's own in its `Config`): unset or blank means the default,
//! and a malformed value is a [`SettingError`] naming the variable, so a typo stops the service at
//! start-up with a one-line reason. Values come through a lookup function, so tests never touch
//! the process environment. The reader also notes every variable it is asked for, with its
//! default, so a binary's `--help` lists them ([`FromEnv::variables`]).

use std::cell::RefCell;
use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

/// A malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{} is invalid: {reason}", shown(value))]
pub struct SettingError {
    /// The environment variable, e.g. `PG_POOL_MAX`.
    pub variable: &'static str,
    /// Its value; `None` for a value that may hold a secret (a URL's password), never shown.
    pub value: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl SettingError {
    /// `variable`'s `value` is wrong, for `reason`.
    pub fn new(
        variable: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        SettingError { variable, value: Some(value.into()), reason: reason.into() }
    }
}

fn shown(value: &Option<String>) -> String {
    value.as_ref().map(|v| format!("={v:?}")).unwrap_or_default()
}

/// A variable a reader asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The environment variable, e.g. `PG_POOL_MAX`.
    pub name: &'static str,
    /// What unset means, when the reader says.
    pub default: Option<String>,
}

/// Settings read through a lookup function (the process environment, or a test's table).
pub struct Settings<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    asked: RefCell<Vec<Variable>>,
}

impl<'a> Settings<'a> {
    /// Settings read through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Settings { lookup, asked: RefCell::default() }
    }

    /// The trimmed value of `key`; `None` when unset or blank.
    pub fn get(&self, key: &'static str) -> Option<String> {
        self.note(key, None);
        self.value(key)
    }

    /// [`Settings::get`] of a variable whose default (for `--help`) is `default`.
    pub fn get_or(&self, key: &'static str, default: impl Display) -> Option<String> {
        self.note(key, Some(default.to_string()));
        self.value(key)
    }

    /// A whole number from 1 to `u32::MAX`.
    pub fn positive(&self, key: &'static str, default: u32) -> Result<u32, SettingError> {
        match self.get_or(key, default) {
            None => Ok(default),
            Some(value) => match value.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(SettingError::new(key, value, "expected a positive whole number")),
            },
        }
    }

    /// A positive whole number of milliseconds (how the `OTEL_*` spec writes every duration).
    pub fn millis(&self, key: &'static str, default: u64) -> Result<Duration, SettingError> {
        let Some(value) = self.get_or(key, default) else {
            return Ok(Duration::from_millis(default));
        };
        match value.parse::<u64>() {
            Ok(0) => {
                Err(SettingError::new(key, value, "must be a positive number of milliseconds"))
            }
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => Err(SettingError::new(key, value, "expected a whole number of milliseconds")),
        }
    }

    /// `true` or `false`, in any case.
    pub fn flag(&self, key: &'static str, default: bool) -> Result<bool, SettingError> {
        match self.get_or(key, default).map(|v| (v.to_ascii_lowercase(), v)) {
            None => Ok(default),
            Some((lower, _)) if lower == "true" => Ok(true),
            Some((lower, _)) if lower == "false" => Ok(false),
            Some((_, value)) => Err(SettingError::new(key, value, "expected `true` or `false`")),
        }
    }

    /// A `host:port` socket address.
    pub fn addr(&self, key: &'static str, default: SocketAddr) -> Result<SocketAddr, SettingError> {
        match self.get_or(key, default) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| {
                SettingError::new(key, value, "expected host:port, e.g. 0.0.0.0:8000")
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
        match self.get_or(key, default) {
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

    /// Every variable asked for so far, in the order first asked.
    pub fn variables(self) -> Vec<Variable> {
        self.asked.into_inner()
    }

    fn value(&self, key: &str) -> Option<String> {
        (self.lookup)(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    fn note(&self, name: &'static str, default: Option<String>) {
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|v| v.name == name) {
            asked.push(Variable { name, default });
        }
    }
}

/// Something read from environment variables through [`Settings`].
pub trait FromEnv: Sized {
    /// Reads every variable through `settings`.
    fn read(settings: &Settings<'_>) -> Result<Self, SettingError>;

    /// Reads the process environment.
    fn from_env() -> Result<Self, SettingError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the variables through `lookup` (a variable that is unset or blank is absent).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingError> {
        Self::read(&Settings::new(&lookup))
    }

    /// Every variable [`FromEnv::read`] looks at, with its default.
    fn variables() -> Vec<Variable> {
        let settings = Settings::new(&|_| None);
        // With nothing set, every variable is asked for (an error would only end the list early).
        let _ = Self::read(&settings);
        settings.variables()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with<T>(pairs: &[(&str, &str)], read: impl FnOnce(&Settings<'_>) -> T) -> T {
        let lookup = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string());
        read(&Settings::new(&lookup))
    }

    #[test]
    fn blank_is_unset_and_bad_values_name_their_variable() {
        let pairs = [("A", " "), ("N", "0"), ("M", "12"), ("U", "mysql://x"), ("H", "x")];
        with(&pairs, |s| {
            assert_eq!(s.positive("A", 7), Ok(7));
            assert_eq!(s.positive("N", 7).unwrap_err().variable, "N");
            assert_eq!(s.millis("M", 1), Ok(Duration::from_millis(12)));
            assert_eq!(s.url("U", "d", &["postgres://"]).unwrap_err().variable, "U");
            assert_eq!(
                s.addr("H", SocketAddr::from(([127, 0, 0, 1], 1))).unwrap_err().variable,
                "H"
            );
            assert_eq!(s.url("X", "postgres://d", &["postgres://"]).unwrap(), "postgres://d");
            assert_eq!(
                s.positive("N", 7).unwrap_err().to_string(),
                r#"N="0" is invalid: expected a positive whole number"#
            );
        });
    }

    #[test]
    fn a_malformed_url_is_named_never_echoed() {
        let pairs = [("DATABASE_URL", "postgress://orgraph:hunter2@db:5432/orgraph")];
        let message = with(&pairs, |s| {
            s.url("DATABASE_URL", "d", &["postgres://", "postgresql://"]).unwrap_err().to_string()
        });
        assert!(
            message
                .starts_with("DATABASE_URL is invalid: expected a URL starting with postgres://"),
            "{message}"
        );
        assert!(!message.contains("hunter2") && !message.contains("orgraph:"), "{message}");
    }

    #[test]
    fn every_variable_asked_for_is_listed_once_with_its_default() {
        let lookup = |_: &str| None;
        let s = Settings::new(&lookup);
        let _ = s.positive("N", 7);
        let _ = s.get("RAW");
        let _ = s.positive("N", 7);
        assert_eq!(
            s.variables(),
            [
                Variable { name: "N", default: Some("7".into()) },
                Variable { name: "RAW", default: None }
            ]
        );
    }
}
