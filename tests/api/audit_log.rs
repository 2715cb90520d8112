//! The audit trail over HTTP and SQL: every change recorded with who, when, from where
//! and which request, whoever made it (the API, a job, a scheduler, psql); who may read
//! it; append-only for every role; `arrears audit verify` finds an edited, removed or
//! forged row; retention drops only months older than the period.

use arrears::domain::role::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Arrears, TestApp, assert_problem, id_of, spawn_app, status_json};

async fn history(app: &TestApp, token: &str, account: &str, query: &str) -> (StatusCode, Value) {
    status_json(app.get(&format!("/api/v1/accounts/{account}/history?{query}"), token).await).await
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn entry<'a>(page: &'a Value, action: &str) -> &'a Value {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("no {action} in {page}"))
}

#[tokio::test]
async fn every_change_to_an_account_is_recorded_with_who_when_where_and_which_request() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let owner = app.user(Role::Agent).await;
    let account = app
        .account(&manager.token, json!({"original_balance": "100.00", "assigned_agent_id": owner.id}))
        .await;
    let id = id_of(&account);

    let response = app
        .request(Method::PATCH, &format!("/api/v1/accounts/{id}"), Some(&manager.token))
        .header("x-request-id", "req-audit-1")
        .json(&json!({"status": "delinquent", "tags": ["hardship"], "custom_fields": {"branch": "North"}, "do_not_call": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // The trail names the server's own id, never the client's (issue 75, item 11).
    let patched_as = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(patched_as, "req-audit-1");
    let payment = app
        .create_payment(&owner.token, &id, &json!({"amount": "100.00", "currency": "USD", "method": "card"}))
        .await;
    let refunded = app
        .patch(
            &format!("/api/v1/payments/{}", id_of(&payment)),
            &manager.token,
            &json!({"status": "refunded"}),
        )
        .await;
    assert_eq!(refunded.status(), StatusCode::OK);
    // A statement no one issued through the application.
    sqlx::query("UPDATE accounts SET external_ref = 'BY-HAND' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();

    let (status, admin_view) = history(&app, &admin.token, &id, "page_size=50").await;
    assert_eq!(status, StatusCode::OK, "{admin_view}");
    let seen = actions(&admin_view);
    for action in ["account.create", "account.update", "payment.create", "payment.update"] {
        assert!(seen.contains(&action.to_owned()), "{action} missing from {seen:?}");
    }

    let edit = admin_view["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["request_id"] == patched_as.as_str())
        .unwrap_or_else(|| panic!("the patch's request is named: {admin_view}"));
    assert!(
        !admin_view.to_string().contains("req-audit-1"),
        "a client's id is not the trail's: {admin_view}"
    );
    assert_eq!(edit["action"], "account.update");
    assert_eq!(edit["actor_id"], manager.id.to_string());
    assert_eq!(edit["address"], "127.0.0.1", "the client's address");
    let changes = &edit["details"]["changes"];
    assert_eq!(changes["status"], json!({"before": "active", "after": "delinquent"}));
    assert_eq!(changes["tags"], json!({"before": [], "after": ["hardship"]}));
    assert_eq!(changes["custom_fields"]["after"], json!({"branch": "North"}), "custom fields");
    assert_eq!(changes["do_not_call"], json!({"before": false, "after": true}), "flags");

    let paid = entry(&admin_view, "payment.create");
    assert_eq!(paid["actor_id"], owner.id.to_string());
    assert_eq!(paid["details"]["row"]["amount"], 100.0);
    let refund = entry(&admin_view, "payment.update");
    assert_eq!(
        refund["details"]["changes"]["status"],
        json!({"before": "completed", "after": "refunded"})
    );
    assert_eq!(refund["actor_id"], manager.id.to_string());
    // Paying off set the account `paid` by rule, and the refund reopened it.
    let by_rule: Vec<&Value> = admin_view["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["by_rule"] == true && e["action"] == "account.update")
        .collect();
    assert!(
        by_rule.iter().any(|e| e["details"]["changes"]["status"]["after"] == "paid"),
        "{admin_view}"
    );

    let by_hand = admin_view["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["changes"]["external_ref"]["after"] == "BY-HAND")
        .unwrap();
    assert_eq!(by_hand["actor_id"], Value::Null, "no user named it");
    assert_eq!(by_hand["db_user"], "postgres", "the database user made it");

    // The owning agent and a manager read it; the manager without addresses.
    let (status, managers) = history(&app, &manager.token, &id, "action=account.update").await;
    assert_eq!(status, StatusCode::OK);
    assert!(actions(&managers).iter().all(|a| a == "account.update"), "{managers}");
    assert!(
        managers["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["address"].is_null() && e["request_id"].is_null())
    );
    let (status, _) = history(&app, &owner.token, &id, "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn only_managers_admins_and_the_owner_read_an_accounts_history_and_only_admins_the_log() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let owner = app.user(Role::Agent).await;
    let other = app.user(Role::Agent).await;
    let viewer = app.user(Role::Viewer).await;
    let admin = app.user(Role::Admin).await;
    let account = app.account(&manager.token, json!({"assigned_agent_id": owner.id})).await;
    let id = id_of(&account);
    for user in [&other, &viewer] {
        let response = app.get(&format!("/api/v1/accounts/{id}/history"), &user.token).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let missing = app
        .get(&format!("/api/v1/accounts/{}/history", Uuid::new_v4()), &manager.token)
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "not_found").await;
    for user in [&manager, &owner, &other, &viewer] {
        let response = app.get("/api/v1/audit", &user.token).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let (status, _) = status_json(app.get("/api/v1/audit", &admin.token).await).await;
    assert_eq!(status, StatusCode::OK);
    for bad in [
        "action=DROP%20TABLE",
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "format=xml",
        "nope=1",
        "entity_id=",
    ] {
        let response = app.get(&format!("/api/v1/audit?{bad}"), &admin.token).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn the_log_filters_pages_by_keyset_and_exports_csv() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    // A name a spreadsheet would run as a formula.
    sqlx::query("UPDATE users SET name = '=HYPERLINK(\"http://evil.example\",\"x\")' WHERE id = $1")
        .bind(manager.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(id_of(&app.account(&manager.token, json!({})).await));
    }
    let user = app.user(Role::Agent).await;
    let changed = app
        .patch(
            &format!("/api/v1/users/{}", user.id),
            &admin.token,
            &json!({"role": "manager", "team": "North"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);

    let query = format!("actor_id={}&action=account.create&page_size=2", manager.id);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/audit?{query}&cursor={c}"),
            None => format!("/api/v1/audit?{query}"),
        };
        let (status, page) = status_json(app.get(&path, &admin.token).await).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["total"], 5);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["entity_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");

    // The role change, under the user entity, by the admin.
    let (_, users) = status_json(
        app.get(
            &format!("/api/v1/audit?entity=user&entity_id={}&action=user.update", user.id),
            &admin.token,
        )
        .await,
    )
    .await;
    assert_eq!(users["total"], 1, "{users}");
    assert_eq!(users["data"][0]["actor_id"], admin.id.to_string());
    assert_eq!(
        users["data"][0]["details"]["changes"]["role"],
        json!({"before": "agent", "after": "manager"})
    );
    assert_eq!(
        users["data"][0]["details"]["changes"]["team"],
        json!({"before": null, "after": "North"})
    );

    // A time range that holds nothing, and one that holds everything.
    let future = app.get("/api/v1/audit?from=2999-01-01T00:00:00Z", &admin.token).await;
    assert_eq!(status_json(future).await.1["total"], 0);

    let response = app
        .get(
            &format!("/api/v1/audit?format=csv&actor_id={}&action=account.", manager.id),
            &admin.token,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"audit-")
    );
    let text = response.text().await.unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("at,id,action,entity,entity_id,account_id,actor_id")
    );
    assert_eq!(lines.clone().count(), 5, "{text}");
    assert!(text.contains("'=HYPERLINK"), "the actor's name is there, as text: {text}");
    assert!(
        !text.contains(",=HYPERLINK") && !text.contains(",\"=HYPERLINK"),
        "never as a formula: {text}"
    );
}

/// `arrears audit verify` on `app`'s database: whether it passed, and what it printed.
fn verify(app: &TestApp) -> (bool, String) {
    let output = Arrears::output(&["audit", "verify"], &app.settings, &[]);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// Waits until the sealer has sealed every row (a transaction open anywhere on the
/// server, another test's included, holds the horizon back for its length).
async fn all_sealed(app: &TestApp) {
    crate::helpers::eventually("every audit row is sealed", || async {
        arrears::service::audit_log::seal_all(&app.pool).await.unwrap();
        let unsealed: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log l, audit_seal_horizon h WHERE l.xid >= h.horizon")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        unsealed == 0
    })
    .await;
}

/// Runs `sql` as a superuser who switched triggers off (the only way past the refusals),
/// in a session of its own that then ends, as a `psql` session would: PostgreSQL counts
/// its writes in the statistics when it ends.
async fn as_superuser_without_triggers(app: &TestApp, sql: &str) {
    as_superuser(app, &["SET LOCAL session_replication_role = replica", sql]).await;
}

/// Runs `statements` in one transaction of a session of its own, then ends the session.
async fn as_superuser(app: &TestApp, statements: &[&str]) {
    use sqlx::Connection as _;
    let mut session = sqlx::PgConnection::connect(&app.settings.database_url).await.unwrap();
    let mut tx = session.begin().await.unwrap();
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe((*sql).to_owned())).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    session.close().await.unwrap();
}

/// Rows PostgreSQL counts as updated or deleted in the audit partitions.
async fn audit_writes_counted(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(s.n_tup_upd + s.n_tup_del), 0)::bigint FROM pg_stat_user_tables s
         JOIN pg_inherits i ON i.inhrelid = s.relid WHERE i.inhparent = 'audit_log'::regclass",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// `verify` once PostgreSQL counts `writes` rows updated or deleted in the audit
/// partitions (a session's counts arrive as it ends, a moment after it closes).
async fn verify_once_counted(app: &TestApp, writes: i64) -> (bool, String) {
    crate::helpers::eventually("the writes are counted", || async { audit_writes_counted(app).await >= writes }).await;
    verify(app)
}

/// Issue 75, item 14: a superuser who switches triggers off inside the transaction that
/// writes an audit row, and edits the row before it commits, leaves nothing for the
/// chain to tell (the sealer seals the row as committed). PostgreSQL still counts the
/// update in the partition's statistics, and verify reads them.
#[tokio::test]
async fn an_edit_inside_the_writing_transaction_is_found_by_the_counts_of_rows_written_over() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = id_of(&app.account(&manager.token, json!({"original_balance": "100.00"})).await);
    all_sealed(&app).await;
    assert!(verify(&app).0);
    let change = format!("UPDATE accounts SET external_ref = 'BY-HAND' WHERE id = '{account}'");
    let cover =
        format!("UPDATE audit_log SET details = '{{}}'::jsonb WHERE id = (SELECT max(id) FROM audit_log WHERE entity_id = '{account}')");
    as_superuser(&app, &[&change, "SET LOCAL session_replication_role = replica", &cover]).await;
    all_sealed(&app).await;
    let (clean, printed) = verify_once_counted(&app, 1).await;
    assert!(!printed.contains("does not match the digest"), "the chain cannot tell: {printed}");
    assert!(!clean, "{printed}");
    assert!(printed.contains("1 rows updated and 0 deleted since"), "{printed}");
    assert!(printed.contains("a superuser switched triggers off"), "{printed}");
}

#[tokio::test]
async fn no_role_may_change_the_log_or_its_seals_and_verify_finds_edited_removed_and_forged_rows() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    for n in 0..4 {
        app.account(&manager.token, json!({"original_balance": format!("{}.00", 100 + n)}))
            .await;
    }
    let (clean, printed) = verify(&app);
    assert!(clean, "{printed}");
    assert!(printed.contains("audit trail intact"), "{printed}");
    all_sealed(&app).await;
    // Neither the rows nor their seals may change.
    for statement in [
        "UPDATE audit_log SET action = 'account.nothing'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "TRUNCATE audit_log_default",
        "UPDATE audit_seal SET hash = '\\x00'",
        "DELETE FROM audit_seal",
        "TRUNCATE audit_seal",
    ] {
        let refused = sqlx::query(statement).execute(&app.pool).await.unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{statement}: {refused}");
    }

    // An edited row.
    let (edited, original): (i64, String) =
        sqlx::query_as("SELECT id, details::text FROM audit_log WHERE action = 'account.create' ORDER BY xid, id LIMIT 1 OFFSET 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let position: i64 =
        sqlx::query_scalar("SELECT s.position + u.i - 1 FROM audit_seal s, unnest(s.ids) WITH ORDINALITY u (id, i) WHERE u.id = $1")
            .bind(edited)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    as_superuser_without_triggers(
        &app,
        &format!("UPDATE audit_log SET details = jsonb_set(details, '{{row,original_balance}}', '1') WHERE id = {edited}"),
    )
    .await;
    let (clean, printed) = verify(&app);
    assert!(!clean, "an edited row is found: {printed}");
    assert!(
        printed.contains(&format!(
            "row {edited} at position {position} does not match the digest sealed for it"
        )),
        "{printed}"
    );
    let restore = original.replace('\'', "''");
    as_superuser_without_triggers(&app, &format!("UPDATE audit_log SET details = '{restore}' WHERE id = {edited}")).await;
    let (clean, printed) = verify_once_counted(&app, 2).await;
    assert!(!clean, "restored, the chain holds but the writes are counted: {printed}");
    assert!(printed.contains("2 rows updated and 0 deleted since"), "{printed}");
    let accepted = Arrears::output(&["audit", "verify", "--accept-writes"], &app.settings, &[]);
    assert!(accepted.status.success(), "{}", String::from_utf8_lossy(&accepted.stdout));
    let (clean, printed) = verify(&app);
    assert!(clean, "restored and looked into, it verifies again: {printed}");

    // A seal edited to match an edited row.
    let seal: i64 = sqlx::query_scalar("SELECT position FROM audit_seal WHERE $1 = ANY (ids)")
        .bind(edited)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    as_superuser_without_triggers(
        &app,
        // Every bit of the first byte flipped: a byte set to a value could already hold it
        // (one seal in 256 began with 0x00, and the edit changed nothing).
        &format!("UPDATE audit_seal SET digests = set_byte(digests, 0, get_byte(digests, 0) # 255) WHERE position = {seal}"),
    )
    .await;
    let (clean, printed) = verify(&app);
    assert!(
        !clean && printed.contains(&format!("the seal at position {seal} does not match its hash")),
        "{printed}"
    );

    // A removed row, from the middle and from the end.
    let removed = spawn_app().await;
    let manager = removed.user(Role::Manager).await;
    for _ in 0..3 {
        removed.account(&manager.token, json!({})).await;
    }
    all_sealed(&removed).await;
    assert!(verify(&removed).0);
    as_superuser_without_triggers(
        &removed,
        // The second row sealed, whichever seal holds it (the first seal may hold one row
        // only: how many a seal takes depends on the moment; its `ids[2]` was then null,
        // nothing was removed, and the test failed in CI).
        "DELETE FROM audit_log WHERE id = (SELECT u.id FROM audit_seal, unnest(ids) WITH ORDINALITY AS u(id, n)
                                           ORDER BY position, n LIMIT 1 OFFSET 1)",
    )
    .await;
    let (clean, printed) = verify(&removed);
    assert!(!clean && printed.contains("is missing: a row was removed"), "{printed}");

    let fresh = crate::helpers::spawn_app().await;
    let manager = fresh.user(Role::Manager).await;
    fresh.account(&manager.token, json!({})).await;
    all_sealed(&fresh).await;
    assert!(verify(&fresh).0);
    for statement in [
        "DELETE FROM audit_log WHERE id = ANY ((SELECT ids FROM audit_seal ORDER BY position DESC LIMIT 1)::bigint[])",
        "DELETE FROM audit_seal WHERE position = (SELECT max(position) FROM audit_seal)",
    ] {
        as_superuser_without_triggers(&fresh, statement).await;
    }
    let (clean, printed) = verify(&fresh);
    assert!(!clean && printed.contains("seals at its end were removed"), "{printed}");

    // A row slipped in behind the sealer with an old transaction id.
    let forged = spawn_app().await;
    let manager = forged.user(Role::Manager).await;
    forged.account(&manager.token, json!({})).await;
    all_sealed(&forged).await;
    assert!(verify(&forged).0);
    sqlx::query("INSERT INTO audit_log (xid, action, entity) VALUES ('3', 'account.delete', 'account')")
        .execute(&forged.pool)
        .await
        .unwrap();
    let (clean, printed) = verify(&forged);
    assert!(!clean && printed.contains("written behind the sealer"), "{printed}");
}

#[tokio::test]
async fn the_sealer_seals_whole_transactions_in_order_one_block_per_pass() {
    let app = spawn_app().await;
    all_sealed(&app).await;
    let mut written = Vec::new();
    for rows in [3, 1, 2] {
        let mut tx = app.pool.begin().await.unwrap();
        for _ in 0..rows {
            let id: i64 = sqlx::query_scalar("INSERT INTO audit_log (action, entity) VALUES ('test.write', 'test') RETURNING id")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            written.push(id);
        }
        tx.commit().await.unwrap();
    }
    // Two rows a pass: the first transaction (three rows) is sealed whole and alone; the
    // next pass takes the one-row transaction and stops before splitting the last. A
    // transaction open elsewhere on the server (another test's) holds the horizon back
    // and makes a pass seal nothing; those passes are waited out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut passes = Vec::new();
    while passes.iter().sum::<u64>() < 6 {
        assert!(std::time::Instant::now() < deadline, "sealed only {passes:?}");
        match arrears::store::audit_log::seal(&app.pool, 2).await.unwrap() {
            0 => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            sealed => passes.push(sealed),
        }
    }
    assert_eq!(passes, vec![3, 1, 2]);
    let sealed: Vec<Vec<i64>> = sqlx::query_scalar("SELECT ids FROM audit_seal ORDER BY position DESC LIMIT 3")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        sealed.into_iter().rev().collect::<Vec<_>>(),
        vec![written[..3].to_vec(), written[3..4].to_vec(), written[4..].to_vec()]
    );
    let (clean, printed) = verify(&app);
    assert!(clean, "{printed}");
}

/// Columns of audited tables that their update trigger neither watches nor ignores: a
/// change to one of them alone would go unrecorded.
async fn unwatched_columns(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        r"SELECT c.relname::text, a.attname::text
          FROM pg_trigger t
          JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum > 0 AND NOT a.attisdropped
          WHERE t.tgname LIKE '%\_audit\_update' AND t.tgtype & 16 <> 0 AND t.tgnargs = 1 AND t.tgqual IS NOT NULL
            AND pg_get_triggerdef(t.oid) !~ ('\mold\.' || a.attname || '\M')
            AND NOT a.attname = ANY ((string_to_array(encode(t.tgargs, 'escape'), '\000'))[1]::text[])
          ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_update_trigger_watches_every_column_it_does_not_ignore_even_one_added_later() {
    let app = spawn_app().await;
    assert_eq!(unwatched_columns(&app).await, vec![]);
    let manager = app.user(Role::Manager).await;
    let id = id_of(&app.account(&manager.token, json!({"original_balance": "100.00"})).await);
    let updates = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_log WHERE action = 'account.update' AND account_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };

    // A payment moves only ignored columns (the balance): nothing to record.
    app.create_payment(
        &manager.token,
        &id,
        &json!({"amount": "10.00", "currency": "USD", "method": "card"}),
    )
    .await;
    assert_eq!(updates().await, 0);

    // A migration adds a column and forgets the trigger: the check names it.
    sqlx::query("ALTER TABLE accounts ADD COLUMN placement text")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(unwatched_columns(&app).await, vec![("accounts".to_owned(), "placement".to_owned())]);
    sqlx::query(
        "SELECT audit_watch_updates('accounts', 'account', 'id',
             '{search_version,updated_at,updated_by,created_at,created_by,current_balance}', '{}')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(unwatched_columns(&app).await, vec![]);
    sqlx::query("UPDATE accounts SET placement = 'P-7' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.pool)
        .await
        .unwrap();
    let changes: Value =
        sqlx::query_scalar("SELECT details -> 'changes' FROM audit_log WHERE action = 'account.update' AND account_id = $1::uuid")
            .bind(&id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(changes, json!({"placement": {"before": null, "after": "P-7"}}));
}

#[tokio::test]
async fn retention_drops_only_months_older_than_the_period() {
    let app = spawn_app().await;
    let pool = &app.pool;
    sqlx::query("SELECT audit_ensure_partitions('2019-01-01', 2)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO audit_log (at, action, entity) VALUES ('2019-01-15T00:00:00Z', 'account.update', 'account'), ('2019-02-27T00:00:00Z', 'account.update', 'account')")
        .execute(pool)
        .await
        .unwrap();
    let now = "2022-02-20T00:00:00Z".parse().unwrap();
    // Three years before 2022-02-20 is 2019-02-20 (1,096 days): January 2019 is wholly
    // older, February 2019 still holds a younger day.
    let upkeep = arrears::service::audit_log::upkeep(pool, now, 1096).await.unwrap();
    assert_eq!(upkeep.partitions_dropped, vec!["audit_log_p201901".to_owned()]);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE at < '2020-01-01'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(left, 1, "February's row stays");
    assert!(upkeep.partitions_made >= 1, "the partitions ahead of 2022-02 were made");
    let again = arrears::service::audit_log::upkeep(pool, now, 1096).await.unwrap();
    assert!(again.partitions_dropped.is_empty() && again.partitions_made == 0, "idempotent");
    // The default partition is never dropped, whatever the period.
    let far = arrears::service::audit_log::upkeep(pool, "2090-01-01T00:00:00Z".parse().unwrap(), 1)
        .await
        .unwrap();
    assert!(!far.partitions_dropped.contains(&"audit_log_default".to_owned()));
    let (clean, printed) = verify(&app);
    assert!(clean, "dropping whole partitions leaves the others' chains intact: {printed}");
}

#[tokio::test]
async fn the_life_of_a_user_is_in_the_trail_sign_ins_and_failures_included() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let email = format!("trail-{}@example.com", Uuid::new_v4().simple());
    let password = "a long enough password 42";
    let created = app
        .post(
            "/api/v1/users",
            Some(&admin.token),
            &json!({"email": email, "name": "Trail Person", "role": "agent", "password": password}),
        )
        .await;
    let (status, user) = status_json(created).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let id = id_of(&user);

    let (status, _) = app.login(&email, "not the password at all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, tokens) = app.login(&email, password).await;
    assert_eq!(status, StatusCode::OK);
    let refreshed = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": tokens["refresh_token"]}))
        .await;
    let (status, refreshed) = status_json(refreshed).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let out = app
        .post("/api/v1/auth/logout", None, &json!({"refresh_token": refreshed["refresh_token"]}))
        .await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    let disabled = app
        .patch(&format!("/api/v1/users/{id}"), &admin.token, &json!({"disabled": true}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);

    let (_, sessions) = status_json(app.get(&format!("/api/v1/audit?entity=session&actor_id={id}"), &admin.token).await).await;
    let mut seen = actions(&sessions);
    seen.reverse();
    assert_eq!(seen, ["session.login", "session.refresh", "session.logout"], "{sessions}");
    assert!(
        sessions["data"].as_array().unwrap().iter().all(|e| e["address"] == "127.0.0.1"),
        "{sessions}"
    );
    assert_eq!(entry(&sessions, "session.logout")["details"]["reason"], "logout");

    let (_, user_entries) = status_json(app.get(&format!("/api/v1/audit?entity=user&entity_id={id}"), &admin.token).await).await;
    let made = entry(&user_entries, "user.create");
    assert_eq!(made["actor_id"], admin.id.to_string(), "the admin who created them");
    assert_eq!(made["details"]["row"]["password_hash"], true, "a password is set, and not shown");
    assert!(!user_entries.to_string().contains("argon2"), "no hash anywhere: {user_entries}");
    let failed = entry(&user_entries, "session.login_failed");
    assert_eq!(failed["details"], json!({"email": email, "failed": "password"}));
    assert_eq!(failed["address"], "127.0.0.1");
    let off = entry(&user_entries, "user.update");
    assert_eq!(off["details"]["changes"]["disabled"], json!({"before": false, "after": true}));
    assert_eq!(off["actor_id"], admin.id.to_string());

    // An unknown email fails too, and is recorded without a user.
    let (status, _) = app.login("nobody-at-all@example.com", "whatever it is 123").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, unknown) = status_json(app.get("/api/v1/audit?action=session.login_failed", &admin.token).await).await;
    assert!(
        unknown["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["entity_id"].is_null() && e["details"]["email"] == "nobody-at-all@example.com"),
        "{unknown}"
    );
}

#[tokio::test]
async fn a_bulk_update_is_one_entry_with_its_parameters_and_one_per_account_naming_the_job() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = app.user(Role::Manager).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(&app.account(&manager.token, json!({})).await));
    }
    let (status, job) = status_json(
        app.post(
            "/api/v1/accounts/bulk-update",
            Some(&manager.token),
            &json!({"ids": ids, "patch": {"status": "disputed", "tags_add": ["bulk-audit"]}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = id_of(&job);
    crate::helpers::eventually("the job finishes", || async {
        let (_, body) = status_json(app.get(&format!("/api/v1/jobs/{job_id}"), &manager.token).await).await;
        body["finished_at"].is_string()
    })
    .await;

    let (_, jobs) = status_json(app.get(&format!("/api/v1/audit?entity=job&entity_id={job_id}"), &admin.token).await).await;
    let made = entry(&jobs, "job.create");
    assert_eq!(made["actor_id"], manager.id.to_string());
    assert_eq!(made["details"]["row"]["kind"], "bulk_update");
    assert_eq!(
        made["details"]["row"]["params"]["patch"]["status"], "disputed",
        "its parameters: {made}"
    );
    assert!(
        jobs["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["changes"]["status"]["after"] == "succeeded"),
        "its end: {jobs}"
    );
    let (_, changes) = status_json(
        app.get(
            &format!("/api/v1/audit?action=account.update&actor_id={}", manager.id),
            &admin.token,
        )
        .await,
    )
    .await;
    let by_job: Vec<&Value> = changes["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["job"] == format!("bulk_update:{job_id}"))
        .collect();
    assert_eq!(by_job.len(), 3, "one per account: {changes}");
    for e in by_job {
        assert_eq!(e["details"]["changes"]["status"], json!({"before": "active", "after": "disputed"}));
    }
}
