//! What authentication costs per request, so the token check's price is measured rather than
//! assumed. One GET through an axum router (`oneshot`, body read to the end) on a current-thread
//! runtime, with a tokens file of 10 tokens:
//!
//! * `no_auth`: the route alone, the baseline;
//! * `auth_and_rate_limit`: the same route behind the API's authentication middleware and the
//!   per-token rate limit (a limit far above what one core sends, so every request passes both),
//!   as every `/api/*` route runs;
//! * `verify_token`: the token check alone (a SHA-256 and 10 constant-time comparisons).

#![allow(clippy::unwrap_used, missing_docs)]

use api::auth::layer::authenticate;
use api::auth::{Role, Tokens, limit, tokens};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use std::hint::black_box;
use std::sync::Arc;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const TOKEN: &str = "6b0157861ce2712521ecedd2332e7d3901934e3a4fe3da38481c1acc6b8530e2";

fn routes() -> Router {
    Router::new().route("/api/graph/stats", get(|| async { r#"{"nodes":1000}"# }))
}

fn tokens() -> Tokens {
    let mut text = String::new();
    for i in 0..9 {
        text.push_str(&tokens::line(&format!("other-{i}"), Role::Read, &format!("other-{i}")));
        text.push('\n');
    }
    text.push_str(&tokens::line("bench", Role::Admin, TOKEN));
    Tokens::parse(&text).unwrap()
}

fn one_request(runtime: &Runtime, app: &Router) {
    runtime.block_on(async {
        let request = Request::get("/api/graph/stats")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert!(response.status().is_success());
        black_box(response.into_body().collect().await.unwrap().to_bytes());
    });
}

fn auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("auth");

    let bare = routes();
    group.bench_function("no_auth", |b| b.iter(|| one_request(&runtime, &bare)));

    let guarded = routes()
        .layer(limit::layer(u32::MAX, u32::MAX))
        .layer(axum::middleware::from_fn_with_state(Arc::new(tokens()), authenticate));
    group.bench_function("auth_and_rate_limit", |b| b.iter(|| one_request(&runtime, &guarded)));

    let tokens = tokens();
    group.bench_function("verify_token", |b| b.iter(|| black_box(tokens.verify(black_box(TOKEN)))));

    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
