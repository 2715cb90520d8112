//! Streamed exports: the list filters, CSV and XLSX, formula injection neutralised.

use arrears::domain::role::Role;
use arrears::service::exports::ACCOUNT_COLUMNS;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem, error_fields, eventually, id_of, spawn_app, status_json};

async fn download(app: &TestApp, token: &str, path: &str) -> (StatusCode, String, String, Vec<u8>) {
    let response = app.get(path, token).await;
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (status, content_type, disposition, response.bytes().await.unwrap().to_vec())
}

/// GETs the export `path` while its rows cannot be read (the test locks `accounts`, which
/// every export reads its rows from) and returns its content type and body. A streamed
/// export answers at once, with no length up front, while its rows wait for the lock,
/// and sends them once it is released; one assembled before it answers would not
/// answer until then, and fails here after 10 s.
async fn streamed(app: &TestApp, token: &str, path: &str) -> (String, Vec<u8>) {
    let wait = std::time::Duration::from_secs(10);
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE accounts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let holder: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *lock).await.unwrap();
    // A client of its own: the checked `send` reads a file whole before handing it on.
    let request = reqwest::Client::new().get(app.url(path)).bearer_auth(token).send();
    let response = tokio::time::timeout(wait, request)
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer began while its rows could not be read"))
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let headers = response.headers();
    assert!(
        headers.get("content-length").is_none(),
        "{path}: a length up front is a file assembled before it was sent"
    );
    assert_eq!(headers["transfer-encoding"], "chunked", "{path}");
    let content_type = headers["content-type"].to_str().unwrap().to_owned();
    // The rows are read from what the test holds: what came was sent before them.
    eventually(&format!("{path}: its rows wait for the lock"), || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid)))",
        )
        .bind(holder)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    lock.commit().await.unwrap();
    let body = tokio::time::timeout(wait, response.bytes())
        .await
        .unwrap_or_else(|_| panic!("{path}: the rows did not follow the release"))
        .unwrap();
    (content_type, body.to_vec())
}

/// Splits CSV into rows of fields (quotes and doubled quotes handled).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field, mut quoted, mut chars) = (Vec::new(), String::new(), false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn accounts_export_as_csv_with_the_list_filters_and_no_formulas() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let viewer = app.user(Role::Viewer).await;
    for (name, status) in [
        ("=HYPERLINK(\"http://evil\")", "delinquent"),
        ("Plain, Person", "delinquent"),
        ("Other Person", "active"),
    ] {
        let body = json!({"debtor_name": name, "original_balance": "10.50", "currency": "USD", "status": status, "tags": ["b", "a"]});
        let (code, _) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await).await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let (status, content_type, disposition, body) =
        download(&app, &viewer.token, "/api/v1/accounts/export?format=csv&status=delinquent").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert!(disposition.starts_with("attachment; filename=\"accounts-") && disposition.ends_with(".csv\""));
    let rows = parse_csv(&String::from_utf8(body).unwrap());
    assert_eq!(rows[0], ACCOUNT_COLUMNS.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>());
    assert_eq!(rows.len(), 3, "the header and the two delinquent accounts");
    let column = |name: &str| ACCOUNT_COLUMNS.iter().position(|c| *c == name).unwrap();
    let mut names: Vec<&str> = rows[1..].iter().map(|r| r[column("debtor_name")].as_str()).collect();
    names.sort();
    assert_eq!(names, ["'=HYPERLINK(\"http://evil\")", "Plain, Person"], "a formula is neutralised");
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[column("current_balance")] == "10.50" && r[column("tags")] == "a;b")
    );
}

#[tokio::test]
async fn xlsx_and_payment_exports_stream_and_bad_formats_are_refused() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let account = app.account(&manager.token, json!({"debtor_name": "@SUM(A1)"})).await;
    let id = account["id"].as_str().unwrap();
    for (amount, status) in [("10.00", "completed"), ("5.00", "pending")] {
        let body = json!({"amount": amount, "currency": "USD", "method": "cash", "status": status, "reference": "-1+1"});
        let (code, _) = status_json(
            app.post(
                &format!("/api/v1/accounts/{id}/payments?wait_for=indexed"),
                Some(&manager.token),
                &body,
            )
            .await,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
    }
    let (content_type, body) = streamed(&app, &manager.token, "/api/v1/accounts/export?format=xlsx").await;
    assert_eq!(content_type, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    let rows = read_xlsx(&body);
    assert_eq!(rows.len(), 1, "the one account");
    assert_eq!(rows[0]["debtor_name"], calamine::Data::String("@SUM(A1)".to_owned()));

    let (content_type, body) = streamed(&app, &manager.token, "/api/v1/payments/export?status=completed").await;
    assert_eq!(content_type, "text/csv; charset=utf-8");
    let rows = parse_csv(&String::from_utf8(body).unwrap());
    assert_eq!(rows.len(), 2, "the header and the completed payment");
    assert_eq!(rows[1][3], "'@SUM(A1)");
    assert_eq!(
        (rows[1][4].as_str(), rows[1][7].as_str(), rows[1][8].as_str()),
        ("10.00", "completed", "'-1+1")
    );

    let response = app.get("/api/v1/accounts/export?format=pdf", &manager.token).await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
    assert_eq!(error_fields(&problem), ["format"]);
    let response = app.get("/api/v1/payments/export?sort=colour", &manager.token).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_parameter").await;
}

#[tokio::test]
async fn the_cli_exports_to_a_file_with_the_same_filters() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    for (name, status) in [("Cli Delinquent", "delinquent"), ("Cli Active", "active")] {
        let body = json!({"debtor_name": name, "original_balance": "1.00", "currency": "USD", "status": status});
        let (code, _) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await).await;
        assert_eq!(code, StatusCode::CREATED);
    }
    // The data directory holds the embedded index; on Elasticsearch it may not exist yet.
    std::fs::create_dir_all(&app.settings.data_dir).unwrap();
    let out = app.settings.data_dir.join("export.csv");
    arrears::cli::ops::export(
        app.settings.clone(),
        arrears::cli::ExportEntity::Accounts,
        arrears::service::exports::Format::Csv,
        &out,
        "status=delinquent",
    )
    .await
    .unwrap();
    let rows = parse_csv(&std::fs::read_to_string(&out).unwrap());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1][2], "Cli Delinquent");
    let bad = arrears::cli::ops::export(
        app.settings.clone(),
        arrears::cli::ExportEntity::Accounts,
        arrears::service::exports::Format::Csv,
        &out,
        "sort=colour",
    )
    .await;
    assert!(bad.unwrap_err().to_string().contains("sort"));
}

/// The first sheet of an xlsx, read by calamine: each row's cells as a spreadsheet holds
/// them (text, number, bool), keyed by the header.
pub(crate) fn read_xlsx(bytes: &[u8]) -> Vec<std::collections::HashMap<String, calamine::Data>> {
    use calamine::{Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let name = book.sheet_names()[0].clone();
    let range = book.worksheet_range(&name).unwrap();
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    rows.map(|row| header.iter().cloned().zip(row.iter().cloned()).collect()).collect()
}

#[tokio::test]
async fn xlsx_text_cells_hold_the_text_exactly_and_name_the_agent() {
    let app = spawn_app().await;
    let manager = app.user(Role::Manager).await;
    let agent = app.user(Role::Agent).await;
    let agent_name: String = app.sql_value("SELECT name FROM users WHERE id = $1", &agent.id.to_string()).await;
    let mut created = Vec::new();
    for body in [
        json!({"debtor_name": "=1+1 Trading", "phone": "+1 415 555 0123", "assigned_agent_id": agent.id, "status": "delinquent"}),
        json!({"debtor_name": "Nobody's", "phone": "+1 201 555 0134"}),
    ] {
        let mut body = body;
        body["original_balance"] = json!("1250.00");
        body["currency"] = json!("USD");
        let (code, account) = status_json(app.post("/api/v1/accounts?wait_for=indexed", Some(&manager.token), &body).await).await;
        assert_eq!(code, StatusCode::CREATED, "{account}");
        created.push(account);
    }
    let account = &created[0];

    let (status, _, _, body) = download(&app, &manager.token, "/api/v1/accounts/export?format=xlsx").await;
    assert_eq!(status, StatusCode::OK);
    let rows = read_xlsx(&body);
    let row = rows
        .iter()
        .find(|r| r["id"] == calamine::Data::String(id_of(account)))
        .expect("the assigned account is exported");
    let text = |value: &str| calamine::Data::String(value.to_owned());
    assert_eq!(
        row["phone"],
        text("+14155550123"),
        "a phone number is a text cell with no apostrophe"
    );
    assert_eq!(
        row["debtor_name"],
        text("=1+1 Trading"),
        "text that looks like a formula is kept as typed"
    );
    assert_eq!(row["assigned_agent_name"], text(&agent_name));
    assert_eq!(
        row["assigned_agent_id"],
        text(&agent.id.to_string()),
        "the id stays: imports resolve agents by it"
    );
    assert_eq!(row["current_balance"], calamine::Data::Float(1250.0));
    let unassigned = rows.iter().find(|r| r["debtor_name"] == text("Nobody's")).unwrap();
    assert_eq!(unassigned["assigned_agent_name"], calamine::Data::Empty);

    let (_, _, _, csv) = download(&app, &manager.token, "/api/v1/accounts/export?format=csv&status=delinquent").await;
    let csv = parse_csv(&String::from_utf8(csv).unwrap());
    let column = |name: &str| ACCOUNT_COLUMNS.iter().position(|c| *c == name).unwrap();
    assert_eq!(csv[1][column("phone")], "'+14155550123", "CSV keeps its formula guard");
    assert_eq!(csv[1][column("assigned_agent_name")], agent_name);
}
