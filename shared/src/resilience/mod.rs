//! Resilience against slow, failing or flooding callers and dependencies, clock injected, no I/O:
//! - [`backoff`]: how long a failed queue message waits before it comes back;
//! - [`breaker`]: go-zero's client-side throttling (the Google SRE breaker), one per dependency;
//! - [`deadline`]: budgets carved from the remaining Lambda time, so a function answers before it
//!   is killed;
//! - [`token_limit`]: the per-client token bucket. The adapters that keep its state live in
//!   [`crate::store`].

pub mod backoff;
pub mod breaker;
pub mod deadline;
pub mod token_limit;
