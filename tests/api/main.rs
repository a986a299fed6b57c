//! Black-box tests of the HTTP API on the local stack: real handlers, real AWS SDK, the emulator.

mod auth;
mod bad_input;
mod corpus;
mod events;
mod identifiers;
mod multipart;
mod openapi;
mod pipeline;
mod pollers;
mod single_put;
mod template;
