//! What the handler logs carries the request and correlation ids but no patient data.
//!
//! This is the only test of its binary: tracing caches each callsite's interest process-wide, and a
//! test on another thread that reached a callsite first without a subscriber made this one's span
//! vanish now and then. Alone in its process, the capture below sees every line.

mod ports;

use ports::*;
use std::io::Write;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_carry_the_ids_and_no_patient_data() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .flatten_event(true)
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        let api = UploadApi::with_ports(
            config(),
            Arc::new(Subjects { down: false }),
            Arc::new(Uploads { down: false }),
            Arc::new(Objects::default()),
        );
        for body in [
            declaration(1000, "DOE_JANE_1961-04-02.dcm"),
            declaration(0, "DOE_JANE_1961-04-02.dcm"),
        ] {
            let response = runtime.block_on(api.handle(create_request(body)));
            assert!(response.status().as_u16() < 500);
        }
    });
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{logs}");
    for line in &lines {
        assert_eq!(line["span"]["request_id"], "JKJaXmPLvHcESHA=", "{line}");
        assert_eq!(line["span"]["correlation_id"], "sample-event-1", "{line}");
    }
    for phi in ["DOE_JANE", "1961-04-02", "SUBJ-0001", "3dd31e5cc835"] {
        assert!(!logs.contains(phi), "{phi} reached a log line: {logs}");
    }
}
