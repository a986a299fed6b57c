//! The cold-start anchor measured in the same run (`coldstart` group): a lambda_runtime binary with
//! a no-op handler, no SDK clients, built with the same release profile as the functions. Its init
//! (process start → first `GET /2018-06-01/runtime/invocation/next`) is what Rust + tokio +
//! lambda_runtime cost before any function's own work.

use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(())
    }))
    .await
}
