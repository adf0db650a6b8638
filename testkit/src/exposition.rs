//! A small reader for the Prometheus text exposition format (version 0.0.4) as the collector's
//! `prometheus` exporter writes it: `# HELP`, `# TYPE` and sample lines with quoted label values.
//! Tests that check what the collector emits (the translation proof, the services' emitted
//! series) read scrapes with it.

use std::collections::{BTreeMap, BTreeSet};

/// One sample line.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The sample name (with `_bucket`, `_sum`, ... suffixes).
    pub name: String,
    /// Label names to their values, unescaped.
    pub labels: BTreeMap<String, String>,
    /// The number after the labels (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
}

/// A whole scrape.
#[derive(Debug, Default)]
pub struct Exposition {
    /// `# HELP` text by family name.
    pub help: BTreeMap<String, String>,
    /// `# TYPE` by family name.
    pub types: BTreeMap<String, String>,
    /// Every sample line.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses a scrape; a malformed line is an error naming it.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}: {line}", n + 1);
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                out.help.insert(name.to_string(), unescape(help));
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or_else(|| bad("TYPE without type"))?;
                out.types.insert(name.to_string(), kind.to_string());
            } else if line.starts_with('#') {
                continue;
            } else {
                out.samples.push(parse_sample(line).map_err(|e| bad(&e))?);
            }
        }
        Ok(out)
    }

    /// The distinct sample names.
    pub fn names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }

    /// The samples called `name`.
    pub fn samples_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| s.name == name)
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return Err("sample without value".into()),
    };
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        loop {
            // label name
            let mut key = String::new();
            while let Some(&(i, c)) = chars.peek() {
                if c == '}' {
                    end = Some(i);
                    break;
                }
                if c == '=' {
                    break;
                }
                if c != ',' {
                    key.push(c);
                }
                chars.next();
            }
            if end.is_some() {
                break;
            }
            chars.next(); // '='
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key} value is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("dangling escape".into()),
                    },
                    Some((_, '"')) => break,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            }
            labels.insert(key, value);
        }
        let end = end.ok_or("unterminated label set")?;
        &body[end + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next().ok_or("sample without value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("bad value {v}: {e}"))?,
    };
    Ok(Sample { name: name.to_string(), labels, value })
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n").replace("\\\\", "\\")
}

#[cfg(test)]
#[test]
fn parses_labels_with_escapes_and_special_values() {
    let text = "# HELP a_total Some help.\n# TYPE a_total counter\n\
                a_total{job=\"x/y\",msg=\"q\\\"uote,{}\"} 3\nb_bucket{le=\"+Inf\"} 1e3\nc 0\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(e.help["a_total"], "Some help.");
    assert_eq!(e.types["a_total"], "counter");
    assert_eq!(e.samples[0].labels["msg"], "q\"uote,{}");
    assert_eq!(e.samples[0].labels["job"], "x/y");
    assert_eq!(e.samples[1].value, 1000.0);
    assert_eq!(e.samples[1].labels["le"], "+Inf");
    assert_eq!(e.samples[2].name, "c");
}
