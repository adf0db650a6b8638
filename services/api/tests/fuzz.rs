//! The API under an OpenAPI-driven, property-based fuzzer: schemathesis (pinned in `.env` with the
//! Hypothesis it drives, installed by `cargo xtask tools`) reads `GET /api/openapi.json`, generates
//! requests for every operation from it (valid ones, and ones that break the schema: wrong types,
//! hostile strings with NUL and control characters, huge numbers, wrong content types, no token)
//! and sends them to the real API on real Postgres and Redis, as the admin. It exists to hold the
//! document and the service to each other: every answer must be documented (status code, content
//! type, headers, body schema), none may be a 5xx, a request that breaks the schema must be
//! refused, and an operation that needs a token must refuse a request without one.
//!
//! Every check of schemathesis runs but one, `positive_data_acceptance`: it expects every
//! schema-valid request to succeed, while the API's rules go beyond what a schema can say
//! (a relation needs two different, existing employees; an intervention's employees must exist;
//! JSON Schema counts `7.0` as an integer), so those refusals (422, 409) are correct.
//!
//! Deterministic: a fixed seed, one worker, a fixed number of examples per operation, the pinned
//! versions; the run takes about a minute on two cores.
//!
//! The corpus, `tests/fuzz-corpus/`, keeps what fuzzing found, in two forms:
//! * `hypothesis/`: Hypothesis' example database (`--generation-database`). Every example that
//!   fails a check is saved there (shrunk), under a key per operation, with others Hypothesis
//!   finds worth keeping; each run replays the saved examples first, then generates new ones from
//!   the seed. A run works on a copy (a run rewrites hundreds of entries, which must not dirty
//!   every checkout that runs the tests); `FUZZ_UPDATE_CORPUS=1` runs on the committed database
//!   itself, to commit what it found with the fix (or, while the fix is elsewhere, so that every
//!   run replays it).
//! * `cases.json`: each failure found so far, written down as a request (from schemathesis'
//!   "Reproduce with" line) with the answer it must get. This test replays them first, over HTTP,
//!   whatever schemathesis and Hypothesis do: the database's entries are Hypothesis' choice
//!   sequences, which mean other requests once the schema or the Hypothesis version changes.

mod support;

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::TestApi;

/// The seed of every run.
const SEED: &str = "20261130";

/// Examples per operation and phase: about 4,500 requests in all, under a minute with one worker
/// on two cores (a debug build of the API).
const MAX_EXAMPLES: &str = "150";

/// Bound on the whole schemathesis run.
const RUN_TIMEOUT: Duration = Duration::from_secs(10 * 60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_wrong() {
    // Missing or other versions: a failure that says how to install them, never a skip.
    if let Err(e) = testkit::tools::python_packages_installed() {
        panic!("the fuzz test needs schemathesis: {e:#}");
    }
    let schemathesis = testkit::tools::schemathesis_path().expect("schemathesis path");
    // Fuzzing is fast: far above the default rate limit, whose 429s are another test's subject.
    let api =
        TestApi::start(&[("API_RATE_LIMIT_PER_S", "1000000"), ("API_RATE_LIMIT_BURST", "1000000")])
            .await;
    let doc = api.get("/api/openapi.json").await.body;
    let corpus = corpus_dir();
    let regressions = replay_cases(&api, &doc, &corpus.join("cases.json")).await;
    seed_graph(&api).await;

    let scratch = testkit::ScratchDir::new("api-fuzz").expect("scratch directory");
    let report_path = scratch.path().join("report.json");
    let database = example_database(&corpus, &scratch);
    let started = Instant::now();
    let run = tokio::process::Command::new(&schemathesis)
        .current_dir(scratch.path())
        .arg("run")
        .arg(format!("{}/api/openapi.json", api.base))
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--header", &format!("Authorization: Bearer {}", api.tokens.admin)])
        .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES, "--workers", "1"])
        .arg("--generation-database")
        .arg(&database)
        .args(["--generation-allow-x00", "true", "--request-timeout", "30"])
        .args(["--no-color", "--output-truncate", "false"])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report_path)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_TIMEOUT:?}"))
        .expect("schemathesis runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = std::fs::read_to_string(&report_path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_else(|| {
            panic!(
                "schemathesis wrote no report ({}):\n{stdout}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let summary = Summary::of(&report);
    eprintln!("schemathesis in {took:.0?}: {summary}");

    let documented = operations(&doc).len();
    let mut problems = regressions;
    if summary.failures > 0 || summary.errors > 0 || !output.status.success() {
        problems.push(format!(
            "schemathesis: {summary}, exit {}; its output:\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    if summary.tested != documented {
        problems.push(format!("schemathesis tested {} of {documented} operations", summary.tested));
    }
    if summary.generated < documented * 20 {
        problems.push(format!("only {} requests generated: {summary}", summary.generated));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert_eq!(api.get("/health/ready").await.status, 200, "the service is unharmed");
}

/// A small graph, so reads and changes reach rows, and an intervention.
async fn seed_graph(api: &TestApi) {
    let seeded =
        api.post("/api/graph/seed", json!({"employees": 50, "avg_reports": 4, "seed": 1})).await;
    assert_eq!(seeded.status, 201, "{}", seeded.text);
    let proposed = api
        .post(
            "/api/interventions",
            json!({"kind": "reassign", "employee_id": 5, "new_manager_id": 1, "reason": "fuzz"}),
        )
        .await;
    assert_eq!(proposed.status, 201, "{}", proposed.text);
}

/// What the JSON report of schemathesis says.
#[derive(Debug)]
struct Summary {
    tested: usize,
    generated: usize,
    failures: usize,
    errors: usize,
    text: String,
}

impl Summary {
    fn of(report: &Value) -> Summary {
        let count = |v: &Value| v.as_u64().unwrap_or(0) as usize;
        let sum =
            |list: &Value| list.as_array().into_iter().flatten().map(|g| count(&g["count"])).sum();
        let failures: Vec<String> = report["failures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| format!("{} {} x{}", g["code"], g["title"], g["count"]))
            .collect();
        Summary {
            tested: count(&report["operations"]["tested"]),
            generated: count(&report["test_cases"]["generated"]),
            failures: sum(&report["failures"]),
            errors: sum(&report["errors"]),
            text: failures.join(", "),
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} operations tested, {} examples generated, {} failures, {} errors",
            self.tested, self.generated, self.failures, self.errors
        )?;
        if !self.text.is_empty() {
            write!(f, " ({})", self.text)?;
        }
        Ok(())
    }
}

/// `<crate>/tests/fuzz-corpus`.
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fuzz-corpus")
}

/// A request the fuzzer once found wrong, and the answer it must get.
#[derive(Debug, Deserialize)]
struct Case {
    /// What was wrong.
    found: String,
    /// The documented operation, e.g. `POST /api/graph/nodes`.
    operation: String,
    /// The path sent (with its query).
    path: String,
    /// The body as JSON (sent as `application/json`) ...
    #[serde(default)]
    json: Option<Value>,
    /// ... or as text, for what JSON values cannot hold (lone surrogates).
    #[serde(default)]
    body: Option<String>,
    /// The status it must get: `201`, or a class: `4xx`.
    expect: String,
}

/// Replays `cases.json`; returns what went wrong.
async fn replay_cases(api: &TestApi, doc: &Value, path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cases: Vec<Case> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a list of cases: {e}", path.display()));
    assert!(!cases.is_empty(), "{} holds no case", path.display());
    let documented = operations(doc);
    let mut problems = Vec::new();
    for case in &cases {
        let (method, template) = case.operation.split_once(' ').expect("`METHOD /path`");
        let method: Method = method.parse().expect("method");
        let body = match (&case.json, &case.body) {
            (Some(v), _) => Some(v.to_string()),
            (None, Some(text)) => Some(text.clone()),
            (None, None) => None,
        };
        let body = body.map(|b| ("application/json", b.into_bytes()));
        let reply = api.send(method.clone(), &case.path, body).await;
        let status = reply.status.as_u16();
        let what = format!("{} {} ({}): {status} {}", method, case.path, case.found, reply.text);
        let wanted = match case.expect.strip_suffix("xx") {
            Some(class) => status.to_string().starts_with(class),
            None => case.expect == status.to_string(),
        };
        if !wanted {
            problems.push(format!("corpus case answered other than {}: {what}", case.expect));
        }
        let statuses = documented
            .iter()
            .find(|(m, t, _)| *m == method && t == template)
            .map(|(_, _, s)| s.clone())
            .unwrap_or_else(|| panic!("{} is not documented", case.operation));
        if !statuses.contains(&status.to_string()) {
            problems.push(format!("undocumented status {status} (has {statuses:?}): {what}"));
        }
        if status >= 400 && reply.header("content-type") != "application/problem+json" {
            problems.push(format!("not a problem: {what}"));
        }
    }
    eprintln!("corpus: {} cases replayed, {} problems", cases.len(), problems.len());
    problems
}

/// Every documented operation: method, path template, its response status codes.
fn operations(doc: &Value) -> Vec<(Method, String, Vec<String>)> {
    let mut out = Vec::new();
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        for (name, operation) in item.as_object().into_iter().flatten() {
            let (Ok(method), Some(responses)) =
                (name.to_uppercase().parse::<Method>(), operation["responses"].as_object())
            else {
                continue;
            };
            out.push((method, template.clone(), responses.keys().cloned().collect()));
        }
    }
    out
}

/// A directory for schemathesis' report (and anything it writes to its working directory),
/// removed afterwards.
/// The Hypothesis database the run uses: the committed one under `FUZZ_UPDATE_CORPUS=1`, else a
/// copy of it in `scratch`.
fn example_database(corpus: &Path, scratch: &testkit::ScratchDir) -> PathBuf {
    let committed = corpus.join("hypothesis");
    if std::env::var("FUZZ_UPDATE_CORPUS").is_ok_and(|v| v == "1") {
        eprintln!("FUZZ_UPDATE_CORPUS=1: the run updates {}", committed.display());
        return committed;
    }
    let copy = scratch.path().join("hypothesis");
    copy_dir(&committed, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", committed.display()));
    copy
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
