//! The debtor's zone through HTTP: derived from the address's ZIP code and the phone's
//! prefix when no zone is given, kept where it came from, re-derived when the address or
//! phone changes, the guard allowing only the hours open in every zone the debtor may be
//! in, and `arrears derive-zones` for the accounts written before zones were derived.
//! The datasets' own lookups are unit-tested in `domain::debtor_zone`.

use arrears::domain::role::Role;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Arrears, TestApp, TestUser, id_of, instant, spawn_app, spawn_guarded_app, status_json};

/// A Hoboken, NJ address (ZIP 07030, America/New_York).
fn new_jersey() -> Value {
    json!({"line1": "1 Hudson Pl", "city": "Hoboken", "region": "NJ", "postal_code": "07030", "country": "US"})
}

/// A San Francisco number (area code 415, America/Los_Angeles).
const CALIFORNIA_PHONE: &str = "+1 415 555 0134";

async fn account(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let id = id_of(&app.account(&user.token, body).await);
    let (status, read) = status_json(app.get(&format!("/api/v1/accounts/{id}"), &user.token).await).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    read
}

fn zone(account: &Value) -> (&str, &str, Vec<&str>) {
    let alternates = account["alternate_timezones"]
        .as_array()
        .unwrap_or_else(|| panic!("a read of one account says the other zones: {account}"))
        .iter()
        .map(|z| z.as_str().unwrap())
        .collect();
    (
        account["timezone"].as_str().unwrap(),
        account["timezone_source"].as_str().unwrap(),
        alternates,
    )
}

#[tokio::test]
async fn a_zone_is_derived_from_the_address_then_the_phone_and_a_given_one_wins() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agrees = account(&app, &manager, json!({"address": new_jersey()})).await;
    assert_eq!(
        zone(&agrees),
        ("America/New_York", "address", vec![]),
        "the default phone is a 201 number"
    );
    let disagrees = account(&app, &manager, json!({"address": new_jersey(), "phone": CALIFORNIA_PHONE})).await;
    assert_eq!(zone(&disagrees), ("America/New_York", "address", vec!["America/Los_Angeles"]));
    let by_phone = account(&app, &manager, json!({"phone": CALIFORNIA_PHONE})).await;
    assert_eq!(zone(&by_phone), ("America/Los_Angeles", "phone", vec![]));
    let given = account(&app, &manager, json!({"timezone": "America/Denver", "address": new_jersey()})).await;
    assert_eq!(zone(&given), ("America/Denver", "given", vec![]));
    let nothing = account(
        &app,
        &manager,
        json!({"timezone": "UTC", "phone": null, "address": {"country": "US"}}),
    )
    .await;
    assert_eq!(
        zone(&nothing),
        ("UTC", "unknown", vec![]),
        "UTC names no zone, and nothing says where"
    );
}

#[tokio::test]
async fn a_moved_address_or_phone_moves_a_derived_zone_but_never_a_given_one() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let derived = account(&app, &manager, json!({"address": new_jersey()})).await;
    let path = format!("/api/v1/accounts/{}", derived["id"].as_str().unwrap());
    let moved = json!({"address": {"postal_code": "60606", "country": "US"}});
    let (status, body) = status_json(app.patch(&path, &manager.token, &moved).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        zone(&body),
        ("America/Chicago", "address", vec!["America/New_York"]),
        "the 201 phone stayed"
    );
    let (_, body) = status_json(app.patch(&path, &manager.token, &json!({"timezone": "America/Denver"})).await).await;
    assert_eq!(zone(&body), ("America/Denver", "given", vec![]));
    let (_, body) = status_json(app.patch(&path, &manager.token, &json!({"address": new_jersey()})).await).await;
    assert_eq!(
        zone(&body),
        ("America/Denver", "given", vec![]),
        "a named zone is the creditor's word"
    );
    let (_, body) = status_json(app.patch(&path, &manager.token, &json!({"timezone": "UTC"})).await).await;
    assert_eq!(
        zone(&body),
        ("America/New_York", "address", vec![]),
        "naming UTC asks to derive it again"
    );
}

#[tokio::test]
async fn an_agent_reading_a_colleagues_account_sees_its_zone_but_not_the_phones() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let colleague = app.user(Role::Agent).await;
    let agent = app.user(Role::Agent).await;
    let body = json!({"address": new_jersey(), "phone": CALIFORNIA_PHONE, "assigned_agent_id": colleague.id});
    let id = id_of(&app.account(&manager.token, body).await);
    let (status, read) = status_json(app.get(&format!("/api/v1/accounts/{id}"), &agent.token).await).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["access"], "summary", "{read}");
    assert_eq!(read["timezone"], "America/New_York");
    assert!(read.get("alternate_timezones").is_none(), "the phone's zone is the phone's: {read}");
}

/// 09:00 in New York, 06:00 in San Francisco: inside the default window (08:00–21:00) in
/// one zone and not in the other.
fn nine_in_new_york() -> DateTime<Utc> {
    "2026-06-10T13:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn when_the_address_and_phone_disagree_the_guard_allows_only_hours_open_in_both() {
    let app = spawn_guarded_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    app.clock.set(nine_in_new_york());
    let call = json!({"type": "call", "direction": "outbound", "outcome": "no_answer"});
    let attempt = async |body: Value| {
        let mut body = body;
        body["assigned_agent_id"] = json!(agent.id);
        let id = id_of(&app.account(&manager.token, body).await);
        status_json(
            app.post(&format!("/api/v1/accounts/{id}/activities"), Some(&agent.token), &call)
                .await,
        )
        .await
    };
    let (status, body) = attempt(json!({"address": new_jersey()})).await;
    assert_eq!(status, StatusCode::CREATED, "address and phone in New Jersey: {body}");
    let (status, body) = attempt(json!({"address": new_jersey(), "phone": CALIFORNIA_PHONE})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["rule"], "outside_window", "{body}");
    let opens: DateTime<Utc> = "2026-06-10T15:00:00Z".parse().unwrap();
    assert_eq!(instant(&body["next_allowed_at"]), opens, "08:00 in San Francisco: {body}");
}

#[tokio::test]
async fn derive_zones_gives_the_accounts_written_before_it_their_zone() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let mut ids = Vec::new();
    for body in [
        json!({"address": new_jersey()}),
        json!({"phone": CALIFORNIA_PHONE}),
        json!({"timezone": "America/Denver"}),
        json!({"phone": null}),
    ] {
        ids.push(id_of(&app.account(&manager.token, body).await));
    }
    // As the release before wrote them: a named zone kept, the others UTC and unknown.
    sqlx::query(
        "UPDATE accounts SET timezone = 'UTC', timezone_source = 'unknown', alternate_timezones = '{}'
         WHERE id = ANY($1::uuid[]) AND timezone_source <> 'given'",
    )
    .bind(&ids)
    .execute(&app.pool)
    .await
    .unwrap();
    let printed = Arrears::run(&["derive-zones"], &app.settings, &[]);
    assert!(
        printed.contains("derived the zone of 2 of 3 accounts that had none; 1 still have none"),
        "{printed}"
    );
    let mut zones = Vec::new();
    for id in &ids {
        let (_, read) = status_json(app.get(&format!("/api/v1/accounts/{id}"), &manager.token).await).await;
        zones.push((
            read["timezone"].as_str().unwrap().to_owned(),
            read["timezone_source"].as_str().unwrap().to_owned(),
        ));
    }
    let expected = [
        ("America/New_York", "address"),
        ("America/Los_Angeles", "phone"),
        ("America/Denver", "given"),
        ("UTC", "unknown"),
    ];
    assert_eq!(zones, expected.map(|(z, s)| (z.to_owned(), s.to_owned())));
    let again = Arrears::run(&["derive-zones"], &app.settings, &[]);
    assert!(again.contains("derived the zone of 0 of 1 accounts"), "{again}");
}

#[tokio::test]
async fn an_imported_file_without_zones_gets_each_debtors_zone_from_several_countries() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let csv = "Account No,Customer Name,Phone,Amount Due,Currency,Street,City,State,Zip,Country\n\
               Z-NJ,Ann Shore,(201) 555-0134,100,USD,1 Hudson Pl,Hoboken,NJ,07030,\n\
               Z-CA,Bea Bay,(415) 555-0134,100,USD,1 Market St,San Francisco,CA,94105,\n\
               Z-IL,Cal Lake,(415) 555-0135,100,USD,1 Wacker Dr,Chicago,IL,60606,\n\
               Z-ON,Dee North,+1 416 555 0134,100,CAD,,,,,\n\
               Z-FR,Eve Seine,,100,EUR,1 rue de Rivoli,Paris,,75001,FR\n\
               Z-GB,Flo Thames,+44 20 7946 0958,100,GBP,,,,,\n\
               Z-AU,Fay Reef,+61 7 3224 5000,100,AUD,,,,,\n\
               Z-XX,Gus Nowhere,,100,USD,,,,,\n";
    let (status, body) = status_json(crate::imports::upload(&app, &manager.token, "zones.csv", csv.into(), &[]).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = crate::imports::finished(&app, &manager.token, body["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let rows: Vec<(String, String, String, Vec<String>)> =
        sqlx::query_as("SELECT account_number, timezone, timezone_source, alternate_timezones FROM accounts ORDER BY account_number")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let row = |number: &str, zone: &str, source: &str, others: &[&str]| {
        (
            number.to_owned(),
            zone.to_owned(),
            source.to_owned(),
            others.iter().map(|z| (*z).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        rows,
        vec![
            row("Z-AU", "Australia/Brisbane", "phone", &[]),
            row("Z-CA", "America/Los_Angeles", "address", &[]),
            row("Z-FR", "Europe/Paris", "address", &[]),
            row("Z-GB", "Europe/London", "phone", &[]),
            row("Z-IL", "America/Chicago", "address", &["America/Los_Angeles"]),
            row("Z-NJ", "America/New_York", "address", &[]),
            row("Z-ON", "America/Toronto", "phone", &[]),
            row("Z-XX", "UTC", "unknown", &[]),
        ]
    );

    // An upsert that moves a debtor moves the derived zone (the New Jersey phone now
    // disagrees with the address); a zone the file names wins.
    let moved = "Account No,Customer Name,Amount Due,Currency,Street,City,State,Zip,Timezone\n\
                 Z-NJ,Ann Shore,,USD,1 Market St,San Francisco,CA,94105,\n\
                 Z-XX,Gus Nowhere,,USD,,,,,America/Denver\n";
    let (status, body) =
        status_json(crate::imports::upload(&app, &manager.token, "moved.csv", moved.into(), &[("mode", "upsert")]).await).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let job = crate::imports::finished(&app, &manager.token, body["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["status"], &job["result"]["updated"]),
        (&json!("succeeded"), &json!(2)),
        "{job}"
    );
    let rows: Vec<(String, String, String, Vec<String>)> = sqlx::query_as(
        "SELECT account_number, timezone, timezone_source, alternate_timezones FROM accounts \
         WHERE account_number IN ('Z-NJ', 'Z-XX') ORDER BY account_number",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            row("Z-NJ", "America/Los_Angeles", "address", &["America/New_York"]),
            row("Z-XX", "America/Denver", "given", &[]),
        ]
    );
}
