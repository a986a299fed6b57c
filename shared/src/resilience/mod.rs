//! Resilience arithmetic with no I/O in it, clock injected: the per-client token bucket
//! ([`token_limit`]). The adapters that keep its state live in [`crate::store`].

pub mod token_limit;
