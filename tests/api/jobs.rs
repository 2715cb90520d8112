//! Bulk updates as durable jobs: role rules per row, filters, idempotency, resume.

use std::collections::HashMap;

use arrears::domain::bulk::BulkParams;
use arrears::domain::bulk::BulkPatch;
use arrears::domain::role::Role;
use arrears::jobs::bulk_update;
use arrears::store::jobs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, eventually, fresh_pool, spawn_app, status_json};

/// `n` accounts straight into SQL, alternately assigned to `even` and `odd`.
async fn seed(pool: &PgPool, n: i32, even: Uuid, odd: Uuid) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, assigned_agent_id, search_version)
         SELECT gen_random_uuid(), 'BULK-' || g || '-' || substr(md5(random()::text), 1, 8), 'Bulk Person ' || g, 100, 100, 'USD',
                CASE WHEN g % 2 = 0 THEN $2 ELSE $3 END, 0
         FROM generate_series(1, $1) g
         RETURNING id",
    )
    .bind(n)
    .bind(even)
    .bind(odd)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn finished(app: &TestApp, user: &TestUser, job: &Value) -> Value {
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the job finishes", || async {
        let (_, body) = status_json(app.get(&path, &user.token).await).await;
        body["finished_at"].is_string()
    })
    .await;
    status_json(app.get(&path, &user.token).await).await.1
}

async fn submit(app: &TestApp, user: &TestUser, body: Value) -> (StatusCode, Value) {
    status_json(app.post("/api/v1/accounts/bulk-update", Some(&user.token), &body).await).await
}

#[tokio::test]
async fn ten_thousand_rows_where_half_are_not_the_callers() {
    let app = spawn_app().await;
    let agent = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let ids = seed(&app.pool, 10_000, agent.id, other.id).await;
    let body = json!({"ids": ids, "patch": {"status": "disputed", "tags_add": ["Reviewed"], "next_action_at": "2030-01-01T09:00:00Z"}});
    let (status, job) = submit(&app, &agent, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!((job["kind"].as_str(), job["total"].as_i64()), (Some("bulk_update"), Some(10_000)));
    let job = finished(&app, &agent, &job).await;
    assert_eq!(job["status"], "partially_failed");
    assert_eq!(
        (job["succeeded"].as_i64(), job["failed"].as_i64(), job["processed"].as_i64()),
        (Some(5_000), Some(5_000), Some(10_000))
    );
    let rows: Vec<(Option<Uuid>, String, Vec<String>)> =
        sqlx::query_as("SELECT assigned_agent_id, status, tags FROM accounts WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    for (owner, status, tags) in rows {
        if owner == Some(agent.id) {
            assert_eq!((status.as_str(), tags), ("disputed", vec!["reviewed".to_owned()]));
        } else {
            assert_eq!((status.as_str(), tags.len()), ("active", 0), "another agent's row is untouched");
        }
    }
    let (_, failures) = status_json(
        app.get(
            &format!("/api/v1/jobs/{}/failures?page_size=5", job["id"].as_str().unwrap()),
            &agent.token,
        )
        .await,
    )
    .await;
    assert_eq!(failures["data"].as_array().unwrap().len(), 5);
    assert_eq!(failures["data"][0]["error"], "this account is not assigned to you");
    assert_eq!(failures["total"], 5_000);
    let cursor = failures["next_cursor"].as_str().expect("more failures");
    let (_, next) = status_json(
        app.get(
            &format!("/api/v1/jobs/{}/failures?page_size=5&cursor={cursor}", job["id"].as_str().unwrap()),
            &agent.token,
        )
        .await,
    )
    .await;
    assert!(next["data"][0]["row"].as_i64() > failures["data"][4]["row"].as_i64(), "{next}");
    // Every list reads cursors the same way: another list's is refused, not misread.
    app.assert_refused_parameter(&agent.token, &format!("/api/v1/jobs?cursor={cursor}"), "cursor")
        .await;
    app.assert_refused_parameter(&agent.token, &format!("/api/v1/notifications?cursor={cursor}"), "cursor")
        .await;
}

#[tokio::test]
async fn a_filter_is_resolved_at_submission_and_managers_reassign() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let mut matching = Vec::new();
    for (n, (tags, status)) in [
        (json!(["x"]), "delinquent"),
        (json!(["x"]), "active"),
        (json!(["y"]), "delinquent"),
        (json!(["x", "z"]), "delinquent"),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"debtor_name": format!("Filter Person {n}"), "original_balance": "10.00", "currency": "USD", "tags": tags, "status": status});
        let (_, account) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await).await;
        if n == 0 || n == 3 {
            matching.push(account["id"].as_str().unwrap().to_owned());
        }
    }
    let body = json!({"filter": {"tags": ["x"], "status": ["delinquent"]}, "patch": {"assigned_agent_id": agent.id, "tags_remove": ["z"]}});
    let (status, job) = submit(&app, &manager, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["total"], 2, "exactly the accounts the filter matched");
    let job = finished(&app, &manager, &job).await;
    assert_eq!(job["status"], "succeeded");
    let assigned: Vec<(Uuid, Vec<String>)> = sqlx::query_as("SELECT id, tags FROM accounts WHERE assigned_agent_id = $1 ORDER BY id")
        .bind(agent.id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let mut expected: Vec<Uuid> = matching.iter().map(|id| id.parse().unwrap()).collect();
    expected.sort();
    assert_eq!(assigned.iter().map(|a| a.0).collect::<Vec<_>>(), expected);
    assert!(assigned.iter().all(|(_, tags)| tags == &["x".to_owned()]));
    let (_, list) = status_json(app.get("/api/v1/jobs", &manager.token).await).await;
    assert_eq!(list["total"], 1);
    let (_, mine) = status_json(app.get("/api/v1/jobs", &agent.token).await).await;
    assert_eq!(mine["total"], 0, "agents see their own jobs only");
    let response = app
        .get(&format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()), &agent.token)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .post(
            &format!("/api/v1/jobs/{}/cancel", job["id"].as_str().unwrap()),
            Some(&manager.token),
            &json!({}),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "invalid_transition").await;
}

#[tokio::test]
async fn submissions_are_validated_and_idempotent() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let account = app.account(&manager.token, json!({})).await;
    let ids = json!([account["id"]]);

    let (status, problem) = submit(&app, &manager, json!({"ids": ids, "patch": {}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["patch"]);
    let (status, problem) = submit(&app, &manager, json!({"ids": ids, "filter": {}, "patch": {"status": "closed"}})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_fields(&problem), ["ids"]);
    let (status, problem) = submit(&app, &manager, json!({"filter": {"sort": "colour"}, "patch": {"status": "closed"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(error_fields(&problem), ["filter.sort"]);
    let response = app
        .post(
            "/api/v1/accounts/bulk-update",
            Some(&viewer.token),
            &json!({"ids": ids, "patch": {"status": "closed"}}),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app
        .post(
            "/api/v1/accounts/bulk-update",
            Some(&agent.token),
            &json!({"ids": ids, "patch": {"assigned_agent_id": agent.id}}),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;

    let body = json!({"ids": ids, "patch": {"tags_add": ["once"]}});
    let send = |body: Value| {
        app.request(reqwest::Method::POST, "/api/v1/accounts/bulk-update", Some(&manager.token))
            .header("idempotency-key", "bulk-1")
            .json(&body)
            .send()
    };
    let (first, second) = (send(body.clone()).await.unwrap(), send(body.clone()).await.unwrap());
    assert_eq!((first.status(), second.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    let replayed = |r: &reqwest::Response| r.headers().get("idempotency-replayed").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        (replayed(&first), replayed(&second)),
        (None, Some("true".to_owned())),
        "a retry says it is one, as payments do"
    );
    let (first, second): (Value, Value) = (first.json().await.unwrap(), second.json().await.unwrap());
    assert_eq!(first["id"], second["id"], "a retry answers with the first job");
    for bad in ["has space".to_owned(), "k".repeat(256)] {
        let response = app
            .request(reqwest::Method::POST, "/api/v1/accounts/bulk-update", Some(&manager.token))
            .header("idempotency-key", bad)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&app.pool).await.unwrap();
    assert_eq!(count, 1);
    let response = send(json!({"ids": ids, "patch": {"tags_add": ["twice"]}})).await.unwrap();
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
}

#[tokio::test]
async fn a_job_taken_over_after_a_crash_resumes_without_applying_a_row_twice() {
    let pool = fresh_pool().await;
    let owner: Uuid = arrears::store::users::insert(&pool, "bulk-owner@example.com", "Owner", Role::Manager, "x")
        .await
        .unwrap()
        .id;
    let chunk = bulk_update::CHUNK;
    let total = chunk * 2 + 500;
    let ids = seed(&pool, total as i32, owner, owner).await;
    let params = BulkParams {
        patch: BulkPatch {
            tags_add: vec!["moved".into()],
            ..BulkPatch::default()
        },
        actor: owner,
        role: Role::Manager,
        from_agent: None,
    };
    let mut tx = pool.begin().await.unwrap();
    let job = jobs::create(
        &mut tx,
        arrears::domain::job::JobKind::BulkUpdate,
        &serde_json::to_value(&params).unwrap(),
        owner,
        &ids,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let claimed = jobs::claim(&pool).await.unwrap().expect("the queued job");
    assert_eq!(claimed.id, job.id);
    assert_eq!(bulk_update::run_chunk(&pool, job.id, &params).await.unwrap() as i64, chunk);
    let versions = |pool: PgPool| async move {
        sqlx::query_as::<_, (Uuid, i64)>("SELECT id, search_version FROM accounts")
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect::<HashMap<_, _>>()
    };
    let after_first_chunk = versions(pool.clone()).await;
    // The process dies here. Nobody else may take the job while its heartbeat is fresh.
    assert!(jobs::claim(&pool).await.unwrap().is_none());
    crate::helpers::expire_heartbeat(&pool, job.id).await;
    let resumed = jobs::claim(&pool).await.unwrap().expect("a stale job is taken over");
    assert_eq!((resumed.id, resumed.processed), (job.id, chunk));
    let (_stop, running) = tokio::sync::watch::channel(false);
    assert!(matches!(
        bulk_update::run(&pool, &resumed, &running).await.unwrap(),
        arrears::jobs::Stop::Done
    ));
    let done = jobs::get(&pool, job.id).await.unwrap().unwrap();
    assert_eq!((done.processed, done.succeeded, done.failed), (total, total, 0));
    let settled: i64 = sqlx::query_scalar("SELECT count(*) FROM job_items WHERE job_id = $1 AND outcome = 'succeeded'")
        .bind(job.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(settled, total);
    let after_all = versions(pool.clone()).await;
    let first_chunk: Vec<Uuid> = sqlx::query_scalar("SELECT account_id FROM job_items WHERE job_id = $1 AND seq <= $2")
        .bind(job.id)
        .bind(chunk as i32)
        .fetch_all(&pool)
        .await
        .unwrap();
    for id in first_chunk {
        assert_eq!(
            after_first_chunk[&id], after_all[&id],
            "a row of the committed chunk was not applied again"
        );
    }
}
