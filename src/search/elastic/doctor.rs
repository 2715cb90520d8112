//! Checks a cluster before the app relies on it (`arrears doctor`, and every start with
//! the Elasticsearch backend): reachable and on version 8, healthy, the app's user holds
//! every privilege the backend uses, the templates are the ones this build applies,
//! exactly one generation behind each read alias, the write aliases in step, every
//! generation built with this build's mapping (read from the cluster), no index blocked
//! and every node's disk below its watermarks. Each failure names its fix; a failure
//! that does not stop the app from starting (a rebuild or time mends it) says so.

use serde_json::{Value, json};

use super::ElasticIndex;
use super::client::{Call, EsError};
use super::templates::{self, Names, write_alias};
use crate::domain::document::Entity;
use crate::search::Check;

/// Cluster privileges the backend uses: `monitor` for `GET /` and cluster health,
/// `manage_index_templates` for the component and index templates.
pub const CLUSTER_PRIVILEGES: &[&str] = &["monitor", "manage_index_templates"];
/// Index privileges on `{prefix}-*`: `create_index`/`delete_index` for generations,
/// `manage` for aliases, settings and refresh, `view_index_metadata` to read aliases,
/// `write` for versioned bulk writes, `read` for searches, counts and points in time.
pub const INDEX_PRIVILEGES: &[&str] = &["create_index", "delete_index", "manage", "view_index_metadata", "write", "read"];

/// Whether `security.has_privileges` failed because the cluster has no security: a node
/// without the security plugin, or with it disabled (`xpack.security.enabled: false`),
/// has no handler for `/_security/...` and answers 400 "no handler found for uri".
fn without_security(err: &EsError) -> bool {
    matches!(err, EsError::Rejected { status: 400, reason } if reason.contains("no handler found for uri [/_security/"))
}

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

/// The cluster's status: green passes, yellow (replicas with nowhere to go) fails without
/// stopping the app, red (a primary shard unassigned) stops it.
fn health_check(health: &Value) -> Check {
    let status = health.get("status").and_then(Value::as_str).unwrap_or("unknown");
    let unassigned = health.get("unassigned_shards").and_then(Value::as_u64).unwrap_or(0);
    let nodes = health.get("number_of_data_nodes").and_then(Value::as_u64).unwrap_or(0);
    match status {
        "green" => Check::pass("cluster health", format!("green on {nodes} data node(s)")),
        "yellow" => Check::fail(
            "cluster health",
            format!("yellow: {unassigned} replica shard(s) have no node to go to ({nodes} data node(s))"),
            "set ELASTICSEARCH_REPLICAS to at most the number of data nodes minus one (0 on one node) and run `arrears reindex`, or add data nodes",
        )
        .not_blocking(),
        _ => Check::fail(
            "cluster health",
            format!("{status}: {unassigned} shard(s) unassigned, some of them primaries; searches and writes on them fail"),
            "GET /_cluster/allocation/explain names why a shard is unassigned (often a full disk or a lost node)",
        ),
    }
}

/// Blocks on the deployment's indices (`indices.get_settings` of `index.blocks.*`).
fn blocks_check(settings: &Value) -> Check {
    let mut found = Vec::new();
    for (index, body) in settings.as_object().into_iter().flatten() {
        for (block, on) in body
            .pointer("/settings/index/blocks")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if on == "true" || on == &json!(true) {
                found.push((index.clone(), block.clone()));
            }
        }
    }
    if found.is_empty() {
        return Check::pass("index blocks", "no index is blocked");
    }
    let described: Vec<String> = found.iter().map(|(index, block)| format!("{index}: {block}")).collect();
    let fix = if found.iter().all(|(_, block)| block == "read_only_allow_delete") {
        "free disk space: Elasticsearch lifts read_only_allow_delete by itself once the node is below the high watermark \
         (or PUT /{index}/_settings {\"index.blocks.read_only_allow_delete\": null} after freeing it)"
    } else {
        "an operator set the block: PUT /{index}/_settings {\"index.blocks.write\": null} (or read_only) lifts it; writes wait in the outbox meanwhile"
    };
    Check::fail("index blocks", described.join("; "), fix).not_blocking()
}

/// A disk watermark as Elasticsearch reads it: a share of the disk used (`85%`, `0.85`)
/// or free space left (`500mb`).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Watermark {
    Used(f64),
    Free(u64),
}

impl Watermark {
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        if let Some(percent) = text.strip_suffix('%') {
            return percent.trim().parse::<f64>().ok().map(|p| Watermark::Used(p / 100.0));
        }
        if let Ok(ratio) = text.parse::<f64>() {
            return (ratio <= 1.0).then_some(Watermark::Used(ratio));
        }
        bytes(&text).map(Watermark::Free)
    }

    /// Free bytes a node of `total` bytes must keep: for a share, capped by the
    /// watermark's `max_headroom` (Elasticsearch 8 leaves large disks this much at most).
    fn free_needed(self, total: u64, headroom: Option<u64>) -> u64 {
        match self {
            Watermark::Free(bytes) => bytes,
            Watermark::Used(share) => {
                let needed = (total as f64 * (1.0 - share)).max(0.0) as u64;
                headroom.map_or(needed, |cap| needed.min(cap))
            }
        }
    }
}

/// A byte size as Elasticsearch writes one (`500mb`, `200GB`, `1024b`).
fn bytes(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "kb" | "k" => 1 << 10,
        "mb" | "m" => 1 << 20,
        "gb" | "g" => 1 << 30,
        "tb" | "t" => 1 << 40,
        "pb" | "p" => 1 << 50,
        _ => return None,
    };
    Some((number * scale as f64) as u64)
}

/// A cluster setting as it applies: transient over persistent over the default.
fn setting<'a>(settings: &'a Value, key: &str) -> Option<&'a str> {
    ["transient", "persistent", "defaults"]
        .iter()
        .find_map(|scope| settings.get(scope).and_then(|s| s.get(key)).and_then(Value::as_str))
}

/// Every data node's disk against the low, high and flood-stage watermarks. Past the
/// low one no new index (a rebuild's generation) is allocated on the node; past the
/// high one shards move away; past the flood stage every index with a shard there
/// becomes read-only.
fn disk_check(settings: &Value, nodes: &Value) -> Check {
    const PREFIX: &str = "cluster.routing.allocation.disk.";
    if setting(settings, &format!("{PREFIX}threshold_enabled")) == Some("false") {
        return Check::pass("disk watermarks", "the disk threshold decider is off");
    }
    let level = |name: &'static str| {
        let watermark = setting(settings, &format!("{PREFIX}watermark.{name}")).and_then(Watermark::parse);
        let headroom = setting(settings, &format!("{PREFIX}watermark.{name}.max_headroom")).and_then(bytes);
        watermark.map(|w| (name, w, headroom))
    };
    let levels: Vec<_> = ["flood_stage", "high", "low"].into_iter().filter_map(level).collect();
    let mut over = Vec::new();
    let mut seen = Vec::new();
    for (id, node) in nodes.get("nodes").and_then(Value::as_object).into_iter().flatten() {
        let name = node.get("name").and_then(Value::as_str).unwrap_or(id);
        let total = node.pointer("/fs/total/total_in_bytes").and_then(Value::as_u64).unwrap_or(0);
        let available = node.pointer("/fs/total/available_in_bytes").and_then(Value::as_u64).unwrap_or(0);
        if total == 0 {
            continue;
        }
        let used = 100.0 * (1.0 - available as f64 / total as f64);
        seen.push(format!("{name} {used:.0}% used"));
        if let Some((level, ..)) = levels
            .iter()
            .find(|(_, watermark, headroom)| available < watermark.free_needed(total, *headroom))
        {
            over.push(format!(
                "{name} is past the {level} watermark ({used:.0}% used, {} MB free)",
                available >> 20
            ));
        }
    }
    if over.is_empty() {
        Check::pass(
            "disk watermarks",
            format!("every node is below its low watermark ({})", seen.join(", ")),
        )
    } else {
        Check::fail(
            "disk watermarks",
            over.join("; "),
            "free disk space or add nodes: past low, a rebuild cannot place its new index; past flood stage, writes stop until space is freed",
        )
        .not_blocking()
    }
}

/// The generations of an entity something reads or writes, with their mappings; a kept
/// old one (`--keep-old`, the kept alias only) is neither.
fn used_mappings<'a>(names: &Names, entity: Entity, aliases: &Value, mappings: &'a Value) -> Vec<(&'a String, &'a Value)> {
    let kept = names.kept_alias(entity);
    mappings
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(index, _)| {
            aliases
                .get(index.as_str())
                .and_then(|i| i.get("aliases"))
                .and_then(Value::as_object)
                .is_some_and(|a| a.keys().any(|alias| *alias != kept))
        })
        .map(|(index, body)| (index, &body["mappings"]))
        .collect()
}

/// Every generation of an entity carries the digest of this build's mapping. A
/// generation created by an older release lacks the fields this build maps (which
/// `dynamic: strict` would refuse) or analyses differently.
fn mapping_check(names: &Names, entity: Entity, aliases: &Value, mappings: &Value) -> Check {
    let name = format!("{} mapping", entity.plural());
    let wanted = templates::mapping_digest(entity);
    let built = templates::mapped_fields(&templates::mappings(entity));
    let (mut outdated, mut newer) = (Vec::new(), Vec::new());
    for (index, live) in used_mappings(names, entity, aliases, mappings) {
        if templates::digest_of(live) == Some(wanted.as_str()) {
            continue;
        }
        if templates::schema_of(live) > templates::mapping_schema(entity) {
            newer.push(format!(
                "{index} was built by a newer release (mapping schema {}, this build's {})",
                templates::schema_of(live),
                templates::mapping_schema(entity)
            ));
            continue;
        }
        let missing: Vec<String> = built.difference(&templates::mapped_fields(live)).cloned().collect();
        outdated.push(if missing.is_empty() {
            format!("{index} was built with another release's mapping or analysis")
        } else {
            format!("{index} was built by another release and lacks {}", missing.join(", "))
        });
    }
    if outdated.is_empty() && newer.is_empty() {
        return Check::pass(name, "every generation has this build's mapping");
    }
    // Only this build's rebuild ends the wait for an older release's generation; a
    // newer release's workers end it for a newer one.
    let (until, fix) = if outdated.is_empty() {
        (
            "",
            "finish the upgrade: this build is the older release (it leaves the newer generation alone); stop its instances, and the newer release's workers take the changes it holds".to_owned(),
        )
    } else {
        (
            " until a rebuild",
            format!(
                "`arrears reindex {}` (a server or `arrears sync` of this build starts it by itself); searches answer from the old generation until its swap",
                entity.plural()
            ),
        )
    };
    Check::fail(
        name,
        format!(
            "{}; this build's {} changes wait in the outbox (none is written there){until}",
            outdated.into_iter().chain(newer).collect::<Vec<_>>().join("; "),
            entity.plural(),
        ),
        fix,
    )
    .not_blocking()
}

/// Elasticsearch's `index.mapping.total_fields.limit`, which the templates keep.
pub const FIELD_LIMIT: usize = 1000;
/// The share of [`FIELD_LIMIT`] past which the doctor warns.
const FIELD_WARNING: usize = FIELD_LIMIT * 4 / 5;

/// A generation maps every custom field any of its documents carried since it was
/// built, deleted definitions included (a mapping never loses a field). Past
/// [`FIELD_LIMIT`] a document carrying a field new to the mapping is refused (into the
/// dead letters); the doctor warns well before, and a rebuild maps only the live ones.
fn fields_check(names: &Names, entity: Entity, aliases: &Value, mappings: &Value) -> Check {
    let name = format!("{} mapped fields", entity.plural());
    let counted: Vec<(&String, usize)> = used_mappings(names, entity, aliases, mappings)
        .into_iter()
        .map(|(index, live)| (index, templates::mapped_fields(live).len()))
        .collect();
    let described: Vec<String> = counted
        .iter()
        .map(|(index, count)| format!("{index} maps {count} of the {FIELD_LIMIT} fields Elasticsearch allows"))
        .collect();
    if counted.iter().all(|(_, count)| *count < FIELD_WARNING) {
        return Check::pass(name, described.join("; "));
    }
    Check::fail(
        name,
        format!(
            "{}: custom fields deleted since a generation was built still count, and at {FIELD_LIMIT} a document carrying a new one is refused (a dead letter)",
            described.join("; ")
        ),
        format!("`arrears reindex {}`: a new generation maps only the live custom fields", entity.plural()),
    )
    .not_blocking()
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
                .send_ok(&Call::ClusterHealth {
                    index: self.names().family(),
                })
                .await
            {
                Ok(health) => health_check(&health),
                Err(err) => Check::fail("cluster health", err.to_string(), "grant the monitor cluster privilege").not_blocking(),
            },
        );
        checks.push(
            match self
                .send_ok(&Call::HasPrivileges {
                    body: required_privileges(names),
                })
                .await
            {
                Ok(answer) => privileges_check(names, &answer),
                Err(err) if without_security(&err) => Check::warn(
                    "privileges",
                    "the cluster has no security: anyone who reaches it reads, writes and deletes every index, without credentials",
                    "enable Elastic's security (xpack.security.enabled: true) and give the app a user with the arrears role (index-templates/elasticsearch-role.json)",
                ),
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
                Ok(aliases) => {
                    checks.extend(alias_checks(names, entity, &aliases));
                    match self
                        .send_ok(&Call::GetMapping {
                            index: names.pattern(entity),
                        })
                        .await
                    {
                        Ok(mappings) => {
                            checks.push(fields_check(names, entity, &aliases, &mappings));
                            checks.push(mapping_check(names, entity, &aliases, &mappings));
                        }
                        Err(err) => checks.push(
                            Check::fail(
                                format!("{} mapping", entity.plural()),
                                err.to_string(),
                                "grant view_index_metadata on the indices",
                            )
                            .not_blocking(),
                        ),
                    }
                }
                Err(err) => checks.push(Check::fail(
                    format!("{} aliases", entity.plural()),
                    err.to_string(),
                    "grant view_index_metadata on the indices",
                )),
            }
        }
        checks.push(match self.send_ok(&Call::GetBlocks { index: names.family() }).await {
            Ok(settings) => blocks_check(&settings),
            Err(err) => Check::fail("index blocks", err.to_string(), "grant view_index_metadata on the indices").not_blocking(),
        });
        let watermarks = self.send_ok(&Call::GetWatermarks).await;
        let disks = self.send_ok(&Call::NodesFs).await;
        checks.push(match (watermarks, disks) {
            (Ok(settings), Ok(nodes)) => disk_check(&settings, &nodes),
            (Err(err), _) | (_, Err(err)) => {
                Check::fail("disk watermarks", err.to_string(), "grant the monitor cluster privilege").not_blocking()
            }
        });
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

    fn settings(overrides: Value) -> Value {
        json!({
            "persistent": overrides,
            "transient": {},
            "defaults": {
                "cluster.routing.allocation.disk.watermark.low": "85%",
                "cluster.routing.allocation.disk.watermark.low.max_headroom": "200GB",
                "cluster.routing.allocation.disk.watermark.high": "90%",
                "cluster.routing.allocation.disk.watermark.high.max_headroom": "150GB",
                "cluster.routing.allocation.disk.watermark.flood_stage": "95%",
                "cluster.routing.allocation.disk.watermark.flood_stage.max_headroom": "100GB"
            }
        })
    }

    fn node(total: u64, available: u64) -> Value {
        json!({ "nodes": { "a1": { "name": "es01", "fs": { "total": { "total_in_bytes": total, "available_in_bytes": available } } } } })
    }

    #[test]
    fn disks_past_a_watermark_are_named_with_the_level() {
        const GB: u64 = 1 << 30;
        let ok = disk_check(&settings(json!({})), &node(100 * GB, 40 * GB));
        assert!(ok.ok, "{ok:?}");
        let low = disk_check(&settings(json!({})), &node(100 * GB, 12 * GB));
        assert!(!low.ok && low.detail.contains("past the low watermark") && !low.blocking, "{low:?}");
        let flood = disk_check(&settings(json!({})), &node(100 * GB, 4 * GB));
        assert!(flood.detail.contains("flood_stage"), "{flood:?}");
        // On a large disk the headroom caps what a share asks to keep free: 10 TB with
        // 400 GB free is 96% used but keeps more than the low watermark's 200 GB.
        assert!(disk_check(&settings(json!({})), &node(10_240 * GB, 400 * GB)).ok);
        let big = disk_check(&settings(json!({})), &node(10_240 * GB, 180 * GB));
        assert!(!big.ok && big.detail.contains("past the low watermark"), "{big:?}");
        // Absolute watermarks are free space; persistent settings override defaults.
        let absolute = json!({ "cluster.routing.allocation.disk.watermark.low": "50gb" });
        let free = disk_check(&settings(absolute), &node(100 * GB, 40 * GB));
        assert!(!free.ok && free.detail.contains("low"), "{free:?}");
        let off = json!({ "cluster.routing.allocation.disk.threshold_enabled": "false" });
        assert!(disk_check(&settings(off), &node(100 * GB, GB)).ok);
    }

    #[test]
    fn watermarks_parse_as_elasticsearch_writes_them() {
        assert_eq!(Watermark::parse("85%"), Some(Watermark::Used(0.85)));
        assert_eq!(Watermark::parse("0.9"), Some(Watermark::Used(0.9)));
        assert_eq!(Watermark::parse("500mb"), Some(Watermark::Free(500 << 20)));
        assert_eq!(Watermark::parse("1.5GB"), Some(Watermark::Free(3 << 29)));
        assert_eq!(Watermark::parse("lots"), None);
    }

    #[test]
    fn blocks_and_health_fail_with_their_fix() {
        let blocked = json!({
            "arrears-accounts-g1": { "settings": { "index": { "blocks": { "read_only_allow_delete": "true" } } } },
            "arrears-payments-g1": { "settings": {} }
        });
        let check = blocks_check(&blocked);
        assert!(
            !check.ok && check.detail == "arrears-accounts-g1: read_only_allow_delete",
            "{check:?}"
        );
        assert!(check.fix.unwrap().contains("lifts read_only_allow_delete by itself"));
        let written = json!({ "arrears-accounts-g1": { "settings": { "index": { "blocks": { "write": "true" } } } } });
        assert!(blocks_check(&written).fix.unwrap().contains("an operator set the block"));
        assert!(blocks_check(&json!({ "arrears-accounts-g1": { "settings": {} } })).ok);

        assert!(health_check(&json!({ "status": "green", "number_of_data_nodes": 1 })).ok);
        let yellow = health_check(&json!({ "status": "yellow", "unassigned_shards": 2, "number_of_data_nodes": 1 }));
        assert!(!yellow.ok && !yellow.blocking && yellow.fix.unwrap().contains("ELASTICSEARCH_REPLICAS"));
        let red = health_check(&json!({ "status": "red", "unassigned_shards": 1 }));
        assert!(!red.ok && red.blocking);
    }

    #[test]
    fn only_version_8_passes() {
        assert!(version_check(&json!({ "version": { "number": "8.19.3" } })).ok);
        assert!(!version_check(&json!({ "version": { "number": "9.0.0" } })).ok);
        assert!(!version_check(&json!({})).ok);
    }
}
