//! The live proof's view of Jaeger: its query API (`/api/traces`) read into spans with what the
//! checks need (parent, service, kind, attributes), and the one question asked of every trace:
//! is it whole, one root and every parent present?

use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// One span as Jaeger returns it, reduced to what the checks read.
#[derive(Debug, Clone)]
pub struct Span {
    pub id: String,
    /// The span it is a child of, which may lie outside the trace (a client's): its `CHILD_OF`
    /// reference, or else its first `FOLLOWS_FROM` one (Jaeger folds a parent that is also a
    /// link into one `FOLLOWS_FROM` reference: the worker's `process` span has the `send` span as
    /// both).
    pub parent: Option<String>,
    /// Spans it links to (`FOLLOWS_FROM`).
    pub links: Vec<String>,
    pub name: String,
    /// `service.name` of the process that made it.
    pub service: String,
    /// `server`, `client`, `producer`, `consumer` or `internal`.
    pub kind: String,
    pub tags: HashMap<String, Value>,
    /// Microseconds since the epoch.
    pub start: u64,
    /// Whether its status is an error.
    pub error: bool,
}

impl Span {
    /// A tag's value as text (numbers and booleans too).
    pub fn tag(&self, key: &str) -> Option<String> {
        self.tags.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// One trace: its id and spans.
#[derive(Debug, Clone)]
pub struct Trace {
    pub id: String,
    pub spans: Vec<Span>,
}

impl Trace {
    /// Spans without a parent in the trace: one for a whole trace.
    pub fn roots(&self) -> Vec<&Span> {
        let ids: HashSet<&str> = self.spans.iter().map(|s| s.id.as_str()).collect();
        self.spans.iter().filter(|s| s.parent.as_deref().is_none_or(|p| !ids.contains(p))).collect()
    }

    /// Why the trace is not whole (more than one root, or a root that names a parent: a span
    /// whose parent never arrived), `None` when it is. A root may name a parent when the trace
    /// began at a client: `external` is that client's span id.
    pub fn incomplete(&self, external: Option<&str>) -> Option<String> {
        let roots = self.roots();
        let orphans: Vec<String> = roots
            .iter()
            .filter(|s| s.parent.is_some() && s.parent.as_deref() != external)
            .map(|s| format!("{} ({}) misses its parent", s.name, s.service))
            .collect();
        if roots.len() != 1 || !orphans.is_empty() {
            let names: Vec<&str> = roots.iter().map(|s| s.name.as_str()).collect();
            return Some(format!(
                "trace {}: {} roots [{}]; {}",
                self.id,
                roots.len(),
                names.join(", "),
                orphans.join("; ")
            ));
        }
        None
    }

    /// Whether `ancestor` is `span`'s parent, grandparent, ...
    pub fn descends(&self, span: &Span, ancestor: &str) -> bool {
        let mut at = span.parent.as_deref();
        // At most as many steps as spans: a cycle (a malformed trace) ends the walk.
        for _ in 0..self.spans.len() {
            match at {
                Some(id) if id == ancestor => return true,
                Some(id) => {
                    at = self.spans.iter().find(|s| s.id == id).and_then(|s| s.parent.as_deref())
                }
                None => return false,
            }
        }
        false
    }

    /// The spans named `name` made by `service`.
    pub fn named<'a>(&'a self, service: &'a str, name: &'a str) -> impl Iterator<Item = &'a Span> {
        self.spans.iter().filter(move |s| s.service == service && s.name == name)
    }
}

/// Jaeger's query service at `base` (e.g. `http://127.0.0.1:16686`).
pub struct Jaeger {
    pub base: String,
}

impl Jaeger {
    /// The trace `id` (32 hex digits), `None` while Jaeger does not have it.
    pub fn trace(&self, id: &str) -> anyhow::Result<Option<Trace>> {
        let url = format!("{}/api/traces/{id}", self.base);
        let (status, body) = testkit::http_get(&url)?;
        if status == 404 {
            return Ok(None);
        }
        anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
        Ok(parse(&serde_json::from_str(&body)?)?.into_iter().next())
    }

    /// The traces a search URL of Jaeger's API (from its path on) answers.
    pub fn traces_at(&self, path_and_query: &str) -> anyhow::Result<Vec<Trace>> {
        self.get(&format!("{}{path_and_query}", self.base))
    }

    fn get(&self, url: &str) -> anyhow::Result<Vec<Trace>> {
        let (status, body) = testkit::http_get(url)?;
        anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
        parse(&serde_json::from_str(&body)?)
    }
}

/// Jaeger's `{"data": [trace, ...]}` answer as traces.
pub fn parse(answer: &Value) -> anyhow::Result<Vec<Trace>> {
    let Some(data) = answer["data"].as_array() else {
        anyhow::bail!("a Jaeger answer without `data`: {answer}");
    };
    data.iter().map(trace).collect()
}

fn trace(t: &Value) -> anyhow::Result<Trace> {
    let id = t["traceID"].as_str().unwrap_or_default().to_string();
    let services: HashMap<&str, &str> = t["processes"]
        .as_object()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.as_str(), v["serviceName"].as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let spans = t["spans"].as_array().map(Vec::as_slice).unwrap_or_default();
    let spans = spans
        .iter()
        .map(|s| {
            let refs = s["references"].as_array().map(Vec::as_slice).unwrap_or_default();
            let of = |kind: &str| -> Vec<String> {
                refs.iter()
                    .filter(|r| r["refType"].as_str() == Some(kind))
                    .filter_map(|r| r["spanID"].as_str().map(str::to_string))
                    .collect()
            };
            let tags: HashMap<String, Value> = s["tags"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|t| Some((t["key"].as_str()?.to_string(), t["value"].clone())))
                .collect();
            let kind = tags.get("span.kind").and_then(Value::as_str).unwrap_or("internal");
            let error = tags.get("error").is_some_and(|v| v == &Value::Bool(true))
                || tags.get("otel.status_code").and_then(Value::as_str) == Some("ERROR");
            Span {
                id: s["spanID"].as_str().unwrap_or_default().to_string(),
                parent: of("CHILD_OF").into_iter().chain(of("FOLLOWS_FROM")).next(),
                links: of("FOLLOWS_FROM"),
                name: s["operationName"].as_str().unwrap_or_default().to_string(),
                service: services
                    .get(s["processID"].as_str().unwrap_or_default())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                kind: kind.to_string(),
                start: s["startTime"].as_u64().unwrap_or(0),
                error,
                tags,
            }
        })
        .collect();
    Ok(Trace { id, spans })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer() -> Value {
        json!({"data": [{
            "traceID": "t1",
            "processes": {"p1": {"serviceName": "api"}, "p2": {"serviceName": "worker"}},
            "spans": [
                {"spanID": "a", "operationName": "POST /api/exports", "processID": "p1",
                 "references": [{"refType": "CHILD_OF", "traceID": "t1", "spanID": "client"}],
                 "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
                 "startTime": 1},
                {"spanID": "b", "operationName": "send export", "processID": "p1",
                 "references": [{"refType": "CHILD_OF", "traceID": "t1", "spanID": "a"}],
                 "tags": [{"key": "span.kind", "type": "string", "value": "producer"}],
                 "startTime": 2},
                {"spanID": "c", "operationName": "process export", "processID": "p2",
                 "references": [{"refType": "FOLLOWS_FROM", "traceID": "t1", "spanID": "b"}],
                 "tags": [{"key": "span.kind", "type": "string", "value": "consumer"},
                          {"key": "error", "type": "bool", "value": true}],
                 "startTime": 3}
            ]
        }]})
    }

    #[test]
    fn a_trace_from_a_client_is_whole_with_its_external_parent_and_not_without() {
        // As Jaeger answers: the consumer span's parent, also its link, as one FOLLOWS_FROM.
        let traces = parse(&answer()).expect("parses");
        let t = &traces[0];
        assert_eq!(t.spans.len(), 3);
        assert_eq!(t.spans[2].service, "worker");
        assert_eq!(t.spans[2].kind, "consumer");
        assert!(t.spans[2].error && !t.spans[0].error);
        assert_eq!(t.incomplete(Some("client")), None);
        assert!(t.incomplete(None).is_some_and(|why| why.contains("misses its parent")));
        assert!(t.descends(&t.spans[2], "a"));
        assert_eq!(t.spans[2].links, ["b"]);
        assert!(!t.descends(&t.spans[0], "c"));
    }

    #[test]
    fn a_span_whose_parent_is_missing_makes_a_second_root() {
        let mut a = answer();
        a["data"][0]["spans"][1]["references"][0]["spanID"] = json!("lost");
        let t = &parse(&a).expect("parses")[0];
        assert_eq!(t.roots().len(), 2);
        assert!(t.incomplete(Some("client")).is_some());
    }
}
