//! The library every clinflow function stands on.
//!
//! - [`domain`]: the values of the trial world, parsed once at the edge (`SubjectId`, `Sha256Digest`, ...)
//!   and the upload record with its status lifecycle;
//! - [`clinical`]: subjects, EDC forms (CDISC ODM-shaped, validated against a catalogue) and ePRO
//!   diary entries: the data the report reads and the clinical routes write;
//! - [`events`]: the imaging events one stage publishes and the next consumes (one struct for both);
//! - [`identity`]: wrong-patient detection by a keyed hash of the Patient ID (never the value);
//! - [`exports`]: a subject history export: its request, lifecycle (QUEUED → RUNNING → DONE | FAILED) and queue message;
//! - [`store`]: the ports (small traits) the handlers take, and their AWS adapters;
//! - [`auth`]: who is calling (JWT claims put in the request context by the HttpApi authorizer) and
//!   what they may see;
//! - [`reference`]: drug codes and sites: the published snapshot and the lock-free cache readers share;
//! - [`problem`]: RFC 9457 problem responses, the one shape every error takes on the wire;
//! - [`config`], [`aws`], [`telemetry`]: environment, SDK clients and JSON logs, built once per cold start;
//! - [`metrics`]: counts and latencies as CloudWatch Embedded Metric Format;
//! - [`resilience`]: the breaker, deadline budgets and the token bucket's arithmetic (clock injected, no I/O);
//! - [`report`]: the subject risk report: its sources (ports and adapters), the fan-out under breakers and the deadline, the risk score;
//! - [`notification`]: S3 notifications inside SQS bodies (the ingest queue and its DLQ).

pub mod auth;
pub mod aws;
pub mod clinical;
pub mod config;
pub mod domain;
pub mod events;
pub mod exports;
pub mod identity;
pub mod metrics;
pub mod notification;
pub mod problem;
pub mod reference;
pub mod report;
pub mod request;
pub mod resilience;
pub mod store;
pub mod telemetry;

pub use inspection::{dicom, inspect, scan};
