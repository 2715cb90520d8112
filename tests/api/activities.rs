//! Activities over HTTP: logging, the account timeline, the cross-account list and its
//! filters, validation, roles, and the contact fields of the account document.

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, id_of, instant, spawn_app, status_json, ts};

/// Now, to the whole second (what `ts` sends), so read-back instants compare equal.
fn now_s() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(id_of)
        .collect()
}

fn activities_path(account_id: &str) -> String {
    format!("/api/v1/accounts/{account_id}/activities")
}

/// POSTs an activity and asserts 201.
async fn log(app: &TestApp, token: &str, account_id: &str, body: Value) -> Value {
    app.log_activity(token, account_id, &body).await
}

async fn activity_count(app: &TestApp, account_id: &str) -> i64 {
    app.sql_value("SELECT count(*) FROM activities WHERE account_id = $1", account_id)
        .await
}

/// Follows `next_cursor` from `first` to the end, returning every id in order.
async fn all_pages(app: &TestApp, user: &TestUser, path: &str, page_size: usize, expected_total: usize) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut url = format!("{path}{sep}page_size={page_size}");
    let mut seen = Vec::new();
    for _ in 0..50 {
        let (status, page) = status_json(app.get(&url, &user.token).await).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        assert_eq!(page["total"], expected_total, "{url}");
        let data = ids(&page);
        assert!(data.len() <= page_size);
        seen.extend(data);
        match page["next_cursor"].as_str() {
            Some(cursor) => url = format!("{path}{sep}page_size={page_size}&cursor={cursor}"),
            None => return seen,
        }
    }
    panic!("the cursor never ended");
}

#[tokio::test]
async fn logging_a_call_and_a_note_returns_the_activity_and_moves_next_action() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await;
    let id = id_of(&account);
    assert!(account["last_contact_at"].is_null());
    assert!(account["last_outcome"].is_null());

    let occurred = now_s() - Duration::minutes(30);
    let next_action = now_s() + Duration::days(2);
    let call = log(
        &app,
        &agent.token,
        &id,
        json!({"type": "call", "direction": "outbound", "outcome": "right_party", "notes": "Spoke to the debtor",
               "occurred_at": ts(occurred), "next_action_at": ts(next_action)}),
    )
    .await;
    Uuid::parse_str(call["id"].as_str().unwrap()).expect("id is a uuid");
    assert_eq!(call["account_id"], json!(id));
    assert_eq!(call["type"], "call");
    assert_eq!(call["direction"], "outbound");
    assert_eq!(call["outcome"], "right_party");
    assert_eq!(call["notes"], "Spoke to the debtor");
    assert_eq!(instant(&call["occurred_at"]), occurred);
    assert_eq!(instant(&call["next_action_at"]), next_action);
    assert_eq!(call["agent_id"], json!(agent.id));
    let created_at = instant(&call["created_at"]);
    assert!((Utc::now() - created_at).num_seconds().abs() < 60);
    for key in [
        "id",
        "account_id",
        "type",
        "direction",
        "outcome",
        "notes",
        "occurred_at",
        "next_action_at",
        "agent_id",
        "created_at",
    ] {
        assert!(call.get(key).is_some(), "activity has `{key}`: {call}");
    }

    let read = app.get_account(&agent.token, &id).await;
    assert_eq!(instant(&read["next_action_at"]), next_action, "set in the same write");
    let stored: Option<DateTime<Utc>> = sqlx::query_scalar("SELECT next_action_at FROM accounts WHERE id = $1")
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, Some(next_action));

    let before = Utc::now() - Duration::seconds(5);
    let note = log(
        &app,
        &manager.token,
        &id,
        json!({"type": "note", "notes": "Debtor asked for a letter"}),
    )
    .await;
    assert_eq!(note["type"], "note");
    assert!(note["direction"].is_null());
    assert!(note["outcome"].is_null());
    assert!(note["next_action_at"].is_null());
    assert_eq!(note["agent_id"], json!(manager.id));
    let occurred_at = instant(&note["occurred_at"]);
    assert!(
        occurred_at >= before && occurred_at <= Utc::now() + Duration::seconds(5),
        "defaults to now"
    );
    let read = app.get_account(&agent.token, &id).await;
    assert_eq!(
        instant(&read["next_action_at"]),
        next_action,
        "no next_action_at leaves the account's alone"
    );

    // A later activity moves it again.
    let sooner = now_s() + Duration::hours(3);
    log(
        &app,
        &agent.token,
        &id,
        json!({"type": "sms", "direction": "outbound", "next_action_at": ts(sooner)}),
    )
    .await;
    let read = app.get_account(&agent.token, &id).await;
    assert_eq!(instant(&read["next_action_at"]), sooner);
    assert_eq!(activity_count(&app, &id).await, 3);
}

#[tokio::test]
async fn the_timeline_is_newest_first_with_a_cursor() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let account = app.account(&manager.token, json!({})).await;
    let other = app.account(&manager.token, json!({})).await;
    let id = id_of(&account);
    log(&app, &manager.token, &id_of(&other), json!({"type": "note", "notes": "elsewhere"})).await;
    let now = now_s();
    let mut created: Vec<(DateTime<Utc>, String)> = Vec::new();
    for minutes in [40_i64, 10, 70, 20, 60, 30, 50] {
        let at = now - Duration::minutes(minutes);
        let body = json!({"type": "call", "direction": "outbound", "outcome": "no_answer", "occurred_at": ts(at)});
        let activity = log(&app, &manager.token, &id, body).await;
        created.push((at, id_of(&activity)));
    }
    created.sort_by_key(|c| std::cmp::Reverse(c.0));
    let expected: Vec<String> = created.into_iter().map(|(_, i)| i).collect();
    let seen = all_pages(&app, &viewer, &activities_path(&id), 3, 7).await;
    assert_eq!(seen, expected, "newest occurred_at first, each once");
    let unknown = app.get(&activities_path(&Uuid::new_v4().to_string()), &viewer.token).await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_activity_list_filters_by_agent_type_outcome_time_and_account() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let first = app.user(Role::Agent).await;
    let second = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let a = id_of(&app.account(&manager.token, json!({"assigned_agent_id": first.id})).await);
    let b = id_of(&app.account(&manager.token, json!({"assigned_agent_id": second.id})).await);
    let c = id_of(&app.account(&manager.token, json!({})).await);
    let now = now_s();
    let at = |minutes: i64| ts(now - Duration::minutes(minutes));
    let plan: [(&TestUser, &String, Value); 6] = [
        (
            &first,
            &a,
            json!({"type": "call", "direction": "outbound", "outcome": "no_answer", "occurred_at": at(300)}),
        ),
        (
            &first,
            &a,
            json!({"type": "sms", "direction": "outbound", "outcome": "left_message", "occurred_at": at(240)}),
        ),
        (
            &second,
            &b,
            json!({"type": "call", "direction": "inbound", "outcome": "right_party", "occurred_at": at(180)}),
        ),
        (
            &manager,
            &c,
            json!({"type": "email", "direction": "outbound", "occurred_at": at(120)}),
        ),
        (&manager, &a, json!({"type": "note", "notes": "reviewed", "occurred_at": at(60)})),
        (&second, &b, json!({"type": "visit", "outcome": "refused", "occurred_at": at(30)})),
    ];
    let mut act = Vec::new();
    for (user, account, body) in plan {
        act.push(id_of(&log(&app, &user.token, account, body).await));
    }
    let from = at(270);
    let to = at(90);
    let second_id = second.id.to_string();
    for (query, want) in [
        ("", vec![5, 4, 3, 2, 1, 0]),
        ("agent_id=me", vec![1, 0]),
        ("agent_id=<second>", vec![5, 2]),
        ("type=call", vec![2, 0]),
        ("type=call&type=visit", vec![5, 2, 0]),
        ("outcome=no_answer&outcome=refused", vec![5, 0]),
        ("from=<from>&to=<to>", vec![3, 2, 1]),
        ("account_id=<a>&account_id=<b>", vec![5, 4, 2, 1, 0]),
        ("account_id=<c>", vec![3]),
        ("account_id=<a>&type=note", vec![4]),
        ("agent_id=me&type=sms", vec![1]),
        ("type=letter", vec![]),
    ] {
        let query = query
            .replace("<second>", &second_id)
            .replace("<from>", &from)
            .replace("<to>", &to)
            .replace("<a>", &a)
            .replace("<b>", &b)
            .replace("<c>", &c);
        // An agent reads only the activities they logged or on their accounts: a viewer
        // reads the list whole, the agent what is theirs ("me").
        let reader = if query.contains("=me") { &first } else { &viewer };
        let (status, page) = status_json(app.get(&format!("/api/v1/activities?{query}"), &reader.token).await).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        let want: Vec<String> = want.into_iter().map(|i: usize| act[i].clone()).collect();
        assert_eq!(page["total"], want.len(), "{query}: {page}");
        assert_eq!(ids(&page), want, "{query}");
    }
    let newest_first: Vec<String> = act.iter().rev().cloned().collect();
    assert_eq!(all_pages(&app, &viewer, "/api/v1/activities", 4, 6).await, newest_first);
    assert_eq!(
        all_pages(&app, &viewer, &format!("/api/v1/activities?account_id={a}"), 2, 3).await,
        [act[4].clone(), act[1].clone(), act[0].clone()]
    );
    for (query, field) in [("type=fax", "type"), ("agent_id=someone", "agent_id"), ("outcome=happy", "outcome")] {
        app.assert_refused_parameter(&viewer.token, &format!("/api/v1/activities?{query}"), field)
            .await;
    }
}

#[tokio::test]
async fn invalid_activities_are_refused_and_name_the_field() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({})).await;
    let id = id_of(&account);
    let base = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (with(json!({"type": "fax"})), "type"),
        (json!({"notes": "no type"}), "type"),
        (with(json!({"direction": "sideways"})), "direction"),
        (with(json!({"outcome": "happy"})), "outcome"),
        (with(json!({"occurred_at": ts(Utc::now() + Duration::minutes(10))})), "occurred_at"),
        (with(json!({"occurred_at": "yesterday"})), "occurred_at"),
        (with(json!({"next_action_at": "soon"})), "next_action_at"),
        (with(json!({"notes": "x".repeat(10_001)})), "notes"),
        (with(json!({"colour": "red"})), "colour"),
    ] {
        let response = app.post(&activities_path(&id), Some(&manager.token), &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{problem}");
    }
    assert_eq!(activity_count(&app, &id).await, 0, "nothing refused was stored");
    let read = app.get_account(&manager.token, &id).await;
    assert!(read["next_action_at"].is_null());

    // The limits themselves are accepted.
    log(&app, &manager.token, &id, with(json!({"notes": "x".repeat(10_000)}))).await;
    log(
        &app,
        &manager.token,
        &id,
        with(json!({"occurred_at": ts(Utc::now() + Duration::minutes(2))})),
    )
    .await;
    assert_eq!(activity_count(&app, &id).await, 2);
}

#[tokio::test]
async fn viewers_never_log_and_agents_only_on_their_accounts() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let mine = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let other = id_of(&app.account(&manager.token, json!({})).await);
    let body = json!({"type": "call", "outcome": "no_answer"});

    let response = app.post(&activities_path(&mine), Some(&viewer.token), &body).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app.post(&activities_path(&other), Some(&agent.token), &body).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(activity_count(&app, &mine).await, 0);
    assert_eq!(activity_count(&app, &other).await, 0);

    log(&app, &agent.token, &mine, body.clone()).await;
    log(&app, &manager.token, &other, body.clone()).await;
    let response = app
        .post(&activities_path(&Uuid::new_v4().to_string()), Some(&manager.token), &body)
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;

    // Viewers read every account's contacts; an agent only their own accounts' (the notes
    // of others' debtors stay with their owners: docs/security.md#what-an-agent-reads).
    let (status, page) = status_json(app.get(&activities_path(&other), &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_problem(
        app.get(&activities_path(&other), &agent.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn the_account_shows_its_last_contact_and_outcome() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let id = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let now = now_s();
    let latest = now - Duration::minutes(10);
    log(
        &app,
        &agent.token,
        &id,
        json!({"type": "call", "direction": "outbound", "outcome": "no_answer", "occurred_at": ts(now - Duration::hours(2))}),
    )
    .await;
    log(
        &app,
        &agent.token,
        &id,
        json!({"type": "call", "direction": "outbound", "outcome": "promise_to_pay", "occurred_at": ts(latest)}),
    )
    .await;
    // Logged last but happened earlier: it does not become the last contact.
    log(
        &app,
        &agent.token,
        &id,
        json!({"type": "call", "direction": "inbound", "outcome": "refused", "occurred_at": ts(now - Duration::hours(5))}),
    )
    .await;
    let read = app.get_account(&manager.token, &id).await;
    assert_eq!(instant(&read["last_contact_at"]), latest, "{read}");
    assert_eq!(read["last_outcome"], "promise_to_pay");
}
