//! Black-box tests of the HTTP API on the local stack: real handlers, real AWS SDK, the emulator.

mod auth;
mod bad_input;
mod clinical_auth;
mod copy;
mod corpus;
mod crash_windows;
mod deploy;
mod epro;
mod events;
mod failures;
mod forms;
mod iam;
mod identifiers;
mod invoke;
mod lists;
mod multipart;
mod openapi;
mod pipeline;
mod pollers;
mod races;
mod rate_limit;
mod report;
mod single_put;
mod subjects;
mod template;
