//! Where the load goes: an `http://` base URL, on a loopback address unless the caller explicitly
//! allows a remote one (so a typo cannot point a load test at someone else's server).

use std::net::IpAddr;

/// The API's base URL, checked: `http`, with a host, no query or fragment, without a trailing
/// slash (request paths are appended to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: String,
}

impl Target {
    /// Checks `url`; a host other than `localhost` or a loopback address needs `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> anyhow::Result<Target> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| anyhow::anyhow!("--url {url:?} is not a URL: {e}"))?;
        match parsed.scheme() {
            "http" => {}
            "https" => anyhow::bail!(
                "--url {url}: https is not supported (the load client is built without TLS); \
                 load the API over http"
            ),
            other => anyhow::bail!("--url {url}: the scheme must be http, not {other}"),
        }
        anyhow::ensure!(
            parsed.query().is_none() && parsed.fragment().is_none(),
            "--url {url}: give the API's base URL, without a query or fragment"
        );
        let host = parsed.host_str().unwrap_or_default();
        if !allow_remote && !is_loopback(host) {
            anyhow::bail!(
                "refusing to send load to {host}: it is not a loopback address (localhost, \
                 127.0.0.0/8, ::1). Pass --allow-remote if you really mean to load a remote API."
            );
        }
        Ok(Target { base: parsed.as_str().trim_end_matches('/').to_string() })
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

/// `localhost` (and its subdomains, which resolve to loopback by RFC 6761) or a loopback IP.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_allowed_and_paths_are_appended() {
        for url in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "http://127.1.2.3:8000",
            "http://localhost:8000",
            "http://[::1]:8000/",
        ] {
            let target = Target::parse(url, false).unwrap();
            assert!(target.url("/api/graph/stats").ends_with(":8000/api/graph/stats"), "{url}");
        }
    }

    #[test]
    fn remote_needs_allow_remote() {
        for url in ["http://10.0.0.5:8000", "http://example.com", "http://[2001:db8::1]/"] {
            let err = Target::parse(url, false).unwrap_err().to_string();
            assert!(err.contains("--allow-remote"), "{url}: {err}");
            assert!(Target::parse(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn other_schemes_and_junk_are_refused() {
        for (url, needle) in [
            ("https://127.0.0.1", "https is not supported"),
            ("ftp://127.0.0.1", "scheme"),
            ("localhost:8000", "scheme must be http"),
            ("127.0.0.1:8000", "not a URL"),
            ("not a url", "not a URL"),
            ("http://127.0.0.1/?x=1", "query"),
        ] {
            let err = Target::parse(url, true).unwrap_err().to_string();
            assert!(err.contains(needle), "{url}: {err}");
        }
    }
}
