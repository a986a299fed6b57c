//! The subject risk report: four sources read concurrently under the invocation's deadline, each
//! behind its own port, timeout and circuit breaker, and a risk assessment computed from what came
//! back.
//!
//! - [`sources`]: the ports (demographics, EDC, ePRO, imaging) and the errors a source may give;
//! - [`store_sources`]: the default adapters, over the store ports (DynamoDB);
//! - [`http`]: an HTTP adapter per source (base URL and timeout from configuration; the JSON
//!   contract is documented there and in openapi.yaml's `components.schemas.Source*`), so a
//!   deployment can point EDC or ePRO at an external system;
//! - [`aggregate`]: the fan-out (every source at once; a call's budget is its own timeout or what
//!   is left of the deadline, whichever is less; a late call is cancelled by dropping it) and the
//!   report's JSON;
//! - [`risk`]: the score, its reasons and its level (pure, deterministic).

pub mod aggregate;
pub mod http;
pub mod risk;
pub mod sources;
pub mod store_sources;

pub use aggregate::{Aggregator, Report, SourceConfig};
pub use sources::{
    Demographics, EdcSource, EproSource, ImagingSource, ImagingStatus, SourceError, SourceName,
};
