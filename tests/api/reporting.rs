//! Issue 51: activities (with their messages), promises and plans reach reporting
//! indices of their own through the outbox, versioned, with the agent's name and team
//! and the account's portfolio as they are now; the embedded backend, which keeps no
//! reporting index, consumes their changes.

use std::collections::BTreeSet;

use arrears::config::SearchBackend;
use arrears::domain::document::Entity;
use arrears::domain::role::Role;
use arrears::store;
use chrono::Timelike;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::compliance::{hold_clock, zone_where_it_is};
use crate::elastic::{alias_cluster, leaves, mapped, mappings};
use crate::helpers::{TestApp, TestUser, eventually, id_of, spawn_app, spawn_app_with, spawn_guarded_app, status_json};

/// An account of `agent`'s in `portfolio`, in a zone where it is daytime now.
async fn account(app: &TestApp, admin: &TestUser, agent: &TestUser, portfolio: &str) -> (String, String) {
    let zone = zone_where_it_is(app.clock.now(), 10, 19);
    let body = json!({"debtor_name": "Ada Report", "timezone": zone, "assigned_agent_id": agent.id,
        "portfolio_id": portfolio, "original_balance": "900.00", "currency": "EUR"});
    (id_of(&app.account(&admin.token, body).await), zone)
}

async fn portfolio(app: &TestApp, admin: &TestUser, name: &str, agent: &TestUser) -> String {
    let (status, made) = status_json(app.post("/api/v1/portfolios", Some(&admin.token), &json!({"name": name})).await).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = id_of(&made);
    let grants = format!("/api/v1/portfolios/{id}/grants");
    let (status, grant) = status_json(app.post(&grants, Some(&admin.token), &json!({"user_id": agent.id})).await).await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    id
}

async fn rename(app: &TestApp, admin: &TestUser, user: Uuid, body: Value) {
    let (status, changed) = status_json(app.patch(&format!("/api/v1/users/{user}"), &admin.token, &body).await).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
}

/// The reporting documents SQL builds now for these ids.
async fn documents(app: &TestApp, entity: Entity, ids: &[&str]) -> Vec<Value> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
    let mut conn = app.pool.acquire().await.unwrap();
    let docs = store::reports::documents(&mut conn, entity, &ids).await.unwrap();
    docs.into_iter().map(|d| d.source).collect()
}

#[tokio::test]
async fn reporting_documents_name_the_agent_team_portfolio_and_local_hour_and_match_their_mappings() {
    let app = spawn_guarded_app().await;
    let now = hold_clock(&app);
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    rename(&app, &admin, agent.id, json!({"team": "North"})).await;
    let name: String = app
        .sql_value("SELECT name FROM users WHERE id = $1::uuid", &agent.id.to_string())
        .await;
    let cards = portfolio(&app, &admin, "Acme cards", &agent).await;
    let (account_id, zone) = account(&app, &admin, &agent, &cards).await;

    let call = app
        .log_activity(
            &agent.token,
            &account_id,
            &json!({"type": "call", "direction": "outbound", "outcome": "right_party"}),
        )
        .await;
    let (status, template) = status_json(
        app.post(
            "/api/v1/message-templates",
            Some(&admin.token),
            &json!({"name": "Reminder", "channel": "sms", "body": "Hello {{debtor_name}}"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let (status, message) = status_json(
        app.post(
            &format!("/api/v1/accounts/{account_id}/messages"),
            Some(&agent.token),
            &json!({"channel": "sms", "template_id": template["id"]}),
        )
        .await,
    )
    .await;
    assert!(status.is_success(), "{message}");
    let due = (now + chrono::Duration::days(7)).date_naive();
    let promise = app
        .create_promise(&agent.token, &account_id, &json!({"amount": "120.00", "due_date": due}))
        .await;
    let plan = app
        .create(
            &agent.token,
            &format!("/api/v1/accounts/{account_id}/plans"),
            &json!({"total": "300.00", "instalment_count": 3, "frequency": "weekly",
                "first_due_date": (now + chrono::Duration::days(14)).date_naive()}),
        )
        .await;

    let message_activity: String = app
        .sql_value(
            "SELECT activity_id::text FROM account_messages WHERE id = $1::uuid",
            &id_of(&message),
        )
        .await;
    let activities = documents(&app, Entity::Activity, &[&id_of(&call), &message_activity]).await;
    assert_eq!(activities.len(), 2);
    let call_doc = activities.iter().find(|d| d["id"] == call["id"]).unwrap();
    let agent_named = json!({"id": agent.id, "name": name, "team": "North"});
    assert_eq!(call_doc["agent"], agent_named);
    assert_eq!(call_doc["portfolio"], json!({"id": cards, "name": "Acme cards"}));
    assert_eq!(
        (call_doc["contact_attempt"].clone(), call_doc["right_party_contact"].clone()),
        (json!(true), json!(true))
    );
    let tz: chrono_tz::Tz = zone.parse().unwrap();
    let occurred = crate::helpers::instant(&call["occurred_at"]);
    assert_eq!(
        call_doc["local_hour"],
        json!(occurred.with_timezone(&tz).hour()),
        "the hour in {zone}"
    );
    assert_eq!(call_doc["message"], Value::Null);
    let message_doc = activities.iter().find(|d| d["id"] == json!(message_activity)).unwrap();
    assert_eq!(message_doc["message"]["channel"], "sms");
    assert!(message_doc["message"].get("body").is_none() && message_doc["message"].get("recipient").is_none());

    let promises = documents(&app, Entity::Promise, &[&id_of(&promise)]).await;
    assert_eq!(promises[0]["currency"], "EUR");
    assert_eq!(promises[0]["agent"], agent_named);
    let plans = documents(&app, Entity::Plan, &[&id_of(&plan)]).await;
    assert_eq!(
        (plans[0]["instalments"].clone(), plans[0]["status"].clone()),
        (json!(3), json!("active"))
    );

    for (entity, docs) in [(Entity::Activity, activities), (Entity::Promise, promises), (Entity::Plan, plans)] {
        let mut fields = BTreeSet::new();
        mapped(&mappings(entity)["properties"], "", &mut fields, &mut BTreeSet::new());
        let mut produced = BTreeSet::new();
        for doc in &docs {
            leaves(doc, "", &mut produced);
        }
        let tombstone =
            arrears::search::elastic::source::of(&arrears::domain::document::IndexOp::tombstone(entity, Uuid::nil(), 1)).unwrap();
        leaves(&tombstone, "", &mut produced);
        let unmapped: Vec<_> = produced.difference(&fields).collect();
        assert!(
            unmapped.is_empty(),
            "{entity:?} documents have fields the mapping lacks: {unmapped:?}"
        );
        // A message sent is not failed, and a fresh plan or promise is not resolved.
        let never = ["message.failed_at", "message.sent_at", "resolved_at", "message.template_id"];
        let unused: Vec<_> = fields.difference(&produced).filter(|f| !never.contains(&f.as_str())).collect();
        assert!(unused.is_empty(), "{entity:?} mapping has fields no document produced: {unused:?}");
    }
}

/// The versions in `report_versions` of these ids.
async fn versions(app: &TestApp, entity: Entity, ids: &[&str]) -> Vec<i64> {
    let ids: Vec<Uuid> = ids.iter().map(|id| id.parse().unwrap()).collect();
    let mut found = store::reports::versions_of(&app.pool, entity, &ids).await.unwrap();
    found.sort();
    found.into_iter().map(|(_, v)| v).collect()
}

#[tokio::test]
async fn a_new_team_a_renamed_portfolio_or_a_deleted_user_queues_a_newer_version_of_every_document_that_shows_it() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    let cards = portfolio(&app, &admin, "Cards", &agent).await;
    let (account_id, _) = account(&app, &admin, &agent, &cards).await;
    let call = id_of(
        &app.log_activity(
            &agent.token,
            &account_id,
            &json!({"type": "call", "direction": "outbound", "outcome": "no_answer"}),
        )
        .await,
    );
    let due = (app.clock.now() + chrono::Duration::days(3)).date_naive();
    let promise = id_of(
        &app.create_promise(&agent.token, &account_id, &json!({"amount": "50.00", "due_date": due}))
            .await,
    );
    let bystander = app.user(Role::Agent).await;
    let other_account = id_of(&app.account(&admin.token, json!({"assigned_agent_id": bystander.id})).await);
    let untouched = id_of(&app.log_activity(&bystander.token, &other_account, &json!({"type": "note"})).await);

    let before = (
        versions(&app, Entity::Activity, &[&call]).await,
        versions(&app, Entity::Promise, &[&promise]).await,
    );
    let other_before = versions(&app, Entity::Activity, &[&untouched]).await;
    record_queued(&app).await;
    rename(&app, &admin, agent.id, json!({"team": "South"})).await;
    let after_team = (
        versions(&app, Entity::Activity, &[&call]).await,
        versions(&app, Entity::Promise, &[&promise]).await,
    );
    assert!(
        after_team.0[0] > before.0[0] && after_team.1[0] > before.1[0],
        "{before:?} -> {after_team:?}"
    );
    let (status, renamed) = status_json(
        app.patch(
            &format!("/api/v1/portfolios/{cards}"),
            &admin.token,
            &json!({"name": "Cards (2026)"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let after_portfolio = versions(&app, Entity::Activity, &[&call]).await;
    assert!(after_portfolio[0] > after_team.0[0]);
    assert_eq!(
        versions(&app, Entity::Activity, &[&untouched]).await,
        other_before,
        "nothing else is queued"
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM queued_log WHERE entity = 'activity' AND entity_id = $1::uuid")
        .bind(&call)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(queued >= 1, "the changes queued the activity for the sync");
    let docs = documents(&app, Entity::Activity, &[&call]).await;
    assert_eq!(
        (docs[0]["agent"]["team"].clone(), docs[0]["portfolio"]["name"].clone()),
        (json!("South"), json!("Cards (2026)"))
    );

    // Deleting a user anonymises their name: the documents that showed it follow.
    let leaver = app.user(Role::Manager).await;
    let noted = id_of(&app.log_activity(&leaver.token, &other_account, &json!({"type": "note"})).await);
    let before = versions(&app, Entity::Activity, &[&noted]).await;
    let (status, deleted) = status_json(app.delete(&format!("/api/v1/users/{}", leaver.id), &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert!(versions(&app, Entity::Activity, &[&noted]).await[0] > before[0]);
    let docs = documents(&app, Entity::Activity, &[&noted]).await;
    assert!(
        docs[0]["agent"]["name"].as_str().unwrap().starts_with("Deleted user "),
        "{}",
        docs[0]
    );
}

#[tokio::test]
async fn the_embedded_backend_consumes_reporting_changes_and_keeps_no_reporting_index() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account_id = id_of(&app.account(&manager.token, json!({})).await);
    app.log_activity(&manager.token, &account_id, &json!({"type": "note"})).await;
    eventually("the outbox drains", || {
        let pool = app.pool.clone();
        async move {
            let left: i64 = sqlx::query_scalar("SELECT count(*) FROM search_outbox")
                .fetch_one(&pool)
                .await
                .unwrap();
            left == 0
        }
    })
    .await;
    let sizes = app.state.search().sizes().await.unwrap();
    let entities: Vec<&str> = sizes.iter().map(|s| s.entity.as_str()).collect();
    assert_eq!(entities, ["account", "payment"]);
}

#[tokio::test]
async fn with_elasticsearch_an_activity_reaches_its_reporting_index_and_a_team_change_sends_a_newer_version() {
    let server = alias_cluster(&[]).await;
    let app = spawn_app_with(|s| {
        s.search_backend = SearchBackend::Elasticsearch;
        s.elasticsearch_url = Some(server.url.clone());
    })
    .await;
    {
        let cluster = server.indices();
        let activities: Vec<_> = cluster["arrears-activities-g1"].iter().cloned().collect();
        assert_eq!(
            activities,
            [
                "arrears-activities",
                "arrears-activities-g1-write",
                "arrears-activities-reporting",
                "arrears-activities-targets"
            ]
        );
        assert!(cluster.contains_key("arrears-promises-g1") && cluster.contains_key("arrears-plans-g1"));
    }
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    rename(&app, &admin, agent.id, json!({"team": "Before"})).await;
    let account_id = id_of(&app.account(&admin.token, json!({"assigned_agent_id": agent.id})).await);
    let call = id_of(
        &app.log_activity(
            &agent.token,
            &account_id,
            &json!({"type": "call", "direction": "outbound", "outcome": "right_party"}),
        )
        .await,
    );
    let sent = |team: &'static str| {
        let (server, call) = (&server, call.clone());
        move || {
            let call = call.clone();
            async move {
                server.bulks().iter().any(|b| {
                    let lines = b.lines();
                    lines.iter().enumerate().any(|(i, l)| {
                        l.pointer("/index/_id") == Some(&json!(call))
                            && l.pointer("/index/_index") == Some(&json!("arrears-activities-g1-write"))
                            && lines[i + 1]["agent"]["team"] == team
                    })
                })
            }
        }
    };
    eventually("the activity reaches its reporting index", sent("Before")).await;
    rename(&app, &admin, agent.id, json!({"team": "After"})).await;
    eventually("the moved agent's activity is sent again", sent("After")).await;
    let versions: Vec<i64> = server
        .bulks()
        .iter()
        .flat_map(|b| {
            let lines = b.lines();
            (0..lines.len())
                .filter(|i| lines[*i].pointer("/index/_id") == Some(&json!(call)))
                .map(|i| lines[i]["index"]["version"].as_i64().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "each send carries a newer version: {versions:?}"
    );
    let refused = server.refused();
    assert!(refused.is_empty(), "a real cluster would refuse: {refused:#?}");
}

/// The KPI documents of `day`, by kind, as `kpi_documents` holds them.
async fn kpi_documents(app: &TestApp, day: chrono::NaiveDate) -> Vec<(Uuid, i64, Value)> {
    sqlx::query_as::<_, (Uuid, i64, sqlx::types::Json<Value>)>(
        "SELECT id, version, source FROM kpi_documents WHERE day = $1 ORDER BY source ->> 'kind', id",
    )
    .bind(day)
    .fetch_all(&app.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, version, source)| (id, version, source.0))
    .collect()
}

/// Keeps a copy of every row queued in the outbox from now on in `queued_log`: the sync
/// worker deletes the outbox rows it has indexed, at any moment.
async fn record_queued(app: &TestApp) {
    sqlx::raw_sql(
        "CREATE TABLE queued_log (id bigserial PRIMARY KEY, entity text NOT NULL, entity_id uuid NOT NULL, tombstone_version bigint);
         CREATE FUNCTION log_queued() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO queued_log (entity, entity_id, tombstone_version) VALUES (NEW.entity, NEW.entity_id, NEW.tombstone_version);
             RETURN NULL;
         END $$;
         CREATE TRIGGER log_queued AFTER INSERT ON search_outbox FOR EACH ROW EXECUTE FUNCTION log_queued();",
    )
    .execute(&app.pool)
    .await
    .unwrap();
}

/// The tombstone versions of what was queued for KPI document `id` since [`record_queued`].
async fn queued_kpi(app: &TestApp, id: Uuid) -> Vec<Option<i64>> {
    sqlx::query_scalar("SELECT tombstone_version FROM queued_log WHERE entity = 'kpi_day' AND entity_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_kept_day_becomes_kpi_documents_that_follow_refunds_and_team_changes() {
    let app = spawn_app().await;
    record_queued(&app).await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    let day = hold_clock(&app).date_naive();
    let account_id = id_of(&app.account(&admin.token, json!({"assigned_agent_id": agent.id})).await);
    app.log_activity(
        &agent.token,
        &account_id,
        &json!({"type": "call", "direction": "outbound", "outcome": "right_party"}),
    )
    .await;
    let paid = app
        .create_payment(
            &admin.token,
            &account_id,
            &json!({"amount": "40.00", "currency": "USD", "method": "card"}),
        )
        .await;
    // The payment is stamped by the database's clock, seconds after the held one on a
    // busy machine (it was missed at one second past about one run in four).
    store::kpis::keep_today(&app.pool, app.clock.now() + chrono::Duration::seconds(10))
        .await
        .unwrap();

    let docs = kpi_documents(&app, day).await;
    let kinds: Vec<&str> = docs.iter().map(|(_, _, s)| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["collected", "work"], "{docs:?}");
    let (collected_id, _, collected) = &docs[0];
    assert_eq!(
        (collected["currency"].clone(), collected["collected"].as_f64()),
        (json!("USD"), Some(40.0))
    );
    assert_eq!(collected["agent"]["id"], json!(agent.id));
    let work = &docs[1].2;
    assert_eq!(
        (work["contact_attempts"].clone(), work["right_party_contacts"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(queued_kpi(&app, *collected_id).await, [None], "queued once");

    // Kept again with nothing new: nothing is queued again.
    store::kpis::keep_today(&app.pool, app.clock.now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(kpi_documents(&app, day).await, docs, "unchanged documents keep their versions");
    assert_eq!(queued_kpi(&app, *collected_id).await, [None]);

    // The refund takes the day's only payment back: its document goes, as a tombstone.
    let refunded = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&paid)),
            &admin.token,
            &json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(refunded.status(), StatusCode::OK);
    store::kpis::keep_today(&app.pool, app.clock.now() + chrono::Duration::minutes(2))
        .await
        .unwrap();
    let after = kpi_documents(&app, day).await;
    assert_eq!(after.len(), 1, "{after:?}");
    let queued = queued_kpi(&app, *collected_id).await;
    assert!(
        queued.len() == 2 && queued[1].is_some_and(|v| v > docs[1].1),
        "a tombstone newer than the document: {queued:?}"
    );

    // A new team reaches the documents that show the agent, with a newer version.
    rename(&app, &admin, agent.id, json!({"team": "East"})).await;
    let renamed = kpi_documents(&app, day).await;
    assert_eq!(renamed[0].2["agent"]["team"], "East");
    assert!(renamed[0].1 > after[0].1);
}

#[tokio::test]
async fn the_days_moves_are_kpi_documents_that_say_which_accounts_rolled() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let agent = app.user(Role::Agent).await;
    let today = hold_clock(&app).date_naive();
    let yesterday = today - chrono::Duration::days(1);
    // Due yesterday: current in yesterday's snapshot, 1-29 days past due in today's.
    app.account(
        &admin.token,
        json!({"assigned_agent_id": agent.id, "due_date": yesterday, "timezone": "UTC"}),
    )
    .await;
    app.clock.set(app.clock.now() - chrono::Duration::days(1));
    app.run_schedulers().await;
    app.clock.set(app.clock.now() + chrono::Duration::days(1));
    app.run_schedulers().await;
    let moves: Vec<Value> = kpi_documents(&app, today)
        .await
        .into_iter()
        .map(|(_, _, s)| s)
        .filter(|s| s["kind"] == "moves")
        .collect();
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(
        (
            moves[0]["opening_bucket"].clone(),
            moves[0]["closing_bucket"].clone(),
            moves[0]["roll"].clone(),
            moves[0]["accounts"].clone()
        ),
        (json!("current"), json!("1-29"), json!("rolled"), json!(1))
    );
}

#[tokio::test]
async fn the_sql_bucket_order_is_the_domains() {
    let app = spawn_app().await;
    let order: Vec<String> = sqlx::query_scalar("SELECT kpi_bucket_order()").fetch_one(&app.pool).await.unwrap();
    let domain: Vec<String> = arrears::domain::search::ALL_BUCKETS.iter().map(|b| b.as_str().to_owned()).collect();
    assert_eq!(order, domain);
}
