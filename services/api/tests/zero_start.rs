//! The API: every counter it records exists at 0 before its first event, for exactly
//! the label sets the API has (its pools, breakers, caches, the queues it sends to, the
//! intervention kind it accepts), so a first pool timeout or rejected call is a visible 0 → 1 step
//! rather than a series born at 1. Building the state is enough: no request, and no Postgres or
//! Redis (the API connects lazily). (Its own test binary: the global meter provider is per
//! process.)

use otel::FromEnv;
use otel::metrics::testing::Recorder;
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_counter_of_the_api_starts_at_zero_for_its_label_sets() {
    let recorder = Recorder::global();
    let config = api::Config::from_lookup(|k| match k {
        // Nothing listens there; nothing is asked.
        "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:9/orgraph".into()),
        "REDIS_URL" => Some("redis://127.0.0.1:9".into()),
        "API_TOKENS_FILE" => Some("/unused: no request is served".into()),
        _ => None,
    })
    .expect("config");
    let _state = api::AppState::new(&config).expect("state");

    let points = recorder.collect();
    points.assert_conforms();
    let series = points.counters_at_zero();
    let got: BTreeSet<&str> = series.iter().map(String::as_str).collect();

    let mut want = BTreeSet::new();
    for pool in ["postgres", "redis"] {
        want.insert(format!(
            "db.client.connection.timeouts{{db.client.connection.pool.name={pool}}}"
        ));
        for outcome in ["failure", "rejected", "success"] {
            want.insert(format!(
                "orgraph.circuit_breaker.calls{{circuit_breaker.name={pool},circuit_breaker.outcome={outcome}}}"
            ));
        }
    }
    for (layer, name) in [("l1", "graph_stats"), ("l2", "graph_stats"), ("l1", "job_status")] {
        for result in ["hit", "miss"] {
            want.insert(format!(
                "orgraph.cache.requests{{cache.layer={layer},cache.name={name},cache.result={result}}}"
            ));
        }
    }
    for queue in ["analysis", "export", "intervention"] {
        want.insert(format!(
            "messaging.client.sent.messages{{messaging.destination.name={queue},messaging.operation.name=send,messaging.system=apalis_postgres}}"
        ));
    }
    want.insert("orgraph.intervention.proposals{intervention.kind=reassign}".to_string());
    let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();

    assert_eq!(got, want, "the API's counter series before any event");
    assert_eq!(got.len(), 18, "the count documented at AppState::new");
}
