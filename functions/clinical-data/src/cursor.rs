//! Opaque page cursors: base64url (no padding) of `{"v":1,"scope":..,"after":..}`. A cursor is
//! bound to the list it came from (the scope: a site, a subject's diary, a subject's trail): any
//! other cursor is refused with 400, never read as a position of another list.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Cursor {
    v: u8,
    scope: String,
    after: String,
}

pub(crate) const BAD_CURSOR: &str = "is not a cursor this list issued";

pub(crate) fn encode(scope: &str, after: &str) -> String {
    let json = serde_json::to_vec(&Cursor {
        v: VERSION,
        scope: scope.to_owned(),
        after: after.to_owned(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The position `raw` names, if this list (`scope`) issued it.
pub(crate) fn decode(raw: &str, scope: &str) -> Option<String> {
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .ok()?;
    let cursor: Cursor = serde_json::from_slice(&json).ok()?;
    (cursor.v == VERSION && cursor.scope == scope && !cursor.after.is_empty())
        .then_some(cursor.after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_bound_to_its_list() {
        let c = encode("site#S1", "SUBJ-2");
        assert_eq!(decode(&c, "site#S1").as_deref(), Some("SUBJ-2"));
        assert_eq!(decode(&c, "site#S2"), None);
        assert_eq!(decode("not-a-cursor", "site#S1"), None);
        assert_eq!(decode("", "site#S1"), None);
    }
}
