//! Black-box tests of the HTTP API on the local stack: real handlers, real AWS SDK, the emulator.

mod auth;
mod bad_input;
mod copy;
mod corpus;
mod deploy;
mod events;
mod multipart;
mod openapi;
mod pipeline;
mod pollers;
mod single_put;
mod template;
