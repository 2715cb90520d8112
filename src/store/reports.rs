//! The reporting documents as the reporting indices hold them: activities with their
//! messages, promises and plans built from their rows in one statement each, versioned
//! in `report_versions` (migration 0052); the KPI days as `kpi_documents` keeps them,
//! built and versioned there when a day's figures are kept (migration 0053).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::kpis::attempt_and_right_party;
use crate::domain::document::{Entity, ReportDoc};
use crate::error::Result;

/// The table of a reporting entity's rows.
fn table(entity: Entity) -> &'static str {
    match entity {
        Entity::Activity => "activities",
        Entity::Promise => "promises",
        Entity::Plan => "plans",
        Entity::KpiDay => "kpi_documents",
        Entity::Account | Entity::Payment => unreachable!("{} is not a reporting entity", entity.as_str()),
    }
}

/// The entities whose rows are the documents' (the KPI days' are built from figures).
const ROW_ENTITIES: [Entity; 3] = [Entity::Activity, Entity::Promise, Entity::Plan];

/// Who the document names (the agent who logged or made it) and where its account
/// belongs, as of now.
const AGENT: &str = "CASE WHEN u.id IS NULL THEN NULL ELSE jsonb_build_object('id', u.id, 'name', u.name, 'team', u.team) END";
const PORTFOLIO: &str = "CASE WHEN p.id IS NULL THEN NULL ELSE jsonb_build_object('id', p.id, 'name', p.name) END";

/// An activity's fields: its kind and outcome, whether the KPIs count it as a contact
/// attempt and as a right-party contact (`k`), its hour and ISO weekday in the debtor's
/// zone, and its message's channel and delivery (`m`; never the text or recipient).
const ACTIVITY_FIELDS: &str = "'type', r.type, 'direction', r.direction, 'outcome', r.outcome,
    'contact_attempt', k.attempt, 'right_party_contact', k.attempt AND k.right_party,
    'occurred_at', r.occurred_at, 'created_at', r.created_at,
    'local_hour', extract(hour FROM r.occurred_at AT TIME ZONE acc.timezone)::int,
    'local_weekday', extract(isodow FROM r.occurred_at AT TIME ZONE acc.timezone)::int,
    'message', CASE WHEN m.id IS NULL THEN NULL ELSE jsonb_build_object(
        'channel', m.channel, 'status', m.status, 'attempts', m.attempts, 'provider', m.provider,
        'template_id', m.template_id, 'sent_at', m.sent_at, 'failed_at', m.failed_at) END";
const PROMISE_FIELDS: &str = "'amount', r.amount, 'currency', acc.currency, 'due_date', r.due_date,
    'status', r.status, 'created_at', r.created_at, 'resolved_at', r.resolved_at";
const PLAN_FIELDS: &str = "'total', r.total, 'currency', acc.currency, 'frequency', r.frequency,
    'first_due_date', r.first_due_date,
    'instalments', (SELECT count(*) FROM plan_instalments i WHERE i.plan_id = r.id),
    'status', r.status, 'created_at', r.created_at, 'resolved_at', r.resolved_at";

/// What an activity's fields join: its message, and the KPIs' definitions over its row.
fn activity_joins() -> String {
    let (attempt, right_party) = attempt_and_right_party();
    format!(
        "LEFT JOIN account_messages m ON m.activity_id = r.id
         CROSS JOIN LATERAL (SELECT coalesce({attempt}, false) AS attempt, coalesce({right_party}, false) AS right_party
                             FROM (SELECT r.type, r.direction, r.outcome) AS x) AS k"
    )
}

/// `SELECT id, version, source` of the entity's rows that `rows` (an SQL subquery
/// over the entity's table, aliased `r`) selects, in id order.
fn select(entity: Entity, rows: &str) -> String {
    if entity == Entity::KpiDay {
        return format!(
            "SELECT r.id, r.version, r.source || jsonb_build_object('id', r.id, 'search_version', r.version)
             FROM ({rows}) AS r ORDER BY r.id"
        );
    }
    let (agent_column, fields, joins) = match entity {
        Entity::Activity => ("agent_id", ACTIVITY_FIELDS, activity_joins()),
        Entity::Promise => ("created_by", PROMISE_FIELDS, String::new()),
        Entity::Plan => ("created_by", PLAN_FIELDS, String::new()),
        Entity::KpiDay | Entity::Account | Entity::Payment => unreachable!("{} is not a row entity", entity.as_str()),
    };
    format!(
        "SELECT r.id, v.version, jsonb_build_object(
             'id', r.id, 'account_id', r.account_id, 'account_number', acc.account_number,
             'account_deleted', acc.deleted_at IS NOT NULL, 'portfolio', {PORTFOLIO}, 'agent', {AGENT},
             'search_version', v.version, {fields}) AS source
         FROM ({rows}) AS r
         JOIN report_versions v ON v.entity = '{kind}' AND v.entity_id = r.id
         JOIN accounts acc ON acc.id = r.account_id
         LEFT JOIN users u ON u.id = r.{agent_column}
         LEFT JOIN portfolios p ON p.id = acc.portfolio_id
         {joins}
         ORDER BY r.id",
        kind = entity.as_str(),
    )
}

type Row = (Uuid, i64, sqlx::types::Json<serde_json::Value>);

fn into_docs(entity: Entity, rows: Vec<Row>) -> Vec<ReportDoc> {
    rows.into_iter()
        .map(|(id, search_version, source)| ReportDoc {
            entity,
            id,
            search_version,
            source: source.0,
        })
        .collect()
}

/// The documents of the rows with these ids that exist (the others were purged).
pub async fn documents(conn: &mut PgConnection, entity: Entity, ids: &[Uuid]) -> Result<Vec<ReportDoc>> {
    let rows = format!("SELECT * FROM {} WHERE id = ANY($1)", table(entity));
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(select(entity, &rows)))
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(into_docs(entity, rows))
}

/// The next `limit` documents after `after` and up to `last` in id order.
pub async fn page_by_id(pool: &PgPool, entity: Entity, after: Option<Uuid>, last: Uuid, limit: i64) -> Result<Vec<ReportDoc>> {
    let rows = format!(
        "SELECT * FROM {} WHERE ($1::uuid IS NULL OR id > $1) AND id <= $2 ORDER BY id LIMIT $3",
        table(entity)
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(select(entity, &rows)))
        .bind(after)
        .bind(last)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(into_docs(entity, rows))
}

/// Gives every row loaded without its triggers (a seed's bulk load) the version its
/// document is indexed with.
pub async fn version_loaded(conn: &mut PgConnection) -> Result<()> {
    for entity in ROW_ENTITIES {
        let sql = format!(
            "INSERT INTO report_versions (entity, entity_id, version)
             SELECT $1, r.id, nextval('search_version_seq') FROM {} r
             WHERE NOT EXISTS (SELECT 1 FROM report_versions v WHERE v.entity = $1 AND v.entity_id = r.id)",
            table(entity)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(entity.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

pub async fn max_id(pool: &PgPool, entity: Entity) -> Result<Option<Uuid>> {
    let sql = format!("SELECT id FROM {} ORDER BY id DESC LIMIT 1", table(entity));
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_optional(pool).await?)
}

pub async fn count_all(pool: &PgPool, entity: Entity) -> Result<i64> {
    let sql = format!("SELECT count(*) FROM {}", table(entity));
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await?)
}

/// Every document's id and version: the rows' in `report_versions`, the KPI days' in
/// `kpi_documents` (`$1` is the entity).
fn versions_sql(entity: Entity) -> &'static str {
    match entity {
        Entity::KpiDay => "SELECT id, version FROM kpi_documents WHERE $1 = 'kpi_day'",
        _ => "SELECT entity_id, version FROM report_versions WHERE entity = $1",
    }
}

pub async fn versions(pool: &PgPool, entity: Entity) -> Result<Vec<(Uuid, i64)>> {
    Ok(sqlx::query_as(versions_sql(entity)).bind(entity.as_str()).fetch_all(pool).await?)
}

pub async fn versions_of(pool: &PgPool, entity: Entity, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>> {
    let sql = format!("SELECT * FROM ({}) AS v(id, version) WHERE v.id = ANY($2)", versions_sql(entity));
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(entity.as_str())
        .bind(ids)
        .fetch_all(pool)
        .await?)
}
