//! The ePRO rate limiter's decisions per second: against DynamoDB (the moto emulator, through the
//! real adapter `shared::store::rate_limits::DynamoRateLimiter`: GetItem + conditional PutItem for
//! an allowed request, GetItem only for a refused one) beside the in-process fallback
//! (`InProcessLimiter`, the same arithmetic under a mutex), measured in the same run.
//!
//! `run()` starts a local stack of its own on a moto it starts (the repo's `.venv`), so it needs
//! what `make test` needs. Each figure comes with its anchor: `(figure, value, anchor, value)`.

use shared::resilience::token_limit::{InProcessLimiter, SystemClock, TokenLimit};
use shared::store::rate_limits::{DynamoRateLimiter, RateLimiter};
use std::sync::Arc;
use std::time::Instant;

/// Decisions per second of `decide` over `n` calls.
async fn rate<F, Fut>(n: usize, mut decide: F) -> f64
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    let mut allowed = 0usize;
    for i in 0..n {
        if decide(i).await {
            allowed += 1;
        }
    }
    std::hint::black_box(allowed);
    n as f64 / started.elapsed().as_secs_f64()
}

fn in_process(limit: TokenLimit, n: usize, clients: usize) -> f64 {
    let limiter = InProcessLimiter::new(limit);
    let started = Instant::now();
    let mut allowed = 0usize;
    for i in 0..n {
        let client = format!("client-{}", i % clients);
        if limiter
            .take(&client, chrono::Utc::now().timestamp_millis(), 1)
            .allowed
        {
            allowed += 1;
        }
    }
    std::hint::black_box(allowed);
    n as f64 / started.elapsed().as_secs_f64()
}

/// `(figure, value, anchor, anchor value)` rows, decisions per second.
pub async fn run() -> Vec<(String, f64, String, f64)> {
    let emulator = local_stack::emulator::Emulator::from_env_or_start()
        .expect("the emulator (make setup installs moto)");
    let options = local_stack::Options {
        stack_name: format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        lambda_addr: "127.0.0.1:0".parse().expect("addr"),
        pollers: false,
        admin: emulator.admin.clone(),
        ..local_stack::Options::default()
    };
    let stack = local_stack::LocalStack::start(&emulator.endpoint, options)
        .await
        .expect("local stack");
    let table = stack
        .table("RateLimitsTable")
        .expect("RateLimitsTable")
        .to_owned();
    let limiter = |limit: TokenLimit| {
        DynamoRateLimiter::new(
            stack.clients.dynamodb.clone(),
            table.clone(),
            format!("bench{}", uuid::Uuid::new_v4().simple()),
            limit,
            Arc::new(SystemClock),
            1000,
        )
    };
    const N: usize = 1000;
    let mut rows = Vec::new();

    // Allowed: a burst larger than N, so every decision reads and writes the bucket.
    let open = TokenLimit::new(1000, 1_000_000).expect("limit");
    let shared_open = limiter(open);
    let _ = shared_open.allow("warm-up").await;
    let dynamo = rate(N, |_| async { shared_open.allow("client-0").await.allowed }).await;
    let local = in_process(open, 1_000_000, 1);
    rows.push((
        "limiter decisions/s, allowed (GetItem + conditional PutItem), DynamoDB on moto, one client, sequential".to_owned(),
        dynamo,
        "in-process limiter, same limit, same run".to_owned(),
        local,
    ));

    // Refused: burst 1 at 1/s, so after the first every decision only reads.
    let tight = TokenLimit::new(1, 1).expect("limit");
    let shared_tight = limiter(tight);
    let dynamo = rate(N, |_| async {
        shared_tight.allow("client-0").await.allowed
    })
    .await;
    let local = in_process(tight, 1_000_000, 1);
    rows.push((
        "limiter decisions/s, refused (GetItem only), DynamoDB on moto, one client, sequential"
            .to_owned(),
        dynamo,
        "in-process limiter, same limit, same run".to_owned(),
        local,
    ));

    // Eight concurrent clients (eight Lambda environments' worth of requests), allowed.
    let shared_many = Arc::new(limiter(open));
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|c| {
            let l = Arc::clone(&shared_many);
            tokio::spawn(async move {
                for _ in 0..N / 8 {
                    let _ = l.allow(&format!("client-{c}")).await;
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let dynamo = (N / 8 * 8) as f64 / started.elapsed().as_secs_f64();
    rows.push((
        "limiter decisions/s, allowed, DynamoDB on moto, 8 clients concurrently".to_owned(),
        dynamo,
        "in-process limiter, 8 clients, same run".to_owned(),
        in_process(open, 1_000_000, 8),
    ));
    drop(stack);
    drop(emulator);
    rows
}
