//! Payment plans: the schedule with exact money, one active plan per account, payments
//! allocated oldest instalment first (and taken back by refunds), the scheduler marking
//! missed instalments in the debtor's time zone once however many run, breaking and
//! completing plans, the account's status following, who may write, the plan lists and
//! the account list's plan filters.

use arrears::domain::role::Role;
use arrears::store::plans::{Misses, mark_missed};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser, assert_problem, error_fields, eventually, id_of, local, spawn_app, spawn_app_with, status_json};

fn plans_path(account_id: &str) -> String {
    format!("/api/v1/accounts/{account_id}/plans")
}

fn card(amount: &str) -> Value {
    json!({"amount": amount, "currency": "USD", "method": "card"})
}

async fn make_plan(app: &TestApp, token: &str, account_id: &str, body: Value) -> Value {
    app.create(token, &plans_path(account_id), &body).await
}

async fn plan(app: &TestApp, token: &str, plan_id: &str) -> Value {
    let (status, body) = status_json(app.get(&format!("/api/v1/plans/{plan_id}"), token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// `(amount, paid_amount, status)` of each instalment.
async fn instalments(app: &TestApp, token: &str, plan_id: &str) -> Vec<(String, String, String)> {
    plan(app, token, plan_id).await["instalments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let text = |k: &str| i[k].as_str().unwrap().to_owned();
            (text("amount"), text("paid_amount"), text("status"))
        })
        .collect()
}

fn owed(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, p, s)| ((*a).to_owned(), (*p).to_owned(), (*s).to_owned()))
        .collect()
}

async fn account_status(app: &TestApp, token: &str, account_id: &str) -> String {
    app.get_account(token, account_id).await["status"].as_str().unwrap().to_owned()
}

async fn count_where(app: &TestApp, sql: &'static str, id: &str) -> i64 {
    app.sql_value(sql, id).await
}

/// An app whose plan scheduler misses an instalment `grace_days` after its date and
/// breaks a plan at its second miss.
async fn app_with_grace(grace_days: u32) -> TestApp {
    spawn_app_with(|s| {
        s.plan_grace_days = grace_days;
        s.plan_max_misses = 2;
    })
    .await
}

/// One pass of the app's schedulers with its clock at `now`: what the plan scheduler did.
async fn pass_at(app: &TestApp, now: DateTime<Utc>) -> Misses {
    app.clock.set(now);
    app.run_schedulers().await.plans
}

/// The missed instalments the user was told of (a batch of them is one notification).
async fn missed_notifications(app: &TestApp, user: &TestUser) -> i64 {
    count_where(
        app,
        "SELECT coalesce(sum(count), 0) FROM notifications WHERE user_id = $1 AND kind = 'plan_instalment_missed'",
        &user.id.to_string(),
    )
    .await
}

/// A manager, and an account of 1000.00 due in the future (so `active`) in `tz`.
async fn setup(app: &TestApp, tz: &str) -> (TestUser, String) {
    let manager = app.user(Role::Manager).await;
    let due = (Utc::now().date_naive() + Duration::days(60)).to_string();
    let account = app
        .account(
            &manager.token,
            json!({"original_balance": "1000.00", "due_date": due, "timezone": tz}),
        )
        .await;
    (manager, id_of(&account))
}

#[tokio::test]
async fn a_plan_splits_the_total_exactly_and_moves_the_account() {
    let app = spawn_app().await;
    let (manager, id) = setup(&app, "UTC").await;
    assert_eq!(account_status(&app, &manager.token, &id).await, "active");
    let first = Utc::now().date_naive() + Duration::days(1);
    let body = json!({"total": "100.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": first});
    let created = make_plan(&app, &manager.token, &id, body.clone()).await;
    assert_eq!(created["status"], "active");
    assert_eq!(created["total"], "100.00");
    assert_eq!(created["currency"], "USD");
    assert_eq!(created["instalment_count"], 3);
    let dates: Vec<&str> = created["instalments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["due_date"].as_str().unwrap())
        .collect();
    let weeks: Vec<String> = (0..3).map(|w| (first + Duration::weeks(w)).to_string()).collect();
    assert_eq!(dates, weeks);
    let pid = id_of(&created);
    assert_eq!(
        instalments(&app, &manager.token, &pid).await,
        owed(&[("33.33", "0.00", "open"), ("33.33", "0.00", "open"), ("33.34", "0.00", "open")])
    );

    let account = app.get_account(&manager.token, &id).await;
    assert_eq!(account["status"], "payment_plan");
    assert_eq!(account["plan"]["id"], pid.as_str());
    assert_eq!(account["plan"]["status"], "active");
    assert_eq!(account["plan"]["next_due_date"], first.to_string());
    assert_eq!(account["plan"]["next_amount"], "33.33");
    assert_eq!(account["plan"]["missed_count"], 0);
    assert!(account["plan"]["last_missed_on"].is_null());

    let again = app.post(&plans_path(&id), Some(&manager.token), &body).await;
    assert_problem(again, StatusCode::CONFLICT, "plan_already_active").await;

    let by_amount = json!({"total": "100.00", "instalment_amount": "30.00", "frequency": "biweekly", "first_due_date": first});
    let other = id_of(&app.account(&manager.token, json!({"original_balance": "500.00"})).await);
    let made = make_plan(&app, &manager.token, &other, by_amount).await;
    let amounts: Vec<&str> = made["instalments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, ["30.00", "30.00", "30.00", "10.00"]);
    assert_eq!(made["instalments"][1]["due_date"], (first + Duration::weeks(2)).to_string());

    let (status, page) = status_json(app.get(&plans_path(&id), &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 1);
    assert_eq!(page["data"][0]["id"], pid.as_str());
    let unknown = app.get(&format!("/api/v1/plans/{}", Uuid::new_v4()), &manager.token).await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn monthly_on_the_31st_falls_on_the_last_day_of_short_months() {
    let app = spawn_app().await;
    let (manager, id) = setup(&app, "UTC").await;
    let body = json!({"total": "400.00", "instalment_count": 4, "frequency": "monthly", "day_of_month": 31,
                      "first_due_date": "2027-01-31"});
    let created = make_plan(&app, &manager.token, &id, body).await;
    let dates: Vec<&str> = created["instalments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["due_date"].as_str().unwrap())
        .collect();
    assert_eq!(dates, ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]);
    assert_eq!(created["day_of_month"], 31);
    assert_eq!(created["frequency"], "monthly");
}

#[tokio::test]
async fn bad_plans_are_refused_naming_each_field() {
    let app = spawn_app().await;
    let (manager, id) = setup(&app, "UTC").await;
    let yesterday = (Utc::now().date_naive() - Duration::days(2)).to_string();
    let body = json!({"total": "5000.00", "instalment_count": 3, "instalment_amount": "10.00", "frequency": "weekly",
                      "day_of_month": 5, "first_due_date": yesterday});
    let problem = assert_problem(
        app.post(&plans_path(&id), Some(&manager.token), &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let mut fields = error_fields(&problem);
    fields.sort();
    assert_eq!(
        fields,
        ["day_of_month", "first_due_date", "instalment_amount", "instalment_count", "total"]
    );
    let tomorrow = (Utc::now().date_naive() + Duration::days(1)).to_string();
    for (body, field) in [
        (
            json!({"total": "0.00", "instalment_count": 2, "frequency": "weekly", "first_due_date": tomorrow}),
            "total",
        ),
        (
            json!({"total": "10.001", "instalment_count": 2, "frequency": "weekly", "first_due_date": tomorrow}),
            "total",
        ),
        (
            json!({"total": "100.00", "instalment_count": 0, "frequency": "weekly", "first_due_date": tomorrow}),
            "instalment_count",
        ),
        (
            json!({"total": "100.00", "instalment_amount": "0.01", "frequency": "weekly", "first_due_date": tomorrow}),
            "instalment_amount",
        ),
        (
            json!({"total": "100.00", "instalment_count": 2, "frequency": "monthly", "day_of_month": 32, "first_due_date": tomorrow}),
            "day_of_month",
        ),
    ] {
        let response = app.post(&plans_path(&id), Some(&manager.token), &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "{body}");
    }
    let unknown_frequency = json!({"total": "100.00", "instalment_count": 2, "frequency": "daily", "first_due_date": tomorrow});
    let response = app.post(&plans_path(&id), Some(&manager.token), &unknown_frequency).await;
    assert!(response.status().is_client_error());
    assert_eq!(response.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn payments_pay_the_oldest_instalment_first_and_refunds_take_it_back() {
    let app = spawn_app().await;
    let (manager, id) = setup(&app, "UTC").await;
    let first = Utc::now().date_naive() + Duration::days(1);
    let body = json!({"total": "100.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": first});
    let pid = id_of(&make_plan(&app, &manager.token, &id, body).await);

    app.create_payment(&manager.token, &id, &card("20.00")).await;
    assert_eq!(
        instalments(&app, &manager.token, &pid).await,
        owed(&[("33.33", "20.00", "partial"), ("33.33", "0.00", "open"), ("33.34", "0.00", "open")])
    );
    let big = app.create_payment(&manager.token, &id, &card("50.00")).await;
    assert_eq!(
        instalments(&app, &manager.token, &pid).await,
        owed(&[("33.33", "33.33", "paid"), ("33.33", "33.33", "paid"), ("33.34", "3.34", "partial")])
    );
    let account = app.get_account(&manager.token, &id).await;
    assert_eq!(account["plan"]["next_due_date"], (first + Duration::weeks(2)).to_string());
    assert_eq!(account["plan"]["next_amount"], "30.00");
    let shown = plan(&app, &manager.token, &pid).await;
    assert_eq!(shown["paid_total"], "70.00");

    // A refund deallocates: the newest money goes first.
    let refund = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&big)),
            &manager.token,
            &json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(refund.status(), StatusCode::OK);
    assert_eq!(
        instalments(&app, &manager.token, &pid).await,
        owed(&[("33.33", "20.00", "partial"), ("33.33", "0.00", "open"), ("33.34", "0.00", "open")])
    );

    // A pending payment counts once completed; paying the rest completes the plan, and the
    // account, still owing, leaves `payment_plan`.
    let pending = app
        .create_payment(
            &manager.token,
            &id,
            &json!({"amount": "80.00", "currency": "USD", "method": "ach", "status": "pending"}),
        )
        .await;
    assert_eq!(plan(&app, &manager.token, &pid).await["status"], "active");
    let completed = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&pending)),
            &manager.token,
            &json!({"status": "completed"}),
        )
        .await;
    assert_eq!(completed.status(), StatusCode::OK);
    let done = plan(&app, &manager.token, &pid).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(done["resolved_at"].is_string());
    assert_eq!(done["paid_total"], "100.00");
    let account = app.get_account(&manager.token, &id).await;
    assert_eq!(account["status"], "active");
    assert_eq!(account["plan"]["status"], "completed");
    assert!(account["plan"]["next_due_date"].is_null());
    assert_eq!(
        count_where(
            &app,
            "SELECT count(*) FROM events WHERE kind = 'plan.completed' AND data->>'plan_id' = $1::text",
            &pid
        )
        .await,
        1
    );

    // Reversing a payment of a completed plan reopens it.
    let reverse = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&pending)),
            &manager.token,
            &json!({"status": "reversed"}),
        )
        .await;
    assert_eq!(reverse.status(), StatusCode::OK);
    assert_eq!(plan(&app, &manager.token, &pid).await["status"], "active");
    assert_eq!(account_status(&app, &manager.token, &id).await, "payment_plan");
}

#[tokio::test]
async fn paying_off_the_balance_completes_the_plan_and_paid_wins() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "90.00"})).await);
    let first = Utc::now().date_naive() + Duration::days(3);
    let body = json!({"total": "90.00", "instalment_count": 2, "frequency": "monthly", "first_due_date": first});
    let pid = id_of(&make_plan(&app, &manager.token, &id, body).await);
    assert_eq!(account_status(&app, &manager.token, &id).await, "payment_plan");
    app.create_payment(&manager.token, &id, &card("90.00")).await;
    assert_eq!(plan(&app, &manager.token, &pid).await["status"], "completed");
    assert_eq!(account_status(&app, &manager.token, &id).await, "paid");
}

/// An instalment due on the day a plan is made (noon in `tz`) with a grace of 3 days is
/// still open at the last second of the third day after and missed at the first second
/// of the fourth, both in the account's time zone, when the scheduler passes with the
/// clock there; the agent is told once.
async fn missed_after_the_grace_period_in(tz_name: &str, tz: Tz) {
    let app = app_with_grace(3).await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let account = app
        .account(&manager.token, json!({"timezone": tz_name, "assigned_agent_id": agent.id}))
        .await;
    let id = id_of(&account);
    let due: NaiveDate = "2026-06-15".parse().unwrap();
    app.clock.set(local(tz, due, 12, 0, 0));
    let body = json!({"total": "30.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": due});
    let pid = id_of(&make_plan(&app, &agent.token, &id, body).await);

    let last_second = local(tz, due + Duration::days(3), 23, 59, 59);
    assert_eq!(pass_at(&app, last_second).await, Misses::default());
    assert_eq!(instalments(&app, &agent.token, &pid).await[0].2, "open");

    let next_midnight = local(tz, due + Duration::days(4), 0, 0, 0);
    let misses = pass_at(&app, next_midnight).await;
    assert_eq!(misses, Misses { missed: 1, broken: 0 }, "{tz_name} midnight after {due} + 3 days");
    assert_eq!(instalments(&app, &agent.token, &pid).await[0].2, "missed");
    assert_eq!(missed_notifications(&app, &agent).await, 1);
    let shown = app.get_account(&agent.token, &id).await;
    assert_eq!(shown["plan"]["missed_count"], 1);
    assert_eq!(shown["plan"]["last_missed_on"], due.to_string());
    assert_eq!(shown["status"], "payment_plan");

    assert_eq!(pass_at(&app, next_midnight).await, Misses::default());
    assert_eq!(missed_notifications(&app, &agent).await, 1, "a second run tells nobody");
}

/// New York changes its offset on 2026-03-08 and 2026-11-01: an instalment due that day
/// (no grace) is open half an hour before the midnight after it in New York and missed
/// half an hour after, an hour away from where the day's first offset puts midnight.
#[tokio::test]
async fn missed_at_new_york_midnight_across_both_dst_changes() {
    let ny = chrono_tz::America::New_York;
    for (due, midnight_after) in [("2026-03-08", "2026-03-09T04:00:00Z"), ("2026-11-01", "2026-11-02T05:00:00Z")] {
        let app = app_with_grace(0).await;
        let manager = app.user(Role::Manager).await;
        let id = id_of(&app.account(&manager.token, json!({"timezone": "America/New_York"})).await);
        let due_date: NaiveDate = due.parse().unwrap();
        app.clock.set(local(ny, due_date, 0, 30, 0));
        let body = json!({"total": "20.00", "instalment_count": 2, "frequency": "weekly", "first_due_date": due});
        let pid = id_of(&make_plan(&app, &manager.token, &id, body).await);
        let midnight = DateTime::parse_from_rfc3339(midnight_after).unwrap().with_timezone(&Utc);
        assert_eq!(local(ny, due_date + Duration::days(1), 0, 0, 0), midnight);
        assert_eq!(
            pass_at(&app, midnight - Duration::minutes(30)).await,
            Misses::default(),
            "{due} 23:30"
        );
        assert_eq!(instalments(&app, &manager.token, &pid).await[0].2, "open");
        assert_eq!(
            pass_at(&app, midnight + Duration::minutes(30)).await,
            Misses { missed: 1, broken: 0 },
            "00:30 after {due}"
        );
        assert_eq!(instalments(&app, &manager.token, &pid).await[0].2, "missed");
    }
}

#[tokio::test]
async fn missed_after_the_grace_period_in_auckland() {
    missed_after_the_grace_period_in("Pacific/Auckland", chrono_tz::Pacific::Auckland).await;
}

#[tokio::test]
async fn missed_after_the_grace_period_in_los_angeles() {
    missed_after_the_grace_period_in("America/Los_Angeles", chrono_tz::America::Los_Angeles).await;
}

#[tokio::test]
async fn the_same_instant_is_a_different_day_in_auckland_and_los_angeles() {
    let app = app_with_grace(0).await;
    let manager = app.user(Role::Manager).await;
    let auckland = chrono_tz::Pacific::Auckland;
    let los_angeles = chrono_tz::America::Los_Angeles;
    // Both instalments are due on the day that is today in Auckland (Auckland's date is
    // never behind Los Angeles').
    app.clock
        .set(DateTime::parse_from_rfc3339("2026-06-15T01:00:00Z").unwrap().with_timezone(&Utc));
    let due = app.today_in(auckland);
    let mut plans = Vec::new();
    for tz in ["Pacific/Auckland", "America/Los_Angeles"] {
        let id = id_of(&app.account(&manager.token, json!({"timezone": tz})).await);
        let body = json!({"total": "20.00", "instalment_count": 2, "frequency": "weekly", "first_due_date": due});
        plans.push(id_of(&make_plan(&app, &manager.token, &id, body).await));
    }
    // The first instant of the next day in Auckland is still the due day in Los Angeles.
    let at = local(auckland, due + Duration::days(1), 0, 0, 0);
    assert_eq!(at.with_timezone(&los_angeles).date_naive(), due);
    assert_eq!(pass_at(&app, at).await.missed, 1);
    assert_eq!(instalments(&app, &manager.token, &plans[0]).await[0].2, "missed");
    assert_eq!(instalments(&app, &manager.token, &plans[1]).await[0].2, "open");
    let la_next_day = local(los_angeles, due + Duration::days(1), 0, 0, 0);
    assert_eq!(pass_at(&app, la_next_day).await.missed, 1);
    assert_eq!(instalments(&app, &manager.token, &plans[1]).await[0].2, "missed");
}

#[tokio::test]
async fn two_schedulers_at_once_mark_and_notify_each_instalment_once() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    app.clock
        .set(DateTime::parse_from_rfc3339("2026-06-15T12:00:00Z").unwrap().with_timezone(&Utc));
    let zones = ["UTC", "Pacific/Auckland", "America/Los_Angeles", "Asia/Tokyo", "Europe/London"];
    let mut plans = Vec::new();
    for tz in zones {
        let account = app
            .account(&manager.token, json!({"timezone": tz, "assigned_agent_id": agent.id}))
            .await;
        let due = app.today_in(tz.parse().unwrap());
        let body = json!({"total": "40.00", "instalment_count": 4, "frequency": "weekly", "first_due_date": due});
        plans.push(id_of(&make_plan(&app, &manager.token, &id_of(&account), body).await));
    }
    // Ten days on: the first two instalments of each plan are missed, which breaks it.
    let now = app.clock.now() + Duration::days(10);
    let (a, b) = tokio::join!(mark_missed(&app.pool, now, 0, 2), mark_missed(&app.pool, now, 0, 2));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.missed + b.missed, 10, "each instalment marked by exactly one run");
    assert_eq!(a.broken + b.broken, 5, "each plan broken by exactly one run");
    assert_eq!(missed_notifications(&app, &agent).await, 10);
    let broken_notes = count_where(
        &app,
        "SELECT coalesce(sum(count), 0) FROM notifications WHERE user_id = $1 AND kind = 'plan_broken'",
        &agent.id.to_string(),
    )
    .await;
    assert_eq!(broken_notes, 5);
    for pid in &plans {
        let events = count_where(
            &app,
            "SELECT count(*) FROM events WHERE kind = 'plan.instalment_missed' AND data->>'plan_id' = $1::text",
            pid,
        )
        .await;
        assert_eq!(events, 2);
        assert_eq!(plan(&app, &manager.token, pid).await["status"], "broken");
    }
    assert_eq!(mark_missed(&app.pool, now, 0, 2).await.unwrap(), Misses::default());
}

#[tokio::test]
async fn a_plan_breaks_after_the_allowed_misses_and_the_account_follows() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    // Past due (the default due date is in the past): a broken plan leaves it delinquent.
    let late = id_of(&app.account(&manager.token, json!({"timezone": "UTC"})).await);
    app.clock
        .set(DateTime::parse_from_rfc3339("2026-06-15T12:00:00Z").unwrap().with_timezone(&Utc));
    let due = app.today_in(chrono_tz::UTC);
    let body = json!({"total": "300.00", "instalment_count": 3, "frequency": "weekly", "first_due_date": due});
    let pid = id_of(&make_plan(&app, &manager.token, &late, body).await);
    assert_eq!(account_status(&app, &manager.token, &late).await, "payment_plan");

    let week_later = app.clock.now() + Duration::days(2);
    assert_eq!(
        mark_missed(&app.pool, week_later, 0, 2).await.unwrap(),
        Misses { missed: 1, broken: 0 }
    );
    assert_eq!(plan(&app, &manager.token, &pid).await["status"], "active");
    // Paying the missed instalment late leaves the miss counted.
    app.create_payment(&manager.token, &late, &card("100.00")).await;
    assert_eq!(instalments(&app, &manager.token, &pid).await[0].2, "paid");
    assert_eq!(plan(&app, &manager.token, &pid).await["missed_count"], 1);

    let two_weeks_later = app.clock.now() + Duration::days(9);
    assert_eq!(
        mark_missed(&app.pool, two_weeks_later, 0, 2).await.unwrap(),
        Misses { missed: 1, broken: 1 }
    );
    let broken = plan(&app, &manager.token, &pid).await;
    assert_eq!(broken["status"], "broken");
    assert!(broken["resolved_at"].is_string());
    let account = app.get_account(&manager.token, &late).await;
    assert_eq!(account["status"], "delinquent");
    assert_eq!(account["plan"]["status"], "broken");
    assert_eq!(account["plan"]["missed_count"], 2);
    assert!(account["plan"]["next_due_date"].is_null());
    assert_eq!(
        count_where(
            &app,
            "SELECT count(*) FROM events WHERE kind = 'plan.broken' AND data->>'plan_id' = $1::text",
            &pid
        )
        .await,
        1
    );
    // A later payment is not allocated to a broken plan.
    app.create_payment(&manager.token, &late, &card("10.00")).await;
    assert_eq!(plan(&app, &manager.token, &pid).await["paid_total"], "100.00");

    let cancel = app
        .post(&format!("/api/v1/plans/{pid}/cancel"), Some(&manager.token), &json!({}))
        .await;
    assert_problem(cancel, StatusCode::CONFLICT, "invalid_transition").await;

    // Not past due: a cancelled plan leaves the account active.
    let (_, current) = setup(&app, "UTC").await;
    let first = (Utc::now().date_naive() + Duration::days(1)).to_string();
    let body = json!({"total": "50.00", "instalment_count": 1, "frequency": "weekly", "first_due_date": first});
    let cid = id_of(&make_plan(&app, &manager.token, &current, body).await);
    let (status, cancelled) = status_json(
        app.post(&format!("/api/v1/plans/{cid}/cancel"), Some(&manager.token), &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(account_status(&app, &manager.token, &current).await, "active");
}

#[tokio::test]
async fn viewers_and_other_agents_may_not_make_or_cancel_plans() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let agent = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let id = id_of(&app.account(&manager.token, json!({"assigned_agent_id": agent.id})).await);
    let first = (Utc::now().date_naive() + Duration::days(1)).to_string();
    let body = json!({"total": "100.00", "instalment_count": 2, "frequency": "weekly", "first_due_date": first});
    for token in [&viewer.token, &other.token] {
        let response = app.post(&plans_path(&id), Some(token), &body).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let pid = id_of(&make_plan(&app, &agent.token, &id, body).await);
    for token in [&viewer.token, &other.token] {
        let response = app.post(&format!("/api/v1/plans/{pid}/cancel"), Some(token), &json!({})).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    // Everyone reads.
    assert_eq!(plan(&app, &viewer.token, &pid).await["status"], "active");
    let (status, _) = status_json(app.get(&plans_path(&id), &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn plans_are_listed_with_filters_and_accounts_filter_on_their_plan() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let soon = Utc::now().date_naive() + Duration::days(2);
    let later = Utc::now().date_naive() + Duration::days(20);
    let mine = id_of(
        &app.account(&manager.token, json!({"debtor_name": "Mina Plan", "assigned_agent_id": agent.id}))
            .await,
    );
    let theirs = id_of(&app.account(&manager.token, json!({"debtor_name": "Theo Plan"})).await);
    let none = id_of(&app.account(&manager.token, json!({"debtor_name": "Nora Noplan"})).await);
    let weekly = |first: NaiveDate| json!({"total": "100.00", "instalment_count": 2, "frequency": "weekly", "first_due_date": first});
    let mine_plan = id_of(&make_plan(&app, &agent.token, &mine, weekly(soon)).await);
    let theirs_plan = id_of(&make_plan(&app, &manager.token, &theirs, weekly(later)).await);
    let cancel = app
        .post(&format!("/api/v1/plans/{theirs_plan}/cancel"), Some(&manager.token), &json!({}))
        .await;
    assert_eq!(cancel.status(), StatusCode::OK);
    let theirs_second = id_of(&make_plan(&app, &manager.token, &theirs, weekly(later)).await);

    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = status_json(app.get("/api/v1/plans?page_size=2", &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["total"], 3);
    assert_eq!(ids(&page), [theirs_second.clone(), theirs_plan.clone()], "newest first");
    assert!(page["facets"].is_object());
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = status_json(app.get(&format!("/api/v1/plans?page_size=2&cursor={cursor}"), &manager.token).await).await;
    assert_eq!(ids(&rest), std::slice::from_ref(&mine_plan));
    assert!(rest["next_cursor"].is_null());

    let (_, active) = status_json(app.get("/api/v1/plans?status=active", &manager.token).await).await;
    assert_eq!(active["total"], 2);
    let (_, cancelled) = status_json(app.get("/api/v1/plans?status=cancelled", &manager.token).await).await;
    assert_eq!(ids(&cancelled), std::slice::from_ref(&theirs_plan));
    let (_, by_account) = status_json(app.get(&format!("/api/v1/plans?account_id={theirs}"), &manager.token).await).await;
    assert_eq!(by_account["total"], 2);
    let (_, own) = status_json(app.get("/api/v1/plans?assigned_agent_id=me", &agent.token).await).await;
    assert_eq!(ids(&own), std::slice::from_ref(&mine_plan));
    app.assert_refused_parameter(&manager.token, "/api/v1/plans?status=paused", "status")
        .await;
    app.assert_refused_parameter(&manager.token, "/api/v1/plans?page_size=201", "page_size")
        .await;
    app.assert_refused_parameter(&manager.token, "/api/v1/plans?cursor=nope", "cursor")
        .await;

    // The account list (the index) filters on the plan.
    let listed = |query: &'static str| {
        let app = &app;
        let token = manager.token.clone();
        async move {
            let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}"), &token).await).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let mut ids: Vec<String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let mut with_plans = vec![mine.clone(), theirs.clone()];
    with_plans.sort();
    eventually("plans indexed", || async { listed("has_plan=true").await == with_plans }).await;
    assert_eq!(listed("has_plan=false").await, std::slice::from_ref(&none));
    assert_eq!(listed("plan_status=active").await, with_plans);
    assert!(listed("plan_status=broken,completed").await.is_empty());
    let before = (soon + Duration::days(1)).to_string();
    let (status, page) = status_json(
        app.get(&format!("/api/v1/accounts?plan_next_before={before}"), &manager.token)
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], mine.as_str());
    assert_eq!(page["data"][0]["plan"]["next_due_date"], soon.to_string());
    let on_the_day = soon.to_string();
    let (_, page) = status_json(
        app.get(&format!("/api/v1/accounts?plan_next_before={on_the_day}"), &manager.token)
            .await,
    )
    .await;
    assert_eq!(page["total"], 0, "before is exclusive");
    app.assert_refused_parameter(&manager.token, "/api/v1/accounts?plan_status=paused", "plan_status")
        .await;
    app.assert_refused_parameter(&manager.token, "/api/v1/accounts?has_plan=maybe", "has_plan")
        .await;
    app.assert_refused_parameter(&manager.token, "/api/v1/accounts?plan_next_before=soon", "plan_next_before")
        .await;
}
