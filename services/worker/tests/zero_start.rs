//! The worker: every counter it records exists at 0 before its first event, for exactly the label
//! sets the worker has (the queues it takes jobs from, its task types with every status, the
//! export kinds, formats and statuses, the intervention outcomes, the export retention's reasons
//! and outcomes), so the first timeout, failed export or failed intervention is a visible 0 → 1
//! step rather than a series born at 1. Building the job context is enough: no job, and no
//! Postgres (the pool connects lazily). (Its own test binary: the global meter provider is per
//! process.)

use otel::FromEnv;
use otel::metrics::testing::Recorder;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counter_of_the_worker_starts_at_zero_for_its_label_sets() {
    let recorder = Recorder::global();
    // Nothing listens there; nothing is asked.
    let url = "postgres://postgres@127.0.0.1:9/orgraph";
    let config = worker::Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.to_string()))
        .expect("config");
    let pool = sqlx::postgres::PgPoolOptions::new().connect_lazy(url).expect("lazy pool");
    let _ctx = worker::Ctx::new(pool, config);

    let points = recorder.collect();
    points.assert_conforms();
    let series = points.counters_at_zero();
    let got: BTreeSet<&str> = series.iter().map(String::as_str).collect();

    let mut want = BTreeSet::new();
    for queue in ["analysis", "export", "intervention"] {
        want.insert(format!(
            "messaging.client.consumed.messages{{messaging.destination.name={queue},messaging.operation.name=receive,messaging.system=apalis_postgres}}"
        ));
    }
    for task in ["analysis", "export", "intervention_execute", "intervention_rollback"] {
        for status in ["success", "failure", "retry", "timeout", "panic"] {
            want.insert(format!("orgraph.task.completed{{task.status={status},task.type={task}}}"));
        }
    }
    for format in ["csv", "jsonl"] {
        for status in ["success", "failure", "timeout"] {
            want.insert(format!(
                "orgraph.export.requests{{export.format={format},export.kind=employee_metrics,export.status={status}}}"
            ));
        }
    }
    for name in ["executions", "rollbacks"] {
        for outcome in ["success", "failure"] {
            want.insert(format!(
                "orgraph.intervention.{name}{{intervention.kind=reassign,intervention.outcome={outcome}}}"
            ));
        }
    }
    for reason in ["age", "count"] {
        want.insert(format!(
            "orgraph.export.retention.removed{{export.retention.reason={reason}}}"
        ));
    }
    for outcome in ["success", "failure"] {
        want.insert(format!("orgraph.export.retention.runs{{export.retention.outcome={outcome}}}"));
    }
    let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();

    assert_eq!(got, want, "the worker's counter series before any event");
    assert_eq!(got.len(), 37, "the count documented at Ctx::start_counters_at_zero");
}
