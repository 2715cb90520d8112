//! Issue 75, item 4: what a role cannot read, it cannot filter, facet or match on. An
//! agent reads a summary of an account they do not work (no tags, custom fields, address
//! or external reference; the email and phone masked): a search of theirs filters,
//! facets, sorts and matches those fields only on their own accounts, and still finds
//! any caller by name, phone, email and account number.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::custom_search::facet;
use crate::helpers::{TestApp, TestUser, names, spawn_app, status_json};

/// Agent A's account, with everything a summary hides, and agent B's own account.
struct Accounts {
    app: TestApp,
    manager: TestUser,
    agent_a: TestUser,
    agent_b: TestUser,
}

const A_NAME: &str = "Rosalind Okonkwo-Vance";
const A_NUMBER: &str = "HF-7001";
const A_SCORE: u32 = 712;
const A_POSTAL: &str = "30328";
const B_NAME: &str = "Bartholomew Quill";

async fn accounts() -> Accounts {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent_a = app.user(Role::Agent).await;
    let agent_b = app.user(Role::Agent).await;
    for body in [
        json!({"key": "credit_score", "label": "Credit score", "type": "number", "filterable": true, "sortable": true}),
        json!({"key": "segment", "label": "Segment", "type": "list", "rules": {"allowed": ["Prime", "Subprime"]}, "filterable": true}),
        json!({"key": "note", "label": "Note", "type": "text", "searchable": true}),
    ] {
        app.create(&admin.token, "/api/v1/fields", &body).await;
    }
    indexed(
        &app,
        &manager,
        json!({
            "debtor_name": A_NAME, "account_number": A_NUMBER, "external_ref": "ORIG-55123",
            "email": "rosalind.okonkwo@mail.example.com", "phone": "+1 (201) 555-0187",
            "address": {"line1": "88 Wisteria Crescent", "city": "Sandy Springs", "region": "GA",
                        "postal_code": A_POSTAL, "country": "US"},
            "tags": ["bankruptcy", "legal-hold"],
            "custom_fields": {"credit_score": A_SCORE, "segment": "Subprime", "note": "chapter thirteen trustee Marlowe"},
            "assigned_agent_id": agent_a.id, "original_balance": "900.00", "currency": "USD"
        }),
    )
    .await;
    indexed(
        &app,
        &manager,
        json!({
            "debtor_name": B_NAME, "tags": ["payment-plan"],
            "custom_fields": {"credit_score": 640, "segment": "Prime"},
            "assigned_agent_id": agent_b.id, "original_balance": "100.00", "currency": "USD"
        }),
    )
    .await;
    Accounts {
        app,
        manager,
        agent_a,
        agent_b,
    }
}

async fn indexed(app: &TestApp, manager: &TestUser, body: Value) {
    let (status, account) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await).await;
    assert_eq!(status, StatusCode::CREATED, "{account}");
}

async fn search(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}&page_size=50"), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

/// Whether `user`'s search finds agent A's account.
async fn finds_a(app: &TestApp, user: &TestUser, query: &str) -> bool {
    names(&search(app, user, query).await).iter().any(|name| name == A_NAME)
}

fn counts(values: &[(&str, u64)]) -> Vec<(String, u64)> {
    values.iter().map(|(v, c)| ((*v).to_owned(), *c)).collect()
}

#[tokio::test]
async fn facets_over_hidden_fields_count_only_the_agents_own_accounts() {
    let Accounts {
        app,
        manager,
        agent_a,
        agent_b,
    } = accounts().await;
    let query = "facets=tags,cf.segment,status";
    let page = search(&app, &agent_b, query).await;
    assert_eq!(page["total"], 2, "both accounts are found: {page}");
    assert_eq!(facet(&page, "tags"), counts(&[("payment-plan", 1)]), "{page}");
    assert_eq!(facet(&page, "cf.segment"), counts(&[("Prime", 1)]), "{page}");
    assert_eq!(
        facet(&page, "status"),
        counts(&[("active", 2)]),
        "what a summary shows counts everywhere"
    );
    // Narrowed to A's account by its name, B's facets count nothing of it.
    let page = search(&app, &agent_b, &format!("q=okonkwo&{query}")).await;
    assert_eq!(names(&page), [A_NAME]);
    assert_eq!((facet(&page, "tags"), facet(&page, "cf.segment")), (vec![], vec![]), "{page}");

    let page = search(&app, &agent_a, query).await;
    assert_eq!(
        facet(&page, "tags"),
        counts(&[("bankruptcy", 1), ("legal-hold", 1)]),
        "the owner counts their own"
    );
    assert_eq!(facet(&page, "cf.segment"), counts(&[("Subprime", 1)]));
    let page = search(&app, &manager, query).await;
    assert_eq!(
        facet(&page, "tags"),
        counts(&[("bankruptcy", 1), ("legal-hold", 1), ("payment-plan", 1)]),
        "a manager counts every account"
    );
    assert_eq!(facet(&page, "cf.segment"), counts(&[("Prime", 1), ("Subprime", 1)]));
}

#[tokio::test]
async fn a_hidden_credit_score_cannot_be_pinned_by_filters_or_sorts() {
    let Accounts {
        app,
        manager,
        agent_a,
        agent_b,
    } = accounts().await;
    // The attack: a binary search on a filter, nine searches from 300 to 850.
    let (mut low, mut high) = (300, 850);
    let mut answers = Vec::new();
    for _ in 0..9 {
        let middle = (low + high) / 2;
        let found = finds_a(&app, &agent_b, &format!("cf.credit_score.gte={middle}")).await;
        answers.push((middle, found));
        if found { low = middle } else { high = middle }
    }
    assert!(
        answers.iter().all(|(_, found)| !found),
        "B's filters on A's hidden score answer the same whatever it is: {answers:?}"
    );
    for query in [
        "cf.credit_score.exists=true",
        "cf.credit_score.exists=false",
        "cf.segment=Subprime",
        "tags=bankruptcy",
        "tags=legal-hold",
        "sort=-cf.credit_score",
        "sort=cf.credit_score",
    ] {
        assert!(!finds_a(&app, &agent_b, query).await, "B: {query}");
    }
    assert_eq!(
        names(&search(&app, &agent_b, "cf.credit_score.gte=600").await),
        [B_NAME],
        "B filters their own accounts"
    );
    assert_eq!(names(&search(&app, &agent_b, "sort=-cf.credit_score").await), [B_NAME]);

    // The owner and a manager pin it as before.
    for user in [&agent_a, &manager] {
        assert!(finds_a(&app, user, &format!("cf.credit_score.gte={A_SCORE}")).await);
        assert!(!finds_a(&app, user, &format!("cf.credit_score.gt={A_SCORE}")).await);
        assert!(finds_a(&app, user, "tags=bankruptcy").await);
        assert!(finds_a(&app, user, "sort=-cf.credit_score").await);
    }
    assert_eq!(
        names(&search(&app, &manager, "sort=-cf.credit_score").await),
        [A_NAME, B_NAME],
        "a manager sorts every account"
    );
}

#[tokio::test]
async fn text_matches_hidden_fields_only_in_the_agents_own_accounts() {
    let Accounts {
        app,
        manager,
        agent_a,
        agent_b,
    } = accounts().await;
    for q in [
        A_POSTAL,
        "wisteria",
        "sandy%20springs",
        "ORIG-55123",
        "orig-551",
        "55123",
        "trustee%20marlowe",
    ] {
        let query = format!("q={q}");
        assert!(!finds_a(&app, &agent_b, &query).await, "B: {query}");
        assert!(finds_a(&app, &agent_a, &query).await, "A: {query}");
        assert!(finds_a(&app, &manager, &query).await, "manager: {query}");
    }
    // A word of the name with a hidden word: no match for B, whose words must all match
    // what B may match on.
    assert!(!finds_a(&app, &agent_b, &format!("q=okonkwo%20{A_POSTAL}")).await);
    assert!(finds_a(&app, &agent_a, &format!("q=okonkwo%20{A_POSTAL}")).await);
}

#[tokio::test]
async fn any_agent_still_finds_a_caller_by_name_phone_email_and_account_number() {
    let Accounts { app, agent_b, .. } = accounts().await;
    for q in [
        "rosalind%20okonkwo",
        "okonkwo-vance",
        "rosalnd",
        "0187",
        "555-0187",
        "%2B1%20201%20555%200187",
        "rosalind.okonkwo%40mail.example.com",
        "rosalind.okon",
        "okonkwo%40mail",
        A_NUMBER,
        "hf-70",
    ] {
        let page = search(&app, &agent_b, &format!("q={q}")).await;
        assert_eq!(names(&page), [A_NAME], "q={q}: {page}");
        assert_eq!(page["data"][0]["access"], "summary", "q={q}");
        assert_eq!(page["data"][0]["tags"], json!([]), "q={q}");
    }
}
