//! Overdue is an event, over HTTP against the real database: an active account whose due
//! date has passed unpaid in the debtor's time zone (by more than its portfolio's
//! `delinquent_after_days`, or `OVERDUE_AFTER_DAYS`) becomes delinquent when the
//! scheduler passes, in the audit trail as the scheduler's doing, and its agent is told
//! once per pass; across a change to daylight saving time, and with two schedulers at
//! once.

use arrears::domain::role::Role;
use arrears::jobs::overdue;
use chrono::{Duration, NaiveDate};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id_of, local, spawn_app, spawn_app_with, status_json};

async fn status(app: &TestApp, token: &str, account: &str) -> String {
    let (_, body) = status_json(app.get(&format!("/api/v1/accounts/{account}"), token).await).await;
    body["status"].as_str().unwrap().to_owned()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[tokio::test]
async fn an_account_is_past_due_at_midnight_in_the_debtors_zone_across_a_daylight_saving_change() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let new_york: Tz = "America/New_York".parse().unwrap();
    // New York moves its clocks forward at 02:00 on 2027-03-14: the day before ends at
    // 05:00 UTC, the day itself at 04:00 UTC.
    let before = id_of(
        &app.account(&manager.token, json!({"timezone": "America/New_York", "due_date": "2027-03-13"}))
            .await,
    );
    let on = id_of(
        &app.account(&manager.token, json!({"timezone": "America/New_York", "due_date": "2027-03-14"}))
            .await,
    );
    let pass_at = |at| {
        app.clock.set(at);
        overdue::pass(&app.pool, &app.clock, 0)
    };
    let midnight_14 = local(new_york, date("2027-03-14"), 0, 0, 0);
    assert_eq!(midnight_14.to_rfc3339(), "2027-03-14T05:00:00+00:00");
    assert_eq!(pass_at(midnight_14 - Duration::seconds(1)).await.unwrap(), 0, "still the due date");
    assert_eq!(pass_at(midnight_14).await.unwrap(), 1);
    assert_eq!(status(&app, &manager.token, &before).await, "delinquent");
    assert_eq!(status(&app, &manager.token, &on).await, "active");

    let midnight_15 = local(new_york, date("2027-03-15"), 0, 0, 0);
    assert_eq!(
        midnight_15.to_rfc3339(),
        "2027-03-15T04:00:00+00:00",
        "an hour earlier in UTC after the change"
    );
    assert_eq!(pass_at(midnight_15 - Duration::seconds(1)).await.unwrap(), 0);
    assert_eq!(pass_at(midnight_15).await.unwrap(), 1);
    assert_eq!(status(&app, &manager.token, &on).await, "delinquent");
    assert_eq!(pass_at(midnight_15).await.unwrap(), 0, "a second pass finds nothing");

    // The audit trail says the scheduler did it.
    let admin = app.user(Role::Admin).await;
    let (_, trail) = status_json(app.get(&format!("/api/v1/audit?entity=account&entity_id={on}"), &admin.token).await).await;
    let change = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "account.update")
        .unwrap_or_else(|| panic!("no update in {trail}"));
    assert_eq!(change["job"], "scheduler:overdue", "{change}");
    assert_eq!(
        change["details"]["changes"]["status"],
        json!({"before": "active", "after": "delinquent"}),
        "{change}"
    );
}

#[tokio::test]
async fn only_active_accounts_still_owing_move_and_a_portfolio_may_wait_longer() {
    let app = spawn_app_with(|s| s.overdue_after_days = 5).await;
    let admin = app.user(Role::Admin).await;
    app.clock.set(local(chrono_tz::UTC, date("2027-06-30"), 12, 0, 0));
    let account = |fields: Value| {
        let token = admin.token.clone();
        let app = &app;
        async move { id_of(&app.account(&token, fields).await) }
    };
    let (_, patient) = status_json(
        app.post(
            "/api/v1/portfolios",
            Some(&admin.token),
            &json!({"name": "Patient bank", "delinquent_after_days": 30}),
        )
        .await,
    )
    .await;
    let (_, refused) = status_json(
        app.post(
            "/api/v1/portfolios",
            Some(&admin.token),
            &json!({"name": "Too patient", "delinquent_after_days": 366}),
        )
        .await,
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "delinquent_after_days", "{refused}");

    let six_days = account(json!({"timezone": "UTC", "due_date": "2027-06-24"})).await;
    let five_days = account(json!({"timezone": "UTC", "due_date": "2027-06-25"})).await;
    let in_portfolio = account(json!({"timezone": "UTC", "due_date": "2027-06-24", "portfolio_id": patient["id"]})).await;
    let long_in_portfolio = account(json!({"timezone": "UTC", "due_date": "2027-05-30", "portfolio_id": patient["id"]})).await;
    let disputed = account(json!({"timezone": "UTC", "due_date": "2027-01-01", "status": "disputed"})).await;
    let paid_off = account(json!({"timezone": "UTC", "due_date": "2027-01-01", "original_balance": "0.00"})).await;
    let no_date = account(json!({"timezone": "UTC", "due_date": null})).await;

    assert_eq!(overdue::pass(&app.pool, &app.clock, 5).await.unwrap(), 2);
    let statuses = [
        (&six_days, "delinquent"),
        (&five_days, "active"),
        (&in_portfolio, "active"),
        (&long_in_portfolio, "delinquent"),
        (&disputed, "disputed"),
        (&paid_off, "active"),
        (&no_date, "active"),
    ];
    for (id, expected) in statuses {
        assert_eq!(status(&app, &admin.token, id).await, expected, "{id}");
    }
    // The scheduler the server runs reads OVERDUE_AFTER_DAYS.
    app.clock.advance(Duration::days(1));
    assert_eq!(app.run_schedulers().await.overdue, 1, "five days became six");
    assert_eq!(status(&app, &admin.token, &five_days).await, "delinquent");
}

#[tokio::test]
async fn each_agent_is_told_once_per_pass_and_two_schedulers_at_once_move_each_account_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let busy = app.user(Role::Agent).await;
    let quiet = app.user(Role::Agent).await;
    app.clock.set(local(chrono_tz::UTC, date("2027-06-30"), 12, 0, 0));
    let zones = ["UTC", "Pacific/Auckland", "America/Los_Angeles", "Asia/Kolkata", "Europe/London"];
    for tz in zones {
        app.account(
            &manager.token,
            json!({"timezone": tz, "due_date": "2027-06-20", "assigned_agent_id": busy.id}),
        )
        .await;
    }
    let single = app
        .account(
            &manager.token,
            json!({"account_number": "LATE-1", "debtor_name": "Ola Late", "timezone": "UTC",
                "due_date": "2027-06-20", "assigned_agent_id": quiet.id}),
        )
        .await;
    let unassigned = id_of(
        &app.account(&manager.token, json!({"timezone": "UTC", "due_date": "2027-06-20"}))
            .await,
    );

    let (a, b) = tokio::join!(overdue::pass(&app.pool, &app.clock, 0), overdue::pass(&app.pool, &app.clock, 0));
    assert_eq!(a.unwrap() + b.unwrap(), 7, "each account moved by exactly one scheduler");
    assert_eq!(status(&app, &manager.token, &unassigned).await, "delinquent");
    let moves: i64 = app
        .sql_value(
            "SELECT count(*) FROM audit_log WHERE job = 'scheduler:overdue' AND action = 'account.update'
             AND details->'changes'->'status'->>'after' = 'delinquent' AND $1::uuid IS NOT NULL",
            &unassigned,
        )
        .await;
    assert_eq!(moves, 7, "one status change each in the audit trail");

    // Five accounts are one notification for their agent, however the schedulers split
    // them, once both passes are over; one account names itself.
    let notes = app.notifications_of(&busy, "account_overdue").await;
    let counted: i64 = notes.iter().map(|n| n["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 5, "{notes:?}");
    assert!(notes.len() <= 2, "at most one per pass: {notes:?}");
    let (_, after_both) = status_json(app.get("/api/v1/notifications", &busy.token).await).await;
    let five = after_both["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "account_overdue" && n["count"] == 5);
    if let Some(five) = five {
        assert_eq!(five["title"], "5 accounts are past due");
        assert_eq!(five["link"], "#/search?assigned_agent_id=me&status=delinquent&sort=-updated_at");
    }
    let one = app.notifications_of(&quiet, "account_overdue").await;
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["title"], "Account LATE-1 (Ola Late) is past due");
    assert_eq!(one[0]["link"], format!("#/account/{}", id_of(&single)));
    assert_eq!(one[0]["data"]["due_date"], "2027-06-20");

    // The next pass finds nothing and tells no one.
    assert_eq!(overdue::pass(&app.pool, &app.clock, 0).await.unwrap(), 0);
    assert_eq!(app.notifications_of(&quiet, "account_overdue").await.len(), 1);
}

#[tokio::test]
async fn one_pass_tells_an_agent_once_however_many_chunks_it_takes() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    app.clock.set(local(chrono_tz::UTC, date("2027-06-30"), 12, 0, 0));
    // More accounts than one chunk moves, written straight to the table (through the API
    // this would take minutes): the agent's, past due.
    let template = id_of(
        &app.account(
            &manager.token,
            json!({"timezone": "UTC", "due_date": "2027-06-20", "assigned_agent_id": agent.id}),
        )
        .await,
    );
    let copies: i64 = app
        .sql_value(
            "WITH made AS (
                 INSERT INTO accounts (id, account_number, debtor_name, status, original_balance, current_balance,
                     currency, due_date, timezone, assigned_agent_id)
                 SELECT gen_random_uuid(), 'BULK-' || n, debtor_name, status, original_balance, current_balance,
                     currency, due_date, timezone, assigned_agent_id
                 FROM accounts, generate_series(1, 1200) AS n WHERE id = $1::uuid
                 RETURNING 1)
             SELECT count(*) FROM made",
            &template,
        )
        .await;
    assert_eq!(copies, 1200);
    assert_eq!(overdue::pass(&app.pool, &app.clock, 0).await.unwrap(), 1201);
    let notes = app.notifications_of(&agent, "account_overdue").await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["count"], 1201);
    assert_eq!(notes[0]["title"], "1201 accounts are past due");
}
