//! `GET /api/v1/accounts` over HTTP: parameters, quality cases, buckets, cursor, facets.

use std::collections::HashSet;

use arrears::domain::role::Role;
use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, names, spawn_app, status_json};

async fn indexed(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post("/api/v1/accounts?wait_for=indexed", Some(token), &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn search(app: &TestApp, user: &TestUser, query: &str) -> Value {
    let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}"), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    page
}

fn base(name: &str) -> Value {
    json!({"debtor_name": name, "original_balance": "100.00", "currency": "USD"})
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn agents_find_debtors_the_way_they_type() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    indexed(
        &app,
        &manager.token,
        with(
            base("José Álvarez"),
            json!({"email": "Jose.Alvarez@Example.com", "phone": "(201) 555-0134"}),
        ),
    )
    .await;
    indexed(
        &app,
        &manager.token,
        with(
            base("Katherine Johansson"),
            json!({"account_number": "KJ-4411", "phone": "+44 20 7946 0958"}),
        ),
    )
    .await;
    indexed(&app, &manager.token, base("Jonathan Smith")).await;

    for (q, expected) in [
        ("johanson", "Katherine Johansson"),
        ("jonat", "Jonathan Smith"),
        ("0134", "José Álvarez"),
        ("555-0134", "José Álvarez"),
        ("jose%20alvarez", "José Álvarez"),
        ("JOSE.ALVAREZ%40EXAMPLE.COM", "José Álvarez"),
        ("kj-44", "Katherine Johansson"),
        ("7946%200958", "Katherine Johansson"),
    ] {
        let page = search(&app, &viewer, &format!("q={q}")).await;
        assert_eq!(names(&page), [expected], "q={q}");
    }
    let page = search(&app, &viewer, "q=alvares").await;
    assert_eq!(page["data"][0]["highlight"]["debtor_name"], "José <em>Álvarez</em>");
    let page = search(&app, &viewer, "q=0134").await;
    assert_eq!(page["data"][0]["highlight"]["phone"], "+1201555<em>0134</em>");
}

#[tokio::test]
async fn buckets_follow_days_past_due_on_exact_boundaries() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let today = Utc::now().date_naive();
    let cases = [
        (0, "current"),
        (1, "1-29"),
        (29, "1-29"),
        (30, "30-59"),
        (59, "30-59"),
        (60, "60-89"),
        (89, "60-89"),
        (90, "90-119"),
        (119, "90-119"),
        (120, "120+"),
    ];
    for (days, _) in cases {
        let due = (today - Duration::days(days)).to_string();
        let created = indexed(
            &app,
            &manager.token,
            with(base(&format!("Due {days}")), json!({"due_date": due, "status": "delinquent"})),
        )
        .await;
        assert_eq!(created["days_past_due"], days);
    }
    for bucket in ["current", "1-29", "30-59", "60-89", "90-119", "120+"] {
        let page = search(&app, &manager, &format!("bucket={}&page_size=50", bucket.replace('+', "%2B"))).await;
        let got: HashSet<String> = names(&page).into_iter().collect();
        let want: HashSet<String> = cases
            .iter()
            .filter(|(_, b)| *b == bucket)
            .map(|(d, _)| format!("Due {d}"))
            .collect();
        assert_eq!(got, want, "bucket {bucket}");
        for account in page["data"].as_array().unwrap() {
            assert_eq!(account["bucket"], bucket);
        }
    }
    let page = search(&app, &manager, "facets=bucket").await;
    let counts: Vec<(String, u64)> = page["facets"]["bucket"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["value"].as_str().unwrap().to_owned(), v["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [
            ("current".into(), 1),
            ("1-29".into(), 2),
            ("30-59".into(), 2),
            ("60-89".into(), 2),
            ("90-119".into(), 2),
            ("120+".into(), 1)
        ]
    );
}

#[tokio::test]
async fn filters_sort_cursor_and_facets_over_http() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    for i in 0..12 {
        let mut body = with(
            base(&format!("Filter Person{i:02}")),
            json!({"current_balance": format!("{}.00", 10 * i), "original_balance": "500.00"}),
        );
        if i % 3 == 0 {
            body["assigned_agent_id"] = json!(agent.id);
            body["tags"] = json!(["vip"]);
            body["status"] = json!("delinquent");
        }
        if i == 5 {
            body["next_action_at"] = json!((Utc::now() + Duration::hours(2)).to_rfc3339());
        }
        if i == 9 {
            // A yen balance has no minor digits, and is never added to dollars.
            body["currency"] = json!("JPY");
            body["current_balance"] = json!("90");
            body["original_balance"] = json!("500");
        }
        indexed(&app, &manager.token, body).await;
    }
    let mine = search(&app, &agent, "assigned_agent_id=me").await;
    assert_eq!(mine["total"], 4);
    assert_eq!(search(&app, &agent, "assigned_agent_id=unassigned").await["total"], 8);
    assert_eq!(search(&app, &agent, "tags=vip&status=delinquent").await["total"], 4);
    assert_eq!(search(&app, &agent, "status=active&status=delinquent").await["total"], 12);
    assert_eq!(search(&app, &agent, "min_balance=30&max_balance=60").await["total"], 4);
    let before = (Utc::now() + Duration::hours(3)).to_rfc3339().replace('+', "%2B");
    assert_eq!(
        names(&search(&app, &agent, &format!("next_action_before={before}")).await),
        ["Filter Person05"]
    );

    // A sort key is a field's wire name (`current_balance`) or its short alias
    // (`balance`): one ordering, so a cursor of one continues the other.
    let mut seen = Vec::new();
    let mut path = "sort=-current_balance&page_size=5".to_owned();
    loop {
        let page = search(&app, &agent, &path).await;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["current_balance"].as_str().unwrap().parse::<f64>().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("sort=-balance&page_size=5&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12);
    assert!(seen.windows(2).all(|w| w[0] >= w[1]), "{seen:?}");
    for (wire, alias) in [
        ("debtor_name", "name"),
        ("-updated_at", "-updated"),
        ("next_action_at", "next_action"),
    ] {
        assert_eq!(
            names(&search(&app, &agent, &format!("sort={wire}&page_size=50")).await),
            names(&search(&app, &agent, &format!("sort={alias}&page_size=50")).await),
            "{wire}"
        );
    }

    let page = search(&app, &agent, "facets=status,tags,assigned_agent_id&page_size=1").await;
    let status = &page["facets"]["status"];
    let delinquent = status.as_array().unwrap().iter().find(|v| v["value"] == "delinquent").unwrap();
    assert_eq!(delinquent["count"], 4);
    assert_eq!(
        delinquent["sums"],
        json!([{"currency": "JPY", "amount": "90"}, {"currency": "USD", "amount": "90.00"}]),
        "0 + 30 + 60 dollars, 90 yen"
    );
    assert_eq!(page["facets"]["tags"][0], json!({"value": "vip", "count": 4}));
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    // A page of none: the same total and facets, no rows, no cursor.
    let counts = search(&app, &agent, "facets=status,tags,assigned_agent_id&page_size=0").await;
    assert_eq!(counts["data"], json!([]));
    assert_eq!(counts["next_cursor"], json!(null));
    assert_eq!((&counts["total"], &counts["facets"]), (&page["total"], &page["facets"]));
    let page = search(&app, &agent, "facets=bucket").await;
    let mut totals = std::collections::BTreeMap::new();
    for bucket in page["facets"]["bucket"].as_array().unwrap() {
        for sum in bucket["sums"]
            .as_array()
            .unwrap_or_else(|| panic!("a bucket sums its balances: {bucket}"))
        {
            let amount: rust_decimal::Decimal = sum["amount"].as_str().unwrap().parse().unwrap();
            *totals
                .entry(sum["currency"].as_str().unwrap().to_owned())
                .or_insert(rust_decimal::Decimal::ZERO) += amount;
        }
    }
    assert_eq!(
        totals,
        [
            ("JPY".to_owned(), "90".parse().unwrap()),
            ("USD".to_owned(), "570".parse().unwrap())
        ]
        .into(),
        "every balance in one bucket, each currency apart"
    );
}

#[tokio::test]
async fn bad_parameters_are_named() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    for (query, field) in [
        ("sort=colour", "sort"),
        ("min_balance=9&max_balance=1", "min_balance"),
        ("due_from=2026-02-01&due_to=2026-01-01", "due_from"),
        ("cursor=not-a-cursor", "cursor"),
        ("page_size=201", "page_size"),
        ("status=happy", "status"),
        ("bucket=31-60", "bucket"),
        ("facets=colour", "facets"),
        ("assigned_agent_id=someone", "assigned_agent_id"),
        ("next_action_before=tomorrow", "next_action_before"),
        ("unknown=1", "unknown"),
    ] {
        app.assert_refused_parameter(&manager.token, &format!("/api/v1/accounts?{query}"), field)
            .await;
    }
    let page = search(&app, &manager, "sort=-balance").await;
    assert!(page["next_cursor"].is_null());
    indexed(&app, &manager.token, base("A")).await;
    indexed(&app, &manager.token, base("B")).await;
    let page = search(&app, &manager, "sort=name&page_size=1").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let other_sort = app
        .get(&format!("/api/v1/accounts?sort=-balance&cursor={cursor}"), &manager.token)
        .await;
    assert_problem(other_sort, StatusCode::BAD_REQUEST, "invalid_parameter").await;
}

#[tokio::test]
async fn deleted_accounts_leave_lists_and_managers_can_include_them() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = indexed(&app, &manager.token, base("Soon Gone")).await;
    let response = app
        .delete(
            &format!("/api/v1/accounts/{}?wait_for=indexed", account["id"].as_str().unwrap()),
            &manager.token,
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(search(&app, &agent, "q=soon").await["total"], 0);
    let page = search(&app, &manager, "q=soon&include_deleted=true").await;
    assert_eq!(page["total"], 1);
    assert!(page["data"][0]["deleted_at"].is_string());
    let refused = app.get("/api/v1/accounts?include_deleted=true", &agent.token).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;
    let bad_wait = app.post("/api/v1/accounts?wait_for=soon", Some(&manager.token), &base("X")).await;
    assert_problem(bad_wait, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}
