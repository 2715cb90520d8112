//! Promises to pay: opening, one open at a time, cancelling, being kept by later
//! completed payments, being broken after the due date in the account's timezone, and
//! the `has_open_promise` list filter.

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_problem, error_fields, eventually, id_of, local, names, spawn_app, spawn_scheduling_peer, status_json, ts,
};

fn promises_path(account_id: &str) -> String {
    format!("/api/v1/accounts/{account_id}/promises")
}

async fn promise(app: &TestApp, token: &str, account_id: &str, amount: &str, due: NaiveDate) -> Value {
    let body = json!({"amount": amount, "due_date": due.to_string()});
    app.create_promise(token, account_id, &body).await
}

async fn sql_promise_status(app: &TestApp, promise_id: &str) -> String {
    app.sql_value("SELECT status FROM promises WHERE id = $1", promise_id).await
}

/// The promise as the account's promise list shows it.
async fn listed(app: &TestApp, token: &str, account_id: &str, promise_id: &str) -> Value {
    let (status, page) = status_json(app.get(&format!("{}?page_size=100", promises_path(account_id)), token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == promise_id)
        .unwrap_or_else(|| panic!("promise {promise_id} is listed: {page}"))
        .clone()
}

/// One pass of the app's schedulers with its clock at `now`: how many promises it broke.
async fn break_overdue(app: &TestApp, now: DateTime<Utc>) -> u64 {
    app.clock.set(now);
    app.run_schedulers().await.promises_broken
}

fn utc(at: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(at).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn a_promise_opens_the_account_and_only_one_may_be_open() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(
            &manager.token,
            json!({"original_balance": "900.00", "timezone": "America/New_York"}),
        )
        .await;
    let id = id_of(&account);
    assert!(account["open_promise"].is_null());
    let due = app.today_in(chrono_tz::America::New_York) + Duration::days(7);
    let response = app
        .post(
            &promises_path(&id),
            Some(&manager.token),
            &json!({"amount": "300.00", "due_date": due.to_string()}),
        )
        .await;
    let (status, created) = status_json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    Uuid::parse_str(created["id"].as_str().unwrap()).expect("id is a uuid");
    assert_eq!(created["account_id"], json!(id));
    assert_eq!(created["amount"], "300.00");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["due_date"], due.to_string());
    assert_eq!(created["status"], "open");
    assert_eq!(created["created_by"], json!(manager.id));
    assert!(created["created_at"].is_string());
    assert!(created["resolved_at"].is_null());

    let read = app.get_account(&manager.token, &id).await;
    assert_eq!(read["status"], "promise_to_pay");
    assert_eq!(
        read["open_promise"],
        json!({"id": created["id"], "amount": "300.00", "due_date": due.to_string()})
    );

    let second = app
        .post(
            &promises_path(&id),
            Some(&manager.token),
            &json!({"amount": "50.00", "due_date": due.to_string()}),
        )
        .await;
    assert_problem(second, StatusCode::CONFLICT, "promise_already_open").await;
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM promises WHERE account_id = $1 AND status = 'open'")
        .bind(Uuid::parse_str(&id).unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(open, 1);

    let (status, page) = status_json(app.get(&promises_path(&id), &manager.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(page["data"][0], created);
}

#[tokio::test]
async fn due_dates_count_from_today_in_the_accounts_timezone() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let tokyo = chrono_tz::Asia::Tokyo;
    let today: NaiveDate = "2026-06-15".parse().unwrap();
    // Half a minute into the 15th in Tokyo, still the 14th in UTC: the 14th is past.
    app.clock.set(utc("2026-06-14T15:00:30Z"));
    assert_eq!(app.today_in(tokyo), today);
    let account = app.account(&manager.token, json!({"timezone": "Asia/Tokyo"})).await;
    let id = id_of(&account);
    for due in [today - Duration::days(1), today - Duration::days(30)] {
        let response = app
            .post(
                &promises_path(&id),
                Some(&manager.token),
                &json!({"amount": "10.00", "due_date": due.to_string()}),
            )
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["due_date"], "due {due}, today in Tokyo {today}");
    }
    for (body, field) in [
        (json!({"amount": "0.00", "due_date": today.to_string()}), "amount"),
        (json!({"amount": "-1.00", "due_date": today.to_string()}), "amount"),
        (json!({"amount": "1.005", "due_date": today.to_string()}), "amount"),
        (json!({"amount": "10.00", "due_date": "next week"}), "due_date"),
        (json!({"amount": "10.00"}), "due_date"),
        (json!({"amount": "10.00", "due_date": today.to_string(), "colour": "red"}), "colour"),
    ] {
        let response = app.post(&promises_path(&id), Some(&manager.token), &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{body}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM promises")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    // The last second of the 15th in Tokyo, the 15th is still today; a second later, not.
    app.clock.set(local(tokyo, today, 23, 59, 59));
    let created = promise(&app, &manager.token, &id, "10.00", today).await;
    assert_eq!(created["due_date"], today.to_string(), "today itself is allowed");
    app.clock.advance(Duration::seconds(1));
    let other = id_of(&app.account(&manager.token, json!({"timezone": "Asia/Tokyo"})).await);
    let body = json!({"amount": "10.00", "due_date": today.to_string()});
    let late = app.post(&promises_path(&other), Some(&manager.token), &body).await;
    let problem = assert_problem(late, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["due_date"], "{today} after midnight in Tokyo");
    promise(&app, &manager.token, &other, "10.00", today + Duration::days(1)).await;
    let unknown = app
        .post(
            &promises_path(&Uuid::new_v4().to_string()),
            Some(&manager.token),
            &json!({"amount": "10.00", "due_date": today.to_string()}),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn cancelling_closes_the_promise_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({})).await);
    let due = Utc::now().date_naive() + Duration::days(5);
    let first = promise(&app, &manager.token, &id, "100.00", due).await;
    let cancel_path = format!("/api/v1/promises/{}/cancel", id_of(&first));
    let (status, cancelled) = status_json(app.post(&cancel_path, Some(&manager.token), &json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["id"], first["id"]);
    assert!(cancelled["resolved_at"].is_string());
    assert_eq!(sql_promise_status(&app, &id_of(&first)).await, "cancelled");
    assert!(app.get_account(&manager.token, &id).await["open_promise"].is_null());

    let again = app.post(&cancel_path, Some(&manager.token), &json!({})).await;
    assert_problem(again, StatusCode::CONFLICT, "invalid_transition").await;
    assert_eq!(sql_promise_status(&app, &id_of(&first)).await, "cancelled");

    // With nothing open, a new promise may be made.
    let second = promise(&app, &manager.token, &id, "80.00", due).await;
    assert_eq!(second["status"], "open");
    let (_, page) = status_json(app.get(&promises_path(&id), &manager.token).await).await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["data"][0]["id"], second["id"], "newest first");
    assert_eq!(page["data"][1]["id"], first["id"]);

    let unknown = app
        .post(
            &format!("/api/v1/promises/{}/cancel", Uuid::new_v4()),
            Some(&manager.token),
            &json!({}),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn a_covering_payment_keeps_the_promise() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "1000.00"})).await);
    let due = Utc::now().date_naive() + Duration::days(7);
    let p = promise(&app, &manager.token, &id, "100.00", due).await;
    let pid = id_of(&p);
    app.create_payment(
        &manager.token,
        &id,
        &json!({"amount": "150.00", "currency": "USD", "method": "card"}),
    )
    .await;
    assert_eq!(sql_promise_status(&app, &pid).await, "kept");
    let shown = listed(&app, &manager.token, &id, &pid).await;
    assert_eq!(shown["status"], "kept");
    assert!(shown["resolved_at"].is_string());
    assert!(app.get_account(&manager.token, &id).await["open_promise"].is_null());
    let cancel = app
        .post(&format!("/api/v1/promises/{pid}/cancel"), Some(&manager.token), &json!({}))
        .await;
    assert_problem(cancel, StatusCode::CONFLICT, "invalid_transition").await;
}

#[tokio::test]
async fn partial_payments_keep_the_promise_once_they_add_up() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "1000.00"})).await);
    let due = Utc::now().date_naive() + Duration::days(7);
    let pid = id_of(&promise(&app, &manager.token, &id, "100.00", due).await);
    let card = |amount: &str| json!({"amount": amount, "currency": "USD", "method": "card"});

    app.create_payment(&manager.token, &id, &card("30.00")).await;
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "30 of 100");
    let pending = app
        .create_payment(
            &manager.token,
            &id,
            &json!({"amount": "50.00", "currency": "USD", "method": "ach", "status": "pending"}),
        )
        .await;
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "a pending payment does not count");
    let failed = app
        .create_payment(
            &manager.token,
            &id,
            &json!({"amount": "500.00", "currency": "USD", "method": "ach", "status": "pending"}),
        )
        .await;
    let response = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&failed)),
            &manager.token,
            &json!({"status": "failed"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "a failed payment does not count");
    app.create_payment(&manager.token, &id, &card("20.00")).await;
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "50 of 100");
    let response = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&pending)),
            &manager.token,
            &json!({"status": "completed"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sql_promise_status(&app, &pid).await, "kept", "30 + 20 + 50 = 100");
    let shown = listed(&app, &manager.token, &id, &pid).await;
    assert_eq!(shown["status"], "kept");
    assert!(shown["resolved_at"].is_string());
}

#[tokio::test]
async fn payments_received_before_the_promise_do_not_keep_it() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "1000.00"})).await);
    let card = |amount: &str, at: DateTime<Utc>| json!({"amount": amount, "currency": "USD", "method": "card", "received_at": ts(at)});
    // Made before the promise.
    app.create_payment(&manager.token, &id, &card("100.00", Utc::now() - Duration::hours(2)))
        .await;
    let due = Utc::now().date_naive() + Duration::days(7);
    let p = promise(&app, &manager.token, &id, "50.00", due).await;
    let pid = id_of(&p);
    assert_eq!(p["status"], "open");
    assert_eq!(sql_promise_status(&app, &pid).await, "open");
    // Recorded after the promise but received before it was made.
    app.create_payment(&manager.token, &id, &card("100.00", Utc::now() - Duration::hours(1)))
        .await;
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "received before the promise");
    // Received now (the default), i.e. after the promise was made.
    let card_now = |amount: &str| json!({"amount": amount, "currency": "USD", "method": "card"});
    app.create_payment(&manager.token, &id, &card_now("10.00")).await;
    assert_eq!(sql_promise_status(&app, &pid).await, "open", "10 of 50 since the promise");
    app.create_payment(&manager.token, &id, &card_now("40.00")).await;
    assert_eq!(sql_promise_status(&app, &pid).await, "kept", "50 of 50 since the promise");
}

/// A promise due `due` (made that day at noon in `tz`) survives its last second and
/// breaks at the first second of the next day, both in the account's timezone, when the
/// scheduler passes with the clock there; only once.
async fn breaks_after_the_due_date_in(tz_name: &str, tz: Tz, due: &str) {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"timezone": tz_name})).await);
    let due: NaiveDate = due.parse().unwrap();
    app.clock.set(local(tz, due, 12, 0, 0));
    let pid = id_of(&promise(&app, &manager.token, &id, "25.00", due).await);
    assert_eq!(app.run_schedulers().await.promises_broken, 0, "due today stays open");

    let last_second = local(tz, due, 23, 59, 59);
    assert_eq!(
        break_overdue(&app, last_second).await,
        0,
        "due today stays open ({tz_name} {due} 23:59:59)"
    );
    assert_eq!(sql_promise_status(&app, &pid).await, "open");
    let end_minute = local(tz, due, 23, 59, 0);
    assert_eq!(break_overdue(&app, end_minute).await, 0);
    assert_eq!(sql_promise_status(&app, &pid).await, "open");

    let next_midnight = local(tz, due + Duration::days(1), 0, 0, 0);
    assert_eq!(
        break_overdue(&app, next_midnight).await,
        1,
        "broken at {tz_name} midnight after {due}"
    );
    assert_eq!(sql_promise_status(&app, &pid).await, "broken");
    let shown = listed(&app, &manager.token, &id, &pid).await;
    assert_eq!(shown["status"], "broken");
    assert!(shown["resolved_at"].is_string());
    assert!(app.get_account(&manager.token, &id).await["open_promise"].is_null());

    assert_eq!(break_overdue(&app, next_midnight).await, 0, "a second run breaks nothing");
    assert_eq!(break_overdue(&app, next_midnight + Duration::days(3)).await, 0);
    assert_eq!(sql_promise_status(&app, &pid).await, "broken");
    let cancel = app
        .post(&format!("/api/v1/promises/{pid}/cancel"), Some(&manager.token), &json!({}))
        .await;
    assert_problem(cancel, StatusCode::CONFLICT, "invalid_transition").await;
}

#[tokio::test]
async fn broken_after_the_due_date_in_new_york() {
    breaks_after_the_due_date_in("America/New_York", chrono_tz::America::New_York, "2026-06-15").await;
}

#[tokio::test]
async fn broken_after_the_due_date_in_tokyo() {
    breaks_after_the_due_date_in("Asia/Tokyo", chrono_tz::Asia::Tokyo, "2026-06-15").await;
}

/// New York moves its clocks on 2026-03-08 (02:00 EST to 03:00 EDT) and 2026-11-01
/// (02:00 EDT to 01:00 EST): the midnight after each is an hour away from where the
/// day's first offset puts it. A promise due that day is open half an hour before the
/// real midnight and broken half an hour after it.
#[tokio::test]
async fn broken_at_new_york_midnight_across_both_dst_changes() {
    let ny = chrono_tz::America::New_York;
    for (due, midnight_after) in [("2026-03-08", "2026-03-09T04:00:00Z"), ("2026-11-01", "2026-11-02T05:00:00Z")] {
        let app = spawn_app().await;
        let manager = app.user(Role::Manager).await;
        let id = id_of(&app.account(&manager.token, json!({"timezone": "America/New_York"})).await);
        let due_date: NaiveDate = due.parse().unwrap();
        app.clock.set(local(ny, due_date, 0, 30, 0));
        let pid = id_of(&promise(&app, &manager.token, &id, "25.00", due_date).await);
        let midnight = utc(midnight_after);
        assert_eq!(local(ny, due_date + Duration::days(1), 0, 0, 0), midnight);
        assert_eq!(
            break_overdue(&app, midnight - Duration::minutes(30)).await,
            0,
            "{due} 23:30 in New York"
        );
        assert_eq!(sql_promise_status(&app, &pid).await, "open");
        assert_eq!(
            break_overdue(&app, midnight + Duration::minutes(30)).await,
            1,
            "00:30 after {due} in New York"
        );
        assert_eq!(sql_promise_status(&app, &pid).await, "broken");
        let resolved: DateTime<Utc> = app.sql_value("SELECT resolved_at FROM promises WHERE id = $1", &pid).await;
        assert_eq!(resolved, midnight + Duration::minutes(30), "broken at the clock's instant");
        assert_eq!(app.get_account(&manager.token, &id).await["status"], "delinquent");
    }
}

/// Cancelling puts the account back by the clock's date in the debtor's zone: active
/// while its due date is not past there, delinquent once it is.
#[tokio::test]
async fn a_cancelled_promise_leaves_the_account_by_the_clocks_date_in_its_zone() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let tokyo = chrono_tz::Asia::Tokyo;
    let due: NaiveDate = "2026-06-15".parse().unwrap();
    let mut statuses = Vec::new();
    for at in [local(tokyo, due, 23, 59, 59), local(tokyo, due + Duration::days(1), 0, 0, 0)] {
        app.clock.set(at - Duration::days(1));
        let id = id_of(
            &app.account(&manager.token, json!({"timezone": "Asia/Tokyo", "due_date": due}))
                .await,
        );
        let made = promise(&app, &manager.token, &id, "10.00", due + Duration::days(7)).await;
        app.clock.set(at);
        let path = format!("/api/v1/promises/{}/cancel", id_of(&made));
        assert_eq!(app.post(&path, Some(&manager.token), &json!({})).await.status(), StatusCode::OK);
        statuses.push(app.get_account(&manager.token, &id).await["status"].clone());
    }
    assert_eq!(statuses, [json!("active"), json!("delinquent")]);
}

#[tokio::test]
async fn two_concurrent_runs_break_each_promise_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    app.clock.set(utc("2026-06-15T12:00:00Z"));
    let mut ids = Vec::new();
    for (tz_name, tz) in [
        ("UTC", chrono_tz::UTC),
        ("America/New_York", chrono_tz::America::New_York),
        ("Asia/Tokyo", chrono_tz::Asia::Tokyo),
        ("Europe/London", chrono_tz::Europe::London),
        ("Pacific/Auckland", chrono_tz::Pacific::Auckland),
        ("America/Los_Angeles", chrono_tz::America::Los_Angeles),
    ] {
        let id = id_of(&app.account(&manager.token, json!({"timezone": tz_name})).await);
        ids.push(id_of(&promise(&app, &manager.token, &id, "10.00", app.today_in(tz)).await));
    }
    // One promise due far ahead stays open.
    let later_account = id_of(&app.account(&manager.token, json!({})).await);
    let later = id_of(
        &promise(
            &app,
            &manager.token,
            &later_account,
            "10.00",
            app.today_in(chrono_tz::UTC) + Duration::days(30),
        )
        .await,
    );

    let now = app.clock.now() + Duration::days(3);
    let (a, b) = tokio::join!(
        arrears::store::promises::break_overdue(&app.pool, now),
        arrears::store::promises::break_overdue(&app.pool, now)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 6, "each promise broken by exactly one run");
    for pid in &ids {
        assert_eq!(sql_promise_status(&app, pid).await, "broken");
    }
    assert_eq!(sql_promise_status(&app, &later).await, "open");
    assert_eq!(arrears::store::promises::break_overdue(&app.pool, now).await.unwrap(), 0);
}

#[tokio::test]
async fn accounts_filter_on_an_open_promise() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let mut ids = Vec::new();
    for name in ["Promising Penelope", "Silent Sebastian"] {
        let response = app
            .post(
                "/api/v1/accounts?wait_for=indexed",
                Some(&manager.token),
                &json!({"debtor_name": name, "original_balance": "500.00", "currency": "USD"}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let account: Value = response.json().await.unwrap();
        ids.push(id_of(&account));
    }
    let due = Utc::now().date_naive() + Duration::days(10);
    let response = app
        .post(
            &format!("{}?wait_for=indexed", promises_path(&ids[0])),
            Some(&manager.token),
            &json!({"amount": "120.00", "due_date": due.to_string()}),
        )
        .await;
    let (status, created) = status_json(response).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, page) = status_json(app.get("/api/v1/accounts?has_open_promise=true", &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(names(&page), ["Promising Penelope"]);
    assert_eq!(page["data"][0]["status"], "promise_to_pay");
    assert_eq!(
        page["data"][0]["open_promise"],
        json!({"id": created["id"], "amount": "120.00", "due_date": due.to_string()})
    );
    let (status, page) = status_json(app.get("/api/v1/accounts?has_open_promise=false", &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(names(&page), ["Silent Sebastian"]);
    assert!(page["data"][0]["open_promise"].is_null());
    let (_, page) = status_json(app.get("/api/v1/accounts?q=penelope&has_open_promise=false", &viewer.token).await).await;
    assert_eq!(page["total"], 0);

    let response = app.get("/api/v1/accounts?has_open_promise=maybe", &viewer.token).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(error_fields(&problem), ["has_open_promise"]);
}

#[tokio::test]
async fn viewers_never_promise_and_agents_only_on_their_accounts() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let mine = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let other = id_of(&app.account(&manager.token, json!({})).await);
    let due = Utc::now().date_naive() + Duration::days(3);
    let body = json!({"amount": "10.00", "due_date": due.to_string()});

    let response = app.post(&promises_path(&mine), Some(&viewer.token), &body).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let response = app.post(&promises_path(&other), Some(&agent.token), &body).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM promises")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);

    let created = promise(&app, &agent.token, &mine, "10.00", due).await;
    assert_eq!(created["created_by"], json!(agent.id));
    let cancel_path = format!("/api/v1/promises/{}/cancel", id_of(&created));
    let response = app.post(&cancel_path, Some(&viewer.token), &json!({})).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(sql_promise_status(&app, &id_of(&created)).await, "open");
    let (status, page) = status_json(app.get(&promises_path(&mine), &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn every_api_process_breaks_overdue_promises_from_its_start() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "100.00"})).await);
    let due = Utc::now().date_naive() + Duration::days(1);
    let pid = id_of(&promise(&app, &manager.token, &id, "10.00", due).await);
    // Its date passes after this instance last looked (it looks again in a minute).
    sqlx::query("UPDATE promises SET due_date = due_date - 10 WHERE id = $1")
        .bind(Uuid::parse_str(&pid).unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    // A process without a sync worker breaks it when it starts: the scheduler is the
    // API process's, not the sync worker's.
    let _peer = spawn_scheduling_peer(&app).await;
    eventually("the peer breaks the overdue promise", || async {
        sql_promise_status(&app, &pid).await == "broken"
    })
    .await;
}

/// A kept promise puts the account back by the due date in the debtor's zone, as a
/// cancelled one does; it was judged by the database's date. The zone is picked so
/// that its date differs from UTC's now: Kiritimati (UTC+14) is a day ahead from 10:00
/// UTC, Pago Pago (UTC-11) a day behind before 11:00 UTC. (The trigger reads the
/// database's clock, which a test cannot set; the zone makes the case at any hour.)
#[tokio::test]
async fn a_kept_promise_leaves_the_account_by_the_date_in_the_debtors_zone() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let utc_today = Utc::now().date_naive();
    let (zone, due, expected) = if Utc::now().hour() >= 10 {
        // A day ahead: due on UTC's today is yesterday there.
        ("Pacific/Kiritimati", utc_today, "delinquent")
    } else {
        // A day behind: due on UTC's yesterday is today there.
        ("Pacific/Pago_Pago", utc_today - Duration::days(1), "active")
    };
    let local_today = Utc::now().with_timezone(&zone.parse::<Tz>().unwrap()).date_naive();
    assert_ne!(local_today, utc_today, "the zone's date differs from UTC's");
    let id = id_of(
        &app.account(
            &manager.token,
            json!({"original_balance": "500.00", "timezone": zone, "due_date": due}),
        )
        .await,
    );
    promise(&app, &manager.token, &id, "50.00", local_today + Duration::days(7)).await;
    assert_eq!(app.get_account(&manager.token, &id).await["status"], "promise_to_pay");
    app.create_payment(
        &manager.token,
        &id,
        &json!({"amount": "50.00", "currency": "USD", "method": "card"}),
    )
    .await;
    assert_eq!(
        app.get_account(&manager.token, &id).await["status"],
        expected,
        "due {due} in {zone}, where it is {local_today}"
    );
}
