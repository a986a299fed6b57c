//! Black-box tests of the HTTP API on the local stack: real handlers, real AWS SDK, the emulator.

mod access;
mod auth;
mod bad_input;
mod console;
mod copy;
mod corpus;
mod crash_windows;
mod deploy;
mod events;
mod failures;
mod hostile;
mod iam;
mod identifiers;
mod invoke;
mod lists;
mod multipart;
mod openapi;
mod pipeline;
mod pollers;
mod races;
mod reference;
mod single_put;
mod template;
