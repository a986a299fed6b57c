//! The one-pass inspection of an upload, kept free of AWS so it builds and benchmarks on its own:
//! - [`inspect`]: every byte once through SHA-256, the scanner and the DICOM parser;
//! - [`dicom`]: the bounded DICOM header push parser;
//! - [`scan`]: the Scanner port, the built-in ClamAV-format engine and the clamd adapter.
//!
//! `shared` re-exports these modules (`shared::dicom`, `shared::scan`, `shared::inspect`).

pub mod dicom;
pub mod inspect;
pub mod scan;
