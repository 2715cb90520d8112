//! Checks a cluster before the app relies on it (`arrears doctor`, and every start with
//! the Elasticsearch backend): reachable and on version 8, the app's user holds every
//! privilege the backend uses, the templates are the ones this build applies, exactly
//! one generation behind each read alias, and the write aliases in step. Each failure
//! names its fix.

use serde::Serialize;
use serde_json::{Value, json};

use super::ElasticIndex;
use super::client::Call;
use super::templates::{self, Names, write_alias};
use crate::domain::document::Entity;

/// One finding of the doctor.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    /// What an operator does about a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Cluster privileges the backend uses: `monitor` for `GET /` and cluster health,
/// `manage_index_templates` for the component and index templates.
pub const CLUSTER_PRIVILEGES: &[&str] = &["monitor", "manage_index_templates"];
/// Index privileges on `{prefix}-*`: `create_index`/`delete_index` for generations,
/// `manage` for aliases, settings and refresh, `view_index_metadata` to read aliases,
/// `write` for versioned bulk writes, `read` for searches, counts and points in time.
pub const INDEX_PRIVILEGES: &[&str] = &["create_index", "delete_index", "manage", "view_index_metadata", "write", "read"];

/// The privileges the app's user needs, as `security.has_privileges` asks for them.
pub fn required_privileges(names: &Names) -> Value {
    json!({
        "cluster": CLUSTER_PRIVILEGES,
        "index": [{ "names": [names.family()], "privileges": INDEX_PRIVILEGES }]
    })
}

/// The role an operator gives the app's user (`PUT /_security/role/{name}`).
pub fn role(names: &Names) -> Value {
    json!({
        "description": format!("What the Arrears backend needs on the {} indices", names.family()),
        "cluster": CLUSTER_PRIVILEGES,
        "indices": [{ "names": [names.family()], "privileges": INDEX_PRIVILEGES }]
    })
}

fn version_check(info: &Value) -> Check {
    let version = info.pointer("/version/number").and_then(Value::as_str).unwrap_or("unknown");
    if version.starts_with("8.") {
        Check::pass("version", format!("Elasticsearch {version}"))
    } else {
        Check::fail(
            "version",
            format!("Elasticsearch {version}; this build speaks the 8.x API"),
            "run Elasticsearch 8.x (docker-compose.yml pins the tested version)",
        )
    }
}

fn privileges_check(names: &Names, answer: &Value) -> Check {
    let mut missing = Vec::new();
    for (privilege, held) in answer.get("cluster").and_then(Value::as_object).into_iter().flatten() {
        if held != true {
            missing.push(format!("cluster:{privilege}"));
        }
    }
    for (pattern, privileges) in answer.get("index").and_then(Value::as_object).into_iter().flatten() {
        for (privilege, held) in privileges.as_object().into_iter().flatten() {
            if held != true {
                missing.push(format!("{pattern}:{privilege}"));
            }
        }
    }
    let user = answer.get("username").and_then(Value::as_str).unwrap_or("the configured user");
    if missing.is_empty() && answer.get("has_all_requested") == Some(&json!(true)) {
        Check::pass("privileges", format!("{user} holds every privilege the backend uses"))
    } else {
        Check::fail(
            "privileges",
            format!("{user} lacks {}", missing.join(", ")),
            format!(
                "give {user} the role in index-templates/elasticsearch-role.json (indices {})",
                names.family()
            ),
        )
    }
}

/// Every read alias on exactly one generation, which is also a write target with its
/// own write alias; every write target has one.
fn alias_checks(names: &Names, entity: Entity, aliases: &Value) -> Vec<Check> {
    let holding = |alias: &str| -> Vec<String> {
        aliases
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.pointer(&format!("/aliases/{alias}")).is_some())
            .map(|(index, _)| index.clone())
            .collect()
    };
    let read = names.read_alias(entity);
    let behind = holding(&read);
    let mut checks = Vec::new();
    checks.push(if behind.len() == 1 {
        Check::pass(format!("{read} alias"), format!("reads go to {}", behind[0]))
    } else {
        Check::fail(
            format!("{read} alias"),
            format!("the read alias is on {} indices [{}]", behind.len(), behind.join(", ")),
            match behind.len() {
                0 => "start `arrears serve` once (it creates the first generation), or `arrears reindex` to build one".to_owned(),
                _ => format!(
                    "keep the newest generation: POST /_aliases with a remove of {read} from every other index, then `arrears verify --repair`"
                ),
            },
        )
    });
    let reporting = names.reporting_alias(entity);
    let reported = holding(&reporting);
    checks.push(if behind.len() == 1 && reported == behind {
        Check::pass(format!("{reporting} alias"), format!("analysts read {}", behind[0]))
    } else {
        Check::fail(
            format!("{reporting} alias"),
            format!(
                "the reporting alias is on [{}], reads on [{}]",
                reported.join(", "),
                behind.join(", ")
            ),
            "fix the read alias first; `arrears serve` then moves the reporting alias to the read generation at start",
        )
    });
    let targets = holding(&names.targets_alias(entity));
    let mut bad = Vec::new();
    for index in &targets {
        let write = holding(&write_alias(index));
        if write != [index.clone()] {
            bad.push(format!("{index} has no write alias of its own"));
        }
    }
    if let Some(live) = behind.first().filter(|_| behind.len() == 1)
        && !targets.contains(live)
    {
        bad.push(format!("{live} is read but not written"));
    }
    checks.push(if bad.is_empty() {
        Check::pass(
            format!("{} write aliases", entity.plural()),
            format!("writes go to [{}]", targets.join(", ")),
        )
    } else {
        Check::fail(
            format!("{} write aliases", entity.plural()),
            bad.join("; "),
            "`arrears reindex` builds a consistent generation and swaps every alias at once",
        )
    });
    checks
}

impl ElasticIndex {
    /// Runs every check; an unreachable cluster is one failed check, not an error.
    pub async fn doctor(&self) -> Vec<Check> {
        let names = self.names();
        let info = match self.send_ok(&Call::Info).await {
            Ok(info) => info,
            Err(err) => {
                return vec![Check::fail(
                    "reachable",
                    err.to_string(),
                    "check ELASTICSEARCH_URL, the credentials (ELASTICSEARCH_USERNAME/PASSWORD or API_KEY) and ELASTICSEARCH_CA_FILE",
                )];
            }
        };
        let mut checks = vec![Check::pass("reachable", self.identity_url()), version_check(&info)];
        checks.push(
            match self
                .send_ok(&Call::HasPrivileges {
                    body: required_privileges(names),
                })
                .await
            {
                Ok(answer) => privileges_check(names, &answer),
                Err(err) => Check::fail("privileges", err.to_string(), "the user must be able to sign in"),
            },
        );
        checks.push(self.templates_check().await);
        for entity in Entity::ALL {
            match self
                .send_ok(&Call::IndexAliases {
                    index: names.pattern(entity),
                })
                .await
            {
                Ok(aliases) => checks.extend(alias_checks(names, entity, &aliases)),
                Err(err) => checks.push(Check::fail(
                    format!("{} aliases", entity.plural()),
                    err.to_string(),
                    "grant view_index_metadata on the indices",
                )),
            }
        }
        checks
    }

    /// The stored templates carry the digest of what this build applies.
    async fn templates_check(&self) -> Check {
        let mut stale = Vec::new();
        for call in templates::apply_requests(self.names(), self.replicas) {
            let (name, stored_meta) = match &call {
                Call::PutComponentTemplate { name, .. } => (
                    name.clone(),
                    self.send_ok(&Call::GetComponentTemplate { name: name.clone() })
                        .await
                        .map(|v| v.pointer("/component_templates/0/component_template/_meta").cloned()),
                ),
                Call::PutIndexTemplate { name, .. } => (
                    name.clone(),
                    self.send_ok(&Call::GetIndexTemplate { name: name.clone() })
                        .await
                        .map(|v| v.pointer("/index_templates/0/index_template/_meta").cloned()),
                ),
                _ => continue,
            };
            let wanted = call.body().and_then(|b| b.pointer("/_meta/digest").cloned());
            match stored_meta {
                Ok(Some(meta)) if meta.get("digest") == wanted.as_ref() => {}
                Ok(_) => stale.push(format!("{name} differs")),
                Err(super::client::EsError::Rejected { status: 404, .. }) => stale.push(format!("{name} missing")),
                Err(err) => stale.push(format!("{name}: {err}")),
            }
        }
        if stale.is_empty() {
            Check::pass("templates", "every template is the one this build applies")
        } else {
            Check::fail(
                "templates",
                stale.join("; "),
                "start `arrears serve` (it applies the templates), then `arrears reindex` so existing generations get the new mappings",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_privilege_is_named() {
        let names = Names::new("arrears");
        let answer = json!({
            "username": "arrears_app",
            "has_all_requested": false,
            "cluster": { "monitor": true, "manage_index_templates": false },
            "index": { "arrears-*": { "read": true, "write": true, "manage": false } }
        });
        let check = privileges_check(&names, &answer);
        assert!(!check.ok);
        assert!(
            check.detail.contains("cluster:manage_index_templates") && check.detail.contains("arrears-*:manage"),
            "{}",
            check.detail
        );
    }

    #[test]
    fn a_read_alias_on_two_generations_fails_with_the_fix() {
        let names = Names::new("arrears");
        let aliases = json!({
            "arrears-accounts-g1": { "aliases": { "arrears-accounts": {}, "arrears-accounts-targets": {}, "arrears-accounts-g1-write": {} } },
            "arrears-accounts-g2": { "aliases": { "arrears-accounts": {}, "arrears-accounts-targets": {} } }
        });
        let checks = alias_checks(&names, Entity::Account, &aliases);
        assert!(!checks[0].ok && checks[0].detail.contains("2 indices"), "{checks:?}");
        assert!(
            !checks[2].ok && checks[2].detail.contains("arrears-accounts-g2 has no write alias"),
            "{checks:?}"
        );
        let healthy = json!({
            "arrears-accounts-g1": { "aliases": {
                "arrears-accounts": {}, "arrears-accounts-reporting": {}, "arrears-accounts-targets": {}, "arrears-accounts-g1-write": {}
            } }
        });
        assert!(!alias_checks(&names, Entity::Account, &aliases)[1].ok, "no reporting alias");
        assert!(alias_checks(&names, Entity::Account, &healthy).iter().all(|c| c.ok));
    }

    #[test]
    fn only_version_8_passes() {
        assert!(version_check(&json!({ "version": { "number": "8.19.3" } })).ok);
        assert!(!version_check(&json!({ "version": { "number": "9.0.0" } })).ok);
        assert!(!version_check(&json!({})).ok);
    }
}
