//! The export worker (template.yaml: ExportWorkerFunction): consumes the exports queue and writes
//! a subject's history to S3 as CSV ([`csv_export`]) or as a PDF report ([`pdf`], with the diary
//! aggregated by [`pain`]). The only binary that links the PDF writer.

pub mod csv_export;
pub mod export;
pub mod pain;
pub mod pdf;
pub mod worker;

pub use worker::ExportWorker;
