//! `cargo run --release -p clinflow-benchmarks --bin report-bench`: the subject report's latency
//! with injected source latencies ([`report::run`]), until `make bench` calls it.

#[path = "report.rs"]
mod report;

#[tokio::main]
async fn main() {
    for (figure, value, anchor, anchor_value) in report::run().await {
        println!("{figure}: {value:.1} ms | {anchor}: {anchor_value:.1} ms");
    }
}
