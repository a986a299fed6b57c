//! openapi.yaml: it describes exactly the routes template.yaml wires, and its checker (which every
//! response of these tests goes through, see `clinflow_tests::openapi`) refuses what it does not
//! document.

use clinflow_tests::openapi::spec;
use serde_json::json;

#[test]
fn openapi_describes_exactly_the_routes_of_the_template() {
    let routes = clinflow_tests::template_routes();
    assert_eq!(spec().operations(), routes);
    // Every operation documents the answers every route can give.
    for (method, path) in spec().operations() {
        let responses = &spec().doc["paths"][&path][method.to_lowercase()]["responses"];
        for status in ["401", "404", "429", "500", "503"] {
            assert!(
                responses.get(status).is_some(),
                "{method} {path} does not document {status}"
            );
        }
    }
}

#[test]
fn the_checker_refuses_what_openapi_does_not_document() {
    let problem = json!({"type": "/problems/not-found", "title": "Not found", "status": 404});
    let s = spec();
    assert!(s
        .check(
            "GET",
            "/v1/uploads/x",
            404,
            "application/problem+json",
            &problem
        )
        .is_ok());
    // A status the operation does not list.
    assert!(s
        .check(
            "GET",
            "/v1/uploads/x",
            418,
            "application/problem+json",
            &problem
        )
        .is_err());
    // A content type the response does not list.
    assert!(s
        .check("GET", "/v1/uploads/x", 404, "text/html", &problem)
        .is_err());
    // A problem type that is not one of the documented slugs.
    let unknown = json!({"type": "/problems/oops", "title": "Oops", "status": 404});
    assert!(s
        .check(
            "GET",
            "/v1/uploads/x",
            404,
            "application/problem+json",
            &unknown
        )
        .is_err());
    // A record with a field the schema does not have.
    let err = s
        .check(
            "GET",
            "/v1/uploads/x/parts",
            200,
            "application/json",
            &json!({"uploadId": "x", "surprise": true}),
        )
        .unwrap_err();
    assert!(err.contains("does not match"), "{err}");
}

/// A QUARANTINED record's `statusReason` is one of the reasons process-dicom writes (`decide`), so
/// every quarantine the pipeline tests read through the API is checked against that list; a reason
/// the code adds without documenting it fails them.
#[test]
fn quarantine_reasons_are_the_ones_process_dicom_writes() {
    let text = std::fs::read_to_string(local_stack::emulator::repo_root().join("openapi.yaml"))
        .expect("openapi.yaml");
    let doc: serde_json::Value = serde_yaml::from_str(&text).expect("YAML");
    let rule = &doc["components"]["schemas"]["UploadProperties"];
    assert_eq!(rule["if"]["properties"]["status"]["const"], "QUARANTINED");
    let then = jsonschema::validator_for(&rule["then"]).expect("a schema");
    for reason in [
        "malware: Eicar-Test-Signature",
        "unscannable: stream longer than clamd's StreamMaxLength",
        "size_mismatch: declared 700 bytes, received 699",
        "checksum_mismatch",
        "not_dicom",
        "malformed: no SOP Instance UID (0008,0018)",
        "malformed: element (7FE0,0010) runs past the end of the object",
    ] {
        assert!(
            then.is_valid(&json!({ "statusReason": reason })),
            "{reason}"
        );
    }
    for reason in [
        "infected",
        "size_mismatch",
        "checksum_mismatch: x",
        "clean",
        "",
    ] {
        assert!(
            !then.is_valid(&json!({ "statusReason": reason })),
            "{reason}"
        );
    }
    assert!(!then.is_valid(&json!({})), "a quarantine always says why");
}
