//! What pydicom reads from the corpus (scripts/dicom_reference.py), and our header in the same shape.

use local_stack::emulator::repo_root;
use serde_json::Value;
use shared::dicom::{DicomHeader, PatientId};
use std::collections::BTreeMap;
use std::process::Command;

fn python() -> std::path::PathBuf {
    repo_root().join(".venv/bin/python")
}

fn script() -> std::path::PathBuf {
    repo_root().join("scripts/dicom_reference.py")
}

pub fn corpus() -> Vec<String> {
    let out = Command::new(python())
        .arg(script())
        .arg("--list")
        .output()
        .expect("python (make setup)");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

pub fn reference(files: &[String]) -> BTreeMap<String, Value> {
    let out = Command::new(python())
        .arg(script())
        .args(files)
        .output()
        .expect("python");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["file"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

pub fn ours(h: &DicomHeader) -> BTreeMap<&'static str, Value> {
    let s = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let i = |v: Option<i64>| v.map(Value::from).unwrap_or(Value::Null);
    BTreeMap::from([
        ("transferSyntax", s(&h.transfer_syntax)),
        ("SOPClassUID", s(&h.sop_class_uid)),
        ("SOPInstanceUID", s(&h.sop_instance_uid)),
        ("StudyInstanceUID", s(&h.study_instance_uid)),
        ("SeriesInstanceUID", s(&h.series_instance_uid)),
        ("Modality", s(&h.modality)),
        ("StudyDate", s(&h.study_date)),
        ("StudyTime", s(&h.study_time)),
        ("BodyPartExamined", s(&h.body_part_examined)),
        ("Manufacturer", s(&h.manufacturer)),
        ("SeriesNumber", i(h.series_number)),
        ("InstanceNumber", i(h.instance_number)),
        ("NumberOfFrames", i(h.number_of_frames)),
        ("Rows", i(h.rows.map(i64::from))),
        ("Columns", i(h.columns.map(i64::from))),
        (
            "pixelData",
            h.pixel_data
                .map(|p| serde_json::json!({"length": p.length, "encapsulated": p.encapsulated}))
                .unwrap_or(Value::Null),
        ),
        ("identifying", Value::from(h.identifying_attributes.clone())),
    ])
}

/// The Patient ID the parser handed out apart from the header, against pydicom's (`None` when
/// they agree). Compared as text: pydicom's value is decoded, ours is the raw bytes.
pub fn patient_id_difference(ours: Option<&PatientId>, reference: &Value) -> Option<String> {
    let theirs = reference["fields"]["PatientID"]
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let ours = ours.map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned());
    (ours.as_deref() != theirs).then(|| format!("PatientID: ours {ours:?} pydicom {theirs:?}"))
}

/// Files pydicom reads (leniently: it pads what is missing) that the parser refuses, with why.
/// A truncated upload is quarantined with the defect named, never half-accepted.
pub const DOCUMENTED: &[(&str, &str)] = &[
    // Pixel data shorter than its fragments say.
    (
        "emri_small_jpeg_2k_lossless_too_short.dcm",
        "malformed: truncated: the object ends inside encapsulated pixel data",
    ),
    // Pixel data declared 8192 bytes, 8130 present.
    (
        "MR_truncated.dcm",
        "malformed: (7FE0,0010) at byte 1500 claims 8192 bytes but only 8130 remain",
    ),
    // A sequence declared longer than the file.
    (
        "rtplan_truncated.dcm",
        "malformed: (300A,00B0) at byte 1418 claims 976 bytes but only 711 remain",
    ),
];

/// Where our header and pydicom's reading of the same file differ, one line per attribute.
pub fn differences(h: &DicomHeader, reference: &Value) -> Vec<String> {
    let theirs = reference["fields"].as_object().cloned().unwrap_or_default();
    ours(h)
        .iter()
        .filter(|(k, v)| theirs.get(**k) != Some(*v))
        .map(|(k, v)| {
            format!(
                "{k}: ours {v} pydicom {}",
                theirs.get(*k).unwrap_or(&Value::Null)
            )
        })
        .collect()
}
