//! S3 notifications inside SQS bodies (the ingest queue and its dead-letter queue). Parsed from JSON by hand rather than into
//! `aws_lambda_events::s3::S3Event`: emulators omit fields that type requires, and one odd message
//! must fail alone, with a reason, never the batch.

use serde_json::Value;

/// One object the bucket says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// URL-decoded (S3 encodes keys in events: `/` may come as `%2F`, a space as `+`).
    pub key: String,
    pub size: u64,
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

impl ObjectCreated {
    /// What is claimed while the object is processed: its key, which names one upload, so two
    /// versions of one upload's key are never processed at the same time.
    pub fn claim_key(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// What makes two deliveries the same work: the object version (or, unversioned, its ETag).
    pub fn version(&self) -> &str {
        self.version_id
            .as_deref()
            .or(self.etag.as_deref())
            .unwrap_or("unversioned")
    }

    /// The upload a key under `prefix` names (`<prefix><trial>/<site>/<subject>/<uploadId>.dcm`).
    pub fn upload_id(&self, prefix: &str) -> Option<crate::domain::UploadId> {
        self.key
            .strip_prefix(prefix)?
            .rsplit('/')
            .next()
            .and_then(|name| name.strip_suffix(".dcm"))
            .and_then(|id| crate::domain::UploadId::parse(id).ok())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// The `s3:TestEvent` S3 sends when a notification is configured: nothing to do.
    Test,
    Created(Vec<ObjectCreated>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an S3 notification: {0}")]
pub struct NotANotification(pub String);

pub fn parse(body: &str) -> Result<Notification, NotANotification> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| NotANotification(format!("not JSON ({e})")))?;
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::Test);
    }
    let records = v
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| NotANotification("no Records".into()))?;
    let mut created = Vec::new();
    for r in records {
        let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
        if !name.starts_with("ObjectCreated:") {
            continue;
        }
        let s3 = r
            .get("s3")
            .ok_or_else(|| NotANotification("record without s3".into()))?;
        let bucket = s3
            .pointer("/bucket/name")
            .and_then(Value::as_str)
            .ok_or_else(|| NotANotification("record without bucket name".into()))?;
        let raw_key = s3
            .pointer("/object/key")
            .and_then(Value::as_str)
            .ok_or_else(|| NotANotification("record without object key".into()))?;
        let key = decode_key(raw_key)
            .ok_or_else(|| NotANotification("object key is not valid URL encoding".into()))?;
        created.push(ObjectCreated {
            bucket: bucket.to_owned(),
            key,
            size: s3
                .pointer("/object/size")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            version_id: s3
                .pointer("/object/versionId")
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty() && *v != "null")
                .map(str::to_owned),
            etag: s3
                .pointer("/object/eTag")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    Ok(Notification::Created(created))
}

/// S3 event keys are URL-encoded with `+` for spaces.
pub fn decode_key(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_and_test_events_recognised() {
        assert_eq!(
            decode_key("incoming%2FT%2FS+1%2Fa%2Bb.dcm").unwrap(),
            "incoming/T/S 1/a+b.dcm"
        );
        assert!(decode_key("bad%zz").is_none());
        assert_eq!(
            parse(r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#).unwrap(),
            Notification::Test
        );
        let n = parse(
            r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"incoming%2Fx.dcm","size":5,"versionId":"v1","eTag":"e"}}},
                           {"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"y"}}}]}"#,
        )
        .unwrap();
        let Notification::Created(c) = n else {
            panic!()
        };
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key, "incoming/x.dcm");
        assert_eq!(c[0].claim_key(), "b/incoming/x.dcm");
        assert_eq!(c[0].version(), "v1");
        assert_eq!(c[0].upload_id("incoming/"), None);
        let id = crate::domain::UploadId::generate();
        let named = ObjectCreated {
            key: format!("incoming/T/S/SUBJ-1/{id}.dcm"),
            ..c[0].clone()
        };
        assert_eq!(named.upload_id("incoming/"), Some(id));
        assert_eq!(named.upload_id("accepted/"), None);
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
    }
}
