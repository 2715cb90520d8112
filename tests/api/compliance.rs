//! The contact-compliance guard through HTTP with the default policy (Regulation F).
//! Attempts are judged at the app's clock, which each test holds at one instant, so it
//! picks a debtor's zone by the hour it is there at that instant, and writes the call history the rules count straight into SQL
//! (with the `created_at` the server would have recorded). The rules' arithmetic at
//! chosen instants (a DST change, the day the period ends) is unit-tested in
//! `domain::compliance`. Here: hours in the debtor's zone, an unknown zone, the
//! call-attempt limit at the 7th and 8th call, a recent conversation, flags and
//! disputes, a manager's override, racing attempts, and the index filter.

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, DurationRound, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestUser, assert_problem, id_of, instant, spawn_guarded_app, status_json};

/// A fixed-offset zone `offset` hours east of UTC (Etc/GMT+N is N hours behind UTC).
fn zone_at(offset: i32) -> String {
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o < 0 => format!("Etc/GMT+{}", -o),
        o => format!("Etc/GMT-{o}"),
    }
}

/// The offset, in hours east of UTC, at which it is between `from` and `to` o'clock at
/// `now`.
fn offset_where_it_is(now: DateTime<Utc>, from: u32, to: u32) -> i32 {
    (-12..=12)
        .find(|offset: &i32| (from..to).contains(&(now + Duration::hours(i64::from(*offset))).hour()))
        .expect("some zone has that hour now")
}

/// A fixed-offset zone in which it is between `from` and `to` o'clock at `now`.
pub fn zone_where_it_is(now: DateTime<Utc>, from: u32, to: u32) -> String {
    zone_at(offset_where_it_is(now, from, to))
}

/// The next `hour`:00 in `zone` after `now`.
fn next_local(now: DateTime<Utc>, zone: &str, hour: u32) -> DateTime<Utc> {
    let tz: Tz = zone.parse().unwrap();
    let now = now.with_timezone(&tz);
    let today = tz.from_local_datetime(&now.date_naive().and_hms_opt(hour, 0, 0).unwrap()).unwrap();
    let next = if today > now { today } else { today + Duration::days(1) };
    next.with_timezone(&Utc)
}

/// Holds `app`'s clock at the wall clock's now, to the second (as SQL keeps and gives
/// back what the tests write): the instant every attempt of the test is judged at, and
/// the hours of the zones it picks. Not a fixed date: the index builds its contact
/// filter from the system clock.
pub fn hold_clock(app: &TestApp) -> DateTime<Utc> {
    let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    app.clock.set(now);
    now
}

struct Floor {
    app: TestApp,
    manager: TestUser,
    agent: TestUser,
}

async fn floor() -> Floor {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    hold_clock(&app);
    Floor { app, manager, agent }
}

impl Floor {
    /// The instant the app's clock is held at.
    fn now(&self) -> DateTime<Utc> {
        self.app.clock.now()
    }

    fn zone_where_it_is(&self, from: u32, to: u32) -> String {
        zone_where_it_is(self.now(), from, to)
    }

    /// An account of the agent's in a zone where it is daytime now, unless `overrides`
    /// says otherwise.
    async fn account(&self, overrides: Value) -> String {
        let mut body = json!({"timezone": self.zone_where_it_is(10, 19), "assigned_agent_id": self.agent.id});
        for (k, v) in overrides.as_object().unwrap() {
            body[k] = v.clone();
        }
        id_of(&self.app.account(&self.manager.token, body).await)
    }

    async fn attempt(&self, account: &str, body: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/accounts/{account}/activities");
        status_json(self.app.post(&path, Some(&self.agent.token), &body).await).await
    }

    async fn call(&self, account: &str, outcome: &str) -> (StatusCode, Value) {
        self.attempt(account, json!({"type": "call", "direction": "outbound", "outcome": outcome}))
            .await
    }

    async fn assert_logged(&self, account: &str) {
        let (status, body) = self.call(account, "no_answer").await;
        assert_eq!(status, StatusCode::CREATED, "call now: {body}");
    }

    async fn assert_blocked(&self, account: &str, rule: &str) -> Option<DateTime<Utc>> {
        let (status, body) = self.call(account, "no_answer").await;
        assert_eq!(status, StatusCode::CONFLICT, "call now: {body}");
        assert_eq!(body["code"], "contact_blocked", "{body}");
        assert_eq!(body["rule"], rule, "{body}");
        assert_eq!(body["channel"], "call", "{body}");
        body["next_allowed_at"].as_str().map(|_| instant(&body["next_allowed_at"]))
    }

    /// Outbound calls the server recorded at `times`, each with `outcome`.
    async fn history(&self, account: &str, times: &[DateTime<Utc>], outcome: &str) {
        sqlx::query(
            "INSERT INTO activities (id, account_id, type, direction, outcome, occurred_at, agent_id, created_at)
             SELECT gen_random_uuid(), $1::uuid, 'call', 'outbound', $2, t, $3, t FROM unnest($4::timestamptz[]) t",
        )
        .bind(account)
        .bind(outcome)
        .bind(self.agent.id)
        .bind(times)
        .execute(&self.app.pool)
        .await
        .unwrap();
    }

    /// Moves the account's recorded history `by` into the past.
    async fn age_history(&self, account: &str, by: Duration) {
        sqlx::query("UPDATE activities SET created_at = created_at - $2, occurred_at = occurred_at - $2 WHERE account_id = $1::uuid")
            .bind(account)
            .bind(by)
            .execute(&self.app.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn calls_are_allowed_only_inside_the_window_in_the_debtors_zone_now() {
    let f = floor().await;
    let late_zone = f.zone_where_it_is(21, 24);
    let late = f.account(json!({"timezone": late_zone})).await;
    let opens = f.assert_blocked(&late, "outside_window").await;
    assert_eq!(opens, Some(next_local(f.now(), &late_zone, 8)));
    let early_zone = f.zone_where_it_is(0, 8);
    let early = f.account(json!({"timezone": early_zone})).await;
    let opens = f.assert_blocked(&early, "outside_window").await;
    assert_eq!(opens, Some(next_local(f.now(), &early_zone, 8)));
    let day = f.account(json!({})).await;
    f.assert_logged(&day).await;
    // A refused attempt is not recorded.
    let logged: i64 = f
        .app
        .sql_value("SELECT count(*) FROM activities WHERE account_id = $1", &late)
        .await;
    assert_eq!(logged, 0);
}

/// Makes the US the fixed-offset zones at `offsets` (past +12 a zone of the same hour
/// a day behind: the window is daily).
async fn set_us_zones(app: &TestApp, offsets: [i32; 2]) {
    let offsets = offsets.map(|o| if o > 12 { o - 24 } else { o });
    sqlx::query("DELETE FROM contact_zones WHERE country = 'US'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO contact_zones (country, timezone) SELECT 'US', unnest($1::text[])")
        .bind(offsets.map(zone_at).to_vec())
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_unknown_zone_allows_only_hours_inside_the_window_across_the_country() {
    let f = floor().await;
    // Two zones five hours apart: in the western one it is before 08:00 now.
    let west = offset_where_it_is(f.now(), 5, 7);
    set_us_zones(&f.app, [west, west + 5]).await;
    // UTC is the default when no zone is given: unknown, so every zone of the country counts.
    let account = f
        .account(json!({"timezone": "UTC", "phone": null, "address": {"country": "US"}}))
        .await;
    let opens = f.assert_blocked(&account, "outside_window").await;
    assert_eq!(opens, Some(next_local(f.now(), &zone_at(west), 8)), "08:00 in the western zone");
    // With the western zone three hours further east it is inside the window everywhere.
    set_us_zones(&f.app, [west + 3, west + 5]).await;
    f.assert_logged(&account).await;
}

#[tokio::test]
async fn the_eighth_call_in_seven_days_is_refused_until_the_first_leaves_the_period() {
    let f = floor().await;
    let account = f.account(json!({})).await;
    // Seven calls recorded in the last seven days; the first leaves the period in 30 minutes.
    let first = f.now() - Duration::days(7) + Duration::minutes(30);
    let calls: Vec<DateTime<Utc>> = (0..7).map(|d| first + Duration::days(d)).collect();
    f.history(&account, &calls, "no_answer").await;
    let opens = f.assert_blocked(&account, "call_attempts").await;
    assert_eq!(opens, Some(first + Duration::days(7)));
    // Text messages are not calls.
    let (status, body) = f.attempt(&account, json!({"type": "sms", "direction": "outbound"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A minute before the period ends it is still refused; once it ended the call goes.
    f.age_history(&account, Duration::minutes(29)).await;
    f.assert_blocked(&account, "call_attempts").await;
    f.age_history(&account, Duration::minutes(2)).await;
    f.assert_logged(&account).await;
}

#[tokio::test]
async fn a_conversation_holds_calls_back_for_seven_days() {
    let f = floor().await;
    let account = f.account(json!({})).await;
    let talked = f.now() - Duration::days(2);
    f.history(&account, &[talked], "right_party").await;
    let opens = f.assert_blocked(&account, "recent_conversation").await;
    assert_eq!(opens, Some(talked + Duration::days(7)));
    // An inbound call from the debtor is not an attempt.
    let (status, body) = f.attempt(&account, json!({"type": "call", "direction": "inbound"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    f.age_history(&account, Duration::days(5)).await;
    f.assert_logged(&account).await;
}

#[tokio::test]
async fn flags_and_unverified_disputes_refuse_with_no_time_to_wait_for() {
    let f = floor().await;
    let dnc = f.account(json!({"do_not_call": true})).await;
    let (status, body) = f.attempt(&dnc, json!({"type": "sms", "direction": "outbound"})).await;
    assert_eq!(
        (status, body["rule"].as_str()),
        (StatusCode::CONFLICT, Some("do_not_call")),
        "{body}"
    );
    assert_eq!(body["next_allowed_at"], Value::Null);
    let (status, _) = f.attempt(&dnc, json!({"type": "email", "direction": "outbound"})).await;
    assert_eq!(status, StatusCode::CREATED);

    let disputed = f.account(json!({})).await;
    let path = format!("/api/v1/accounts/{disputed}");
    let (status, body) = status_json(f.app.patch(&path, &f.manager.token, &json!({"status": "disputed"})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.assert_blocked(&disputed, "unverified_dispute").await;
    let verify = format!("/api/v1/accounts/{disputed}/dispute-verification");
    assert_problem(
        f.app.post(&verify, Some(&f.agent.token), &json!({})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let (status, body) = status_json(f.app.post(&verify, Some(&f.manager.token), &json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    f.assert_logged(&disputed).await;
    let plain = format!("/api/v1/accounts/{dnc}/dispute-verification");
    assert_problem(
        f.app.post(&plain, Some(&f.manager.token), &json!({})).await,
        StatusCode::CONFLICT,
        "not_disputed",
    )
    .await;

    // Notes and inbound contact are not attempts: a ceased account still records them.
    let ceased = f.account(json!({"cease_communication": true})).await;
    for body in [
        json!({"type": "note", "notes": "debtor wrote in"}),
        json!({"type": "letter", "direction": "inbound"}),
    ] {
        let (status, answer) = f.attempt(&ceased, body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
    }
    let (status, body) = f.attempt(&ceased, json!({"type": "letter", "direction": "outbound"})).await;
    assert_eq!(
        (status, body["rule"].as_str()),
        (StatusCode::CONFLICT, Some("cease_communication")),
        "{body}"
    );
}

#[tokio::test]
async fn a_manager_lets_one_attempt_through_with_a_reason_and_it_is_recorded() {
    let f = floor().await;
    let account = f.account(json!({"cease_communication": true})).await;
    let grant = format!("/api/v1/accounts/{account}/contact-overrides");
    let reason = json!({"channel": "call", "reason": "debtor's attorney asked us to call about the settlement"});
    assert_problem(
        f.app.post(&grant, Some(&f.agent.token), &reason).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let blank = json!({"channel": "call", "reason": "  "});
    assert_problem(
        f.app.post(&grant, Some(&f.manager.token), &blank).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let granted = f.app.create(&f.manager.token, &grant, &reason).await;
    assert_eq!(granted["used_at"], Value::Null);
    let (status, call) = f.call(&account, "right_party").await;
    assert_eq!(status, StatusCode::CREATED, "the override lets one call through: {call}");
    f.assert_blocked(&account, "cease_communication").await;

    let list = format!("/api/v1/contact-overrides?account_id={account}");
    assert_problem(f.app.get(&list, &f.agent.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    let (status, listed) = status_json(f.app.get(&list, &f.manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["total"], 1);
    let used = &listed["data"][0];
    assert_eq!(used["id"], granted["id"]);
    assert_eq!(used["activity_id"], call["id"]);
    assert_eq!(used["rule"], "cease_communication");
    assert_eq!(used["reason"], reason["reason"]);
    assert_eq!(used["granted_by"], json!(f.manager.id));
    assert!(used["used_at"].is_string(), "{used}");
}

#[tokio::test]
async fn two_racing_attempts_cannot_both_be_the_seventh_call() {
    let f = floor().await;
    let account = f.account(json!({})).await;
    let calls: Vec<DateTime<Utc>> = (0..6).map(|m| f.now() - Duration::days(2) + Duration::minutes(m)).collect();
    f.history(&account, &calls, "no_answer").await;
    let (a, b) = tokio::join!(f.call(&account, "no_answer"), f.call(&account, "no_answer"));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{} / {}", a.1, b.1);
}

#[tokio::test]
async fn each_channel_says_whether_it_is_open_now_and_the_list_filters_on_it() {
    let f = floor().await;
    let day_zone = f.zone_where_it_is(10, 19);
    let night_zone = f.zone_where_it_is(0, 6);
    let open = f.account(json!({"timezone": day_zone})).await;
    let night = f.account(json!({"timezone": night_zone})).await;
    let no_calls = f.account(json!({"timezone": day_zone, "do_not_call": true})).await;
    let ceased = f.account(json!({"timezone": day_zone, "cease_communication": true})).await;

    let (status, standing) = status_json(f.app.get(&format!("/api/v1/accounts/{no_calls}/contact"), &f.agent.token).await).await;
    assert_eq!(status, StatusCode::OK, "{standing}");
    let channel = |name: &str| {
        standing["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (channel("call")["allowed"].clone(), channel("call")["rule"].clone()),
        (json!(false), json!("do_not_call"))
    );
    assert_eq!(channel("email")["allowed"], true);
    let (_, night_standing) = status_json(f.app.get(&format!("/api/v1/accounts/{night}/contact"), &f.agent.token).await).await;
    let call = &night_standing["channels"][0];
    assert_eq!(
        (call["channel"].as_str(), call["rule"].as_str()),
        (Some("call"), Some("outside_window")),
        "{night_standing}"
    );
    assert!(instant(&call["next_allowed_at"]) > f.now());

    let listed = |query: &'static str| {
        let app = &f.app;
        let token = f.manager.token.clone();
        async move {
            let (status, page) = status_json(app.get(&format!("/api/v1/accounts?{query}&page_size=50"), &token).await).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let mut ids: Vec<String> = page["data"].as_array().unwrap().iter().map(id_of).collect();
            ids.sort();
            ids
        }
    };
    let sorted = |mut ids: Vec<&String>| {
        ids.sort();
        ids.into_iter().cloned().collect::<Vec<_>>()
    };
    crate::helpers::eventually("the index holds the four accounts", || async {
        listed("status=active").await.len() == 4
    })
    .await;
    assert_eq!(listed("contactable_now=call").await, sorted(vec![&open]));
    assert_eq!(listed("contactable_now=email").await, sorted(vec![&open, &no_calls]));
    // Letters have no time window: only the ceased account is left out.
    let letters = listed("contactable_now=letter").await;
    assert_eq!(letters, sorted(vec![&open, &night, &no_calls]));
    assert!(!letters.contains(&ceased));
    f.app
        .assert_refused_parameter(&f.manager.token, "/api/v1/accounts?contactable_now=fax", "contactable_now")
        .await;
}

#[tokio::test]
async fn a_zone_changing_its_offset_re_indexes_the_accounts_it_shapes() {
    let f = floor().await;
    let in_zone = f.account(json!({"timezone": "America/New_York"})).await;
    let unknown = f
        .account(json!({"timezone": "UTC", "phone": null, "address": {"country": "US"}}))
        .await;
    let elsewhere = f.account(json!({"timezone": "Asia/Tokyo"})).await;
    // In Chicago by the address, maybe in New York by the (201) phone: New York shapes it.
    let maybe_in_zone = f
        .account(json!({"timezone": "UTC", "address": {"postal_code": "60606", "country": "US"}}))
        .await;
    let refresh = || arrears::jobs::contact_windows::refresh(&f.app.pool, &f.app.clock);
    refresh().await.unwrap();
    assert_eq!(refresh().await.unwrap(), 0, "nothing changed since the last check");
    // As if New York's documents had been built before a DST change.
    sqlx::query("UPDATE contact_zone_offsets SET offset_minutes = offset_minutes + 60 WHERE timezone = 'America/New_York'")
        .execute(&f.app.pool)
        .await
        .unwrap();
    let version = |id: String| {
        let app = &f.app;
        async move { app.sql_value::<i64>("SELECT search_version FROM accounts WHERE id = $1", &id).await }
    };
    let before = (
        version(in_zone.clone()).await,
        version(unknown.clone()).await,
        version(elsewhere.clone()).await,
        version(maybe_in_zone.clone()).await,
    );
    assert_eq!(refresh().await.unwrap(), 3);
    let after = (
        version(in_zone).await,
        version(unknown).await,
        version(elsewhere).await,
        version(maybe_in_zone).await,
    );
    assert!(
        after.0 > before.0 && after.1 > before.1 && after.3 > before.3,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.2, before.2, "Tokyo's window did not move");
}

/// New York leaves daylight time at 02:00 EDT on 2026-11-01 (06:00 UTC): a scheduler
/// pass with the clock a minute before records the offsets, and the pass with the clock
/// at the change re-indexes the accounts New York shapes (its own, and the account whose
/// zone is unknown), not Tokyo's; a second pass at the same instant, none.
#[tokio::test]
async fn a_scheduler_pass_at_a_dst_change_re_indexes_the_accounts_the_zone_shapes() {
    let f = floor().await;
    let in_zone = f.account(json!({"timezone": "America/New_York"})).await;
    let unknown = f
        .account(json!({"timezone": "UTC", "phone": null, "address": {"country": "US"}}))
        .await;
    let elsewhere = f.account(json!({"timezone": "Asia/Tokyo"})).await;
    let change = DateTime::parse_from_rfc3339("2026-11-01T06:00:00Z").unwrap().with_timezone(&Utc);
    f.app.clock.set(change - Duration::minutes(1));
    f.app.run_schedulers().await;
    assert_eq!(
        f.app.run_schedulers().await.contact_windows,
        0,
        "no offset changed within the minute"
    );
    let versions = || async {
        let mut versions = Vec::new();
        for id in [&in_zone, &unknown, &elsewhere] {
            versions.push(
                f.app
                    .sql_value::<i64>("SELECT search_version FROM accounts WHERE id = $1", id)
                    .await,
            );
        }
        versions
    };
    let before = versions().await;
    f.app.clock.set(change);
    // New York's change touches its account and the unknown one; Toronto, a zone of a
    // country list that changes at the same instant, the unknown one again.
    assert_eq!(f.app.run_schedulers().await.contact_windows, 3);
    let after = versions().await;
    assert!(after[0] > before[0] && after[1] > before[1], "{before:?} -> {after:?}");
    assert_eq!(after[2], before[2], "Tokyo's window did not move");
    assert_eq!(f.app.run_schedulers().await.contact_windows, 0, "each change is re-indexed once");
}

/// A portfolio's own policy: each field it sets replaces the agency's for its accounts
/// in the guard, the contact filter and overrides; the accounts outside it keep the
/// agency's. Setting it re-indexes the portfolio's accounts; `{}` gives the agency's back.
#[tokio::test]
async fn a_portfolios_own_policy_governs_its_accounts_and_only_them() {
    let f = floor().await;
    let admin = f.app.user(Role::Admin).await;
    let (status, portfolio) = status_json(
        f.app
            .post("/api/v1/portfolios", Some(&admin.token), &json!({"name": "Strict client"}))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{portfolio}");
    let portfolio = id_of(&portfolio);
    for user in [&f.manager, &f.agent] {
        let path = format!("/api/v1/portfolios/{portfolio}/grants");
        let (status, grant) = status_json(f.app.post(&path, Some(&admin.token), &json!({"user_id": user.id})).await).await;
        assert_eq!(status, StatusCode::CREATED, "{grant}");
    }
    let policy_path = format!("/api/v1/portfolios/{portfolio}/contact-policy");

    // Before it sets anything, the portfolio follows the agency's policy.
    let (status, before) = status_json(f.app.get(&policy_path, &f.manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert!(before["own"].as_object().unwrap().values().all(Value::is_null), "{before}");
    assert_eq!(
        (&before["in_force"]["window_end"], &before["in_force"]["call_attempt_limit"]),
        (&json!("21:00:00"), &json!(7))
    );

    // Evening (19:00-20:00) where the debtors live: inside the agency's hours.
    let evening = f.zone_where_it_is(19, 20);
    let inside = f.account(json!({"timezone": evening, "portfolio_id": portfolio})).await;
    let outside = f.account(json!({"timezone": evening})).await;
    // Daytime, two calls in the last three days.
    let busy_inside = f.account(json!({"portfolio_id": portfolio})).await;
    let busy_outside = f.account(json!({})).await;
    let calls = [f.now() - Duration::days(2), f.now() - Duration::hours(1)];
    f.history(&busy_inside, &calls, "no_answer").await;
    f.history(&busy_outside, &calls, "no_answer").await;
    let callable = || async {
        let (status, page) = status_json(
            f.app
                .get("/api/v1/accounts?contactable_now=call&page_size=50", &f.manager.token)
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut ids: Vec<String> = page["data"].as_array().unwrap().iter().map(id_of).collect();
        ids.sort();
        ids
    };
    let mut everyone = vec![inside.clone(), outside.clone(), busy_inside.clone(), busy_outside.clone()];
    everyone.sort();
    crate::helpers::eventually("the index holds the four accounts as callable", || async {
        callable().await == everyone
    })
    .await;

    // Only admins set it; each field is checked against the policy it makes.
    let denied = f.app.put(&policy_path, &f.manager.token, &json!({"window_end": "19:00"})).await;
    assert_problem(denied, StatusCode::FORBIDDEN, "forbidden").await;
    let refused = f
        .app
        .put(&policy_path, &admin.token, &json!({"window_end": "07:30", "call_attempt_limit": 0}))
        .await;
    let problem = assert_problem(refused, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let mut fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["call_attempt_limit", "window_end"], "{problem}");

    let (status, set) = status_json(
        f.app
            .put(
                &policy_path,
                &admin.token,
                &json!({"window_end": "19:00", "call_attempt_limit": 2, "call_attempt_days": 3, "override_minutes": 5}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["own"]["window_end"], "19:00:00");
    assert!(set["own"]["window_start"].is_null(), "{set}");
    assert_eq!(
        (&set["in_force"]["window_start"], &set["in_force"]["window_end"]),
        (&json!("08:00:00"), &json!("19:00:00")),
        "what it leaves out follows the agency's"
    );
    let (_, read) = status_json(f.app.get(&policy_path, &f.manager.token).await).await;
    assert_eq!(read, set);

    // The guard: the portfolio's hours and call limit, the agency's for the others.
    f.assert_logged(&outside).await;
    let opens = f.assert_blocked(&inside, "outside_window").await;
    assert_eq!(opens, Some(next_local(f.now(), &evening, 8)));
    f.assert_logged(&busy_outside).await;
    let opens = f.assert_blocked(&busy_inside, "call_attempts").await;
    assert_eq!(opens, Some(calls[0] + Duration::days(3)));
    // The contact filter follows once the portfolio's accounts are indexed again.
    let mut open = vec![outside.clone(), busy_outside.clone()];
    open.sort();
    crate::helpers::eventually("the filter applies the portfolio's policy", || async { callable().await == open }).await;
    // An override lasts the portfolio's minutes.
    let (status, granted) = status_json(
        f.app
            .post(
                &format!("/api/v1/accounts/{inside}/contact-overrides"),
                Some(&f.manager.token),
                &json!({"channel": "call", "reason": "the debtor asked for an evening call"}),
            )
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{granted}");
    assert_eq!(instant(&granted["expires_at"]), f.now() + Duration::minutes(5));

    // `{}` gives the agency's policy back.
    let (status, cleared) = status_json(f.app.put(&policy_path, &admin.token, &json!({})).await).await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["in_force"], before["in_force"]);
    assert!(cleared["own"].as_object().unwrap().values().all(Value::is_null), "{cleared}");
    f.assert_logged(&busy_inside).await;

    // Each change is in the audit trail under the admin.
    let (status, trail) = status_json(f.app.get("/api/v1/audit?entity=portfolio_contact_policy", &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let actions: Vec<(&str, &Value)> = trail["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), &e["actor_id"]))
        .collect();
    let admin_id = json!(admin.id);
    assert_eq!(
        actions,
        [
            ("portfolio_contact_policy.delete", &admin_id),
            ("portfolio_contact_policy.create", &admin_id)
        ]
    );
}
