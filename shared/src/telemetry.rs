//! JSON logs for CloudWatch: one object per line, with the fields of the current span (request id,
//! correlation id, upload id) so a log line can be followed from the API request into the queues.
//! Nothing here logs payloads: patient data never reaches a log line.

use tracing_subscriber::EnvFilter;

/// Installs the JSON subscriber once; later calls (tests, the local stack) are no-ops.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_default()))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(true)
        .without_time()
        .try_init();
}

/// Human-readable logs for a developer's terminal (the local stack).
pub fn init_pretty() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}
