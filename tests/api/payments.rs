//! Payments over HTTP: the state machine, balance arithmetic (also under concurrency),
//! idempotency, overpayment, validation, roles, listing, simulation, search, and the
//! payment fields of the account document.

use std::collections::{BTreeMap, HashSet};

use arrears::domain::role::Role;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_problem, error_fields, eventually, id_of, instant, spawn_app, status_json, ts};

const STATUSES: [&str; 5] = ["pending", "completed", "failed", "refunded", "reversed"];
const METHODS: [&str; 6] = ["card", "bank_transfer", "ach", "cash", "check", "digital_wallet"];

fn allowed_from(status: &str) -> Vec<&'static str> {
    match status {
        "pending" => vec!["completed", "failed"],
        "completed" => vec!["refunded", "reversed"],
        _ => vec![],
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap_or_else(|e| panic!("`{text}` is not a decimal: {e}"))
}

/// Two minor digits, the wire format of USD/EUR money.
fn money(amount: Decimal) -> String {
    let mut value = amount;
    value.rescale(2);
    value.to_string()
}

/// Now, to the whole second (what `ts` sends), so read-back instants compare equal.
fn now_s() -> DateTime<Utc> {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap()
}

fn uuid_of(value: &Value) -> Uuid {
    Uuid::parse_str(value.as_str().unwrap_or_else(|| panic!("not a string: {value}"))).unwrap()
}

async fn sql_balance(app: &TestApp, account_id: &str) -> Decimal {
    app.sql_value("SELECT current_balance FROM accounts WHERE id = $1", account_id)
        .await
}

async fn sql_account_status(app: &TestApp, account_id: &str) -> String {
    app.sql_value("SELECT status FROM accounts WHERE id = $1", account_id).await
}

async fn sql_payment_status(app: &TestApp, payment_id: &str) -> String {
    app.sql_value("SELECT status FROM payments WHERE id = $1", payment_id).await
}

async fn sql_payment_count(app: &TestApp, account_id: &str) -> i64 {
    app.sql_value("SELECT count(*) FROM payments WHERE account_id = $1", account_id)
        .await
}

async fn sql_completed_sum(app: &TestApp, account_id: &str) -> Decimal {
    app.sql_value(
        "SELECT COALESCE(sum(amount), 0) FROM payments WHERE account_id = $1 AND status = 'completed'",
        account_id,
    )
    .await
}

fn payments_path(account_id: &str) -> String {
    format!("/api/v1/accounts/{account_id}/payments")
}

/// POSTs a payment and asserts 201.
async fn pay(app: &TestApp, token: &str, account_id: &str, body: Value) -> Value {
    app.create_payment(token, account_id, &body).await
}

/// POSTs a payment with `?wait_for=indexed` and asserts 201.
async fn pay_indexed(app: &TestApp, token: &str, account_id: &str, body: Value) -> Value {
    app.create(token, &format!("{}?wait_for=indexed", payments_path(account_id)), &body)
        .await
}

fn usd(amount: &str) -> Value {
    json!({"amount": amount, "currency": "USD", "method": "card"})
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// PATCHes a payment's status and asserts 200 with the new status.
async fn transition(app: &TestApp, token: &str, payment_id: &str, to: &str) -> Value {
    let response = app
        .patch(&format!("/api/v1/payments/{payment_id}"), token, &json!({"status": to}))
        .await;
    let (status, body) = status_json(response).await;
    assert_eq!(status, StatusCode::OK, "-> {to}: {body}");
    assert_eq!(body["status"], to);
    body
}

fn future_due() -> String {
    (Utc::now().date_naive() + Duration::days(30)).to_string()
}

fn past_due() -> String {
    (Utc::now().date_naive() - Duration::days(30)).to_string()
}

/// Brings a fresh 10.00 payment into `status` the way a client would, tracking the
/// balance the account must have afterwards.
async fn payment_in(app: &TestApp, token: &str, account_id: &str, status: &str, expected: &mut Decimal) -> Value {
    let ten = dec("10.00");
    match status {
        "pending" => pay(app, token, account_id, with(usd("10.00"), json!({"status": "pending"}))).await,
        "completed" => {
            let p = pay(app, token, account_id, usd("10.00")).await;
            *expected -= ten;
            p
        }
        "failed" => {
            let p = pay(app, token, account_id, with(usd("10.00"), json!({"status": "pending"}))).await;
            let response = app
                .patch(
                    &format!("/api/v1/payments/{}", id_of(&p)),
                    token,
                    &json!({"status": "failed", "failure_reason": "insufficient_funds"}),
                )
                .await;
            let (code, body) = status_json(response).await;
            assert_eq!(code, StatusCode::OK, "{body}");
            assert_eq!(body["status"], "failed");
            assert_eq!(body["failure_reason"], "insufficient_funds");
            body
        }
        "refunded" | "reversed" => {
            let p = pay(app, token, account_id, usd("10.00")).await;
            *expected -= ten;
            let body = transition(app, token, &id_of(&p), status).await;
            *expected += ten;
            body
        }
        other => panic!("unknown status {other}"),
    }
}

#[tokio::test]
async fn every_transition_of_the_state_machine() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "1000.00", "due_date": future_due()}))
        .await;
    let account_id = id_of(&account);
    let mut expected = dec("1000.00");
    let ten = dec("10.00");
    for from in STATUSES {
        for to in STATUSES {
            let payment = payment_in(&app, &manager.token, &account_id, from, &mut expected).await;
            assert_eq!(payment["status"], from);
            assert_eq!(sql_balance(&app, &account_id).await, expected, "after reaching {from}");
            let payment_id = id_of(&payment);
            let response = app
                .patch(&format!("/api/v1/payments/{payment_id}"), &manager.token, &json!({"status": to}))
                .await;
            if allowed_from(from).contains(&to) {
                let (status, body) = status_json(response).await;
                assert_eq!(status, StatusCode::OK, "{from} -> {to}: {body}");
                assert_eq!(body["status"], to, "{from} -> {to}");
                assert_eq!(body["id"], payment["id"]);
                assert_eq!(body["amount"], "10.00");
                match to {
                    "completed" => expected -= ten,
                    "refunded" | "reversed" => expected += ten,
                    _ => {}
                }
                assert_eq!(sql_payment_status(&app, &payment_id).await, to);
            } else {
                let problem = assert_problem(response, StatusCode::CONFLICT, "invalid_transition").await;
                let mut got: Vec<String> = problem["allowed"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{from} -> {to}: `allowed` is an array: {problem}"))
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                got.sort();
                let mut want: Vec<String> = allowed_from(from).into_iter().map(str::to_owned).collect();
                want.sort();
                assert_eq!(got, want, "{from} -> {to}: {problem}");
                let detail = problem["detail"].as_str().unwrap();
                for target in &want {
                    assert!(detail.contains(target.as_str()), "detail names `{target}`: {detail}");
                }
                assert_eq!(sql_payment_status(&app, &payment_id).await, from, "{from} -> {to} changed nothing");
            }
            assert_eq!(sql_balance(&app, &account_id).await, expected, "balance after {from} -> {to}");
        }
    }
    // 1000 - 10 per payment still completed: one left completed by each forbidden
    // completed -> x (3) and one by pending -> completed.
    assert_eq!(expected, dec("960.00"));
    let read = app.get_account(&manager.token, &account_id).await;
    assert_eq!(read["current_balance"], "960.00");
    assert_eq!(sql_completed_sum(&app, &account_id).await, dec("40.00"));
}

#[tokio::test]
async fn concurrent_payments_never_lose_an_update() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let original = dec("5000.00");
    let account = app
        .account(
            &manager.token,
            json!({"original_balance": "5000.00", "assigned_agent_id": agent.id, "due_date": future_due()}),
        )
        .await;
    let account_id = id_of(&account);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let api = app.api();
            let path = payments_path(&account_id);
            let token = if i % 2 == 0 { agent.token.clone() } else { manager.token.clone() };
            let amount = Decimal::new(rand::random_range(1..=5000_i64), 2);
            let method = METHODS[rand::random_range(0..METHODS.len())];
            tokio::spawn(async move {
                let response = api
                    .request(reqwest::Method::POST, &path, Some(&token))
                    .json(&json!({"amount": money(amount), "currency": "USD", "method": method}))
                    .send()
                    .await
                    .unwrap();
                let (status, body) = status_json(response).await;
                (amount, status, body)
            })
        })
        .collect();
    let mut sent = Decimal::ZERO;
    let mut ids = HashSet::new();
    for task in tasks {
        let (amount, status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["amount"], money(amount));
        assert_eq!(body["status"], "completed");
        sent += amount;
        ids.insert(id_of(&body));
    }
    assert_eq!(ids.len(), 40);
    assert_eq!(sql_payment_count(&app, &account_id).await, 40);
    let sum = sql_completed_sum(&app, &account_id).await;
    assert_eq!(sum, sent);
    let balance = sql_balance(&app, &account_id).await;
    assert_eq!(balance, original - sum, "balance = original - SQL sum of completed payments");
    assert_eq!(balance, original - sent);
    let read = app.get_account(&manager.token, &account_id).await;
    assert_eq!(read["current_balance"], money(original - sent));
    assert_eq!(read["payment_count"], 40);
    assert_eq!(read["total_paid"], money(sent));
}

#[tokio::test]
async fn concurrent_payments_cannot_overpay_together() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "100.00", "due_date": future_due()}))
        .await;
    let account_id = id_of(&account);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let api = app.api();
            let path = payments_path(&account_id);
            let token = manager.token.clone();
            tokio::spawn(async move {
                let response = api
                    .request(reqwest::Method::POST, &path, Some(&token))
                    .json(&usd("10.00"))
                    .send()
                    .await
                    .unwrap();
                response.status()
            })
        })
        .collect();
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        let status = task.await.unwrap();
        if status == StatusCode::CREATED {
            created += 1;
        } else if status == StatusCode::UNPROCESSABLE_ENTITY {
            refused += 1;
        } else {
            panic!("unexpected status {status}");
        }
    }
    assert_eq!((created, refused), (10, 10), "exactly the balance is taken, never more");
    assert_eq!(sql_balance(&app, &account_id).await, Decimal::ZERO);
    assert_eq!(sql_completed_sum(&app, &account_id).await, dec("100.00"));
    assert_eq!(sql_account_status(&app, &account_id).await, "paid");
}

/// Payments that arrive together are written together (group commit); each still gets
/// the answer its own account gives, whatever the others in its batch do.
#[tokio::test]
async fn concurrent_payments_to_many_accounts_each_get_their_own_answer() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let mut accounts = Vec::new();
    for i in 0..24 {
        let assigned = if i % 4 == 3 { manager.id } else { agent.id };
        let currency = if i % 6 == 4 { "EUR" } else { "USD" };
        let body = json!({"original_balance": "100.00", "currency": currency, "assigned_agent_id": assigned, "due_date": future_due()});
        accounts.push((id_of(&app.account(&manager.token, body).await), assigned == agent.id, currency));
    }
    let missing = Uuid::now_v7().to_string();
    let mut requests: Vec<(String, &str, &str)> = vec![(missing, "USD", "10.00")];
    for (n, (id, _, currency)) in accounts.iter().enumerate() {
        let amount = if n % 5 == 4 { "100.01" } else { "40.00" };
        // Half the EUR accounts are paid in USD.
        requests.push((id.clone(), if n % 12 == 4 { "USD" } else { currency }, amount));
    }
    let tasks: Vec<_> = requests
        .iter()
        .map(|(account_id, currency, amount)| {
            let request = app
                .request(reqwest::Method::POST, &payments_path(account_id), Some(&agent.token))
                .json(&json!({"amount": amount, "currency": currency, "method": "card"}));
            tokio::spawn(async move { status_json(request.send().await.unwrap()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let (status, body) = &answers[0];
    assert_eq!(*status, StatusCode::NOT_FOUND, "{body}");
    for ((account_id, currency, amount), (status, body)) in requests.iter().zip(&answers).skip(1) {
        let (_, own, account_currency) = accounts.iter().find(|(id, ..)| id == account_id).unwrap();
        // Any agent takes a payment on any account (a debtor calls whoever answers).
        let expected = if currency != account_currency || *amount == "100.01" {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::CREATED
        };
        assert_eq!(
            *status, expected,
            "{amount} {currency} to a {account_currency} account (own: {own}): {body}"
        );
        let paid = if expected == StatusCode::CREATED {
            assert_eq!(body["account_id"], account_id.as_str());
            assert_eq!(body["amount"], *amount);
            dec(amount)
        } else {
            Decimal::ZERO
        };
        assert_eq!(sql_completed_sum(&app, account_id).await, paid);
        assert_eq!(sql_balance(&app, account_id).await, dec("100.00") - paid);
    }
    let created = answers.iter().filter(|(status, _)| *status == StatusCode::CREATED).count();
    assert!(created >= 10, "most of the payments are accepted ({created})");
}

/// A payment the database refuses (here a negative amount, which the API never sends)
/// fails alone: the payments written in the same statement are retried one by one.
#[tokio::test]
async fn a_payment_the_database_refuses_does_not_fail_its_batch() {
    use arrears::domain::money::Currency;
    use arrears::domain::payment::{Method, NewPayment, PaymentStatus};
    use arrears::store::payments::{Checked, Insert};

    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let mut inserts = Vec::new();
    for n in 0..6 {
        let account = app
            .account(&manager.token, json!({"original_balance": "100.00", "due_date": future_due()}))
            .await;
        inserts.push(Insert {
            id: Uuid::now_v7(),
            account_id: uuid_of(&account["id"]),
            payment: NewPayment {
                amount: if n == 2 { dec("-5.00") } else { dec("5.00") },
                currency: Currency::parse("USD").unwrap(),
                method: Method::Card,
                reference: None,
                received_at: now_s(),
                status: PaymentStatus::Completed,
                allow_overpayment: false,
            },
            actor: manager.id,
        });
    }
    // Queued in one poll, before any writer runs: they are taken as one batch.
    let writer = app.state.payment_writer();
    let answers = futures_util::future::join_all(inserts.iter().map(|insert| writer.insert(insert.clone()))).await;
    for (n, (insert, answer)) in inserts.iter().zip(answers).enumerate() {
        let account_id = insert.account_id.to_string();
        if n == 2 {
            assert!(answer.is_err(), "the database refuses a negative amount");
            assert_eq!(sql_payment_count(&app, &account_id).await, 0);
            assert_eq!(sql_balance(&app, &account_id).await, dec("100.00"));
        } else {
            assert!(
                matches!(answer, Ok(Checked::Inserted { ref payment, .. }) if payment.id == insert.id),
                "{answer:?}"
            );
            assert_eq!(sql_payment_count(&app, &account_id).await, 1);
            assert_eq!(sql_balance(&app, &account_id).await, dec("95.00"));
        }
    }
}

#[tokio::test]
async fn paying_to_zero_marks_paid_and_refund_or_reversal_reopens() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;

    // Due date ahead: a refund brings the account back to `active`.
    let account = app
        .account(&manager.token, json!({"original_balance": "100.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    pay(&app, &manager.token, &id, usd("60.00")).await;
    assert_eq!(sql_balance(&app, &id).await, dec("40.00"));
    assert_eq!(sql_account_status(&app, &id).await, "active", "a partial payment does not settle");
    let last = pay(&app, &manager.token, &id, usd("40.00")).await;
    assert_eq!(sql_balance(&app, &id).await, Decimal::ZERO);
    assert_eq!(sql_account_status(&app, &id).await, "paid");
    let read = app.get_account(&manager.token, &id).await;
    assert_eq!(read["status"], "paid");
    assert_eq!(read["current_balance"], "0.00");
    transition(&app, &manager.token, &id_of(&last), "refunded").await;
    assert_eq!(sql_balance(&app, &id).await, dec("40.00"));
    assert_eq!(sql_account_status(&app, &id).await, "active");
    let read = app.get_account(&manager.token, &id).await;
    assert_eq!(read["status"], "active");
    assert_eq!(read["current_balance"], "40.00");

    // Due date passed: a reversal makes it `delinquent`.
    let late = app
        .account(&manager.token, json!({"original_balance": "75.25", "due_date": past_due()}))
        .await;
    let late_id = id_of(&late);
    let whole = pay(&app, &manager.token, &late_id, usd("75.25")).await;
    assert_eq!(sql_balance(&app, &late_id).await, Decimal::ZERO);
    assert_eq!(sql_account_status(&app, &late_id).await, "paid");
    transition(&app, &manager.token, &id_of(&whole), "reversed").await;
    assert_eq!(sql_balance(&app, &late_id).await, dec("75.25"));
    assert_eq!(sql_account_status(&app, &late_id).await, "delinquent");

    // A pending payment of the whole balance settles nothing until it completes.
    let pending = pay(&app, &manager.token, &late_id, with(usd("75.25"), json!({"status": "pending"}))).await;
    assert_eq!(sql_balance(&app, &late_id).await, dec("75.25"));
    assert_eq!(sql_account_status(&app, &late_id).await, "delinquent");
    transition(&app, &manager.token, &id_of(&pending), "completed").await;
    assert_eq!(sql_balance(&app, &late_id).await, Decimal::ZERO);
    assert_eq!(sql_account_status(&app, &late_id).await, "paid");
}

async fn post_with_key(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> (StatusCode, Option<String>, Value) {
    let response = app
        .request(Method::POST, path, Some(token))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let replayed = response
        .headers()
        .get("idempotency-replayed")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, json) = status_json(response).await;
    (status, replayed, json)
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let other_manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "1000.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    let path = payments_path(&id);
    let body = json!({"amount": "25.00", "currency": "USD", "method": "card", "reference": "R-1"});

    let (status, replayed, first) = post_with_key(&app, &manager.token, &path, "order-7781-a", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_ne!(replayed.as_deref(), Some("true"), "the first answer is not a replay");
    let (status, replayed, second) = post_with_key(&app, &manager.token, &path, "order-7781-a", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(second, first, "the same body again");
    assert_eq!(sql_payment_count(&app, &id).await, 1);
    assert_eq!(sql_balance(&app, &id).await, dec("975.00"), "lowered once");

    let changed = with(body.clone(), json!({"amount": "26.00"}));
    let response = app
        .request(Method::POST, &path, Some(&manager.token))
        .header("idempotency-key", "order-7781-a")
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused").await;
    assert_eq!(sql_payment_count(&app, &id).await, 1);
    assert_eq!(sql_balance(&app, &id).await, dec("975.00"));

    // Keys belong to their user: another user's identical request is a new payment.
    let (status, replayed, theirs) = post_with_key(&app, &other_manager.token, &path, "order-7781-a", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    assert_ne!(replayed.as_deref(), Some("true"));
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(sql_payment_count(&app, &id).await, 2);
    assert_eq!(sql_balance(&app, &id).await, dec("950.00"));

    // A different key is a different payment.
    let (status, _, fresh) = post_with_key(&app, &manager.token, &path, "order-7781-b", &body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(fresh["id"], first["id"]);
    assert_eq!(sql_payment_count(&app, &id).await, 3);

    // Keys longer than 255 characters are refused and create nothing.
    let (status, _, answer) = post_with_key(&app, &manager.token, &path, &"k".repeat(256), &body).await;
    assert!(status.is_client_error(), "{status}: {answer}");
    assert_eq!(sql_payment_count(&app, &id).await, 3);
    assert_eq!(sql_balance(&app, &id).await, dec("925.00"));
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_payment() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "1000.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    let body = json!({"amount": "12.34", "currency": "USD", "method": "ach"});
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let api = app.api();
            let path = payments_path(&id);
            let token = manager.token.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let response = api
                    .request(reqwest::Method::POST, &path, Some(&token))
                    .header("idempotency-key", "same-key-for-all")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                status_json(response).await
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let (status, answer) = task.await.unwrap();
        if status == StatusCode::CREATED {
            ids.insert(id_of(&answer));
        } else {
            // A duplicate that arrives while the first is still running may be told so.
            assert_eq!(status, StatusCode::CONFLICT, "unexpected answer: {answer}");
        }
    }
    assert_eq!(ids.len(), 1, "every answer names the one payment: {ids:?}");
    assert_eq!(sql_payment_count(&app, &id).await, 1);
    assert_eq!(sql_balance(&app, &id).await, dec("987.66"));
}

#[tokio::test]
async fn overpayment_is_refused_unless_allowed() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "100.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    let response = app.post(&payments_path(&id), Some(&manager.token), &usd("100.01")).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "overpayment").await;
    assert_eq!(error_fields(&problem), ["amount"]);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail == "100.01 USD exceeds the current balance of 100.00 USD: the excess can be accepted as a credit",
        "a detail a person reads, naming no API field: {detail}"
    );
    assert_eq!(sql_balance(&app, &id).await, dec("100.00"), "balance unchanged");
    assert_eq!(sql_payment_count(&app, &id).await, 0);

    let explicit_false = with(usd("100.01"), json!({"allow_overpayment": false}));
    let response = app.post(&payments_path(&id), Some(&manager.token), &explicit_false).await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "overpayment").await;
    assert_eq!(sql_payment_count(&app, &id).await, 0);

    let allowed = with(usd("150.00"), json!({"allow_overpayment": true}));
    let payment = pay(&app, &manager.token, &id, allowed).await;
    assert_eq!(payment["amount"], "150.00");
    assert_eq!(payment["status"], "completed");
    assert_eq!(sql_balance(&app, &id).await, dec("-50.00"), "a credit");
    let read = app.get_account(&manager.token, &id).await;
    assert_eq!(read["current_balance"], "-50.00");
    assert_eq!(sql_payment_count(&app, &id).await, 1);
}

#[tokio::test]
async fn currency_mismatch_and_validation_name_the_field() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "100.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);

    let response = app
        .post(
            &payments_path(&id),
            Some(&manager.token),
            &json!({"amount": "10.00", "currency": "EUR", "method": "card"}),
        )
        .await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch").await;
    assert_eq!(error_fields(&problem), ["currency"]);

    for (overrides, field) in [
        (json!({"amount": "0"}), "amount"),
        (json!({"amount": "0.00"}), "amount"),
        (json!({"amount": "-5.00"}), "amount"),
        (json!({"amount": "1.234"}), "amount"),
        (json!({"amount": "ten"}), "amount"),
        (json!({"method": "bitcoin"}), "method"),
        (json!({"status": "refunded"}), "status"),
        (json!({"status": "failed"}), "status"),
        (json!({"received_at": "yesterday"}), "received_at"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let body = with(usd("10.00"), overrides.clone());
        let response = app.post(&payments_path(&id), Some(&manager.token), &body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), [field], "for {overrides}: {problem}");
    }
    let missing = app
        .post(
            &payments_path(&id),
            Some(&manager.token),
            &json!({"currency": "USD", "method": "card"}),
        )
        .await;
    let problem = assert_problem(missing, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["amount"]);
    assert_eq!(sql_payment_count(&app, &id).await, 0, "no refused request left a payment");
    assert_eq!(sql_balance(&app, &id).await, dec("100.00"));

    let unknown = app
        .post(&payments_path(&Uuid::new_v4().to_string()), Some(&manager.token), &usd("1.00"))
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let doomed = app.account(&manager.token, json!({})).await;
    let doomed_id = id_of(&doomed);
    assert_eq!(
        app.delete(&format!("/api/v1/accounts/{doomed_id}"), &manager.token).await.status(),
        StatusCode::NO_CONTENT
    );
    let deleted = app.post(&payments_path(&doomed_id), Some(&manager.token), &usd("1.00")).await;
    assert_problem(deleted, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(sql_payment_count(&app, &doomed_id).await, 0);
}

#[tokio::test]
async fn roles_decide_who_pays_and_who_refunds() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let mine = app
        .account(
            &manager.token,
            json!({"original_balance": "500.00", "assigned_agent_id": agent.id, "due_date": future_due()}),
        )
        .await;
    let mine_id = id_of(&mine);
    let other = app
        .account(&manager.token, json!({"original_balance": "500.00", "due_date": future_due()}))
        .await;
    let other_id = id_of(&other);

    let response = app.post(&payments_path(&mine_id), Some(&viewer.token), &usd("10.00")).await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    // Any agent takes a payment on any account (a debtor calls whoever answers).
    let taken = app.create_payment(&agent.token, &other_id, &usd("10.00")).await;
    assert_eq!(taken["created_by"], json!(agent.id));
    assert_eq!(sql_payment_count(&app, &other_id).await, 1);
    assert_eq!(sql_balance(&app, &other_id).await, dec("490.00"));

    let paid = pay(&app, &agent.token, &mine_id, usd("10.00")).await;
    assert_eq!(paid["created_by"], json!(agent.id));
    assert_eq!(sql_balance(&app, &mine_id).await, dec("490.00"));

    // The agent moves a pending payment on their account forward...
    let pending = pay(&app, &agent.token, &mine_id, with(usd("20.00"), json!({"status": "pending"}))).await;
    transition(&app, &agent.token, &id_of(&pending), "completed").await;
    assert_eq!(sql_balance(&app, &mine_id).await, dec("470.00"));

    // ...but refunds and reversals are for managers.
    let paid_id = id_of(&paid);
    for to in ["refunded", "reversed"] {
        let response = app
            .patch(&format!("/api/v1/payments/{paid_id}"), &agent.token, &json!({"status": to}))
            .await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        assert_eq!(sql_payment_status(&app, &paid_id).await, "completed");
    }
    let response = app
        .patch(
            &format!("/api/v1/payments/{paid_id}"),
            &viewer.token,
            &json!({"status": "refunded"}),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(sql_balance(&app, &mine_id).await, dec("470.00"));

    transition(&app, &manager.token, &paid_id, "refunded").await;
    assert_eq!(sql_balance(&app, &mine_id).await, dec("480.00"));

    // Everyone reads.
    let (status, read) = status_json(app.get(&format!("/api/v1/payments/{paid_id}"), &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["status"], "refunded");

    // The agent cannot touch a payment on an account that is not theirs.
    let theirs = pay(&app, &manager.token, &other_id, with(usd("5.00"), json!({"status": "pending"}))).await;
    let response = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&theirs)),
            &agent.token,
            &json!({"status": "completed"}),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(sql_payment_status(&app, &id_of(&theirs)).await, "pending");
}

#[tokio::test]
async fn payments_list_newest_first_with_cursor_and_read_back() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "1000.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    let other = app
        .account(&manager.token, json!({"original_balance": "1000.00", "due_date": future_due()}))
        .await;
    pay(&app, &manager.token, &id_of(&other), usd("1.00")).await;

    let now = now_s();
    let mut created: Vec<(DateTime<Utc>, String)> = Vec::new();
    for (n, hours) in [5_i64, 1, 9, 3, 7].into_iter().enumerate() {
        let at = now - Duration::hours(hours);
        let body = json!({
            "amount": format!("{}.00", n + 1), "currency": "USD",
            "method": METHODS[n], "reference": format!("REF-{n}"), "received_at": ts(at)
        });
        let response = app.post(&payments_path(&id), Some(&manager.token), &body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let etag = response.headers()["etag"].to_str().unwrap().to_owned();
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let payment: Value = response.json().await.unwrap();
        let pid = id_of(&payment);
        assert_eq!(location, format!("/api/v1/payments/{pid}"));
        assert_eq!(etag, format!("\"{}\"", payment["search_version"]));
        for key in [
            "id",
            "account_id",
            "amount",
            "currency",
            "method",
            "status",
            "reference",
            "received_at",
            "failure_reason",
            "created_by",
            "created_at",
            "updated_at",
            "search_version",
        ] {
            assert!(payment.get(key).is_some(), "payment has `{key}`: {payment}");
        }
        assert_eq!(payment["account_id"], json!(id));
        assert_eq!(payment["amount"], format!("{}.00", n + 1));
        assert_eq!(payment["currency"], "USD");
        assert_eq!(payment["method"], METHODS[n]);
        assert_eq!(payment["status"], "completed");
        assert_eq!(payment["reference"], format!("REF-{n}"));
        assert_eq!(instant(&payment["received_at"]), at);
        assert!(payment["failure_reason"].is_null());
        assert_eq!(payment["created_by"], json!(manager.id));

        let (status, read) = status_json(app.get(&location, &viewer.token).await).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read, payment, "GET /payments/{{id}} returns what POST did");
        created.push((at, pid));
    }
    created.sort_by_key(|c| std::cmp::Reverse(c.0));
    let expected: Vec<String> = created.into_iter().map(|(_, pid)| pid).collect();

    let mut seen = Vec::new();
    let mut path = format!("{}?page_size=2", payments_path(&id));
    let mut pages = 0;
    loop {
        let (status, page) = status_json(app.get(&path, &manager.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 5);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(id_of));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("{}?page_size=2&cursor={cursor}", payments_path(&id)),
            None => break,
        }
        assert!(pages < 10, "the cursor ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected, "newest received_at first, each payment once");

    // A payment without received_at is received now.
    let before = Utc::now() - Duration::seconds(5);
    let fresh = pay(&app, &manager.token, &id, usd("1.00")).await;
    let received = instant(&fresh["received_at"]);
    assert!(received >= before && received <= Utc::now() + Duration::seconds(5), "{received}");
    let (_, first_page) = status_json(app.get(&format!("{}?page_size=1", payments_path(&id)), &manager.token).await).await;
    assert_eq!(first_page["data"][0]["id"], fresh["id"]);
    assert_eq!(first_page["total"], 6);

    let unknown = Uuid::new_v4();
    let response = app.get(&format!("/api/v1/payments/{unknown}"), &manager.token).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app
        .patch(
            &format!("/api/v1/payments/{unknown}"),
            &manager.token,
            &json!({"status": "completed"}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.get(&format!("/api/v1/accounts/{unknown}/payments"), &manager.token).await;
    assert_problem(response, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn simulated_outcomes_complete_fail_or_complete_later() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "300.00", "due_date": future_due()}))
        .await;
    let id = id_of(&account);
    let pending = || with(usd("50.00"), json!({"status": "pending"}));
    let simulate = |pid: String, outcome: &'static str| {
        let app = &app;
        let token = manager.token.clone();
        async move {
            app.post(
                &format!("/api/v1/payments/{pid}/simulate"),
                Some(&token),
                &json!({"outcome": outcome}),
            )
            .await
        }
    };

    let first = pay(&app, &manager.token, &id, pending()).await;
    let (status, body) = status_json(simulate(id_of(&first), "success").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "completed");
    assert_eq!(sql_balance(&app, &id).await, dec("250.00"));

    let second = pay(&app, &manager.token, &id, pending()).await;
    let (status, body) = status_json(simulate(id_of(&second), "failure").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "failed");
    assert_eq!(body["failure_reason"], "card_declined");
    assert_eq!(sql_payment_status(&app, &id_of(&second)).await, "failed");
    assert_eq!(sql_balance(&app, &id).await, dec("250.00"));

    let third = pay(&app, &manager.token, &id, pending()).await;
    let third_id = id_of(&third);
    let (status, body) = status_json(simulate(third_id.clone(), "delay").await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "pending");
    let path = format!("/api/v1/payments/{third_id}");
    eventually("the delayed payment completes", || async {
        let (_, read) = status_json(app.get(&path, &manager.token).await).await;
        read["status"] == "completed"
    })
    .await;
    assert_eq!(sql_balance(&app, &id).await, dec("200.00"));

    // Only pending payments can be simulated.
    for (pid, outcome) in [(id_of(&first), "success"), (id_of(&second), "failure"), (third_id, "delay")] {
        let response = simulate(pid, outcome).await;
        assert_problem(response, StatusCode::CONFLICT, "invalid_transition").await;
    }
    assert_eq!(sql_balance(&app, &id).await, dec("200.00"));
}

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {page}"))
        .iter()
        .map(id_of)
        .collect()
}

/// A facet of dollar payments: each value's count and amount.
fn facet(page: &Value, name: &str) -> BTreeMap<String, (u64, Decimal)> {
    page["facets"][name]
        .as_array()
        .unwrap_or_else(|| panic!("facet {name}: {page}"))
        .iter()
        .filter(|v| v["count"].as_u64().unwrap() > 0)
        .map(|v| {
            let sums = v["sums"].as_array().unwrap_or_else(|| panic!("sums: {v}"));
            assert!(sums.len() == 1 && sums[0]["currency"] == "USD", "one currency, dollars: {v}");
            (
                v["value"].as_str().unwrap().to_owned(),
                (v["count"].as_u64().unwrap(), dec(sums[0]["amount"].as_str().unwrap())),
            )
        })
        .collect()
}

#[tokio::test]
async fn payments_search_filters_sorts_and_facets() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let margaret = app
        .account(
            &manager.token,
            json!({"debtor_name": "Margaret Whitfield", "account_number": "MW-3310", "original_balance": "1000.00",
                   "assigned_agent_id": agent.id, "due_date": future_due()}),
        )
        .await;
    let oliver = app
        .account(
            &manager.token,
            json!({"debtor_name": "Oliver Brennan", "account_number": "OB-5521", "original_balance": "1000.00",
                   "due_date": future_due()}),
        )
        .await;
    let (m, o) = (id_of(&margaret), id_of(&oliver));
    let now = now_s();
    let plan = [
        (&m, "120.00", "card", "completed", Some("INV-7781"), 300),
        (&m, "35.50", "ach", "pending", None, 240),
        (&m, "80.00", "cash", "completed", None, 180),
        (&o, "200.00", "card", "completed", None, 120),
        (&o, "15.00", "check", "pending", None, 60),
        (&o, "60.00", "bank_transfer", "completed", None, 30),
    ];
    let mut p = Vec::new();
    for (account, amount, method, status, reference, minutes_ago) in plan {
        let mut body = json!({"amount": amount, "currency": "USD", "method": method, "status": status,
                              "received_at": ts(now - Duration::minutes(minutes_ago))});
        if let Some(r) = reference {
            body["reference"] = json!(r);
        }
        p.push(id_of(&pay_indexed(&app, &manager.token, account, body).await));
    }
    let search = |query: String| {
        let app = &app;
        let token = manager.token.clone();
        async move {
            let (status, page) = status_json(app.get(&format!("/api/v1/payments?{query}"), &token).await).await;
            assert_eq!(status, StatusCode::OK, "{query}: {page}");
            page
        }
    };

    let page = search("q=whitfeld".into()).await;
    assert_eq!(page["total"], 3, "{page}");
    let mut got = ids(&page);
    got.sort();
    let mut want = vec![p[0].clone(), p[1].clone(), p[2].clone()];
    want.sort();
    assert_eq!(got, want);
    for hit in page["data"].as_array().unwrap() {
        assert_eq!(hit["debtor_name"], "Margaret Whitfield");
        assert_eq!(hit["account_number"], "MW-3310");
        assert_eq!(hit["assigned_agent_id"], json!(agent.id));
        assert_eq!(hit["account_id"], json!(m));
    }
    assert_eq!(ids(&search("q=INV-7781".into()).await), [p[0].clone()]);
    let page = search("q=ob-5521".into()).await;
    assert_eq!(page["total"], 3);
    assert!(page["data"][0]["assigned_agent_id"].is_null());

    let newest_first: Vec<String> = p.iter().rev().cloned().collect();
    assert_eq!(ids(&search(String::new()).await), newest_first, "default sort -received_at");
    assert_eq!(ids(&search("sort=-received_at".into()).await), newest_first);
    let ascending = vec![p[4].clone(), p[1].clone(), p[5].clone(), p[2].clone(), p[0].clone(), p[3].clone()];
    assert_eq!(ids(&search("sort=amount".into()).await), ascending);
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    assert_eq!(ids(&search("sort=-amount".into()).await), descending);
    assert_eq!(
        ids(&search("sort=-updated_at".into()).await),
        ids(&search("sort=-updated".into()).await),
        "a field's wire name sorts as its short alias"
    );

    for (query, want) in [
        ("status=pending", vec![4, 1]),
        ("status=pending&status=completed", vec![5, 4, 3, 2, 1, 0]),
        ("status=failed", vec![]),
        ("method=card", vec![3, 0]),
        ("method=card&method=cash", vec![3, 2, 0]),
        ("min_amount=60", vec![5, 3, 2, 0]),
        ("max_amount=35.50", vec![4, 1]),
        ("min_amount=50&max_amount=150", vec![5, 2, 0]),
        ("account_id=ACCOUNT_M", vec![2, 1, 0]),
        ("account_id=ACCOUNT_O&status=completed", vec![5, 3]),
        ("assigned_agent_id=AGENT", vec![2, 1, 0]),
        ("assigned_agent_id=unassigned", vec![5, 4, 3]),
        ("q=whitfeld&method=ach", vec![1]),
    ] {
        let query = query
            .replace("ACCOUNT_M", &m)
            .replace("ACCOUNT_O", &o)
            .replace("AGENT", &agent.id.to_string());
        let page = search(query.clone()).await;
        let want: Vec<String> = want.into_iter().map(|i: usize| p[i].clone()).collect();
        assert_eq!(page["total"], want.len(), "{query}");
        assert_eq!(ids(&page), want, "{query}");
    }
    let from = ts(now - Duration::minutes(200));
    let to = ts(now - Duration::minutes(90));
    assert_eq!(ids(&search(format!("from={from}&to={to}")).await), [p[3].clone(), p[2].clone()]);
    // An agent lists the payments of the accounts assigned to them, as they read them by
    // id, and is refused the others' (list_scope.rs).
    for query in ["", "?assigned_agent_id=me", &format!("?assigned_agent_id={}", agent.id)] {
        let (status, page) = status_json(app.get(&format!("/api/v1/payments{query}"), &agent.token).await).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(ids(&page), [p[2].clone(), p[1].clone(), p[0].clone()], "{query}");
    }
    let refused = app.get("/api/v1/payments?assigned_agent_id=unassigned", &agent.token).await;
    assert_problem(refused, StatusCode::FORBIDDEN, "forbidden").await;

    let mut seen = Vec::new();
    let mut query = "page_size=4".to_owned();
    loop {
        let page = search(query.clone()).await;
        assert_eq!(page["total"], 6);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("page_size=4&cursor={cursor}"),
            None => break,
        }
        assert!(seen.len() <= 6, "the cursor ends");
    }
    assert_eq!(seen, newest_first);

    let page = search("facets=status,method&page_size=1".into()).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let status = facet(&page, "status");
    assert_eq!(
        status,
        BTreeMap::from([
            ("completed".to_owned(), (4, dec("460.00"))),
            ("pending".to_owned(), (2, dec("50.50"))),
        ])
    );
    let method = facet(&page, "method");
    assert_eq!(
        method,
        BTreeMap::from([
            ("ach".to_owned(), (1, dec("35.50"))),
            ("bank_transfer".to_owned(), (1, dec("60.00"))),
            ("card".to_owned(), (2, dec("320.00"))),
            ("cash".to_owned(), (1, dec("80.00"))),
            ("check".to_owned(), (1, dec("15.00"))),
        ])
    );
    let page = search(format!("account_id={m}&facets=status")).await;
    assert_eq!(
        facet(&page, "status"),
        BTreeMap::from([
            ("completed".to_owned(), (2, dec("200.00"))),
            ("pending".to_owned(), (1, dec("35.50"))),
        ]),
        "facets count the filtered payments"
    );

    for (query, field) in [
        ("sort=colour", "sort"),
        ("status=happy", "status"),
        ("method=bitcoin", "method"),
        ("min_amount=abc", "min_amount"),
        ("page_size=201", "page_size"),
        ("facets=colour", "facets"),
        ("account_id=not-a-uuid", "account_id"),
        ("assigned_agent_id=someone", "assigned_agent_id"),
        ("from=yesterday", "from"),
        ("cursor=not-a-cursor", "cursor"),
        ("unknown=1", "unknown"),
    ] {
        app.assert_refused_parameter(&manager.token, &format!("/api/v1/payments?{query}"), field)
            .await;
    }
}

#[tokio::test]
async fn account_document_carries_payment_totals() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    let response = app
        .post(
            "/api/v1/accounts?wait_for=indexed",
            Some(&manager.token),
            &json!({"debtor_name": "Theodora Quillfeather", "original_balance": "1000.00", "currency": "USD",
                    "due_date": future_due()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let account: Value = response.json().await.unwrap();
    let id = id_of(&account);
    assert_eq!(account["payment_count"], 0);
    assert_eq!(account["total_paid"], "0.00");
    assert!(account["last_payment_amount"].is_null());
    assert!(account["last_payment_at"].is_null());

    let now = now_s();
    let latest = now - Duration::hours(1);
    for (amount, at) in [
        ("100.00", now - Duration::days(2)),
        ("25.50", latest),
        ("40.00", now - Duration::days(1)),
    ] {
        let body = json!({"amount": amount, "currency": "USD", "method": "card", "received_at": ts(at)});
        pay_indexed(&app, &manager.token, &id, body).await;
    }
    let (status, page) = status_json(app.get("/api/v1/accounts?q=quillfeather", &viewer.token).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 1, "{page}");
    let hit = &page["data"][0];
    let read = app.get_account(&viewer.token, &id).await;
    for doc in [hit, &read] {
        assert_eq!(doc["id"], json!(id));
        assert_eq!(doc["payment_count"], 3, "{doc}");
        assert_eq!(doc["total_paid"], "165.50");
        assert_eq!(doc["last_payment_amount"], "25.50", "the latest received, not the latest created");
        assert_eq!(instant(&doc["last_payment_at"]), latest);
        assert_eq!(doc["current_balance"], "834.50");
    }
    assert_eq!(uuid_of(&read["id"]), Uuid::parse_str(&id).unwrap());
}
