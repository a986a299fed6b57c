//! The permissions the code needs, proven: every function of the local stack runs under its own
//! template role with the emulator's IAM enforcement on (local-stack/src/roles.rs), so the rest of
//! this suite fails when the template lacks a permission the code uses. These tests check the
//! enforcement itself and the rules the roles keep.

use clinflow_tests::*;
use local_stack::emulator::{repo_root, AccessKeys};
use local_stack::roles::{roles, Role};
use serde_json::Value;
use std::collections::BTreeMap;

fn statements(role: &Role) -> Vec<&Value> {
    role.policies
        .iter()
        .flat_map(|(_, document)| match &document["Statement"] {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            single => vec![single],
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    }
}

async fn stack_roles(app: &TestApp) -> BTreeMap<String, Role> {
    roles(&repo_root().join("template.yaml"), &app.stack.template).expect("roles")
}

#[tokio::test]
async fn the_audit_trail_is_append_only_and_no_role_holds_what_it_does_not_use() {
    let app = spawn_app().await;
    let roles = stack_roles(&app).await;
    let functions: Vec<&String> = app.stack.functions.keys().collect();
    assert_eq!(
        roles.keys().collect::<Vec<_>>(),
        functions,
        "every function of the template has its role"
    );
    let table_arn = |logical: &str| {
        format!(
            "arn:aws:dynamodb:us-east-1:123456789012:table/{}",
            app.table(logical)
        )
    };
    let audit = table_arn("AuditTable");
    let idempotency = table_arn("IdempotencyTable");
    for (function, role) in &roles {
        for st in statements(role) {
            let actions = strings(&st["Action"]);
            let resources = strings(&st["Resource"]);
            assert_eq!(st["Effect"], "Allow", "{function}: {st}");
            for action in &actions {
                assert!(
                    !action.contains('*'),
                    "{function}: wildcard action {action}"
                );
                assert!(
                    !["dynamodb:Scan", "dynamodb:BatchWriteItem"].contains(&action.as_str()),
                    "{function}: {action} is used by nothing"
                );
                if action == "dynamodb:DeleteItem" {
                    assert_eq!(
                        resources,
                        vec![idempotency.clone()],
                        "{function}: DeleteItem only releases claims"
                    );
                }
            }
            // The audit trail is append-only: a statement on it adds items or reads them, never
            // updates or deletes (and reading is a statement of its own).
            if resources.iter().any(|r| r.starts_with(&audit)) {
                assert!(
                    actions == vec!["dynamodb:PutItem"] || actions == vec!["dynamodb:Query"],
                    "{function}: the audit trail is append-only: {actions:?}"
                );
            }
        }
    }
}

/// Real S3 answers a GET or HEAD of a missing key with 403 unless the caller may list the bucket
/// with that key as `s3:prefix`: every function that reads an object's absence holds that.
#[tokio::test]
async fn every_function_that_reads_objects_may_list_their_prefix() {
    let app = spawn_app().await;
    let bucket_arn = format!("arn:aws:s3:::{}", app.bucket());
    for (function, role) in stack_roles(&app).await {
        let sts = statements(&role);
        let listed: Vec<String> = sts
            .iter()
            .filter(|st| strings(&st["Action"]).contains(&"s3:ListBucket".to_owned()))
            .filter(|st| strings(&st["Resource"]).contains(&bucket_arn))
            .flat_map(|st| strings(&st["Condition"]["StringLike"]["s3:prefix"]))
            .collect();
        for st in &sts {
            if !strings(&st["Action"]).contains(&"s3:GetObject".to_owned()) {
                continue;
            }
            for resource in strings(&st["Resource"]) {
                let Some(prefix) = resource.strip_prefix(&format!("{bucket_arn}/")) else {
                    continue;
                };
                assert!(
                    listed.iter().any(|p| p == prefix),
                    "{function} reads {prefix} but may not list it (S3 would answer 403 for a missing key): {listed:?}"
                );
            }
        }
    }
}

/// The reason for the ListBucket grant, seen from outside: aborting a single-PUT upload asks S3
/// whether its bytes arrived. Without the grant S3 answers 403 for the missing key and the abort
/// fails (500, nothing written); with it, 404, and the upload is aborted.
#[tokio::test]
async fn without_list_bucket_aborting_an_upload_not_yet_sent_fails_as_in_aws() {
    let file = dicom_file("CT_small.dcm");
    let fine = spawn_app().await;
    let created = fine.create_upload("SUBJ-0001", &file).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap();
    let aborted = fine
        .delete(&format!("/v1/uploads/{id}"), &fine.staff())
        .await;
    assert_eq!(aborted.status, 200, "{}", aborted.body);
    assert_eq!(aborted.body["status"], "ABORTED");

    let broken = spawn_app_from(template_without_statement("KnowWhatIsNotThereYet")).await;
    let created = broken.create_upload("SUBJ-0001", &file).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["uploadId"].as_str().unwrap();
    let refused = broken
        .delete(&format!("/v1/uploads/{id}"), &broken.staff())
        .await;
    assert_eq!(
        refused.problem(500),
        "/problems/internal",
        "S3 answers 403 without ListBucket"
    );
    let record = broken
        .get(&format!("/v1/uploads/{id}"), &broken.staff())
        .await;
    assert_eq!(record.body["status"], "AWAITING_UPLOAD");
}

async fn as_function(app: &TestApp, function: &str) -> shared::aws::AwsClients {
    let keys: &AccessKeys = app.stack.functions[function]
        .credentials
        .as_ref()
        .expect("IAM is enforced on the tests' emulator");
    local_stack::emulator_clients(&endpoint(), "us-east-1", Some(keys)).await
}

/// Each function calls AWS as its own role: what its role allows passes, anything else is refused.
#[tokio::test]
async fn each_function_calls_aws_with_its_own_role_only() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let app = spawn_app().await;
    let audit = app.table("AuditTable");
    let uploads = app.table("UploadsTable");
    let upload_url = as_function(&app, "UploadUrlFunction").await;
    let key = |v: &str| {
        [
            ("entity".to_owned(), AttributeValue::S(v.into())),
            ("change".to_owned(), AttributeValue::S("c".into())),
        ]
        .into_iter()
        .collect::<std::collections::HashMap<_, _>>()
    };
    upload_url
        .dynamodb
        .put_item()
        .table_name(&audit)
        .set_item(Some(key("probe")))
        .send()
        .await
        .expect("upload-url appends to the audit trail");
    let update = upload_url
        .dynamodb
        .update_item()
        .table_name(&audit)
        .set_key(Some(key("probe")))
        .update_expression("SET reason = :r")
        .expression_attribute_values(":r", AttributeValue::S("rewritten".into()))
        .send()
        .await;
    assert!(update.is_err(), "the audit trail cannot be rewritten");
    let delete = upload_url
        .dynamodb
        .delete_item()
        .table_name(&audit)
        .set_key(Some(key("probe")))
        .send()
        .await;
    assert!(delete.is_err(), "the audit trail cannot be deleted from");
    let scan = upload_url.dynamodb.scan().table_name(&uploads).send().await;
    assert!(scan.is_err(), "upload-url does not scan the uploads");

    let summary = as_function(&app, "ImagingSummaryFunction").await;
    let read = summary
        .dynamodb
        .get_item()
        .table_name(&uploads)
        .key("uploadId", AttributeValue::S("x".into()))
        .send()
        .await;
    assert!(
        read.is_err(),
        "imaging-summary has no business with the uploads"
    );
    let list = summary
        .s3
        .list_objects_v2()
        .bucket(app.bucket())
        .send()
        .await;
    assert!(list.is_err(), "nor with the bucket");

    // The entry written above is still there, unchanged.
    let item = app
        .stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&audit)
        .set_key(Some(key("probe")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item.contains_key("reason"));
}

/// A reader of `user`'s own: an IAM user allowed `s3:GetObject` on the whole upload bucket, tagged
/// `clinflow-quarantine-reader=<tag>` (untagged when `None`).
async fn reader(app: &TestApp, user: &str, tag: Option<&str>) -> aws_sdk_s3::Client {
    let config = local_stack::emulator_config(&endpoint(), "us-east-1", admin().as_ref()).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let mut create = iam.create_user().user_name(user);
    if let Some(value) = tag {
        create = create.tags(
            aws_sdk_iam::types::Tag::builder()
                .key("clinflow-quarantine-reader")
                .value(value)
                .build()
                .unwrap(),
        );
    }
    create.send().await.expect("CreateUser");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": format!("arn:aws:s3:::{}/*", app.bucket()),
        }],
    });
    iam.put_user_policy()
        .user_name(user)
        .policy_name("read-uploads")
        .policy_document(policy.to_string())
        .send()
        .await
        .expect("PutUserPolicy");
    let key = iam
        .create_access_key()
        .user_name(user)
        .send()
        .await
        .expect("CreateAccessKey")
        .access_key
        .expect("a key");
    let keys = AccessKeys {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
    };
    local_stack::emulator_clients(&endpoint(), "us-east-1", Some(&keys))
        .await
        .s3
}

async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, u16> {
    match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().to_vec()),
        Err(e) => Err(e
            .raw_response()
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|| panic!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)))),
    }
}

/// The bucket policy's `DenyReadingQuarantine` with its positive control: a principal tagged
/// `clinflow-quarantine-reader=true` (a security role) reads quarantine/; the same grant without
/// the tag, with another value, or the administrator's `*`, does not — and reads elsewhere, so the
/// refusal is the policy's and not a missing grant.
#[tokio::test]
async fn only_a_quarantine_reader_reads_quarantine() {
    let app = spawn_app().await;
    let bucket = app.bucket();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let (quarantined, accepted) = (
        format!("quarantine/{suffix}.dcm"),
        format!("accepted/{suffix}.dcm"),
    );
    for key in [&quarantined, &accepted] {
        app.stack
            .clients
            .s3
            .put_object()
            .bucket(&bucket)
            .key(key.as_str())
            .body(key.as_bytes().to_vec().into())
            .send()
            .await
            .expect("PutObject");
    }
    let tagged = reader(&app, &format!("qr-true-{suffix}"), Some("true")).await;
    let other = reader(&app, &format!("qr-false-{suffix}"), Some("false")).await;
    let untagged = reader(&app, &format!("qr-none-{suffix}"), None).await;

    assert_eq!(
        read(&tagged, &bucket, &quarantined).await,
        Ok(quarantined.as_bytes().to_vec()),
        "the quarantine reader reads quarantine/"
    );
    for (who, s3) in [
        ("tagged false", &other),
        ("untagged", &untagged),
        ("the administrator", &app.stack.clients.s3),
    ] {
        assert_eq!(
            read(s3, &bucket, &quarantined).await,
            Err(403),
            "{who} reads quarantine/"
        );
        assert_eq!(
            read(s3, &bucket, &accepted).await,
            Ok(accepted.as_bytes().to_vec()),
            "{who} reads accepted/ (its grant works)"
        );
    }
}
