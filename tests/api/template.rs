//! template.yaml and the local stack agree: every function has a local handler and a crate, every
//! resource exists on the emulator with the wiring the template gives it, every route is served;
//! and the template keeps the rules the design sets (queues with DLQs, tables with PITR, ...).

use clinflow_tests::*;
use local_stack::emulator::{repo_root, MOTO_ACCOUNT};
use local_stack::functions::BINARIES;
use local_stack::template::Template;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

fn template() -> Template {
    Template::load(
        &repo_root().join("template.yaml"),
        "check",
        "us-east-1",
        MOTO_ACCOUNT,
        &HashMap::new(),
    )
    .unwrap()
}

#[test]
fn every_function_has_a_crate_a_binary_and_a_local_handler() {
    let t = template();
    let mut in_template = BTreeSet::new();
    for f in t.resources_of("AWS::Serverless::Function") {
        assert_eq!(
            f.metadata.get("BuildMethod").and_then(|v| v.as_str()),
            Some("rust-cargolambda"),
            "{}",
            f.logical_id
        );
        let binary = f.metadata["BuildProperties"]["Binary"]
            .as_str()
            .unwrap()
            .to_owned();
        let manifest = std::fs::read_to_string(
            repo_root()
                .join("functions")
                .join(&binary)
                .join("Cargo.toml"),
        )
        .unwrap_or_else(|_| panic!("functions/{binary}/Cargo.toml"));
        assert!(
            manifest.contains(&format!("name = \"{binary}\"")),
            "{binary} builds a binary of its name"
        );
        for (key, want) in [
            ("Runtime", "provided.al2023"),
            ("Handler", "bootstrap"),
            ("Tracing", "Active"),
        ] {
            assert_eq!(
                t.function_property(&f, key)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .as_deref(),
                Some(want),
                "{} {key}",
                f.logical_id
            );
        }
        assert_eq!(
            t.function_property(&f, "Architectures"),
            Some(serde_json::json!(["arm64"]))
        );
        assert_eq!(
            t.function_property(&f, "LoggingConfig").unwrap()["LogFormat"],
            "JSON"
        );
        in_template.insert(binary);
    }
    let local: BTreeSet<String> = BINARIES.iter().map(|b| (*b).to_owned()).collect();
    assert_eq!(
        in_template, local,
        "template functions vs the local stack's handlers"
    );
    let crates: BTreeSet<String> = std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(crates, local, "functions/ vs the template");
}

#[test]
fn the_exports_bucket_keeps_a_file_as_long_as_the_api_says() {
    let t = template();
    let bucket = t
        .resources_of("AWS::S3::Bucket")
        .into_iter()
        .find(|r| r.logical_id == "ExportsBucket")
        .expect("ExportsBucket");
    let rules = t
        .eval(&bucket.properties["LifecycleConfiguration"])
        .unwrap();
    let expire = rules["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["Id"] == "ExpireExports")
        .expect("the ExpireExports rule");
    assert_eq!(expire["Prefix"], "exports/");
    assert_eq!(
        expire["ExpirationInDays"].as_i64(),
        Some(shared::exports::FILE_DAYS),
        "fileExpiresAt (functions/exports) and the bucket's lifecycle agree"
    );
}

#[test]
fn queues_have_dead_letter_queues_and_tables_point_in_time_recovery() {
    let mut t = template();
    // Name each queue's ARN after its logical id, so a redrive target reads as the queue it names.
    let ids: Vec<String> = t
        .resources_of("AWS::SQS::Queue")
        .into_iter()
        .map(|q| q.logical_id)
        .collect();
    for id in &ids {
        t.set_arn(id, id);
    }
    let queues: HashMap<String, Value> = t
        .resources_of("AWS::SQS::Queue")
        .iter()
        .map(|q| (q.logical_id.clone(), t.eval(q.properties).unwrap()))
        .collect();
    let dlqs: BTreeSet<String> = queues
        .values()
        .filter_map(|p| {
            p.pointer("/RedrivePolicy/deadLetterTargetArn")
                .and_then(Value::as_str)
        })
        .map(str::to_owned)
        .collect();
    assert!(!dlqs.is_empty());
    let retention = |id: &str| queues[id]["MessageRetentionPeriod"].as_u64().unwrap();
    for (id, props) in &queues {
        assert_eq!(
            props["SqsManagedSseEnabled"].as_bool(),
            Some(true),
            "{id} encrypted"
        );
        if dlqs.contains(id) {
            continue;
        }
        let redrive = props
            .get("RedrivePolicy")
            .unwrap_or_else(|| panic!("{id} has no DLQ"));
        // The imaging events come back after imaging-summary's own short backoff: more receives.
        let receives = if id == "ImagingEventsQueue" { 10 } else { 5 };
        assert_eq!(redrive["maxReceiveCount"].as_u64(), Some(receives), "{id}");
        let dlq = redrive["deadLetterTargetArn"].as_str().unwrap();
        assert!(
            retention(dlq) > retention(id),
            "{dlq} keeps messages longer than {id}"
        );
    }
    for table in t.resources_of("AWS::DynamoDB::Table") {
        assert_eq!(
            table.properties["BillingMode"].as_str(),
            Some("PAY_PER_REQUEST")
        );
        assert_eq!(
            table.properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
                .as_bool(),
            Some(true)
        );
    }
}

#[tokio::test]
async fn the_emulator_holds_what_the_template_declares() {
    let app = spawn_app().await;
    let stack = &app.stack;
    let prefix = stack.template.stack_name.clone();
    let c = &stack.clients;

    let mut tables = BTreeSet::new();
    let mut start: Option<String> = None;
    loop {
        let page = c
            .dynamodb
            .list_tables()
            .set_exclusive_start_table_name(start.take())
            .send()
            .await
            .unwrap();
        tables.extend(
            page.table_names()
                .iter()
                .filter(|t| t.starts_with(&format!("{prefix}-")))
                .cloned(),
        );
        match page.last_evaluated_table_name() {
            Some(last) => start = Some(last.to_owned()),
            None => break,
        }
    }
    let declared: BTreeSet<String> = stack
        .template
        .resources_of("AWS::DynamoDB::Table")
        .iter()
        .map(|r| stack.table(&r.logical_id).unwrap().to_owned())
        .collect();
    assert_eq!(tables, declared);
    assert_eq!(declared.len(), 14);

    let queues: BTreeSet<String> = c
        .sqs
        .list_queues()
        .queue_name_prefix(format!("{prefix}-"))
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default()
        .into_iter()
        .collect();
    let declared: BTreeSet<String> = stack
        .provisioned
        .queues
        .values()
        .map(|q| q.url.clone())
        .collect();
    assert_eq!(queues, declared);

    // The ingest queue redrives to its DLQ after 5 receives.
    let ingest = stack.queue("IngestQueue").unwrap();
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&ingest.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let redrive: Value =
        serde_json::from_str(&attrs[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy])
            .unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"],
        stack.queue("IngestDeadLetterQueue").unwrap().arn
    );
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    assert_eq!(
        attrs[&aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout],
        "5400"
    );

    // The bucket: versioned, and notifying the ingest queue of objects under incoming/.
    let bucket = app.bucket();
    let versioning =
        c.s3.get_bucket_versioning()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    assert_eq!(versioning.status().map(|s| s.as_str()), Some("Enabled"));
    let notification =
        c.s3.get_bucket_notification_configuration()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    let q = &notification.queue_configurations()[0];
    assert_eq!(q.queue_arn(), ingest.arn);
    let rule = &q.filter().unwrap().key().unwrap().filter_rules()[0];
    assert_eq!(rule.value(), Some("incoming/"));

    // Every HttpApi route of the template is served (the authorizer answers, not a missing route).
    for f in stack.template.resources_of("AWS::Serverless::Function") {
        let events = stack.template.eval(&f.properties["Events"]).unwrap();
        for (_, e) in events.as_object().unwrap() {
            if e["Type"] != "HttpApi" {
                continue;
            }
            let path = e["Properties"]["Path"]
                .as_str()
                .unwrap()
                .replace("{uploadId}", "00000000-0000-4000-8000-000000000000");
            let method: reqwest::Method =
                e["Properties"]["Method"].as_str().unwrap().parse().unwrap();
            let r = app.send(method.clone(), &path, None, None).await;
            assert_eq!(r.status, 401, "{method} {path}");
        }
    }
    let missing = app
        .send(reqwest::Method::GET, "/v1/nothing-here", None, None)
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["message"], "Not Found");
}

#[tokio::test]
async fn routes_are_throttled_as_the_template_configures() {
    let app = spawn_app_with(&[
        ("ApiThrottlingRateLimit", "1"),
        ("ApiThrottlingBurstLimit", "3"),
    ])
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.send(reqwest::Method::POST, "/v1/uploads", None, None)
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![401, 401, 401, 429, 429]);
}

#[test]
fn every_dead_letter_queue_and_every_function_is_alarmed_and_on_the_dashboard() {
    let t = template();
    let alarms: Vec<Value> = t
        .resources_of("AWS::CloudWatch::Alarm")
        .iter()
        .map(|a| serde_json::to_value(a.properties).unwrap())
        .collect();
    // Names a resource by `!Ref X` / `!GetAtt X.Attr` (kept as YAML tags: compare their text).
    let names = |alarm: &Value, id: &str| alarm.to_string().contains(id);
    let alarmed = |namespace: &str, metric: &str, id: &str| {
        alarms.iter().any(|a| {
            a["Namespace"] == namespace && a["MetricName"] == metric && names(&a["Dimensions"], id)
        })
    };
    let mut t2 = template();
    let ids: Vec<String> = t2
        .resources_of("AWS::SQS::Queue")
        .into_iter()
        .map(|q| q.logical_id)
        .collect();
    for id in &ids {
        t2.set_arn(id, id);
    }
    let dlqs: BTreeSet<String> = t2
        .resources_of("AWS::SQS::Queue")
        .iter()
        .filter_map(|q| {
            t2.eval(q.properties)
                .unwrap()
                .pointer("/RedrivePolicy/deadLetterTargetArn")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert!(dlqs.len() >= 2);
    let dashboard = t
        .resources_of("AWS::CloudWatch::Dashboard")
        .first()
        .map(|d| serde_json::to_value(d.properties).unwrap().to_string())
        .expect("a dashboard");
    // A DLQ a function consumes (the ingest DLQ) hides its depth: its age is alarmed.
    let consumed: BTreeSet<String> = t2
        .resources_of("AWS::Serverless::Function")
        .iter()
        .filter_map(|f| f.properties.get("Events").and_then(|e| e.as_mapping()))
        .flat_map(|events| events.values())
        .filter(|e| e.get("Type").and_then(|t| t.as_str()) == Some("SQS"))
        .filter_map(|e| e.get("Properties").and_then(|p| p.get("Queue")))
        .filter_map(|q| t2.eval(q).ok())
        .filter_map(|q| q.as_str().map(str::to_owned))
        .collect();
    assert!(!consumed.is_empty());
    for dlq in &dlqs {
        assert!(
            alarmed("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq),
            "{dlq}: no depth alarm"
        );
        if consumed.contains(dlq) {
            assert!(
                alarmed("AWS/SQS", "ApproximateAgeOfOldestMessage", dlq),
                "{dlq} is consumed: no age alarm"
            );
        }
        assert!(
            dashboard.contains(dlq.as_str()),
            "{dlq} not on the dashboard"
        );
    }
    for f in t.resources_of("AWS::Serverless::Function") {
        assert!(
            alarmed("AWS/Lambda", "Errors", &f.logical_id),
            "{}: no Errors alarm",
            f.logical_id
        );
        assert!(
            dashboard.contains(&f.logical_id),
            "{} not on the dashboard",
            f.logical_id
        );
    }
    // The outcomes an operator acts on, from the functions' own EMF metrics.
    for (metric, dimension) in [("Uploads", "FAILED"), ("Objects", "SCANNER_UNAVAILABLE")] {
        assert!(
            alarms.iter().any(|a| a["Namespace"] == "clinflow"
                && a["MetricName"] == metric
                && a["Dimensions"].to_string().contains(dimension)),
            "no alarm on {metric} {dimension}"
        );
    }
    for metric in [
        "Objects",
        "ProcessingTime",
        "Requests",
        "Latency",
        "Events",
        "Uploads",
    ] {
        assert!(dashboard.contains(metric), "{metric} not on the dashboard");
    }
}
