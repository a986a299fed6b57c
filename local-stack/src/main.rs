//! `clinflow-local`: the local stack's command line.
//!
//! - `clinflow-local up [--seed-demo]`: emulator (or `AWS_ENDPOINT_URL`), the template's resources,
//!   the HttpApi at `CLINFLOW_API_ADDR` (default 127.0.0.1:3000), the Lambda Invoke API at
//!   `CLINFLOW_LAMBDA_ADDR` (default 127.0.0.1:3001); prints the ready line and serves until
//!   interrupted. `CLINFLOW_PARAMETERS=Name=value;Name=value` overrides template parameters.
//! - `clinflow-local token --role ROLE --sites A,B [--trials T1,T2] [--subject SUBJ] [--sub USER] [--ttl SECONDS]`: a dev
//!   token (`--role patient --subject SUBJ-0001`: a patient's, for its own ePRO diary).
//! - `clinflow-local seed-trial`: seeds the demo trial through the running stack's API at
//!   `CLINFLOW_API_ADDR` ([`local_stack::demo`]): enrolments, forms, three weeks of ePRO diaries.
//! - `clinflow-local emulator`: only the emulator; prints `AWS_ENDPOINT_URL=...` and runs until its
//!   standard input closes (the test script shares one emulator between test binaries this way).

use local_stack::{
    emulator::Emulator, jwt, template::Template, LocalStack, Options, DEMO_SUBJECTS,
};
use std::collections::HashMap;
use std::io::Read as _;

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> Result<(), local_stack::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("up") => up(&args).await,
        Some("token") => token(&args),
        Some("seed-trial") => seed_trial().await,
        Some("emulator") => {
            let emulator = Emulator::start_moto()?;
            println!("AWS_ENDPOINT_URL={}", emulator.endpoint);
            if let Some(admin) = &emulator.admin {
                println!("AWS_ACCESS_KEY_ID={}", admin.access_key_id);
                println!("AWS_SECRET_ACCESS_KEY={}", admin.secret_access_key);
            }
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            drop(emulator);
            Ok(())
        }
        _ => {
            eprintln!("usage: clinflow-local up [--seed-demo] | seed-trial | token --role ROLE --sites A,B [--trials T1,T2] [--subject SUBJ] [--sub USER] [--ttl SECONDS] | emulator");
            std::process::exit(2);
        }
    }
}

async fn up(args: &[String]) -> Result<(), local_stack::Error> {
    shared::telemetry::init_pretty();
    let emulator = Emulator::from_env_or_start()?;
    let mut options = Options {
        admin: emulator.admin.clone(),
        ..Options::default()
    };
    if let Ok(addr) = std::env::var("CLINFLOW_API_ADDR") {
        options.api_addr = addr.parse()?;
    }
    if let Ok(addr) = std::env::var("CLINFLOW_LAMBDA_ADDR") {
        options.lambda_addr = addr.parse()?;
    }
    if let Ok(name) = std::env::var("CLINFLOW_STACK_NAME") {
        options.stack_name = name;
    }
    // Template parameter overrides, `Name=value;Name=value` (e.g. a small multipart threshold).
    if let Ok(overrides) = std::env::var("CLINFLOW_PARAMETERS") {
        for pair in overrides.split(';').filter(|p| !p.trim().is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("CLINFLOW_PARAMETERS: {pair:?} is not Name=value"))?;
            options
                .parameters
                .insert(name.trim().to_owned(), value.trim().to_owned());
        }
    }
    let stack = LocalStack::start(&emulator.endpoint, options).await?;
    if args.iter().any(|a| a == "--seed-demo") {
        stack.seed_subjects(DEMO_SUBJECTS).await?;
    }
    for (id, f) in &stack.functions {
        tracing::info!(function = %id, binary = %f.binary, "function ready");
    }
    if let Some(admin) = &emulator.admin {
        // The emulator enforces IAM: these keys (of the emulator's administrator, local only) are
        // what a developer's own AWS CLI or boto3 calls need.
        println!(
            "local emulator administrator: AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={}",
            admin.access_key_id, admin.secret_access_key
        );
    }
    println!(
        "clinflow local stack ready: api={} lambda={} aws={}",
        stack.api_url, stack.lambda_url, stack.aws_endpoint
    );
    tokio::signal::ctrl_c().await?;
    drop(stack);
    drop(emulator);
    Ok(())
}

/// The issuer and audience the template's JWT authorizer checks (the dev tokens name them).
fn issuer_and_audience() -> Result<(String, String), local_stack::Error> {
    let template = Template::load(
        &local_stack::emulator::repo_root().join("template.yaml"),
        "clinflow-local",
        "us-east-1",
        local_stack::emulator::MOTO_ACCOUNT,
        &HashMap::new(),
    )?;
    let param = |n: &str| {
        template
            .parameter(n)
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or(format!("template parameter {n} missing"))
    };
    Ok((param("JwtIssuer")?, param("JwtAudience")?))
}

async fn seed_trial() -> Result<(), local_stack::Error> {
    let addr = std::env::var("CLINFLOW_API_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let (issuer, audience) = issuer_and_audience()?;
    let tokens = local_stack::demo::Tokens {
        secret: jwt::dev_secret(),
        issuer,
        audience,
    };
    let seeded = local_stack::demo::seed_trial(&format!("http://{addr}"), &tokens).await?;
    println!(
        "seeded trial {}: {} subjects at {} sites, {} forms written, {} diary entries submitted",
        local_stack::demo::TRIAL,
        seeded.subjects.len(),
        local_stack::demo::SITES.len(),
        seeded.forms_written,
        seeded.diary_entries
    );
    for (subject, site) in &seeded.subjects {
        println!("  {subject} at {site}");
    }
    Ok(())
}

fn token(args: &[String]) -> Result<(), local_stack::Error> {
    let role = flag(args, "--role")
        .ok_or("--role is required (site_staff, monitor, sponsor_admin, patient)")?;
    // A patient's token names its subject (--subject SUBJ-0001).
    let subject = flag(args, "--subject");
    if role == "patient" && subject.is_none() {
        return Err("a patient's token needs --subject".into());
    }
    let sites: Vec<String> = flag(args, "--sites")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let trials: Vec<String> = flag(args, "--trials")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let user = flag(args, "--sub").unwrap_or_else(|| format!("dev-{role}"));
    let ttl: i64 = flag(args, "--ttl")
        .map(|t| t.parse())
        .transpose()?
        .unwrap_or(3600);
    let template = Template::load(
        &local_stack::emulator::repo_root().join("template.yaml"),
        "clinflow-local",
        "us-east-1",
        local_stack::emulator::MOTO_ACCOUNT,
        &HashMap::new(),
    )?;
    let param = |n: &str| {
        template
            .parameter(n)
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or(format!("template parameter {n} missing"))
    };
    let (issuer, audience) = (param("JwtIssuer")?, param("JwtAudience")?);
    println!(
        "{}",
        jwt::mint_with(
            &jwt::dev_secret(),
            &jwt::TokenSpec {
                subject: &user,
                role: &role,
                sites: &sites,
                trials: &trials,
                issuer: &issuer,
                audience: &audience,
                ttl_seconds: ttl,
            },
            &subject
                .as_deref()
                .map(|s| vec![("subject", s)])
                .unwrap_or_default(),
        )
    );
    Ok(())
}
