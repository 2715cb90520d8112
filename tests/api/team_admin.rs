//! Issue 48: managers manage the agents of their team, admins delete users (anonymised,
//! id kept), an agent's open accounts move to another, and the sign-in options.

use arrears::domain::principal::Principal;
use arrears::domain::role::Role;
use arrears::jobs::bulk_update;
use arrears::store::jobs;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    PASSWORD, TestApp, TestUser, assert_problem, error_fields, eventually, fresh_pool, spawn_app, spawn_app_with, status_json,
};

/// Sets `user`'s team as `admin`.
async fn set_team(app: &TestApp, admin: &TestUser, user: Uuid, team: &str) {
    let response = app
        .patch(&format!("/api/v1/users/{user}"), &admin.token, &json!({"team": team}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// A manager of `team`.
async fn manager_of(app: &TestApp, admin: &TestUser, team: &str) -> TestUser {
    let manager = app.user(Role::Manager).await;
    set_team(app, admin, manager.id, team).await;
    manager
}

/// An agent created by `admin` in `team`: their id.
async fn agent_in(app: &TestApp, admin: &TestUser, team: &str) -> String {
    let body = json!({"email": format!("{}@example.com", Uuid::new_v4().simple()), "name": format!("Agent of {team}"),
        "role": "agent", "password": PASSWORD, "team": team});
    app.create(&admin.token, "/api/v1/users", &body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `count` accounts assigned to `agent`, straight into SQL, with `status`.
async fn accounts_of(app: &TestApp, agent: &str, count: i32, status: &str) -> Vec<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, assigned_agent_id, status)
         SELECT gen_random_uuid(), 'MOVE-' || g || '-' || substr(md5(random()::text), 1, 8), 'Moved Person ' || g, 100, 100, 'USD', $2, $3
         FROM generate_series(1, $1) g RETURNING id",
    )
    .bind(count)
    .bind(Uuid::parse_str(agent).unwrap())
    .bind(status)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn assigned_to(app: &TestApp, agent: &str) -> i64 {
    app.sql_value("SELECT count(*) FROM accounts WHERE assigned_agent_id = $1", agent)
        .await
}

async fn refused(response: reqwest::Response, status: StatusCode, code: &str, says: &str) {
    let problem = assert_problem(response, status, code).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail:?} should say {says:?}");
}

fn new_agent(team: Option<&str>) -> Value {
    let mut body = json!({"email": format!("{}@example.com", Uuid::new_v4().simple()), "name": "New Agent",
        "role": "agent", "password": PASSWORD});
    if let Some(team) = team {
        body["team"] = json!(team);
    }
    body
}

#[tokio::test]
async fn managers_create_disable_and_list_only_the_agents_of_their_team() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = manager_of(&app, &admin, "North").await;

    let created = app.create(&manager.token, "/api/v1/users", &new_agent(None)).await;
    assert_eq!(
        (created["role"].as_str(), created["team"].as_str()),
        (Some("agent"), Some("North")),
        "the team is forced"
    );
    let named = app.create(&manager.token, "/api/v1/users", &new_agent(Some(" North "))).await;
    assert_eq!(named["team"], "North");
    let agent = created["id"].as_str().unwrap();

    let mut manager_body = new_agent(None);
    manager_body["role"] = json!("manager");
    refused(
        app.post("/api/v1/users", Some(&manager.token), &manager_body).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "agents only",
    )
    .await;
    refused(
        app.post("/api/v1/users", Some(&manager.token), &new_agent(Some("South"))).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "own team (North)",
    )
    .await;

    let path = format!("/api/v1/users/{agent}");
    let (status, disabled) = status_json(app.patch(&path, &manager.token, &json!({"disabled": true})).await).await;
    assert_eq!((status, disabled["disabled"].as_bool()), (StatusCode::OK, Some(true)), "{disabled}");
    let (status, enabled) = status_json(app.patch(&path, &manager.token, &json!({"disabled": false})).await).await;
    assert_eq!((status, enabled["disabled"].as_bool()), (StatusCode::OK, Some(false)), "{enabled}");
    refused(
        app.patch(&path, &manager.token, &json!({"role": "viewer"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "roles",
    )
    .await;
    refused(
        app.patch(&path, &manager.token, &json!({"team": "South"})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "out of their team",
    )
    .await;
    refused(
        app.patch(&path, &manager.token, &json!({"team": null})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "out of their team",
    )
    .await;

    // Agents of another team, a manager of the same team and an admin are not theirs.
    let southern = agent_in(&app, &admin, "South").await;
    let colleague = manager_of(&app, &admin, "North").await;
    for other in [southern.clone(), colleague.id.to_string(), admin.id.to_string()] {
        let response = app
            .patch(&format!("/api/v1/users/{other}"), &manager.token, &json!({"disabled": true}))
            .await;
        refused(response, StatusCode::FORBIDDEN, "forbidden", "only the agents of their own team").await;
    }
    assert!(
        !app.sql_value::<bool>("SELECT disabled FROM users WHERE id = $1", &southern).await,
        "the other team's agent is untouched"
    );

    let (status, page) = status_json(app.get("/api/v1/users?page_size=200", &manager.token).await).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let teams: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["team"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["North"; 4], "the manager, the colleague and two agents: {page}");
    assert_eq!(page["total"], 4);
    let (_, all) = status_json(app.get("/api/v1/users?page_size=200", &admin.token).await).await;
    assert_eq!(all["total"], 6, "admins see everyone");

    // A manager without a team manages no one; agents and viewers manage nobody either.
    let teamless = app.user(Role::Manager).await;
    refused(
        app.get("/api/v1/users", &teamless.token).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "no team",
    )
    .await;
    refused(
        app.post("/api/v1/users", Some(&teamless.token), &new_agent(None)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "no team",
    )
    .await;
    refused(
        app.patch(&path, &teamless.token, &json!({"disabled": true})).await,
        StatusCode::FORBIDDEN,
        "forbidden",
        "no team",
    )
    .await;
    for role in [Role::Agent, Role::Viewer] {
        let user = app.user(role).await;
        set_team(&app, &admin, user.id, "North").await;
        assert_problem(app.get("/api/v1/users", &user.token).await, StatusCode::FORBIDDEN, "forbidden").await;
        assert_problem(
            app.post("/api/v1/users", Some(&user.token), &new_agent(None)).await,
            StatusCode::FORBIDDEN,
            "forbidden",
        )
        .await;
    }
}

#[tokio::test]
async fn deleting_a_user_anonymises_them_keeps_the_id_and_waits_for_their_accounts_to_move() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let body = json!({"email": "leaving@example.com", "name": "Lea Leaving", "role": "agent", "password": PASSWORD, "team": "North"});
    let leaving = app.create(&admin.token, "/api/v1/users", &body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, tokens) = app.login("leaving@example.com", PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let staying = agent_in(&app, &admin, "North").await;
    accounts_of(&app, &leaving, 2, "delinquent").await;
    let closed = accounts_of(&app, &leaving, 1, "closed").await;
    let path = format!("/api/v1/users/{leaving}");

    let problem = assert_problem(app.delete(&path, &admin.token).await, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(problem["assigned_accounts"], 2, "closed accounts do not count: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("/accounts/move"), "{problem}");
    assert_eq!(app.get("/api/v1/auth/me", token).await.status(), StatusCode::OK, "nothing changed");

    let moved = app
        .post(&format!("{path}/accounts/move"), Some(&admin.token), &json!({"to": staying}))
        .await;
    assert_eq!(status_json(moved).await, (StatusCode::OK, json!({"moved": 2})));

    let manager = manager_of(&app, &admin, "North").await;
    assert_problem(app.delete(&path, &manager.token).await, StatusCode::FORBIDDEN, "forbidden").await;
    refused(
        app.delete(&format!("/api/v1/users/{}", admin.id), &admin.token).await,
        StatusCode::CONFLICT,
        "conflict",
        "yourself",
    )
    .await;
    assert_problem(
        app.delete(&format!("/api/v1/users/{}", Uuid::now_v7()), &admin.token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let (status, deleted) = status_json(app.delete(&path, &admin.token).await).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["id"], leaving.as_str(), "the id stays");
    assert_eq!(deleted["name"], format!("Deleted user {}", &leaving.replace('-', "")[..8]));
    let email = deleted["email"].as_str().unwrap();
    assert!(email.ends_with("@deleted.invalid") && email.contains(&leaving), "{email}");
    assert_eq!(
        (deleted["disabled"].as_bool(), deleted["deleted_at"].is_string()),
        (Some(true), true)
    );
    let history: Uuid = sqlx::query_scalar("SELECT assigned_agent_id FROM accounts WHERE id = $1")
        .bind(closed[0])
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(history.to_string(), leaving, "a closed account still names who worked it");
    assert_eq!(
        app.sql_value::<String>("SELECT password_hash FROM users WHERE id = $1", &leaving)
            .await,
        "!deleted"
    );

    // Sessions are gone; neither the old email nor the placeholder signs in.
    assert_problem(app.get("/api/v1/auth/me", token).await, StatusCode::UNAUTHORIZED, "unauthorized").await;
    let refresh = app
        .post("/api/v1/auth/refresh", None, &json!({"refresh_token": tokens["refresh_token"]}))
        .await;
    assert_problem(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    for email in ["leaving@example.com", email] {
        assert_eq!(app.login(email, PASSWORD).await.0, StatusCode::UNAUTHORIZED);
    }

    refused(
        app.patch(&path, &admin.token, &json!({"disabled": false})).await,
        StatusCode::CONFLICT,
        "conflict",
        "deleted",
    )
    .await;
    refused(
        app.delete(&path, &admin.token).await,
        StatusCode::CONFLICT,
        "conflict",
        "already deleted",
    )
    .await;
    let reenabled = sqlx::query("UPDATE users SET disabled = false WHERE id = $1")
        .bind(Uuid::parse_str(&leaving).unwrap())
        .execute(&app.pool)
        .await;
    assert!(reenabled.is_err(), "the database keeps a deleted user disabled");

    // Pickers never offer them; a lookup by id (an account's history) still names them.
    for query in [
        "page_size=200",
        "page_size=200&include_disabled=true",
        "include_disabled=true&q=deleted",
    ] {
        let (_, page) = status_json(app.get(&format!("/api/v1/agents?{query}"), &admin.token).await).await;
        assert!(
            page["data"].as_array().unwrap().iter().all(|p| p["id"] != leaving.as_str()),
            "{query}: {page}"
        );
    }
    let (_, named) = status_json(
        app.get(&format!("/api/v1/agents?id={leaving}&include_disabled=true"), &admin.token)
            .await,
    )
    .await;
    assert_eq!(named["data"][0]["name"], deleted["name"]);

    // The address is free again.
    let again = json!({"email": "leaving@example.com", "name": "Lea Back", "role": "agent", "password": PASSWORD});
    app.create(&admin.token, "/api/v1/users", &again).await;
}

#[tokio::test]
async fn moving_accounts_stays_within_the_managers_team_and_needs_an_active_receiver() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = manager_of(&app, &admin, "North").await;
    let (from, to) = (agent_in(&app, &admin, "North").await, agent_in(&app, &admin, "North").await);
    let southern = agent_in(&app, &admin, "South").await;
    let disabled = agent_in(&app, &admin, "North").await;
    let response = app
        .patch(&format!("/api/v1/users/{disabled}"), &admin.token, &json!({"disabled": true}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let viewer = app.user(Role::Viewer).await;
    accounts_of(&app, &from, 3, "active").await;
    accounts_of(&app, &from, 1, "paid").await;
    accounts_of(&app, &southern, 1, "active").await;
    let move_from = |user: &str| format!("/api/v1/users/{user}/accounts/move");

    for (source, receiver, says) in [
        (&from, &southern, "the user who would receive them"),
        (&southern, &to, "the user whose accounts would move"),
        (&from, &admin.id.to_string(), "the user who would receive them"),
    ] {
        let response = app.post(&move_from(source), Some(&manager.token), &json!({"to": receiver})).await;
        refused(response, StatusCode::FORBIDDEN, "forbidden", says).await;
    }
    for receiver in [disabled.clone(), from.clone(), Uuid::now_v7().to_string(), viewer.id.to_string()] {
        let response = app.post(&move_from(&from), Some(&admin.token), &json!({"to": receiver})).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
        assert_eq!(error_fields(&problem), ["to"], "{problem}");
    }
    for user in [app.user(Role::Agent).await, app.user(Role::Manager).await] {
        let response = app.post(&move_from(&from), Some(&user.token), &json!({"to": to})).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let unknown = app
        .post(&move_from(&Uuid::now_v7().to_string()), Some(&admin.token), &json!({"to": to}))
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(assigned_to(&app, &from).await, 4, "nothing moved yet");

    let moved = app.post(&move_from(&from), Some(&manager.token), &json!({"to": to})).await;
    assert_eq!(status_json(moved).await, (StatusCode::OK, json!({"moved": 3})));
    assert_eq!(
        (assigned_to(&app, &from).await, assigned_to(&app, &to).await),
        (1, 3),
        "the paid account stays"
    );

    // Admins move across teams; a deleted receiver is refused.
    let moved = app.post(&move_from(&to), Some(&admin.token), &json!({"to": southern})).await;
    assert_eq!(status_json(moved).await, (StatusCode::OK, json!({"moved": 3})));
    assert_eq!(
        app.delete(&format!("/api/v1/users/{to}"), &admin.token).await.status(),
        StatusCode::OK
    );
    let response = app.post(&move_from(&southern), Some(&admin.token), &json!({"to": to})).await;
    let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    assert_eq!(error_fields(&problem), ["to"]);
}

#[tokio::test]
async fn a_large_move_runs_as_a_bulk_update_job() {
    let app = spawn_app().await;
    let admin = app.user(Role::Admin).await;
    let manager = manager_of(&app, &admin, "North").await;
    let (from, to) = (agent_in(&app, &admin, "North").await, agent_in(&app, &admin, "North").await);
    let count = arrears::service::users::MOVE_NOW_MAX as i32 + 1;
    accounts_of(&app, &from, count, "active").await;

    let (status, job) = status_json(
        app.post(
            &format!("/api/v1/users/{from}/accounts/move"),
            Some(&manager.token),
            &json!({"to": to}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(
        (job["kind"].as_str(), job["total"].as_i64()),
        (Some("bulk_update"), Some(count as i64))
    );
    let path = format!("/api/v1/jobs/{}", job["id"].as_str().unwrap());
    eventually("the move finishes", || async {
        status_json(app.get(&path, &manager.token).await).await.1["finished_at"].is_string()
    })
    .await;
    let (_, job) = status_json(app.get(&path, &manager.token).await).await;
    assert_eq!(
        (job["succeeded"].as_i64(), job["failed"].as_i64()),
        (Some(count as i64), Some(0)),
        "{job}"
    );
    assert_eq!((assigned_to(&app, &from).await, assigned_to(&app, &to).await), (0, count as i64));
}

#[tokio::test]
async fn a_queued_move_leaves_an_account_reassigned_meanwhile_where_it_went() {
    let pool = fresh_pool().await;
    let user = |email: &'static str, role: Role| {
        let pool = pool.clone();
        async move { arrears::store::users::insert(&pool, email, email, role, "x").await.unwrap().id }
    };
    let (admin, from, to, other) = (
        user("admin@example.com", Role::Admin).await,
        user("from@example.com", Role::Agent).await,
        user("to@example.com", Role::Agent).await,
        user("other@example.com", Role::Agent).await,
    );
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency, assigned_agent_id)
         SELECT gen_random_uuid(), 'RACE-' || g, 'Race Person ' || g, 100, 100, 'USD', $1 FROM generate_series(1, 3) g RETURNING id",
    )
    .bind(from)
    .fetch_all(&pool)
    .await
    .unwrap();
    let caller = Principal {
        user_id: admin,
        session_id: Uuid::now_v7(),
        email: "admin@example.com".into(),
        name: "Admin".into(),
        role: Role::Admin,
    };
    let job = arrears::service::jobs::queue_move(&pool, &caller, from, to, &ids).await.unwrap();
    sqlx::query("UPDATE accounts SET assigned_agent_id = $2 WHERE id = $1")
        .bind(ids[0])
        .bind(other)
        .execute(&pool)
        .await
        .unwrap();
    let params = serde_json::from_value(job.params.0.clone()).unwrap();
    assert_eq!(jobs::claim(&pool).await.unwrap().map(|j| j.id), Some(job.id));
    assert_eq!(bulk_update::run_chunk(&pool, job.id, &params).await.unwrap(), 3);
    let owners: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT id, assigned_agent_id FROM accounts WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(&pool)
        .await
        .unwrap();
    for (id, owner) in owners {
        assert_eq!(owner, if id == ids[0] { other } else { to }, "{id}");
    }
    let failures = jobs::failures(&pool, job.id, None, None, 10).await.unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].1, ids[0]);
    assert!(failures[0].2.contains("no longer assigned"), "{failures:?}");
}

#[tokio::test]
async fn the_sign_in_options_say_whether_registration_is_open() {
    for open in [false, true] {
        let app = spawn_app_with(|s| s.allow_registration = open).await;
        let response = app
            .request(reqwest::Method::GET, "/api/v1/auth/options", None)
            .send()
            .await
            .unwrap();
        assert_eq!(status_json(response).await, (StatusCode::OK, json!({"registration": open})));
    }
}
