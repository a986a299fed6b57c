//! The per-client limit on ePRO submissions: a token bucket per client (the token's `sub`) in a
//! DynamoDB table shared by every instance; past it, 429 with `Retry-After` while other clients
//! are served; with the table unreachable (the function's role denied it), the same limit
//! in-process, still serving.

use clinflow_tests::*;

async fn flood(app: &TestApp, token: &str, subject: &str, n: usize) -> Vec<Reply> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(
            app.post_epro(
                token,
                subject,
                &uuid::Uuid::new_v4().to_string(),
                &diary_entry(i as i64 + 1, 3),
            )
            .await,
        );
    }
    out
}

fn assert_limited_after(replies: &[Reply], burst: usize) {
    for (i, r) in replies.iter().enumerate() {
        if i < burst {
            assert_eq!(r.status, 201, "request {i}: {}", r.body);
        } else {
            assert_eq!(r.problem(429), "/problems/rate-limited", "request {i}");
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            // 1 token a second: the next one within a second (rounded up).
            assert_eq!(retry, 1, "request {i}");
        }
    }
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_while_another_is_served() {
    let app = spawn_app_with(&[("EproRateLimitPerSecond", "1"), ("EproRateLimitBurst", "3")]).await;
    let flooder = app.staff();
    // The burst, then refusals (sent within far less than a second).
    let replies = flood(&app, &flooder, "SUBJ-0001", 6).await;
    assert_limited_after(&replies, 3);
    // Another client (a patient) is served meanwhile.
    let patient = app.patient_token("SUBJ-0002");
    let r = app
        .post_epro(&patient, "SUBJ-0002", "p-1", &diary_entry(1, 2))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The buckets are in the shared table, one per client.
    assert_eq!(app.item_count("RateLimitsTable").await, 2);
    // Refused requests wrote nothing.
    assert_eq!(app.item_count("EproTable").await, 4);
    // A second later the flooder has a token again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = flood(&app, &flooder, "SUBJ-0001", 1).await;
    assert_eq!(r[0].status, 201, "{}", r[0].body);
}

#[tokio::test]
async fn with_the_table_unreachable_the_limit_holds_in_process_and_the_route_keeps_serving() {
    // The function's role may not touch the rate-limits table: every call to it fails.
    let app = spawn_app_from(template_without_statement("LimitEproRate")).await;
    let flooder = app.staff();
    // The template's defaults: 1 a second, burst 10.
    let replies = flood(&app, &flooder, "SUBJ-0001", 12).await;
    assert_limited_after(&replies, 10);
    let patient = app.patient_token("SUBJ-0002");
    let r = app
        .post_epro(&patient, "SUBJ-0002", "p-1", &diary_entry(1, 2))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        app.item_count("RateLimitsTable").await,
        0,
        "nothing reached the table"
    );
    assert_eq!(app.item_count("EproTable").await, 11);
}
