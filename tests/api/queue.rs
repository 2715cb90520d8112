//! The agent work queue: reasons first, then the score; blocked accounts left out;
//! pages that walk the whole queue; who may see which queue; and claims that never hand
//! one account to two agents.

use std::collections::HashSet;

use arrears::domain::role::Role;
use chrono::Duration;
use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::helpers::{TestApp, TestUser, assert_problem, eventually, id_of, local, spawn_app, spawn_guarded_app, status_json, ts};

/// An account of `agent` (or of nobody) in a zone where it is daytime at the app's clock.
async fn account(app: &TestApp, manager: &TestUser, agent: Option<&TestUser>, overrides: Value) -> String {
    let mut body = json!({"timezone": zone_where_it_is(app.clock.now(), 10, 19), "due_date": "2026-06-01"});
    if let Some(agent) = agent {
        body["assigned_agent_id"] = json!(agent.id);
    }
    for (k, v) in overrides.as_object().unwrap() {
        body[k] = v.clone();
    }
    id_of(&app.account(&manager.token, body).await)
}

async fn queue(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    status_json(app.get(&format!("/api/v1/queue?{query}"), token).await).await
}

/// Every entry of a queue, walked page by page: (account id, reason).
async fn walk(app: &TestApp, token: &str, query: &str, page_size: usize) -> (Vec<(String, String)>, u64) {
    let mut entries = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut q = format!("{query}&page_size={page_size}");
        if let Some(c) = &cursor {
            q.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = queue(app, token, &q).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let total = page["total"].as_u64().unwrap();
        for item in page["data"].as_array().unwrap() {
            entries.push((id_of(&item["account"]), item["reason"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (entries, total),
        }
    }
    panic!("the queue did not end");
}

async fn indexed(app: &TestApp, id: &str) {
    let version: i64 = app.sql_value("SELECT search_version FROM accounts WHERE id = $1", id).await;
    let app_state = app.state.clone();
    let id = uuid::Uuid::parse_str(id).unwrap();
    eventually("the account is indexed", || {
        let state = app_state.clone();
        async move {
            state
                .search()
                .version_of(arrears::domain::document::Entity::Account, id)
                .await
                .ok()
                .flatten()
                .is_some_and(|v| v >= version)
        }
    })
    .await;
}

#[tokio::test]
async fn the_queue_lists_reasons_first_then_by_score_and_leaves_blocked_accounts_out() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let today = hold_clock(&app).date_naive();
    let small = account(&app, &manager, Some(&agent), json!({"original_balance": "100.00"})).await;
    let large = account(&app, &manager, Some(&agent), json!({"original_balance": "90000.00"})).await;
    let due_today = account(&app, &manager, Some(&agent), json!({"original_balance": "50.00"})).await;
    let broke = account(&app, &manager, Some(&agent), json!({"original_balance": "60.00"})).await;
    let action = account(&app, &manager, Some(&agent), json!({"original_balance": "70.00"})).await;
    let ceased = account(
        &app,
        &manager,
        Some(&agent),
        json!({"cease_communication": true, "original_balance": "99999.00"}),
    )
    .await;
    let asleep = account(
        &app,
        &manager,
        Some(&agent),
        json!({"timezone": zone_where_it_is(app.clock.now(), 0, 6)}),
    )
    .await;
    let paid = account(&app, &manager, Some(&agent), json!({"status": "paid"})).await;
    let _someone_elses = account(&app, &manager, None, json!({})).await;
    // Promises as their scheduler and the API leave them: one broken yesterday, one due today.
    sqlx::query(
        "INSERT INTO promises (id, account_id, amount, due_date, status, resolved_at)
         VALUES (gen_random_uuid(), $1, 10, $2, 'broken', now()), (gen_random_uuid(), $3, 10, $4, 'open', NULL)",
    )
    .bind(uuid::Uuid::parse_str(&broke).unwrap())
    .bind(today - Duration::days(1))
    .bind(uuid::Uuid::parse_str(&due_today).unwrap())
    .bind(today)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("UPDATE accounts SET search_version = 0 WHERE id = ANY($1)")
        .bind(vec![
            uuid::Uuid::parse_str(&broke).unwrap(),
            uuid::Uuid::parse_str(&due_today).unwrap(),
        ])
        .execute(&app.pool)
        .await
        .unwrap();
    let path = format!("/api/v1/accounts/{action}");
    let past = json!({"next_action_at": ts(app.clock.now() - Duration::hours(1))});
    assert_eq!(app.patch(&path, &manager.token, &past).await.status(), StatusCode::OK);
    for id in [&small, &large, &due_today, &broke, &action, &ceased, &asleep, &paid] {
        indexed(&app, id).await;
    }

    // The index may know a version before its searches see it (a reload behind, on a
    // loaded machine): wait until the queue's search sees the five accounts.
    eventually("the queue's search sees the accounts", || async {
        walk(&app, &agent.token, "channel=call", 200).await.1 == 5
    })
    .await;
    let (entries, total) = walk(&app, &agent.token, "channel=call", 2).await;
    let expected = vec![
        (broke.clone(), "broken_promise".to_owned()),
        (due_today.clone(), "promise_due_today".to_owned()),
        (action.clone(), "next_action_due".to_owned()),
        (large.clone(), "score".to_owned()),
        (small.clone(), "score".to_owned()),
    ];
    assert_eq!(entries, expected);
    assert_eq!(total, 5);
    // One page holds the same, in the same order.
    let (one_page, _) = walk(&app, &agent.token, "", 200).await;
    assert_eq!(one_page, expected);
    // Letters have no time window: the sleeping debtor's account is in that queue.
    let (letters, _) = walk(&app, &agent.token, "channel=letter", 200).await;
    assert!(letters.iter().any(|(id, _)| *id == asleep), "{letters:?}");
    assert!(!letters.iter().any(|(id, _)| *id == ceased || *id == paid));
}

/// A missed plan instalment puts the account after the next actions due and before the
/// score; paying the instalment (late) takes it back to the score.
#[tokio::test]
async fn a_missed_plan_instalment_is_worked_after_next_actions_and_before_the_score() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let mine = |balance: &str| json!({"timezone": "UTC", "phone": null, "due_date": "2026-06-01", "original_balance": balance});
    let rich = account(&app, &manager, Some(&agent), mine("90000.00")).await;
    let action = account(&app, &manager, Some(&agent), mine("70.00")).await;
    let missed = account(&app, &manager, Some(&agent), mine("100.00")).await;
    let today = hold_clock(&app).date_naive();
    let past = json!({"next_action_at": ts(app.clock.now() - Duration::hours(1))});
    let path = format!("/api/v1/accounts/{action}");
    assert_eq!(app.patch(&path, &manager.token, &past).await.status(), StatusCode::OK);
    let body = json!({"total": "30.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": today});
    app.create(&agent.token, &format!("/api/v1/accounts/{missed}/plans"), &body).await;
    let tomorrow = local(chrono_tz::UTC, today + Duration::days(1), 0, 0, 0);
    let misses = arrears::store::plans::mark_missed(&app.pool, tomorrow, 0, 3).await.unwrap();
    assert_eq!(misses.missed, 1);
    for id in [&rich, &action, &missed] {
        indexed(&app, id).await;
    }
    let (entries, total) = walk(&app, &agent.token, "channel=call", 2).await;
    let expected = vec![
        (action.clone(), "next_action_due".to_owned()),
        (missed.clone(), "plan_instalment_missed".to_owned()),
        (rich.clone(), "score".to_owned()),
    ];
    assert_eq!((entries, total), (expected, 3));

    let payment = json!({"amount": "10.00", "currency": "USD", "method": "card"});
    app.create_payment(&agent.token, &missed, &payment).await;
    indexed(&app, &missed).await;
    let (entries, _) = walk(&app, &agent.token, "channel=call", 200).await;
    let reasons: Vec<(&str, &str)> = entries.iter().map(|(id, r)| (id.as_str(), r.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (action.as_str(), "next_action_due"),
            (rich.as_str(), "score"),
            (missed.as_str(), "score")
        ]
    );
}

#[tokio::test]
async fn agents_see_their_own_queue_and_managers_any_and_the_team_queue() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let mine = account(&app, &manager, Some(&agent), json!({})).await;
    let pooled = account(&app, &manager, None, json!({})).await;
    indexed(&app, &mine).await;
    indexed(&app, &pooled).await;
    let other_queue = format!("agent_id={}", other.id);
    assert_problem(
        app.get(&format!("/api/v1/queue?{other_queue}"), &agent.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(
        app.get("/api/v1/queue?agent_id=unassigned", &agent.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    assert_problem(app.get("/api/v1/queue", &viewer.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    let (entries, _) = walk(&app, &manager.token, &format!("agent_id={}", agent.id), 25).await;
    assert_eq!(entries.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), [mine]);
    let (team, _) = walk(&app, &manager.token, "agent_id=unassigned", 25).await;
    assert_eq!(team.iter().map(|e| e.0.clone()).collect::<Vec<_>>(), [pooled]);
    app.assert_refused_parameter(&agent.token, "/api/v1/queue?channel=fax", "channel")
        .await;
    app.assert_refused_parameter(&agent.token, "/api/v1/queue?cursor=nope", "cursor")
        .await;
    app.assert_refused_parameter(&agent.token, "/api/v1/queue?sort=balance", "sort")
        .await;
}

async fn claim(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let response = app.post("/api/v1/queue/next", Some(token), &json!({})).await;
    let status = response.status();
    if status == StatusCode::NO_CONTENT {
        return (status, Value::Null);
    }
    status_json(response).await
}

#[tokio::test]
async fn a_claim_takes_the_top_account_until_an_activity_is_logged_on_it() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let rival = app.user(Role::Agent).await;
    let top = account(&app, &manager, None, json!({"original_balance": "5000.00"})).await;
    let second = account(&app, &manager, None, json!({"original_balance": "10.00"})).await;
    indexed(&app, &top).await;
    indexed(&app, &second).await;

    let (status, claimed) = claim(&app, &agent.token).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(id_of(&claimed["account"]), top);
    assert_eq!(claimed["reason"], "score");
    // An unassigned account claimed from the team queue becomes the agent's.
    assert_eq!(claimed["account"]["assigned_agent_id"], json!(agent.id));
    let (_, rivals) = claim(&app, &rival.token).await;
    assert_eq!(id_of(&rivals["account"]), second, "the rival never gets the claimed account");
    // Logging a call ends the claim.
    app.log_activity(
        &agent.token,
        &top,
        &json!({"type": "call", "direction": "outbound", "outcome": "no_answer"}),
    )
    .await;
    let claims: i64 = app.sql_value("SELECT count(*) FROM queue_claims WHERE account_id = $1", &top).await;
    assert_eq!(claims, 0);
    // Nothing left for a third agent: both accounts are assigned now.
    let third = app.user(Role::Agent).await;
    eventually("the claimed accounts leave the team queue", || async {
        let (status, _) = claim(&app, &third.token).await;
        status == StatusCode::NO_CONTENT
    })
    .await;
    // "Save and next" skips the account just worked, which the index may still rank first.
    let (_, own) = claim(&app, &agent.token).await;
    assert_eq!(id_of(&own["account"]), top);
    let skipped = app
        .post(&format!("/api/v1/queue/next?skip={top}"), Some(&agent.token), &json!({}))
        .await;
    assert_eq!(skipped.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn thirty_two_agents_claiming_at_once_never_get_the_same_account() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let mut agents = Vec::new();
    for _ in 0..32 {
        agents.push(app.user(Role::Agent).await);
    }
    let mut accounts = Vec::new();
    for n in 0..40 {
        accounts.push(account(&app, &manager, None, json!({"original_balance": format!("{}.00", 100 + n)})).await);
    }
    for id in &accounts {
        indexed(&app, id).await;
    }
    let answers = join_all(agents.iter().map(|a| claim(&app, &a.token))).await;
    let mut claimed = HashSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(claimed.insert(id_of(&body["account"])), "an account was handed out twice: {body}");
    }
    let owners: i64 = sqlx::query_scalar("SELECT count(DISTINCT account_id) FROM queue_claims")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(owners, 32);
}

#[tokio::test]
async fn a_claim_passes_over_accounts_other_agents_hold_to_the_next_ones() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let holder = app.user(Role::Agent).await;
    let agent = app.user(Role::Agent).await;
    // Team accounts, the larger balance first in the queue.
    let mut accounts = Vec::new();
    for n in 0..12 {
        accounts.push(account(&app, &manager, None, json!({"original_balance": format!("{}.00", 1000 - n * 10)})).await);
    }
    for id in &accounts {
        indexed(&app, id).await;
    }
    // Another agent holds the first eleven, more than one read of candidates, while
    // the index still lists them in the team queue.
    let held: Vec<uuid::Uuid> = accounts[..11].iter().map(|id| uuid::Uuid::parse_str(id).unwrap()).collect();
    sqlx::query("INSERT INTO queue_claims (account_id, agent_id, expires_at) SELECT unnest($1::uuid[]), $2, now() + interval '5 minutes'")
        .bind(held)
        .bind(holder.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, claimed) = claim(&app, &agent.token).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(id_of(&claimed["account"]), accounts[11], "the first account nobody holds");
    assert_eq!(claimed["reason"], "score");
}

/// The first page of a queue says what the guard holds back on its channel and by what,
/// when the first sleeping debtor's calling hours open (in their zone), and how many
/// accounts each channel could work now; later pages do not repeat it.
#[tokio::test]
async fn the_first_page_explains_what_is_held_back_and_when_calling_hours_open() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let now = hold_clock(&app);
    let callable = account(&app, &manager, Some(&agent), json!({})).await;
    let sleeping_zone = zone_where_it_is(now, 0, 6);
    let asleep = account(&app, &manager, Some(&agent), json!({"timezone": sleeping_zone})).await;
    let ceased = account(&app, &manager, Some(&agent), json!({"cease_communication": true})).await;
    let no_calls = account(&app, &manager, Some(&agent), json!({"do_not_call": true})).await;
    let paid = account(&app, &manager, Some(&agent), json!({"status": "paid"})).await;
    let _someone_elses = account(&app, &manager, None, json!({"timezone": sleeping_zone})).await;
    for id in [&callable, &asleep, &ceased, &no_calls, &paid] {
        indexed(&app, id).await;
    }
    eventually("the queue's search sees the accounts", || async {
        queue(&app, &agent.token, "channel=letter").await.1["total"] == 3
    })
    .await;

    let (status, page) = queue(&app, &agent.token, "channel=call").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    let explanation = &page["explanation"];
    assert_eq!(explanation["channel"], "call");
    assert_eq!(explanation["workable"], 4, "the paid account is not worked: {explanation}");
    assert_eq!(explanation["held_back"], 3);
    assert_eq!(
        explanation["held_back_by"],
        json!([
            {"hold": "cease_communication", "accounts": 1},
            {"hold": "do_not_call", "accounts": 1},
            {"hold": "outside_window", "accounts": 1},
        ])
    );
    // It is between midnight and 06:00 there: the window opens at 08:00 there today.
    let tz: chrono_tz::Tz = sleeping_zone.parse().unwrap();
    let opens = local(tz, now.with_timezone(&tz).date_naive(), 8, 0, 0);
    assert_eq!(explanation["window_opens"], json!({"at": ts(opens), "zone": sleeping_zone}));
    let channels: Vec<(String, u64)> = explanation["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["channel"].as_str().unwrap().to_owned(), c["accounts"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, u64)> = [("call", 1), ("sms", 1), ("email", 2), ("letter", 3), ("visit", 2)]
        .into_iter()
        .map(|(c, n)| (c.to_owned(), n))
        .collect();
    assert_eq!(
        channels, expected,
        "letters have no calling hours; do-not-call does not stop email or visits"
    );

    // Letters: only cease-communication holds one back, and no window is waited for.
    let (_, letters) = queue(&app, &agent.token, "channel=letter&page_size=1").await;
    assert_eq!(
        letters["explanation"]["held_back_by"],
        json!([{"hold": "cease_communication", "accounts": 1}])
    );
    assert_eq!(letters["explanation"]["window_opens"], Value::Null);
    // What "Next account" takes once the agent's own are worked: the team's unassigned
    // account, asleep for calls, can get a letter.
    assert_eq!(explanation["team_contactable"], 0, "{explanation}");
    assert_eq!(letters["explanation"]["team_contactable"], 1);
    let cursor = letters["next_cursor"].as_str().expect("a second page");
    let (status, second) = queue(&app, &agent.token, &format!("channel=letter&page_size=1&cursor={cursor}")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["explanation"], Value::Null, "only the first page explains");

    // The team queue explains the unassigned accounts, for a manager.
    let (_, team) = queue(&app, &manager.token, "agent_id=unassigned&channel=call").await;
    assert_eq!(team["total"], 0);
    assert_eq!(
        team["explanation"]["held_back_by"],
        json!([{"hold": "outside_window", "accounts": 1}])
    );
    assert_eq!(team["explanation"]["team_contactable"], Value::Null, "the team queue is the team's");
}

/// The queue keeps to the portfolios a user sees: a claim never takes an account of a
/// portfolio the agent is not granted, and a manager's view of the team queue leaves
/// such accounts out.
#[tokio::test]
async fn claims_and_the_team_queue_keep_to_the_users_portfolios() {
    let app = spawn_guarded_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let zenith = id_of(
        &app.create(&admin.token, "/api/v1/portfolios", &json!({"name": "Zenith Loans"}))
            .await,
    );
    let top = account(&app, &admin, None, json!({"original_balance": "5000.00", "portfolio_id": zenith})).await;
    let second = account(&app, &admin, None, json!({"original_balance": "10.00"})).await;
    indexed(&app, &top).await;
    indexed(&app, &second).await;

    let (status, claimed) = claim(&app, &agent.token).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(
        id_of(&claimed["account"]),
        second,
        "the richer account is in a portfolio not granted"
    );
    indexed(&app, &second).await;
    for (user, total) in [(&manager, 0), (&admin, 1)] {
        let (status, page) = queue(&app, &user.token, "agent_id=unassigned").await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], total, "{page}");
        assert_eq!(page["explanation"]["workable"], total, "{page}");
    }
}
