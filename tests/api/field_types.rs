//! Changing a custom field's type over HTTP: the values accounts hold are converted in
//! the change's transaction, read back typed and searched by their new type; a change
//! some values would not survive is refused listing those accounts, and changes nothing.

use arrears::domain::role::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, eventually, id_of, names, spawn_app, status_json};

/// An account of `name` holding `custom`: its id and account number.
async fn holding(app: &TestApp, token: &str, name: &str, custom: Value) -> (String, String) {
    let account = app.account(token, json!({"debtor_name": name, "custom_fields": custom})).await;
    (id_of(&account), account["account_number"].as_str().unwrap().to_owned())
}

async fn custom_fields(app: &TestApp, token: &str, id: &str) -> Value {
    app.get_account(token, id).await["custom_fields"].clone()
}

/// The debtor names `query` finds, sorted.
async fn found(app: &TestApp, token: &str, query: &str) -> Vec<String> {
    let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}&page_size=50"), token).await).await;
    assert_eq!(status, StatusCode::OK, "{query}: {page}");
    let mut found = names(&page);
    found.sort();
    found
}

#[tokio::test]
async fn text_that_reads_as_numbers_becomes_a_number_field_that_lists_filter_by() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    app.create(
        token,
        "/api/v1/fields",
        &json!({"key": "score", "label": "Score", "type": "text", "default": "0"}),
    )
    .await;
    let (low, _) = holding(&app, token, "Low Score", json!({"score": "12.5"})).await;
    let (high, _) = holding(&app, token, "High Score", json!({"score": "700"})).await;
    let (bare, _) = holding(&app, token, "No Score", json!({"score": null, "other": "kept"})).await;

    let (status, changed) = status_json(
        app.patch(
            "/api/v1/fields/score",
            token,
            &json!({"type": "number", "rules": {"min": 0}, "filterable": true, "sortable": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["type"], &changed["default"]),
        (&json!("number"), &json!(0)),
        "the default converted too"
    );

    assert_eq!(custom_fields(&app, token, &low).await, json!({"score": 12.5}));
    assert_eq!(custom_fields(&app, token, &high).await, json!({"score": 700}));
    assert_eq!(
        custom_fields(&app, token, &bare).await,
        json!({"score": 0, "other": "kept"}),
        "created with the default, other keys untouched"
    );
    // Each account's converted document reaches the index on its own: wait for both.
    eventually("the converted values are indexed as numbers", || async {
        found(&app, token, "cf.score.gte=100").await == ["High Score"]
            && found(&app, token, "cf.score.gte=10&cf.score.lt=100").await == ["Low Score"]
    })
    .await;

    let (status, trail) = status_json(app.get("/api/v1/audit?entity=field&entity_id=score", token).await).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let changes: Vec<&Value> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "field.update")
        .map(|e| &e["details"]["changes"])
        .collect();
    assert!(
        changes.iter().any(|c| c["type"] == json!({"before": "text", "after": "number"})),
        "{changes:?}"
    );
}

#[tokio::test]
async fn a_type_change_some_values_would_not_survive_lists_them_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    app.create(
        token,
        "/api/v1/fields",
        &json!({"key": "ref_no", "label": "Case code", "type": "text"}),
    )
    .await;
    let (number, _) = holding(&app, token, "Numbered", json!({"ref_no": "17"})).await;
    let (letters, letters_number) = holding(&app, token, "Lettered", json!({"ref_no": "abc"})).await;
    let (big, big_number) = holding(&app, token, "Too Big", json!({"ref_no": "2000"})).await;

    let problem = assert_problem(
        app.patch("/api/v1/fields/ref_no", token, &json!({"type": "number", "rules": {"max": 999}}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_eq!(problem["unconvertible"], 2, "{problem}");
    let mut listed: Vec<(String, String, Value, String)> = problem["unconvertible_accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["account_id"].as_str().unwrap().to_owned(),
                a["account_number"].as_str().unwrap().to_owned(),
                a["value"].clone(),
                a["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected = [
        (letters.clone(), letters_number, json!("abc"), "\"abc\" is not a number"),
        (big.clone(), big_number, json!("2000"), "must be at most 999"),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed.len(), 2, "{problem}");
    for (got, want) in listed.iter().zip(&expected) {
        assert_eq!((&got.0, &got.1, &got.2), (&want.0, &want.1, &want.2), "{problem}");
        assert!(got.3.contains(want.3), "{got:?}");
    }

    let (_, field) = status_json(app.get("/api/v1/fields/ref_no", token).await).await;
    assert_eq!(
        (&field["type"], &field["rules"]),
        (&json!("text"), &json!({})),
        "the definition is as it was"
    );
    assert_eq!(
        custom_fields(&app, token, &number).await,
        json!({"ref_no": "17"}),
        "a value that would convert is not converted either"
    );
    assert_eq!(custom_fields(&app, token, &letters).await, json!({"ref_no": "abc"}));
    assert_eq!(custom_fields(&app, token, &big).await, json!({"ref_no": "2000"}));
}

#[tokio::test]
async fn a_list_takes_only_values_it_allows() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    app.create(
        token,
        "/api/v1/fields",
        &json!({"key": "segment", "label": "Segment", "type": "text"}),
    )
    .await;
    let (retail, _) = holding(&app, token, "Shop", json!({"segment": "retail"})).await;
    let (corporate, corporate_number) = holding(&app, token, "Firm", json!({"segment": "corporate"})).await;

    let narrow = json!({"type": "list", "rules": {"allowed": ["Retail", "SME"]}, "filterable": true});
    let problem = assert_problem(
        app.patch("/api/v1/fields/segment", token, &narrow).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_eq!(problem["unconvertible"], 1, "{problem}");
    let listed = &problem["unconvertible_accounts"][0];
    assert_eq!(
        (&listed["account_id"], &listed["account_number"], &listed["value"]),
        (&json!(corporate), &json!(corporate_number), &json!("corporate")),
        "{problem}"
    );
    assert!(
        listed["reason"]
            .as_str()
            .unwrap()
            .contains("not one of the allowed values (Retail, SME)"),
        "{problem}"
    );
    assert_eq!(custom_fields(&app, token, &retail).await, json!({"segment": "retail"}));

    let wide = json!({"type": "list", "rules": {"allowed": ["Retail", "Corporate"]}, "filterable": true});
    let (status, changed) = status_json(app.patch("/api/v1/fields/segment", token, &wide).await).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        custom_fields(&app, token, &retail).await,
        json!({"segment": "Retail"}),
        "the definition's spelling"
    );
    assert_eq!(custom_fields(&app, token, &corporate).await, json!({"segment": "Corporate"}));
    eventually("the list values are indexed", || async {
        found(&app, token, "cf.segment=corporate").await == ["Firm"]
    })
    .await;
}

#[tokio::test]
async fn a_book_larger_than_one_batch_converts_whole_or_not_at_all() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    app.create(token, "/api/v1/fields", &json!({"key": "units", "label": "Units", "type": "text"}))
        .await;
    sqlx::query(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, custom_fields, search_version)
         SELECT gen_random_uuid(), 'UNITS-' || g, 'Unit Person ' || g, 100, 100, 'USD', jsonb_build_object('units', g::text), 0
         FROM generate_series(1, 2500) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    // The last accounts by id, which the conversion reads in its last batch, hold words.
    sqlx::query(
        "UPDATE accounts SET custom_fields = '{\"units\": \"many\"}'
         WHERE id IN (SELECT id FROM accounts WHERE custom_fields ? 'units' ORDER BY id DESC LIMIT 25)",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let numbers = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM accounts WHERE jsonb_typeof(custom_fields -> 'units') = 'number'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };

    let problem = assert_problem(
        app.patch("/api/v1/fields/units", token, &json!({"type": "number"})).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    assert_eq!(problem["unconvertible"], 25, "{problem}");
    assert_eq!(
        problem["unconvertible_accounts"].as_array().unwrap().len(),
        20,
        "at most 20 are listed"
    );
    assert_eq!(numbers().await, 0, "the batches converted before the refusal are undone");

    sqlx::query("UPDATE accounts SET custom_fields = '{\"units\": \"0\"}' WHERE custom_fields ->> 'units' = 'many'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, changed) = status_json(app.patch("/api/v1/fields/units", token, &json!({"type": "number"})).await).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(numbers().await, 2500);
}

/// Returns once a session waits for the field definitions' lock (an advisory lock) that
/// the session `holder` (its backend's pid) holds, as `task` must: polled in
/// `pg_stat_activity`, with `eventually`'s bound. A task that ends first did not wait,
/// and fails at once; one still running after a while proves nothing.
async fn waits_for<T>(app: &TestApp, holder: i32, task: &tokio::task::JoinHandle<T>, what: &str) {
    eventually(what, || async {
        assert!(!task.is_finished(), "{what}: it ended without waiting");
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND $1 = ANY (pg_blocking_pids(pid)))",
        )
        .bind(holder)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
}

/// The backend pid of the session `conn` is.
async fn backend_pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(conn).await.unwrap()
}

/// A type change and an account write never pass each other: a write that starts while
/// a change is in flight waits for it and is judged by the new type (before, it was
/// judged by the old one and stored a text value in a number field), and a change that
/// starts while a write is in flight waits for it and converts what it wrote.
#[tokio::test]
async fn a_type_change_and_an_account_write_wait_for_each_other() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let token = &admin.token;
    app.create(
        token,
        "/api/v1/fields",
        &json!({"key": "ref_code", "label": "Client code", "type": "text"}),
    )
    .await;
    let (late, _) = holding(&app, token, "Late Writer", json!({})).await;
    let (early, _) = holding(&app, token, "Early Writer", json!({})).await;

    // A change in flight: the definitions locked as a change locks them, the type changed.
    let mut change = app.pool.begin().await.unwrap();
    arrears::store::fields::lock_all(&mut change).await.unwrap();
    sqlx::query("UPDATE field_definitions SET type = 'number' WHERE key = 'ref_code'")
        .execute(&mut *change)
        .await
        .unwrap();
    let api = app.api();
    let (path, bearer) = (format!("/api/v1/accounts/{late}"), token.clone());
    let write = tokio::spawn(async move {
        let body = json!({"custom_fields": {"ref_code": "ABC"}});
        status_json(
            api.request(reqwest::Method::PATCH, &path, Some(&bearer))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    waits_for(&app, backend_pid(&mut change).await, &write, "the write waits for the change").await;
    change.commit().await.unwrap();
    let (status, refused) = write.await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "judged by the new type: {refused}");
    assert_eq!(refused["errors"][0]["field"], "custom_fields.ref_code", "{refused}");
    assert_eq!(custom_fields(&app, token, &late).await, json!({}));

    // Back to text, then a write in flight: the account holds the definitions as a write
    // does, and its text value is written but not committed.
    let (status, back) = status_json(app.patch("/api/v1/fields/ref_code", token, &json!({"type": "text"})).await).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    let mut writing = app.pool.begin().await.unwrap();
    arrears::store::fields::hold_shared(&mut writing).await.unwrap();
    sqlx::query("UPDATE accounts SET custom_fields = '{\"ref_code\": \"42\"}' WHERE id = $1::uuid")
        .bind(&early)
        .execute(&mut *writing)
        .await
        .unwrap();
    let api = app.api();
    let bearer = token.clone();
    let retype = tokio::spawn(async move {
        let body = json!({"type": "number"});
        status_json(
            api.request(reqwest::Method::PATCH, "/api/v1/fields/ref_code", Some(&bearer))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    waits_for(&app, backend_pid(&mut writing).await, &retype, "the change waits for the write").await;
    writing.commit().await.unwrap();
    let (status, changed) = retype.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        custom_fields(&app, token, &early).await,
        json!({"ref_code": 42}),
        "the value written meanwhile was converted"
    );
}
