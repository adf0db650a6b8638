//! The dashboards' links to traces: a latency or error panel carries panel links into Grafana's
//! Explore with a Jaeger search (data source `jaeger`, a service, an operation, the dashboard's
//! time range, a minimum duration or an error tag). [`trace_links`] reads every such link back
//! out of the dashboard files, so the structural tests can hold each one against the spans the
//! services produce, and the live proof can run each one as the same search on Jaeger's HTTP API
//! ([`TraceLink::jaeger_search`]) and see it find traces.
//!
//! A link's URL is `/explore?schemaVersion=1&orgId=1&panes=<JSON, percent-encoded>`, the JSON
//! being Explore's pane state: `{"traces": {"datasource": "jaeger", "queries": [<the Jaeger
//! query: queryType "search", service, operation, minDuration, tags>], "range": {"from":
//! "${__from}", "to": "${__to}"}}}`. The `${__from}`/`${__to}` stay literal (not encoded): Grafana
//! replaces them with the dashboard's time range when the link is followed.

use crate::dashboards::{self, Dashboard};
use serde_json::Value;

/// The Explore path the links open.
pub const EXPLORE_PATH: &str = "/explore";

/// One link from a dashboard panel to a Jaeger search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLink {
    /// The dashboard's title.
    pub dashboard: String,
    /// The panel's title.
    pub panel: String,
    /// The link's title.
    pub title: String,
    /// The data source uid of the pane and of the query.
    pub datasource: String,
    /// The query's type (`search` for a search by service and operation).
    pub query_type: String,
    /// `service.name` of the spans: `api` or `worker`.
    pub service: String,
    /// The span name searched for, e.g. `POST /api/exports` or `process export`; `None`: every
    /// operation of the service.
    pub operation: Option<String>,
    /// The minimum span duration, as Jaeger takes it (`500ms`, `1s`).
    pub min_duration: Option<String>,
    /// Span tags the search requires, in Grafana's logfmt form (`error=true`).
    pub tags: Option<String>,
    /// The start of the pane's time range: `${__from}` when it follows the dashboard's.
    pub from: String,
    /// The end of the pane's time range: `${__to}` when it follows the dashboard's.
    pub to: String,
}

impl TraceLink {
    /// The same search on Jaeger's HTTP API (what Grafana's Jaeger data source asks), between
    /// `start_us` and `end_us` (microseconds since the epoch): `/api/traces?service=…&operation=…
    /// &start=…&end=…&minDuration=…&tags=…&limit=…`, each value percent-encoded. Append it to the
    /// query service's base URL.
    pub fn jaeger_search(&self, start_us: u128, end_us: u128, limit: u32) -> String {
        jaeger_search(
            &self.service,
            self.operation.as_deref(),
            (self.min_duration.as_deref(), self.tags.as_deref()),
            (start_us, end_us),
            limit,
        )
    }
}

/// A search on Jaeger's HTTP API for traces of `service` (and `operation`), filtered by a minimum
/// duration (e.g. `500ms`) and logfmt `tags` (e.g. `error=true`) when given, started between
/// `start_us` and `end_us`: `/api/traces?service=…&operation=…&start=…&end=…&minDuration=…
/// &tags=…&limit=…`, each value percent-encoded. Append it to the query service's base URL.
pub fn jaeger_search(
    service: &str,
    operation: Option<&str>,
    (min_duration, tags): (Option<&str>, Option<&str>),
    (start_us, end_us): (u128, u128),
    limit: u32,
) -> String {
    let mut params = vec![("service", service.to_string())];
    if let Some(operation) = operation {
        params.push(("operation", operation.to_string()));
    }
    params.push(("start", start_us.to_string()));
    params.push(("end", end_us.to_string()));
    if let Some(min) = min_duration {
        params.push(("minDuration", min.to_string()));
    }
    if let Some(tags) = tags {
        params.push(("tags", tags_json(tags)));
    }
    params.push(("limit", limit.to_string()));
    let query: Vec<String> =
        params.iter().map(|(k, v)| format!("{k}={}", percent_encode(v))).collect();
    format!("/api/traces?{}", query.join("&"))
}

/// Every trace link of every dashboard, in file and panel order. An error names the dashboard and
/// panel whose Explore link cannot be read.
pub fn trace_links() -> anyhow::Result<Vec<TraceLink>> {
    let mut out = Vec::new();
    for dashboard in dashboards::load_all() {
        out.extend(links_of(&dashboard)?);
    }
    Ok(out)
}

/// The trace links of one dashboard's panels.
pub fn links_of(dashboard: &Dashboard) -> anyhow::Result<Vec<TraceLink>> {
    let mut out = Vec::new();
    for panel in dashboard.visible_panels() {
        for link in panel["links"].as_array().into_iter().flatten() {
            let url = link["url"].as_str().unwrap_or_default();
            if !url.starts_with(EXPLORE_PATH) {
                continue;
            }
            let at = format!("{} / {}", dashboard.title(), dashboards::title(panel));
            let mut parsed = parse_url(url).map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
            parsed.dashboard = dashboard.title().to_string();
            parsed.panel = dashboards::title(panel).to_string();
            parsed.title = link["title"].as_str().unwrap_or_default().to_string();
            out.push(parsed);
        }
    }
    Ok(out)
}

/// Reads an Explore URL made as the module doc says (dashboard, panel and title left empty).
pub fn parse_url(url: &str) -> Result<TraceLink, String> {
    let query = url
        .strip_prefix(EXPLORE_PATH)
        .and_then(|rest| rest.strip_prefix('?'))
        .ok_or_else(|| format!("`{url}` is not {EXPLORE_PATH}?…"))?;
    let panes = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("panes="))
        .ok_or_else(|| format!("`{url}` has no `panes`"))?;
    let json = percent_decode(panes)?;
    let panes: Value =
        serde_json::from_str(&json).map_err(|e| format!("panes is not JSON ({e}): {json}"))?;
    let panes = panes.as_object().filter(|p| p.len() == 1).ok_or("not exactly one pane")?;
    let pane = panes.values().next().ok_or("no pane")?;
    let [query] = pane["queries"].as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("the pane has not exactly one query".into());
    };
    let text = |v: &Value| v.as_str().map(String::from);
    let datasource = text(&pane["datasource"]).unwrap_or_default();
    if text(&query["datasource"]["uid"]).as_deref() != Some(datasource.as_str()) {
        return Err(format!("the query's data source is not the pane's `{datasource}`"));
    }
    Ok(TraceLink {
        dashboard: String::new(),
        panel: String::new(),
        title: String::new(),
        datasource,
        query_type: text(&query["queryType"]).unwrap_or_default(),
        service: text(&query["service"]).unwrap_or_default(),
        operation: text(&query["operation"]),
        min_duration: text(&query["minDuration"]),
        tags: text(&query["tags"]),
        from: text(&pane["range"]["from"]).unwrap_or_default(),
        to: text(&pane["range"]["to"]).unwrap_or_default(),
    })
}

/// Grafana's logfmt tags (`error=true http.route=/x`) as the JSON object Jaeger's API takes.
fn tags_json(logfmt: &str) -> String {
    let map: serde_json::Map<String, Value> = logfmt
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
        .collect();
    Value::Object(map).to_string()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` escapes (and nothing else: `+` stays `+`).
fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("a `%` without two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("`%{hex}` is no escape"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| format!("not UTF-8 once decoded: {e}"))
}

/// The Explore URL of a Jaeger search over the dashboard's time range: what the dashboards'
/// links hold (the tests build expected links with it).
pub fn explore_url(
    datasource: &str,
    service: &str,
    operation: Option<&str>,
    min_duration: Option<&str>,
    tags: Option<&str>,
) -> String {
    let mut query = serde_json::json!({
        "refId": "A",
        "datasource": {"type": "jaeger", "uid": datasource},
        "queryType": "search",
        "service": service,
    });
    for (key, value) in [("operation", operation), ("minDuration", min_duration), ("tags", tags)] {
        if let Some(value) = value {
            query[key] = Value::String(value.to_string());
        }
    }
    let panes = serde_json::json!({"traces": {
        "datasource": datasource,
        "queries": [query],
        "range": {"from": "${__from}", "to": "${__to}"},
    }});
    // Encoded, but for the time range variables Grafana must see to replace them.
    let encoded = percent_encode(&panes.to_string())
        .replace("%24%7B__from%7D", "${__from}")
        .replace("%24%7B__to%7D", "${__to}");
    format!("{EXPLORE_PATH}?schemaVersion=1&orgId=1&panes={encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explore_url_reads_back_as_the_search_it_makes() -> Result<(), String> {
        let url = explore_url("jaeger", "api", Some("POST /api/exports"), Some("500ms"), None);
        assert!(url.contains("${__from}") && url.contains("${__to}"), "{url}");
        assert!(!url.contains(' ') && !url.contains('"'), "{url}");
        let link = parse_url(&url)?;
        assert_eq!(link.datasource, "jaeger");
        assert_eq!(link.query_type, "search");
        assert_eq!(link.service, "api");
        assert_eq!(link.operation.as_deref(), Some("POST /api/exports"));
        assert_eq!(link.min_duration.as_deref(), Some("500ms"));
        assert_eq!(link.tags, None);
        assert_eq!((link.from.as_str(), link.to.as_str()), ("${__from}", "${__to}"));
        Ok(())
    }

    #[test]
    fn a_link_becomes_jaegers_search_with_every_value_encoded() -> Result<(), String> {
        let url = explore_url("jaeger", "worker", Some("process export"), None, Some("error=true"));
        let link = parse_url(&url)?;
        assert_eq!(
            link.jaeger_search(1_000, 2_000, 20),
            "/api/traces?service=worker&operation=process%20export&start=1000&end=2000\
             &tags=%7B%22error%22%3A%22true%22%7D&limit=20"
        );
        let all = parse_url(&explore_url("jaeger", "api", None, Some("1s"), None))?;
        assert_eq!(
            all.jaeger_search(5, 6, 1),
            "/api/traces?service=api&start=5&end=6&minDuration=1s&limit=1"
        );
        Ok(())
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        assert!(parse_url("/d/orgraph-api").is_err());
        assert_eq!(
            parse_url("/explore?orgId=1").err().as_deref(),
            Some("`/explore?orgId=1` has no `panes`")
        );
        assert!(parse_url("/explore?panes=%7Bnot json").is_err());
        assert!(parse_url("/explore?panes=%ZZ").is_err());
        let two = explore_url("jaeger", "api", None, None, None).replace("%5B", "%5B%7B%7D%2C");
        assert_eq!(parse_url(&two).err().as_deref(), Some("the pane has not exactly one query"));
    }

    #[test]
    fn the_repos_dashboards_have_trace_links() -> anyhow::Result<()> {
        let links = trace_links()?;
        assert!(!links.is_empty());
        for link in &links {
            assert!(!link.dashboard.is_empty() && !link.panel.is_empty(), "{link:?}");
        }
        Ok(())
    }
}
