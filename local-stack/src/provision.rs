//! Creates the resources template.yaml declares on the emulator: queues (with redrive and policy),
//! tables, the upload bucket (versioning, encryption, public access block, CORS, lifecycle, the
//! notification to the ingest queue, its policy). Re-running against existing resources is fine.

use crate::template::{json_str, json_strings, Resource, Template, TemplateError};
use aws_sdk_s3::types as s3t;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value as Json;
use shared::aws::AwsClients;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{resource}: {message}")]
    Aws { resource: String, message: String },
}

fn aws_err<E: std::error::Error>(resource: &str, e: E) -> ProvisionError {
    ProvisionError::Aws {
        resource: resource.to_owned(),
        message: format!("{}", aws_sdk_s3::error::DisplayErrorContext(&e)),
    }
}

/// A queue as created: its name, URL and ARN.
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub url: String,
    pub arn: String,
}

/// What exists on the emulator, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    pub tables: BTreeMap<String, String>,
    pub queues: BTreeMap<String, Queue>,
    pub buckets: BTreeMap<String, String>,
}

fn required(props: &Json, key: &str, resource: &str) -> Result<String, ProvisionError> {
    json_str(props, key).ok_or_else(|| {
        ProvisionError::Template(TemplateError::Invalid(format!(
            "{resource}: {key} is required locally (resource names are built from the stack name)"
        )))
    })
}

pub async fn provision(
    template: &mut Template,
    clients: &AwsClients,
) -> Result<Provisioned, ProvisionError> {
    let mut out = Provisioned::default();
    let (region, account) = (template.region.clone(), template.account.clone());

    // Names first: they depend only on pseudo parameters, and every other property may refer to them.
    let names: Vec<(String, String, Json)> = template
        .resources()
        .iter()
        .filter(|r| {
            matches!(
                r.kind.as_str(),
                "AWS::SQS::Queue" | "AWS::DynamoDB::Table" | "AWS::S3::Bucket"
            )
        })
        .map(|r| {
            let key = match r.kind.as_str() {
                "AWS::SQS::Queue" => "QueueName",
                "AWS::DynamoDB::Table" => "TableName",
                _ => "BucketName",
            };
            let name = r
                .properties
                .get(key)
                .ok_or_else(|| {
                    TemplateError::Invalid(format!("{}: {key} is required locally", r.logical_id))
                })
                .and_then(|v| template.eval(v))?;
            Ok((r.logical_id.clone(), r.kind.clone(), name))
        })
        .collect::<Result<_, ProvisionError>>()?;
    for (id, kind, name) in &names {
        let name = name.as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "AWS::SQS::Queue" => {
                template.set_arn(id, format!("arn:aws:sqs:{region}:{account}:{name}"));
                template.set_attribute(id, "QueueName", &name);
            }
            "AWS::DynamoDB::Table" => {
                template.set_ref(id, &name);
                template.set_arn(
                    id,
                    format!("arn:aws:dynamodb:{region}:{account}:table/{name}"),
                );
            }
            _ => {
                template.set_ref(id, &name);
                template.set_arn(id, format!("arn:aws:s3:::{name}"));
            }
        }
    }
    let kinds: Vec<(String, String)> = template
        .resources()
        .into_iter()
        .map(|r| (r.logical_id, r.kind))
        .collect();
    for (id, kind) in kinds {
        match kind.as_str() {
            "AWS::Serverless::Function" => {
                let name = format!("{}-{id}", template.stack_name);
                template.set_arn(
                    &id,
                    format!("arn:aws:lambda:{region}:{account}:function:{name}"),
                );
                template.set_ref(&id, name);
            }
            "AWS::Serverless::HttpApi" => template.set_ref(&id, "local"),
            // The console's hosting (CloudFront, origin access control, response headers) is not
            // emulated: the local stack serves web/ itself (console.rs). Each gets a placeholder
            // id so that what names it (the console bucket's policy) still evaluates.
            k if k.starts_with("AWS::CloudFront::") => template.set_ref(&id, format!("local-{id}")),
            _ => {}
        }
    }

    // Queues: created plain, then given their redrive policies once every target exists.
    for r in template.resources_of("AWS::SQS::Queue") {
        let props = template.eval(r.properties)?;
        let name = required(&props, "QueueName", &r.logical_id)?;
        let mut create = clients.sqs.create_queue().queue_name(&name);
        for (key, attr) in [
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            (
                "MessageRetentionPeriod",
                QueueAttributeName::MessageRetentionPeriod,
            ),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            (
                "ReceiveMessageWaitTimeSeconds",
                QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            ),
            (
                "SqsManagedSseEnabled",
                QueueAttributeName::SqsManagedSseEnabled,
            ),
        ] {
            if let Some(v) = json_str(&props, key) {
                create = create.attributes(attr, v);
            }
        }
        let url = create
            .send()
            .await
            .map_err(|e| aws_err(&r.logical_id, e))?
            .queue_url
            .unwrap_or_default();
        let arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| aws_err(&r.logical_id, e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        out.queues
            .insert(r.logical_id.clone(), Queue { name, url, arn });
    }
    for (id, q) in &out.queues {
        template.set_ref(id, &q.url);
        template.set_arn(id, &q.arn);
    }
    for r in template.resources_of("AWS::SQS::Queue") {
        let props = template.eval(r.properties)?;
        if let Some(redrive) = props.get("RedrivePolicy") {
            let url = &out.queues[&r.logical_id].url;
            clients
                .sqs
                .set_queue_attributes()
                .queue_url(url)
                .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
                .send()
                .await
                .map_err(|e| aws_err(&r.logical_id, e))?;
        }
    }
    for r in template.resources_of("AWS::SQS::QueuePolicy") {
        let props = template.eval(r.properties)?;
        let policy = props
            .get("PolicyDocument")
            .map(Json::to_string)
            .unwrap_or_default();
        for url in props
            .get("Queues")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            clients
                .sqs
                .set_queue_attributes()
                .queue_url(url.as_str().unwrap_or_default())
                .attributes(QueueAttributeName::Policy, &policy)
                .send()
                .await
                .map_err(|e| aws_err(&r.logical_id, e))?;
        }
    }

    crate::secrets::provision(template, clients).await?;
    for r in template.resources_of("AWS::DynamoDB::Table") {
        let name = create_table(template, &r, clients).await?;
        out.tables.insert(r.logical_id.clone(), name);
    }
    for r in template.resources_of("AWS::S3::Bucket") {
        let name = create_bucket(template, &r, clients).await?;
        out.buckets.insert(r.logical_id.clone(), name);
    }
    for r in template.resources_of("AWS::S3::BucketPolicy") {
        let props = template.eval(r.properties)?;
        let bucket = required(&props, "Bucket", &r.logical_id)?;
        let mut policy = props.get("PolicyDocument").cloned().unwrap_or(Json::Null);
        // The emulator listens on plain HTTP: a statement that denies non-TLS access would deny
        // everything. It is left out locally (and only it); in AWS it applies as written.
        if let Some(statements) = policy.get_mut("Statement").and_then(Json::as_array_mut) {
            statements.retain(|s| s.pointer("/Condition/Bool/aws:SecureTransport").is_none());
            if statements.is_empty() {
                continue;
            }
        }
        let policy = policy.to_string();
        clients
            .s3
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy)
            .send()
            .await
            .map_err(|e| aws_err(&r.logical_id, e))?;
    }
    Ok(out)
}

async fn create_table(
    template: &Template,
    r: &Resource<'_>,
    clients: &AwsClients,
) -> Result<String, ProvisionError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType,
        PointInTimeRecoverySpecification, ScalarAttributeType, SseSpecification,
    };
    let props = template.eval(r.properties)?;
    let name = required(&props, "TableName", &r.logical_id)?;
    let invalid = |what: &str| {
        ProvisionError::Template(TemplateError::Invalid(format!("{}: {what}", r.logical_id)))
    };
    let mut create = clients
        .dynamodb
        .create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .sse_specification(SseSpecification::builder().enabled(true).build());
    for a in props
        .get("AttributeDefinitions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        create = create.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(json_str(a, "AttributeName").unwrap_or_default())
                .attribute_type(ScalarAttributeType::from(
                    json_str(a, "AttributeType").unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|_| invalid("AttributeDefinitions"))?,
        );
    }
    for k in props
        .get("KeySchema")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        create = create.key_schema(
            KeySchemaElement::builder()
                .attribute_name(json_str(k, "AttributeName").unwrap_or_default())
                .key_type(KeyType::from(
                    json_str(k, "KeyType").unwrap_or_default().as_str(),
                ))
                .build()
                .map_err(|_| invalid("KeySchema"))?,
        );
    }
    if let Some(gsis) = props.get("GlobalSecondaryIndexes").and_then(Json::as_array) {
        use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, ProjectionType};
        for g in gsis {
            let mut index = GlobalSecondaryIndex::builder()
                .index_name(json_str(g, "IndexName").unwrap_or_default());
            for k in g
                .get("KeySchema")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                index = index.key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(json_str(k, "AttributeName").unwrap_or_default())
                        .key_type(KeyType::from(
                            json_str(k, "KeyType").unwrap_or_default().as_str(),
                        ))
                        .build()
                        .map_err(|_| invalid("GSI KeySchema"))?,
                );
            }
            let projection = g
                .get("Projection")
                .and_then(|p| json_str(p, "ProjectionType"))
                .unwrap_or_else(|| "ALL".into());
            index = index.projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(projection.as_str()))
                    .build(),
            );
            create = create.global_secondary_indexes(index.build().map_err(|_| invalid("GSI"))?);
        }
    }
    match create.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(aws_err(&r.logical_id, e)),
    }
    if let Some(ttl) = props
        .get("TimeToLiveSpecification")
        .filter(|t| t.get("Enabled").and_then(Json::as_bool) == Some(true))
    {
        clients
            .dynamodb
            .update_time_to_live()
            .table_name(&name)
            .time_to_live_specification(
                aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                    .attribute_name(json_str(ttl, "AttributeName").unwrap_or_default())
                    .enabled(true)
                    .build()
                    .map_err(|_| invalid("TimeToLiveSpecification"))?,
            )
            .send()
            .await
            .map_err(|e| aws_err(&r.logical_id, e))?;
    }
    let pitr = props
        .get("PointInTimeRecoverySpecification")
        .and_then(|p| p.get("PointInTimeRecoveryEnabled"))
        .and_then(Json::as_bool)
        .unwrap_or(false);
    if pitr {
        clients
            .dynamodb
            .update_continuous_backups()
            .table_name(&name)
            .point_in_time_recovery_specification(
                PointInTimeRecoverySpecification::builder()
                    .point_in_time_recovery_enabled(true)
                    .build()
                    .map_err(|_| invalid("PITR"))?,
            )
            .send()
            .await
            .map_err(|e| aws_err(&r.logical_id, e))?;
    }
    Ok(name)
}

async fn create_bucket(
    template: &Template,
    r: &Resource<'_>,
    clients: &AwsClients,
) -> Result<String, ProvisionError> {
    let props = template.eval(r.properties)?;
    let name = required(&props, "BucketName", &r.logical_id)?;
    let id = r.logical_id.as_str();
    let s3 = &clients.s3;
    let mut create = s3.create_bucket().bucket(&name);
    if template.region != "us-east-1" {
        create = create.create_bucket_configuration(
            s3t::CreateBucketConfiguration::builder()
                .location_constraint(s3t::BucketLocationConstraint::from(
                    template.region.as_str(),
                ))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
        Err(e) => return Err(aws_err(id, e)),
    }
    if let Some(status) = props
        .get("VersioningConfiguration")
        .and_then(|v| json_str(v, "Status"))
    {
        s3.put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                s3t::VersioningConfiguration::builder()
                    .status(s3t::BucketVersioningStatus::from(status.as_str()))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    if let Some(pab) = props.get("PublicAccessBlockConfiguration") {
        let flag = |k: &str| pab.get(k).and_then(Json::as_bool).unwrap_or(false);
        s3.put_public_access_block()
            .bucket(&name)
            .public_access_block_configuration(
                s3t::PublicAccessBlockConfiguration::builder()
                    .block_public_acls(flag("BlockPublicAcls"))
                    .block_public_policy(flag("BlockPublicPolicy"))
                    .ignore_public_acls(flag("IgnorePublicAcls"))
                    .restrict_public_buckets(flag("RestrictPublicBuckets"))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    let rules = props
        .pointer("/BucketEncryption/ServerSideEncryptionConfiguration")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if let Some(rule) = rules.first() {
        let algorithm = rule
            .pointer("/ServerSideEncryptionByDefault/SSEAlgorithm")
            .and_then(Json::as_str)
            .unwrap_or("AES256");
        s3.put_bucket_encryption()
            .bucket(&name)
            .server_side_encryption_configuration(
                s3t::ServerSideEncryptionConfiguration::builder()
                    .rules(
                        s3t::ServerSideEncryptionRule::builder()
                            .apply_server_side_encryption_by_default(
                                s3t::ServerSideEncryptionByDefault::builder()
                                    .sse_algorithm(s3t::ServerSideEncryption::from(algorithm))
                                    .build()
                                    .map_err(|e| aws_err(id, e))?,
                            )
                            .build(),
                    )
                    .build()
                    .map_err(|e| aws_err(id, e))?,
            )
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    let cors_rules = props
        .pointer("/CorsConfiguration/CorsRules")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if !cors_rules.is_empty() {
        let mut cors = s3t::CorsConfiguration::builder();
        for c in &cors_rules {
            cors = cors.cors_rules(
                s3t::CorsRule::builder()
                    .set_allowed_origins(Some(json_strings(c.get("AllowedOrigins"))))
                    .set_allowed_methods(Some(json_strings(c.get("AllowedMethods"))))
                    .set_allowed_headers(Some(json_strings(c.get("AllowedHeaders"))))
                    .set_expose_headers(Some(json_strings(c.get("ExposedHeaders"))))
                    .set_max_age_seconds(c.get("MaxAge").and_then(Json::as_i64).map(|v| v as i32))
                    .build()
                    .map_err(|e| aws_err(id, e))?,
            );
        }
        s3.put_bucket_cors()
            .bucket(&name)
            .cors_configuration(cors.build().map_err(|e| aws_err(id, e))?)
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    let lifecycle = props
        .pointer("/LifecycleConfiguration/Rules")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if !lifecycle.is_empty() {
        let mut config = s3t::BucketLifecycleConfiguration::builder();
        for l in &lifecycle {
            let mut rule = s3t::LifecycleRule::builder()
                .set_id(json_str(l, "Id"))
                .status(s3t::ExpirationStatus::from(
                    json_str(l, "Status").unwrap_or_default().as_str(),
                ))
                .filter(s3t::LifecycleRuleFilter::builder().prefix("").build());
            if let Some(days) = l
                .pointer("/AbortIncompleteMultipartUpload/DaysAfterInitiation")
                .and_then(Json::as_i64)
            {
                rule = rule.abort_incomplete_multipart_upload(
                    s3t::AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(days as i32)
                        .build(),
                );
            }
            config = config.rules(rule.build().map_err(|e| aws_err(id, e))?);
        }
        s3.put_bucket_lifecycle_configuration()
            .bucket(&name)
            .lifecycle_configuration(config.build().map_err(|e| aws_err(id, e))?)
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    let queue_configs = props
        .pointer("/NotificationConfiguration/QueueConfigurations")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    if !queue_configs.is_empty() {
        let mut notification = s3t::NotificationConfiguration::builder();
        for q in &queue_configs {
            let mut filter_rules = Vec::new();
            for f in q
                .pointer("/Filter/S3Key/Rules")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                filter_rules.push(
                    s3t::FilterRule::builder()
                        .name(s3t::FilterRuleName::from(
                            json_str(f, "Name").unwrap_or_default().as_str(),
                        ))
                        .value(json_str(f, "Value").unwrap_or_default())
                        .build(),
                );
            }
            let mut config = s3t::QueueConfiguration::builder()
                .queue_arn(json_str(q, "Queue").unwrap_or_default())
                .events(s3t::Event::from(
                    json_str(q, "Event").unwrap_or_default().as_str(),
                ));
            if !filter_rules.is_empty() {
                config = config.filter(
                    s3t::NotificationConfigurationFilter::builder()
                        .key(
                            s3t::S3KeyFilter::builder()
                                .set_filter_rules(Some(filter_rules))
                                .build(),
                        )
                        .build(),
                );
            }
            notification =
                notification.queue_configurations(config.build().map_err(|e| aws_err(id, e))?);
        }
        s3.put_bucket_notification_configuration()
            .bucket(&name)
            .notification_configuration(notification.build())
            .send()
            .await
            .map_err(|e| aws_err(id, e))?;
    }
    Ok(name)
}
