//! The S3 tags an outcome's copy carries (what the scanner said, why it was quarantined, which
//! upload), with values cut to what S3 accepts.

use shared::scan::Verdict;

pub fn scan_tag(v: &Verdict) -> &'static str {
    match v {
        Verdict::Clean => "clean",
        Verdict::Infected { .. } => "infected",
        Verdict::Unscannable { .. } => "unscannable",
    }
}

/// S3 tag values: at most 256 of letters, digits, spaces and `+ - = . _ : / @`.
pub fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " +-=._:/@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(256)
        .collect()
}

/// Tags of an accepted copy.
pub fn accepted(upload: &str) -> Vec<(&'static str, String)> {
    vec![
        ("clinflow-scan", "clean".into()),
        ("clinflow-upload", upload.to_owned()),
    ]
}

/// Tags of a quarantined copy.
pub fn quarantined(verdict: &Verdict, reason: &str, upload: &str) -> Vec<(&'static str, String)> {
    vec![
        ("clinflow-scan", scan_tag(verdict).into()),
        ("clinflow-reason", tag_value(reason)),
        ("clinflow-upload", upload.to_owned()),
    ]
}

/// Tags of a stray object's copy (never scanned).
pub fn stray(reason: &str) -> Vec<(&'static str, String)> {
    vec![
        ("clinflow-scan", "unscanned".into()),
        ("clinflow-reason", tag_value(reason)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_values_are_sanitised() {
        assert_eq!(
            tag_value("malformed: (0010,0020) is long"),
            "malformed: _0010_0020_ is long"
        );
        assert_eq!(tag_value(&"x".repeat(300)).len(), 256);
        assert_eq!(
            quarantined(&Verdict::Clean, "a(b)", "u")[1],
            ("clinflow-reason", "a_b_".to_owned())
        );
    }
}
