//! The demo trial `make dev` seeds through the API (`local_stack::demo::seed_trial`): what it
//! writes, and that a second run writes nothing more.

use clinflow_tests::*;

#[tokio::test]
async fn the_demo_trial_is_seeded_through_the_api_once() {
    let app = spawn_app().await;
    let tokens = app.stack.demo_tokens();
    let seeded = local_stack::demo::seed_trial(&app.stack.api_url, &tokens)
        .await
        .expect("seed");
    // Three fixture subjects and four enrolled at three sites.
    assert_eq!(seeded.subjects.len(), 7);
    let sites: std::collections::BTreeSet<&str> =
        seeded.subjects.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(sites.len(), 3);
    // VS, LB and CM for each; AE for three of them.
    assert_eq!(seeded.forms_written, 7 * 3 + 3);
    assert_eq!(app.item_count("FormsTable").await, 24);
    assert!(seeded.diary_entries >= 7 * 18, "{}", seeded.diary_entries);
    assert_eq!(app.item_count("EproTable").await, seeded.diary_entries);

    // What the report will read: a serious AE not recovered, labs out of range, rising pain.
    let monitor = app.token_in(
        "monitor",
        &local_stack::demo::SITES,
        &[local_stack::demo::TRIAL],
    );
    let ae = app.get("/v1/subjects/SUBJ-0101/forms/AE", &monitor).await;
    assert_eq!(ae.status, 200, "{}", ae.body);
    assert!(ae.body["itemGroups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["items"]["AESER"] == "Y" && g["items"]["AEOUT"] == "NOT_RECOVERED"));
    let labs = app.get("/v1/subjects/SUBJ-0002/forms/LB", &monitor).await;
    assert!(labs.body["itemGroups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["items"]["LBTESTCD"] == "ALT"
            && g["items"]["LBORRES"].as_f64().unwrap() > g["items"]["LBORNRHI"].as_f64().unwrap()));
    let diary = app
        .get("/v1/subjects/SUBJ-0101/epro?limit=500", &monitor)
        .await;
    let pains: Vec<u64> = diary.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["painScore"].as_u64().unwrap())
        .collect();
    assert!(pains.first() < pains.last(), "{pains:?}");

    // Again: nothing new.
    let again = local_stack::demo::seed_trial(&app.stack.api_url, &tokens)
        .await
        .expect("seed again");
    assert_eq!(again.forms_written, 0);
    assert_eq!(again.diary_entries, 0);
    assert_eq!(again.subjects, seeded.subjects);
    assert_eq!(app.item_count("FormsTable").await, 24);
    assert_eq!(app.item_count("EproTable").await, seeded.diary_entries);
}
