//! `arrears seed` as a newcomer runs it: the sign-in it prints works, the accounts have
//! timelines that agree with their status, and the KPIs credit the seeded agents.

use std::collections::HashMap;

use serde_json::Value;

use crate::helpers::{Arrears, TestApp, spawn_app_with, status_json, test_settings};

/// The service a newcomer starts after seeding with `settings`: the seed's database and
/// index (the embedded one in the data dir, or the seed's indices on the test cluster).
async fn serving(settings: &arrears::config::Settings) -> TestApp {
    spawn_app_with(|s| {
        s.database_url = settings.database_url.clone();
        s.data_dir = settings.data_dir.clone();
        s.elasticsearch_index_prefix = settings.elasticsearch_index_prefix.clone();
    })
    .await
}

/// A row of the printed sign-in table: (role, email, accounts for an agent).
type SignIn = (String, String, Option<i64>);

/// The password and the rows of the sign-in table `seed` printed.
fn sign_in(printed: &str) -> (String, Vec<SignIn>) {
    let intro = printed
        .lines()
        .find(|line| line.starts_with("Sign in at "))
        .unwrap_or_else(|| panic!("seed says how to sign in:\n{printed}"));
    let password = intro
        .rsplit_once("with the password ")
        .map(|(_, p)| p.trim_end_matches(':').to_owned())
        .expect("the password is printed");
    let rows = printed
        .lines()
        .skip_while(|line| !line.trim_start().starts_with("role"))
        .skip(1)
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].to_owned(), cells[1].to_owned(), cells.get(2).map(|n| n.parse().unwrap()))
        })
        .collect();
    (password, rows)
}

#[tokio::test]
async fn a_newcomer_signs_in_as_the_printed_users_and_finds_timelines_and_credited_agents() {
    let settings = test_settings();
    let seed = ["seed", "--accounts", "60", "--payments", "90", "--agents", "2"];
    let printed = Arrears::run(&seed, &settings, &[("BIND", "127.0.0.1:8123")]);
    assert!(
        printed.contains("Sign in at http://127.0.0.1:8123/ "),
        "the console's address:\n{printed}"
    );
    let (password, users) = sign_in(&printed);
    assert_eq!(password, arrears::seed::DEMO_PASSWORD);
    let roles: Vec<&str> = users.iter().map(|(role, _, _)| role.as_str()).collect();
    assert_eq!(roles, ["manager", "viewer", "agent", "agent"], "{printed}");
    let first: i64 = users.iter().filter_map(|(_, _, n)| *n).sum();
    assert!(first > 0, "the agents own accounts");

    // Seeding again adds accounts to the same users.
    let again = sign_in(&Arrears::run(&seed, &settings, &[])).1;
    let emails = |rows: &[SignIn]| rows.iter().map(|(_, e, _)| e.clone()).collect::<Vec<_>>();
    assert_eq!(emails(&again), emails(&users), "the same users");
    assert!(
        again.iter().filter_map(|(_, _, n)| *n).sum::<i64>() > first,
        "the agents own the new accounts too"
    );

    let app = serving(&settings).await;
    let mut tokens = HashMap::new();
    for (role, email, _) in &users {
        let (status, body) = app.login(email, &password).await;
        assert_eq!(status, 200, "{role} {email} signs in with the printed password: {body}");
        tokens.insert(email.clone(), body["access_token"].as_str().unwrap().to_owned());
    }
    let manager = &tokens[&users[0].1];

    let get = |path: String| {
        let app = &app;
        async move {
            let (status, body) = status_json(app.get(&path, manager).await).await;
            assert_eq!(status, 200, "GET {path}: {body}");
            body
        }
    };
    // The manager manages the seeded agents: they are in the manager's team.
    let team = get("/api/v1/users?page_size=50".to_owned()).await;
    let listed: Vec<&str> = team["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    for (role, email, _) in users.iter().filter(|(role, _, _)| role == "agent") {
        assert!(listed.contains(&email.as_str()), "{role} {email} in the manager's team: {team}");
    }
    let promised = get("/api/v1/accounts?status=promise_to_pay&page_size=100".to_owned()).await;
    let promised = promised["data"].as_array().unwrap();
    assert!(!promised.is_empty(), "some accounts are promise_to_pay");
    for account in promised {
        let id = account["id"].as_str().unwrap();
        let promises = get(format!("/api/v1/accounts/{id}/promises")).await;
        let open: Vec<&Value> = promises["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "open")
            .collect();
        assert_eq!(open.len(), 1, "a promise_to_pay account has its open promise: {promises}");
        let timeline = get(format!("/api/v1/accounts/{id}/activities")).await;
        let calls = timeline["data"].as_array().unwrap();
        assert!(
            calls.iter().any(|a| a["type"] == "call" && a["outcome"] == "promise_to_pay"),
            "the call that made the promise is in the timeline: {timeline}"
        );
    }
    let counts: Vec<(String, i64)> = sqlx::query_as("SELECT status, count(*) FROM promises GROUP BY status ORDER BY status")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let statuses: Vec<&str> = counts.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(statuses, ["broken", "kept", "open"], "promises kept, broken and open");

    let snapshot: i64 = sqlx::query_scalar("SELECT count(*) FROM account_day_snapshots WHERE day = (now() AT TIME ZONE 'UTC')::date")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(snapshot, 120, "today's KPI snapshot holds the accounts of both runs");
    let report = get("/api/v1/kpis?group_by=agent".to_owned()).await;
    let agents: Vec<String> = sqlx::query_scalar("SELECT id::text FROM users WHERE role = 'agent'")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let groups = report["groups"].as_array().unwrap();
    for agent in &agents {
        let group = groups
            .iter()
            .find(|g| g["key"] == agent.as_str())
            .unwrap_or_else(|| panic!("agent {agent} has figures: {report}"));
        assert!(group["contact_attempts"].as_i64().unwrap() > 0, "{group}");
    }
    let made_by_agents: i64 = groups
        .iter()
        .filter(|g| agents.iter().any(|a| g["key"] == a.as_str()))
        .map(|g| g["promises_made"].as_i64().unwrap())
        .sum();
    assert_eq!(
        made_by_agents,
        report["total"]["promises_made"].as_i64().unwrap(),
        "the agents made every promise"
    );
    assert!(made_by_agents > 0, "promises were made in the period: {report}");
}

/// Past 10,000 matches the account list counts to the bound and says so, unless asked for
/// an exact total; facets still count every match, a narrower search counts exactly, and
/// a bulk update by the same filter acts on every match.
#[tokio::test]
async fn lists_past_ten_thousand_matches_count_to_the_bound_unless_asked() {
    let settings = test_settings();
    Arrears::run(&["seed", "--accounts", "10050", "--agents", "2"], &settings, &[]);
    let app = serving(&settings).await;
    let manager = app.user(arrears::domain::role::Role::Manager).await;
    let get = |query: &'static str| {
        let app = &app;
        let token = manager.token.clone();
        async move {
            let (status, body) = status_json(app.get(&format!("/api/v1/accounts?{query}"), &token).await).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };
    let every: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE deleted_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(every, 10_050);
    let bounded = get("page_size=5").await;
    assert_eq!(
        (&bounded["total"], &bounded["total_is_lower_bound"]),
        (&10_000.into(), &true.into()),
        "{bounded}"
    );
    assert_eq!(bounded["data"].as_array().unwrap().len(), 5);
    let exact = get("page_size=5&exact_total=true").await;
    assert_eq!((&exact["total"], &exact["total_is_lower_bound"]), (&every.into(), &false.into()));
    let faceted = get("page_size=0&facets=status").await;
    assert_eq!(faceted["total_is_lower_bound"], true);
    let counted: i64 = faceted["facets"]["status"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, every, "the facets count every match: {faceted}");
    let delinquent: i64 = sqlx::query_scalar("SELECT count(*) FROM accounts WHERE status = 'delinquent' AND deleted_at IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(delinquent < 10_000, "{delinquent}");
    let narrower = get("status=delinquent&page_size=1").await;
    assert_eq!(
        (&narrower["total"], &narrower["total_is_lower_bound"]),
        (&delinquent.into(), &false.into())
    );
    let (status, refused) = status_json(app.get("/api/v1/accounts?exact_total=maybe", &manager.token).await).await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "exact_total", "{refused}");

    // A bulk update of the bounded list's filter acts on every match.
    let response = app
        .post(
            "/api/v1/accounts/bulk-update",
            Some(&manager.token),
            &serde_json::json!({"filter": {}, "patch": {"tags_add": ["counted"]}}),
        )
        .await;
    let (status, job) = status_json(response).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["total"], every, "the job says how many before it starts: {job}");
}
