//! What `sam deploy` meets in a real account, checked on the template as CloudFormation evaluates it:
//! the bucket's name (global, lowercase, at most 63 characters) comes from `BucketNamePrefix`, never
//! the stack name, and every ARN of it names that bucket; reserved concurrency a new account can
//! deploy, and an ingest queue that never drives more than process-dicom may run; Lambda keeps the
//! log lines `LogLevel` asks for.

use local_stack::emulator::{repo_root, MOTO_ACCOUNT};
use local_stack::template::{json_number, Template, TemplateError};
use serde_json::Value;
use std::collections::HashMap;

/// The longest region names (14 characters) and a stack name S3 would refuse as a bucket name.
const LONG_REGION: &str = "ap-southeast-5";
const STACK: &str = "Clinflow-Production-Imaging-Stack-2026";

fn load(stack: &str, region: &str, params: &[(&str, &str)]) -> Result<Template, TemplateError> {
    let overrides: HashMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Template::load(
        &repo_root().join("template.yaml"),
        stack,
        region,
        MOTO_ACCOUNT,
        &overrides,
    )
}

/// The template with every resource "created": each bucket under the name its properties give,
/// everything else named by its logical id (enough to evaluate any property). With the upload
/// bucket's name.
fn wired(stack: &str, region: &str, params: &[(&str, &str)]) -> (Template, String) {
    let (t, buckets) = wired_buckets(stack, region, params);
    let upload = buckets["UploadBucket"].clone();
    (t, upload)
}

/// [`wired`], with every bucket's name by logical id.
fn wired_buckets(
    stack: &str,
    region: &str,
    params: &[(&str, &str)],
) -> (Template, std::collections::BTreeMap<String, String>) {
    let mut t = load(stack, region, params).unwrap();
    let buckets: std::collections::BTreeMap<String, String> = t
        .resources_of("AWS::S3::Bucket")
        .iter()
        .map(|r| {
            let name = t
                .eval(&r.properties["BucketName"])
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| panic!("{} has no BucketName", r.logical_id));
            (r.logical_id.clone(), name)
        })
        .collect();
    let ids: Vec<String> = t.resources().into_iter().map(|r| r.logical_id).collect();
    for id in ids {
        let name = buckets.get(&id).cloned().unwrap_or_else(|| id.clone());
        t.set_arn(&id, format!("arn:aws:x:::{name}"));
        t.set_attribute(&id, "QueueName", &name);
        t.set_ref(&id, name);
    }
    (t, buckets)
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn is_valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

#[test]
fn the_bucket_is_named_from_its_prefix_and_every_arn_of_it_agrees() {
    let longest = "a".repeat(25);
    for params in [vec![], vec![("BucketNamePrefix", longest.as_str())]] {
        let (t, buckets) = wired_buckets(STACK, LONG_REGION, &params);
        assert_eq!(
            buckets.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "ConsoleBucket",
                "ExportsBucket",
                "ReferenceBucket",
                "UploadBucket"
            ],
            "{buckets:?}"
        );
        for bucket in buckets.values() {
            assert!(
                is_valid_bucket_name(bucket),
                "{bucket:?} ({} characters) is no S3 bucket name",
                bucket.len()
            );
            assert!(
                !bucket.contains("Clinflow") && !bucket.contains("Production"),
                "{bucket}: not built from the stack name"
            );
        }
        let mut arns = Vec::new();
        let evaluated: Vec<Value> = t
            .resources()
            .iter()
            .map(|r| t.eval(r.properties).unwrap())
            .collect();
        for props in &evaluated {
            let mut all = Vec::new();
            strings(props, &mut all);
            arns.extend(
                all.into_iter()
                    .filter_map(|s| s.strip_prefix("arn:aws:s3:::"))
                    .map(|rest| rest.split('/').next().unwrap_or(rest).to_owned()),
            );
        }
        // Function policies, the bucket policy, and the queue policy's SourceArn.
        assert!(arns.len() >= 8, "{arns:?}");
        for arn_bucket in &arns {
            assert!(
                buckets.values().any(|b| b == arn_bucket),
                "{arn_bucket}: every S3 ARN names one of the template's buckets"
            );
        }
    }
    // A prefix S3 or the 63-character limit would refuse is refused by the parameter's own rules.
    let spec = serde_yaml::from_str::<serde_yaml::Value>(
        &std::fs::read_to_string(repo_root().join("template.yaml")).unwrap(),
    )
    .unwrap()["Parameters"]["BucketNamePrefix"]
        .clone();
    assert_eq!(spec["MaxLength"].as_u64(), Some(25));
    let pattern = spec["AllowedPattern"].as_str().unwrap();
    assert!(pattern.starts_with('^') && pattern.ends_with('$'));
}

fn function(t: &Template, logical_id: &str) -> Value {
    let f = t
        .resources_of("AWS::Serverless::Function")
        .into_iter()
        .find(|f| f.logical_id == logical_id)
        .unwrap_or_else(|| panic!("{logical_id}"));
    t.eval(f.properties).unwrap()
}

/// Every SQS event source of every function drives at most the function's reserved concurrency.
fn assert_queues_fit_reservations(t: &Template) {
    for f in t.resources_of("AWS::Serverless::Function") {
        let props = t.eval(f.properties).unwrap();
        let Some(reserved) = json_number::<u64>(props.get("ReservedConcurrentExecutions")) else {
            continue;
        };
        for (name, event) in props["Events"].as_object().into_iter().flatten() {
            if event["Type"] != "SQS" {
                continue;
            }
            let drives: u64 =
                json_number(event.pointer("/Properties/ScalingConfig/MaximumConcurrency"))
                    .unwrap_or_else(|| panic!("{} {name}: MaximumConcurrency", f.logical_id));
            assert!(
                drives <= reserved,
                "{} {name}: the queue drives {drives}, the function may run {reserved}",
                f.logical_id
            );
        }
    }
}

#[test]
fn reserved_concurrency_defaults_deploy_on_a_new_account_and_queues_fit_reservations() {
    // Defaults: nothing reserved (a new account has 10 executions in all and can reserve none).
    let (t, _) = wired(STACK, "us-east-1", &[]);
    for f in t.resources_of("AWS::Serverless::Function") {
        let props = t.eval(f.properties).unwrap();
        assert!(
            props.get("ReservedConcurrentExecutions").is_none(),
            "{} reserves concurrency by default",
            f.logical_id
        );
    }
    let ingest = |t: &Template| {
        json_number::<u64>(
            function(t, "ProcessDicomFunction")
                .pointer("/Events/Ingest/Properties/ScalingConfig/MaximumConcurrency"),
        )
    };
    assert_eq!(
        ingest(&t),
        Some(5),
        "IngestMaximumConcurrency while unreserved"
    );

    // A reservation below the ingest queue's concurrency: the queue follows the reservation.
    let (t, _) = wired(
        STACK,
        "us-east-1",
        &[
            ("ProcessDicomReservedConcurrency", "3"),
            ("IngestMaximumConcurrency", "50"),
            ("UploadUrlReservedConcurrency", "20"),
        ],
    );
    assert_eq!(
        json_number::<u64>(
            function(&t, "ProcessDicomFunction").get("ReservedConcurrentExecutions")
        ),
        Some(3)
    );
    assert_eq!(
        json_number::<u64>(function(&t, "UploadUrlFunction").get("ReservedConcurrentExecutions")),
        Some(20)
    );
    assert_eq!(ingest(&t), Some(3));
    for params in [
        vec![],
        vec![("ProcessDicomReservedConcurrency", "2")],
        vec![
            ("ProcessDicomReservedConcurrency", "2"),
            ("IngestMaximumConcurrency", "1000"),
        ],
        vec![
            ("ProcessDicomReservedConcurrency", "900"),
            ("IngestMaximumConcurrency", "2"),
        ],
    ] {
        assert_queues_fit_reservations(&wired(STACK, "us-east-1", &params).0);
    }

    // A reservation of 1 would throttle a queue that drives at least 2: the template's Rules refuse it.
    let refused = load(
        STACK,
        "us-east-1",
        &[("ProcessDicomReservedConcurrency", "1")],
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        refused.contains("ProcessDicomReservedConcurrency is 0 (unreserved) or at least 2"),
        "{refused}"
    );
}

#[test]
fn lambda_keeps_the_log_lines_log_level_asks_for() {
    // Lambda keeps at least INFO: the EMF metric lines (no level of their own) count as INFO, and
    // the alarms read them; RUST_LOG filters the functions' own lines.
    for (level, lambda) in [
        ("error", "INFO"),
        ("warn", "INFO"),
        ("info", "INFO"),
        ("debug", "DEBUG"),
        ("trace", "TRACE"),
    ] {
        let (t, _) = wired(STACK, "us-east-1", &[("LogLevel", level)]);
        for f in t.resources_of("AWS::Serverless::Function") {
            let logging = t.function_property(&f, "LoggingConfig").unwrap();
            assert_eq!(
                logging["ApplicationLogLevel"], lambda,
                "{} at {level}",
                f.logical_id
            );
            assert_eq!(logging["LogFormat"], "JSON");
            assert_eq!(
                t.function_environment(&f).unwrap()["RUST_LOG"],
                level,
                "{}",
                f.logical_id
            );
        }
    }
}

/// A resource's properties as CloudFormation would evaluate them in the wired template.
fn resource(t: &Template, logical_id: &str) -> Value {
    let r = t
        .resources()
        .into_iter()
        .find(|r| r.logical_id == logical_id)
        .unwrap_or_else(|| panic!("{logical_id}"));
    t.eval(r.properties).unwrap()
}

#[test]
fn the_console_bucket_is_private_and_read_only_through_its_distribution_whose_csp_names_the_api() {
    let (t, buckets) = wired_buckets(STACK, LONG_REGION, &[]);
    let bucket = &buckets["ConsoleBucket"];
    assert!(bucket.starts_with("clinflow-console-"), "{bucket}");

    // Private, encrypted, versioned; no website endpoint.
    let props = resource(&t, "ConsoleBucket");
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            props["PublicAccessBlockConfiguration"][flag], true,
            "{flag}"
        );
    }
    assert!(
        props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
            ["ServerSideEncryptionByDefault"]["SSEAlgorithm"]
            .is_string()
    );
    assert_eq!(props["VersioningConfiguration"]["Status"], "Enabled");
    assert!(props.get("WebsiteConfiguration").is_none());

    // The one Allow of its policy: CloudFront's service principal may GetObject, and only on
    // behalf of this distribution (AWS:SourceArn); everything without TLS is denied.
    let policies: Vec<Value> = t
        .resources_of("AWS::S3::BucketPolicy")
        .iter()
        .map(|r| t.eval(r.properties).unwrap())
        .filter(|p| p["Bucket"] == bucket.as_str())
        .collect();
    assert_eq!(policies.len(), 1, "one policy on the console bucket");
    let statements = policies[0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let allows: Vec<&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .collect();
    assert_eq!(allows.len(), 1, "{statements:?}");
    let allow = allows[0];
    assert_eq!(
        allow["Principal"],
        serde_json::json!({"Service": "cloudfront.amazonaws.com"})
    );
    assert_eq!(allow["Action"], "s3:GetObject");
    assert_eq!(allow["Resource"], format!("arn:aws:s3:::{bucket}/*"));
    assert_eq!(
        allow["Condition"]["StringEquals"]["AWS:SourceArn"],
        format!("arn:aws:cloudfront::{MOTO_ACCOUNT}:distribution/ConsoleDistribution"),
        "only this stack's distribution"
    );
    assert!(statements.iter().any(|s| s["Effect"] == "Deny"
        && s["Principal"] == "*"
        && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"));

    // The distribution reads the bucket through origin access control (no legacy identity),
    // serves index.html at /, redirects HTTP to HTTPS and sends the security headers.
    let d = &resource(&t, "ConsoleDistribution")["DistributionConfig"];
    assert_eq!(d["DefaultRootObject"], "index.html");
    let origins = d["Origins"].as_array().unwrap();
    assert_eq!(origins.len(), 1);
    assert_eq!(
        origins[0]["DomainName"],
        format!("{bucket}.s3.{LONG_REGION}.amazonaws.com")
    );
    assert_eq!(
        origins[0]["OriginAccessControlId"],
        "ConsoleOriginAccessControl"
    );
    assert_eq!(origins[0]["S3OriginConfig"]["OriginAccessIdentity"], "");
    let behaviour = &d["DefaultCacheBehavior"];
    assert_eq!(behaviour["TargetOriginId"], origins[0]["Id"]);
    assert_eq!(behaviour["ViewerProtocolPolicy"], "redirect-to-https");
    assert_eq!(
        behaviour["AllowedMethods"],
        serde_json::json!(["GET", "HEAD"])
    );
    assert_eq!(
        behaviour["ResponseHeadersPolicyId"],
        "ConsoleSecurityHeadersPolicy"
    );
    assert!(
        d.get("CacheBehaviors").is_none(),
        "one behaviour, one origin"
    );
    let oac = &resource(&t, "ConsoleOriginAccessControl")["OriginAccessControlConfig"];
    assert_eq!(oac["OriginAccessControlOriginType"], "s3");
    assert_eq!(oac["SigningBehavior"], "always");

    // The headers: the CSP lets the console call the API and PUT to the upload bucket, nothing
    // else outside its origin; HSTS, nosniff, no framing.
    let h = &resource(&t, "ConsoleSecurityHeadersPolicy")["ResponseHeadersPolicyConfig"]
        ["SecurityHeadersConfig"];
    let csp = h["ContentSecurityPolicy"]["ContentSecurityPolicy"]
        .as_str()
        .unwrap();
    let directive = |name: &str| -> Vec<String> {
        csp.split(';')
            .map(str::trim)
            .find_map(|d| d.strip_prefix(name).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| panic!("{name} in {csp}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        directive("connect-src "),
        [
            "'self'".to_owned(),
            format!("https://HttpApi.execute-api.{LONG_REGION}.amazonaws.com"),
            format!(
                "https://{}.s3.{LONG_REGION}.amazonaws.com",
                buckets["UploadBucket"]
            ),
        ]
    );
    assert_eq!(directive("default-src "), ["'self'"]);
    assert_eq!(directive("script-src "), ["'self'", "'wasm-unsafe-eval'"]);
    assert_eq!(directive("frame-ancestors "), ["'none'"]);
    assert_eq!(h["ContentSecurityPolicy"]["Override"], true);
    assert!(h["StrictTransportSecurity"]["AccessControlMaxAgeSec"].as_u64() >= Some(31_536_000));
    assert_eq!(h["ContentTypeOptions"]["Override"], true);
    assert_eq!(h["FrameOptions"]["FrameOption"], "DENY");
    // The identity provider's origins, when given, join connect-src.
    let (t, _) = wired_buckets(
        STACK,
        LONG_REGION,
        &[(
            "ConsoleIdentityProviderOrigins",
            "https://idp.example.org https://auth.example.org",
        )],
    );
    let h = &resource(&t, "ConsoleSecurityHeadersPolicy")["ResponseHeadersPolicyConfig"]
        ["SecurityHeadersConfig"];
    let csp = h["ContentSecurityPolicy"]["ContentSecurityPolicy"]
        .as_str()
        .unwrap();
    assert!(
        csp.contains("amazonaws.com https://idp.example.org https://auth.example.org;"),
        "{csp}"
    );

    // And the console's URL is an output.
    let raw = std::fs::read_to_string(repo_root().join("template.yaml")).unwrap();
    let outputs = &serde_yaml::from_str::<serde_yaml::Value>(&raw).unwrap()["Outputs"];
    let url = serde_yaml::to_string(&outputs["ConsoleUrl"]["Value"]).unwrap();
    assert!(
        url.contains("https://${ConsoleDistribution.DomainName}"),
        "{url}"
    );
}
