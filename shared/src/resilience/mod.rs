//! Resilience against slow or failing dependencies:
//! - [`breaker`]: go-zero's client-side throttling (the Google SRE breaker), one per dependency;
//! - [`deadline`]: budgets carved from the remaining Lambda time, so a function answers before it
//!   is killed.

pub mod breaker;
pub mod deadline;
