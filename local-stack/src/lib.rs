//! The local stack: the whole system on loopback, with no AWS account and no Docker.
//!
//! - [`emulator`]: moto server from the repo's venv on a free port, or `AWS_ENDPOINT_URL`;
//! - [`template`] + [`provision`]: the resources of template.yaml, names and wiring read from it;
//! - [`api`] + [`jwt`]: the HttpApi routes at `CLINFLOW_API_ADDR`, after the authorizer's JWT check;
//! - [`console`]: the web console (web/) on the same origin, and its dev sign-in (local only);
//! - [`functions`]: each function of the template, run in-process with the environment the template
//!   gives it; or ([`runtime`]) as its real binary in a child process, under a local Lambda runtime
//!   API;
//! - [`roles`]: with the emulator's IAM enforcement on, each function under its own template role.
//! - [`demo`]: the demo trial seeded through the API (`clinflow-local seed-trial`);
//! - [`invoke`]: the Lambda Invoke API (`sam local start-lambda`'s contract) at `CLINFLOW_LAMBDA_ADDR`.

pub mod api;
pub mod console;
pub mod demo;
pub mod emulator;
pub mod functions;
pub mod invoke;
pub mod jwt;
pub mod pollers;
pub mod provision;
pub mod reference;
pub mod roles;
pub mod runtime;
pub mod secrets;
pub mod template;

use api::{ApiState, Cors, RouteBinding};
use aws_config::{BehaviorVersion, Region};
use functions::LocalFunction;
use serde_json::Value as Json;
use shared::aws::AwsClients;
use shared::clinical::subject::{Sex, SubjectRecord, SubjectStatus};
use shared::domain::{SiteId, SubjectId, SubjectKey, TrialId};
use shared::store::subjects::DynamoSubjects;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use template::{json_number, json_str, json_strings, Template};
use tokio::task::JoinHandle;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Options {
    pub stack_name: String,
    pub region: String,
    pub api_addr: SocketAddr,
    /// Where the Lambda Invoke API listens ([`invoke`]; port 0 picks a free one).
    pub lambda_addr: SocketAddr,
    pub template: PathBuf,
    pub parameters: HashMap<String, String>,
    pub jwt_secret: String,
    /// Run the SQS event-source mappings and schedules (tests of one stage turn them off to watch
    /// the queues themselves).
    pub pollers: bool,
    /// Functions (logical ids) whose queues are left unpolled even with `pollers` on (a test of
    /// one stage watches the queue after it).
    pub unpolled: Vec<String>,
    /// Functions (logical id → executable) run as their real binaries in child processes, under a
    /// local Lambda runtime API ([`runtime`]), instead of in-process. SQS-triggered functions only.
    pub processes: BTreeMap<String, PathBuf>,
    /// The emulator's administrator ([`emulator::Emulator::admin`]): the stack provisions with it
    /// and runs each function under its own template role, IAM enforced. `None`: every call uses
    /// the environment's credentials (an endpoint of someone else's, e.g. LocalStack).
    pub admin: Option<emulator::AccessKeys>,
    /// The reference data written to the reference table before any function runs.
    pub reference_data: reference::ReferenceSeed,
    /// Where the functions' own SDK calls go, if not straight to the emulator: a fault-injecting
    /// proxy in front of it (tests of issue 13). Provisioning, seeding and the event-source
    /// mappings (Lambda's side, not the function's) still talk to the emulator directly.
    pub function_endpoint: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stack_name: "clinflow-local".into(),
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            lambda_addr: SocketAddr::from(([127, 0, 0, 1], 3001)),
            template: emulator::repo_root().join("template.yaml"),
            parameters: HashMap::new(),
            jwt_secret: jwt::dev_secret(),
            pollers: true,
            unpolled: Vec::new(),
            processes: BTreeMap::new(),
            admin: None,
            reference_data: reference::ReferenceSeed::All,
            function_endpoint: None,
        }
    }
}

/// A function of the template as the local stack runs it.
pub struct FunctionInfo {
    pub binary: String,
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    /// The keys of the IAM user holding the function's role (IAM enforced), if any.
    pub credentials: Option<emulator::AccessKeys>,
}

pub struct LocalStack {
    pub api_url: String,
    /// The Lambda Invoke API's endpoint (`aws lambda invoke --endpoint-url`).
    pub lambda_url: String,
    pub aws_endpoint: String,
    /// Where the functions' SDK calls go ([`Options::function_endpoint`], else `aws_endpoint`).
    pub function_endpoint: String,
    pub region: String,
    pub clients: AwsClients,
    pub template: Template,
    pub provisioned: provision::Provisioned,
    pub functions: BTreeMap<String, FunctionInfo>,
    /// The functions run as child processes (`Options::processes`).
    pub processes: BTreeMap<String, Arc<runtime::ProcessFunction>>,
    pub issuer: String,
    pub audience: String,
    jwt_secret: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The SDK configuration for the emulator: these keys, or without them the environment's
/// credentials, or moto's dummy ones.
pub async fn emulator_config(
    endpoint: &str,
    region: &str,
    keys: Option<&emulator::AccessKeys>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()));
    let credentials = |id: &str, secret: &str| {
        aws_sdk_s3::config::Credentials::new(id, secret, None, None, "clinflow-local")
    };
    if let Some(keys) = keys {
        loader =
            loader.credentials_provider(credentials(&keys.access_key_id, &keys.secret_access_key));
    } else if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
        loader = loader.credentials_provider(credentials("testing", "testing"));
    }
    loader.load().await
}

/// SDK clients for the emulator (see [`emulator_config`]).
pub async fn emulator_clients(
    endpoint: &str,
    region: &str,
    keys: Option<&emulator::AccessKeys>,
) -> AwsClients {
    AwsClients::from_config(&emulator_config(endpoint, region, keys).await, true)
}

impl LocalStack {
    /// Provisions the template's resources on `endpoint` and serves the HttpApi at `options.api_addr`
    /// (port 0 picks a free one).
    pub async fn start(endpoint: &str, options: Options) -> Result<Self, Error> {
        let account = if endpoint.contains("127.0.0.1") || endpoint.contains("localhost") {
            emulator::MOTO_ACCOUNT.to_owned()
        } else {
            std::env::var("AWS_ACCOUNT_ID").unwrap_or_else(|_| emulator::MOTO_ACCOUNT.to_owned())
        };
        // Many local stacks share one emulator (a test each): each names its bucket after itself
        // unless BucketNamePrefix is given, as a deployment per stack would.
        let mut parameters = options.parameters.clone();
        parameters
            .entry("BucketNamePrefix".into())
            .or_insert_with(|| options.stack_name.to_ascii_lowercase());
        // The HttpApi's listener first: its origin serves the web console, which PUTs to the
        // upload bucket through CORS, so the bucket (and the API) must allow it.
        let listener = tokio::net::TcpListener::bind(options.api_addr).await?;
        let api_origin = listener.local_addr()?;
        if !parameters.contains_key("AllowedOrigins") {
            let defaults = Template::load(
                &options.template,
                &options.stack_name,
                &options.region,
                &account,
                &parameters,
            )?
            .parameter("AllowedOrigins")
            .map(|v| json_strings(Some(v)))
            .unwrap_or_default();
            let mut origins = defaults;
            origins.push(format!("http://{api_origin}"));
            origins.push(format!("http://localhost:{}", api_origin.port()));
            parameters.insert("AllowedOrigins".into(), origins.join(","));
        }
        let mut template = Template::load(
            &options.template,
            &options.stack_name,
            &options.region,
            &account,
            &parameters,
        )?;
        let config = emulator_config(endpoint, &options.region, options.admin.as_ref()).await;
        let clients = AwsClients::from_config(&config, true);
        let provisioned = provision::provision(&mut template, &clients).await?;
        let roles = match options.admin {
            Some(_) => Some(roles::roles(&options.template, &template)?),
            None => None,
        };
        let iam = aws_sdk_iam::Client::new(&config);
        let mut seeded_signatures = false;
        // Before any function runs: refresh-cache fires once at start and must find the source.
        if let Some(table) = provisioned.tables.get("ReferenceTable") {
            let entries = reference::load(&emulator::repo_root(), options.reference_data)?;
            reference::seed(&clients.dynamodb, table, &entries).await?;
        }

        let function_endpoint = options.function_endpoint.as_deref().unwrap_or(endpoint);
        let mut functions = BTreeMap::new();
        let mut processes = BTreeMap::new();
        let mut routes = Vec::new();
        // Each route's own `Auth.Authorizer`, if it names one (resolved against the API's
        // `DefaultAuthorizer` below).
        let mut route_authorizers: Vec<Option<String>> = Vec::new();
        let mut tasks = Vec::new();
        let mut invocables = BTreeMap::new();
        for f in template.resources_of("AWS::Serverless::Function") {
            let binary = f
                .metadata
                .get("BuildProperties")
                .and_then(|b| b.get("Binary"))
                .and_then(|b| b.as_str())
                .ok_or_else(|| {
                    format!(
                        "{}: Metadata.BuildProperties.Binary is missing",
                        f.logical_id
                    )
                })?
                .to_owned();
            let environment = template.function_environment(&f)?;
            // The function's own identity: its role's user when IAM is enforced.
            let keys = match roles.as_ref() {
                Some(roles) => {
                    let role = roles.get(&f.logical_id).ok_or_else(|| {
                        format!("{}: SAM gave the function no role", f.logical_id)
                    })?;
                    let user = roles::user_name(&options.stack_name, &f.logical_id);
                    Some(roles::function_user(&iam, &user, role).await?)
                }
                None => None,
            };
            let function_clients = match (&keys, &options.function_endpoint) {
                (Some(keys), _) => {
                    emulator_clients(function_endpoint, &options.region, Some(keys)).await
                }
                (None, Some(_)) => emulator_clients(function_endpoint, &options.region, None).await,
                (None, None) => clients.clone(),
            };
            if let (Some(bucket), Some(prefix), false) = (
                environment.get("UPLOAD_BUCKET"),
                environment.get("SIGNATURES_PREFIX"),
                seeded_signatures,
            ) {
                seed_signatures(&clients, bucket, prefix).await?;
                seeded_signatures = true;
            }
            let timeout =
                json_number(template.function_property(&f, "Timeout").as_ref()).unwrap_or(3);
            let timeout = Duration::from_secs(timeout);
            let local = match options.processes.get(&f.logical_id) {
                Some(executable) => {
                    let memory_mb =
                        json_number(template.function_property(&f, "MemorySize").as_ref())
                            .unwrap_or(128);
                    let process = Arc::new(
                        runtime::ProcessFunction::start(runtime::Launch {
                            name: &format!("{}-{}", options.stack_name, f.logical_id),
                            executable,
                            environment: &environment,
                            aws_endpoint: function_endpoint,
                            region: &options.region,
                            memory_mb,
                            credentials: keys.as_ref(),
                        })
                        .await?,
                    );
                    processes.insert(f.logical_id.clone(), Arc::clone(&process));
                    LocalFunction::Sqs(process)
                }
                None => functions::build(&binary, &environment, &function_clients)
                    .map_err(|e| format!("{}: {e}", f.logical_id))?,
            };
            invocables.insert(
                f.logical_id.clone(),
                invoke::Invocable {
                    runner: match processes.get(&f.logical_id) {
                        Some(process) => invoke::Runner::Process(Arc::clone(process)),
                        None => invoke::Runner::InProcess(local.clone()),
                    },
                    arn: format!(
                        "arn:aws:lambda:{}:{account}:function:{}-{}",
                        options.region, options.stack_name, f.logical_id
                    ),
                    timeout,
                },
            );
            let events = template.eval(
                f.properties
                    .get("Events")
                    .unwrap_or(&serde_yaml::Value::Null),
            )?;
            for (_, event) in events.as_object().into_iter().flatten() {
                let props = event.get("Properties").cloned().unwrap_or(Json::Null);
                match (json_str(event, "Type").as_deref(), &local) {
                    (Some("HttpApi"), LocalFunction::Http(handler)) => {
                        let method = json_str(&props, "Method").unwrap_or_else(|| "ANY".into());
                        route_authorizers.push(
                            props
                                .pointer("/Auth/Authorizer")
                                .and_then(Json::as_str)
                                .map(str::to_owned),
                        );
                        routes.push(RouteBinding {
                            method: method
                                .to_uppercase()
                                .parse()
                                .map_err(|_| format!("bad method {method}"))?,
                            path: json_str(&props, "Path").unwrap_or_default(),
                            function: Arc::clone(handler),
                            timeout,
                            authorized: true,
                        });
                    }
                    (Some("SQS"), LocalFunction::Sqs(handler)) => {
                        let arn = json_str(&props, "Queue").unwrap_or_default();
                        let queue = provisioned
                            .queues
                            .values()
                            .find(|q| q.arn == arn)
                            .ok_or_else(|| {
                                format!("{}: SQS event names an unknown queue {arn}", f.logical_id)
                            })?;
                        let responses = json_strings(props.get("FunctionResponseTypes"));
                        let mapping = pollers::EventSourceMapping {
                            function_name: f.logical_id.clone(),
                            function_arn: format!(
                                "arn:aws:lambda:{}:{account}:function:{}-{}",
                                options.region, options.stack_name, f.logical_id
                            ),
                            queue_url: queue.url.clone(),
                            queue_arn: queue.arn.clone(),
                            region: options.region.clone(),
                            batch_size: props.get("BatchSize").and_then(Json::as_i64).unwrap_or(10)
                                as i32,
                            report_batch_item_failures: responses
                                .iter()
                                .any(|r| r == "ReportBatchItemFailures"),
                            maximum_concurrency: json_number(
                                props.pointer("/ScalingConfig/MaximumConcurrency"),
                            )
                            .unwrap_or(2),
                            function_timeout: timeout,
                            wait_seconds: 1,
                        };
                        if options.pollers && !options.unpolled.contains(&f.logical_id) {
                            tasks.extend(pollers::spawn(
                                mapping,
                                Arc::clone(handler),
                                function_clients.sqs.clone(),
                            ));
                        }
                    }
                    (Some("Schedule") | Some("ScheduleV2"), LocalFunction::Scheduled(handler)) => {
                        let expression = json_str(&props, "Schedule")
                            .or_else(|| json_str(&props, "ScheduleExpression"))
                            .unwrap_or_default();
                        // In a deployed stack the schedule has long fired: what it builds exists
                        // from the first request. Fire it once now, pollers or not.
                        pollers::fire_schedule(
                            &f.logical_id,
                            &format!(
                                "arn:aws:events:{}:{account}:rule/{}-{}",
                                options.region, options.stack_name, f.logical_id
                            ),
                            &account,
                            &options.region,
                            timeout,
                            handler.as_ref(),
                        )
                        .await;
                        match pollers::parse_rate(&expression).filter(|_| options.pollers) {
                            Some(period) => tasks.push(pollers::spawn_schedule(
                                f.logical_id.clone(),
                                format!(
                                    "arn:aws:events:{}:{account}:rule/{}-{}",
                                    options.region, options.stack_name, f.logical_id
                                ),
                                account.clone(),
                                options.region.clone(),
                                period,
                                timeout,
                                Arc::clone(handler),
                            )),
                            None if options.pollers => {
                                tracing::warn!(function = %f.logical_id, %expression, "schedule not run locally (only rate() is)")
                            }
                            None => {}
                        }
                    }
                    (kind, _) => {
                        return Err(format!(
                        "{}: event type {kind:?} is not run by the local stack for this function",
                        f.logical_id
                    )
                        .into())
                    }
                }
            }
            functions.insert(
                f.logical_id.clone(),
                FunctionInfo {
                    binary,
                    environment,
                    timeout,
                    credentials: keys,
                },
            );
        }

        let api = template
            .resources_of("AWS::Serverless::HttpApi")
            .into_iter()
            .next()
            .map(|r| template.eval(r.properties))
            .transpose()?
            .unwrap_or(Json::Null);
        // As API Gateway does: a route is checked by the authorizer it names, else by the API's
        // `DefaultAuthorizer`; `NONE`, or no default, leaves it open. So a template that loses its
        // default authorizer opens every route here too, and the access tests see it.
        let authorizers = api.pointer("/Auth/Authorizers").and_then(Json::as_object);
        let known = |name: &str| authorizers.is_some_and(|a| a.contains_key(name));
        let default_authorizer = api
            .pointer("/Auth/DefaultAuthorizer")
            .and_then(Json::as_str);
        if let Some(name) = default_authorizer.filter(|n| !known(n)) {
            return Err(
                format!("HttpApi DefaultAuthorizer {name} is not among its Authorizers").into(),
            );
        }
        for (route, named) in routes.iter_mut().zip(&route_authorizers) {
            route.authorized = match named.as_deref() {
                Some("NONE") => false,
                Some(name) if known(name) => true,
                Some(name) => {
                    return Err(
                        format!("route {} names an unknown authorizer {name}", route.path).into(),
                    )
                }
                None => default_authorizer.is_some(),
            };
        }
        let jwt = api
            .pointer("/Auth/Authorizers")
            .and_then(Json::as_object)
            .and_then(|a| a.values().next())
            .and_then(|a| a.get("JwtConfiguration"))
            .cloned()
            .unwrap_or(Json::Null);
        let issuer = json_str(&jwt, "issuer").ok_or("HttpApi JWT authorizer has no issuer")?;
        let audience = json_strings(jwt.get("audience"))
            .into_iter()
            .next()
            .ok_or("HttpApi JWT authorizer has no audience")?;
        let cors_config = api.get("CorsConfiguration").cloned().unwrap_or(Json::Null);
        let cors = Cors {
            allow_origins: json_strings(cors_config.get("AllowOrigins")),
            allow_methods: json_strings(cors_config.get("AllowMethods")),
            allow_headers: json_strings(cors_config.get("AllowHeaders")),
            expose_headers: json_strings(cors_config.get("ExposeHeaders")),
            max_age: cors_config.get("MaxAge").and_then(Json::as_u64),
        };
        let throttling = |key: &str, default: f64| {
            json_number(api.pointer(&format!("/DefaultRouteSettings/{key}"))).unwrap_or(default)
        };
        let state = Arc::new(ApiState {
            routes,
            throttle: api::Throttle::new(
                throttling("ThrottlingRateLimit", 10_000.0),
                throttling("ThrottlingBurstLimit", 5_000.0),
            ),
            jwt: jwt::JwtCheck::new(&options.jwt_secret, &issuer, &audience),
            cors,
            account,
            console: Some(console::Console {
                root: emulator::repo_root().join("web"),
                jwt_secret: options.jwt_secret.clone(),
                issuer: issuer.clone(),
                audience: audience.clone(),
            }),
        });
        let api_url = format!("http://{}", listener.local_addr()?);
        let router = axum::Router::new().fallback(api::handle).with_state(state);
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "local HttpApi stopped");
            }
        }));
        let lambda = tokio::net::TcpListener::bind(options.lambda_addr).await?;
        let lambda_url = format!("http://{}", lambda.local_addr()?);
        let invoke_api = invoke::router(Arc::new(invoke::InvokeState {
            functions: invocables,
            stack_name: options.stack_name.clone(),
        }));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = axum::serve(lambda, invoke_api).await {
                tracing::error!(error = %e, "local Lambda Invoke API stopped");
            }
        }));
        Ok(Self {
            api_url,
            lambda_url,
            aws_endpoint: endpoint.to_owned(),
            function_endpoint: function_endpoint.to_owned(),
            region: options.region.clone(),
            clients,
            template,
            provisioned,
            functions,
            processes,
            issuer,
            audience,
            jwt_secret: options.jwt_secret,
            tasks,
        })
    }

    /// A dev token the local authorizer accepts.
    pub fn token(&self, user: &str, role: &str, sites: &[&str], trials: &[&str]) -> String {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        jwt::mint(
            &self.jwt_secret,
            &jwt::TokenSpec {
                subject: user,
                role,
                sites: &owned(sites),
                trials: &owned(trials),
                issuer: &self.issuer,
                audience: &self.audience,
                ttl_seconds: 3600,
            },
        )
    }

    /// A dev token of a patient on the ePRO app: role `patient`, its `subject` claim naming the
    /// one subject whose diary it keeps.
    pub fn patient_token(&self, user: &str, subject: &str) -> String {
        jwt::mint_with(
            &self.jwt_secret,
            &jwt::TokenSpec {
                subject: user,
                role: "patient",
                sites: &[],
                trials: &[],
                issuer: &self.issuer,
                audience: &self.audience,
                ttl_seconds: 3600,
            },
            &[("subject", subject)],
        )
    }

    /// The tokens the demo seeding ([`demo::seed_trial`]) acts with, for this stack.
    pub fn demo_tokens(&self) -> demo::Tokens {
        demo::Tokens {
            secret: self.jwt_secret.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
        }
    }

    /// The SDK clients a function runs with: its role's user when IAM is enforced, else the stack's.
    pub async fn function_clients(&self, logical_id: &str) -> AwsClients {
        match self
            .functions
            .get(logical_id)
            .and_then(|f| f.credentials.as_ref())
        {
            Some(keys) => emulator_clients(&self.function_endpoint, &self.region, Some(keys)).await,
            None if self.function_endpoint != self.aws_endpoint => {
                emulator_clients(&self.function_endpoint, &self.region, None).await
            }
            None => self.clients.clone(),
        }
    }

    /// The physical name of a table, by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&str> {
        self.provisioned.tables.get(logical_id).map(String::as_str)
    }

    pub fn queue(&self, logical_id: &str) -> Option<&provision::Queue> {
        self.provisioned.queues.get(logical_id)
    }

    pub fn bucket(&self, logical_id: &str) -> Option<&str> {
        self.provisioned.buckets.get(logical_id).map(String::as_str)
    }

    /// Writes subjects straight into the subjects table, each a full record (demographics derived
    /// from its id, so every run seeds the same) with its subject key claimed in the trial, and no
    /// audit entry: fixtures, not enrolments (those go through `POST /v1/subjects`).
    pub async fn seed_subjects(&self, subjects: &[(&str, &str, &str)]) -> Result<(), Error> {
        let table = self
            .table("SubjectsTable")
            .ok_or("template has no SubjectsTable")?;
        let keys = self
            .table("SubjectKeysTable")
            .ok_or("template has no SubjectKeysTable")?;
        let directory = DynamoSubjects::new(self.clients.dynamodb.clone(), table);
        for (subject, trial, site) in subjects {
            directory
                .seed(keys, &demo_record(subject, trial, site)?)
                .await?;
        }
        Ok(())
    }
}

/// The full record of a seeded subject: its key is its id, sex and birth year follow from it.
pub fn demo_record(subject: &str, trial: &str, site: &str) -> Result<SubjectRecord, Error> {
    let id = SubjectId::parse(subject)?;
    let n: u32 = subject.bytes().map(u32::from).sum();
    let sex = if n % 2 == 0 { Sex::Female } else { Sex::Male };
    Ok(SubjectRecord {
        subject_key: SubjectKey::parse(subject)?,
        id,
        trial: TrialId::parse(trial)?,
        site: SiteId::parse(site)?,
        sex,
        birth_year: 1945 + (n % 50) as i32,
        enrolled_on: chrono::NaiveDate::from_ymd_opt(2026, 1, 15).ok_or("date")?,
        status: SubjectStatus::Enrolled,
        enrolled_by: "system:seed".into(),
        enrolled_at: chrono::DateTime::from_timestamp(1_768_435_200, 0).ok_or("time")?,
    })
}

/// Uploads the repo's test signature databases (signatures/) under `prefix`, if nothing is there.
async fn seed_signatures(clients: &AwsClients, bucket: &str, prefix: &str) -> Result<(), Error> {
    let existing = clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await?;
    if existing.key_count().unwrap_or(0) > 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir(emulator::repo_root().join("signatures"))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if [".hdb", ".hsb", ".ndb"]
            .iter()
            .any(|ext| name.ends_with(ext))
        {
            clients
                .s3
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}{name}"))
                .body(std::fs::read(&path)?.into())
                .send()
                .await?;
        }
    }
    Ok(())
}

/// The demo trial's fixture subjects (`make dev` walks SUBJ-0001's imaging; [`demo::seed_trial`]
/// gives them and four subjects enrolled through the API their clinical data).
pub const DEMO_SUBJECTS: &[(&str, &str, &str)] = &[
    ("SUBJ-0001", "CLIN-DEMO-01", "SITE-BOS-01"),
    ("SUBJ-0002", "CLIN-DEMO-01", "SITE-BOS-01"),
    ("SUBJ-0101", "CLIN-DEMO-01", "SITE-LYN-02"),
];
