//! `cargo run --release -p clinflow-benchmarks --bin rate-limit-bench`: the rate limiter's
//! decisions per second ([`rate_limit::run`]), until `make bench` calls it.

#[path = "rate_limit.rs"]
mod rate_limit;

#[tokio::main]
async fn main() {
    for (figure, value, anchor, anchor_value) in rate_limit::run().await {
        println!("{figure}: {value:.0}/s | {anchor}: {anchor_value:.0}/s");
    }
}
