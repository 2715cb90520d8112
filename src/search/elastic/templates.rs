//! Index names and the templates in `index-templates/`, applied idempotently.
//!
//! Every entity has generations `{prefix}-{entity}-g{n}`. Reads go through the alias
//! `{prefix}-{entity}`; the alias `{prefix}-{entity}-targets` names every generation the
//! sync worker writes to (the live one and, during a rebuild, the new one). Writes go
//! through each generation's own alias `{generation}-write` with `require_alias`, so a
//! write racing the deletion of an old generation fails instead of re-creating it.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::client::Call;
use crate::domain::document::Entity;

pub const ANALYSIS: &str = include_str!("../../../index-templates/component-analysis.json");
pub const SETTINGS: &str = include_str!("../../../index-templates/component-settings.json");
pub const ACCOUNTS: &str = include_str!("../../../index-templates/accounts.json");
pub const PAYMENTS: &str = include_str!("../../../index-templates/payments.json");
pub const ACTIVITIES: &str = include_str!("../../../index-templates/activities.json");
pub const PROMISES: &str = include_str!("../../../index-templates/promises.json");
pub const PLANS: &str = include_str!("../../../index-templates/plans.json");
pub const KPI_DAYS: &str = include_str!("../../../index-templates/kpi-days.json");

/// What the template sets and a rebuild restores after its backfill.
pub const REFRESH_INTERVAL: &str = "1s";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn read_alias(&self, entity: Entity) -> String {
        format!("{}-{}", self.prefix, entity.plural())
    }

    pub fn targets_alias(&self, entity: Entity) -> String {
        format!("{}-{}-targets", self.prefix, entity.plural())
    }

    /// The generations a rebuild kept on purpose (`reindex --keep-old`), for a rollback:
    /// with it, an old generation without its other aliases is not a leftover.
    pub fn kept_alias(&self, entity: Entity) -> String {
        format!("{}-{}-kept", self.prefix, entity.plural())
    }

    /// What analysts read (Kibana's data views): the read generation without tombstones
    /// and, for accounts, without deleted accounts. It moves with the read alias.
    pub fn reporting_alias(&self, entity: Entity) -> String {
        format!("{}-{}-reporting", self.prefix, entity.plural())
    }

    pub fn generation(&self, entity: Entity, n: u32) -> String {
        format!("{}-{}-g{n}", self.prefix, entity.plural())
    }

    /// Every index and alias of this deployment (what its role grants).
    pub fn family(&self) -> String {
        format!("{}-*", self.prefix)
    }

    pub fn pattern(&self, entity: Entity) -> String {
        format!("{}-{}-g*", self.prefix, entity.plural())
    }

    /// The generation number of an index name of this family.
    pub fn generation_number(&self, entity: Entity, index: &str) -> Option<u32> {
        index
            .strip_prefix(&format!("{}-{}-g", self.prefix, entity.plural()))
            .and_then(|n| n.parse().ok())
    }

    pub fn entity_of(&self, index: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| self.generation_number(*e, index).is_some())
    }

    fn component(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }
}

pub fn write_alias(generation: &str) -> String {
    format!("{generation}-write")
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("index-templates/*.json is valid JSON (checked by a test)")
}

fn shipped_template(entity: Entity) -> Value {
    parse(match entity {
        Entity::Account => ACCOUNTS,
        Entity::Payment => PAYMENTS,
        Entity::Activity => ACTIVITIES,
        Entity::Promise => PROMISES,
        Entity::Plan => PLANS,
        Entity::KpiDay => KPI_DAYS,
    })
}

/// The SHA-256 of what a generation of `entity` is built with and keeps for life: its
/// mappings, the analysis they name and its shard count. Templates apply only when an
/// index is created, so a generation whose mapping carries another digest was built by
/// another release and may refuse (`dynamic: strict`) or mis-analyse this build's
/// documents until a rebuild replaces it.
pub fn mapping_digest(entity: Entity) -> String {
    let built_with = json!({
        "mappings": shipped_template(entity)["template"]["mappings"],
        "analysis": parse(ANALYSIS)["template"]["settings"],
        "shards": number_of_shards(),
    });
    hex::encode(Sha256::digest(built_with.to_string().as_bytes()))
}

/// Where this build's mapping of `entity` stands among releases: the template's
/// `_meta.schema`, raised with every change of what [`mapping_digest`] covers
/// (`index-templates/mapping-schemas.txt` holds each number's digest; a test keeps the
/// two together). A release that meets a generation of a higher number is the older
/// one in a rolling upgrade: it leaves that generation alone instead of rebuilding it
/// back to its own mapping.
pub fn mapping_schema(entity: Entity) -> u64 {
    shipped_template(entity)["_meta"]["schema"]
        .as_u64()
        .expect("every index-templates/<entity>.json has _meta.schema (checked by a test)")
}

/// The schema number a generation's mapping carries (`_meta.schema`); 0 for one built
/// before mappings carried one.
pub fn schema_of(mappings: &Value) -> u64 {
    mappings.pointer("/_meta/schema").and_then(Value::as_u64).unwrap_or(0)
}

/// The digest a generation's mapping carries (`_meta.digest`), as the cluster returns
/// the mapping; `None` for a generation built before mappings carried one.
pub fn digest_of(mappings: &Value) -> Option<&str> {
    mappings.pointer("/_meta/digest").and_then(Value::as_str)
}

/// Every field path a mapping maps, sub-fields included (`debtor_name.prefix`).
pub fn mapped_fields(mappings: &Value) -> BTreeSet<String> {
    fn walk(properties: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        for (name, field) in properties.as_object().into_iter().flatten() {
            let path = format!("{prefix}{name}");
            walk(&field["properties"], &format!("{path}."), out);
            walk(&field["fields"], &format!("{path}."), out);
            out.insert(path);
        }
    }
    let mut out = BTreeSet::new();
    walk(&mappings["properties"], "", &mut out);
    out
}

/// The mappings this build gives a new generation of `entity`.
pub fn mappings(entity: Entity) -> Value {
    let mut mappings = shipped_template(entity)["template"]["mappings"].take();
    mappings["_meta"] = json!({ "digest": mapping_digest(entity), "managed_by": "arrears", "schema": mapping_schema(entity) });
    mappings
}

/// The index template of an entity as shipped, with this deployment's names; its
/// mappings carry [`mapping_digest`] so every generation records what built it.
pub fn index_template(names: &Names, entity: Entity) -> Value {
    let mut template = shipped_template(entity);
    template["index_patterns"] = json!([names.pattern(entity)]);
    template["composed_of"] = json!([names.component("settings"), names.component("analysis")]);
    template["template"]["mappings"] = mappings(entity);
    template
}

/// A template with `_meta.digest`, the SHA-256 of the rest of it: the cluster keeps
/// `_meta` as given, so `arrears doctor` tells a current template from an old one.
fn with_digest(mut template: Value) -> Value {
    let digest = hex::encode(Sha256::digest(template.to_string().as_bytes()));
    template["_meta"]["digest"] = json!(digest);
    template
}

/// Requests that install or update every template; PUT is idempotent.
pub fn apply_requests(names: &Names, replicas: u32) -> Vec<Call> {
    let mut settings = parse(SETTINGS);
    settings["template"]["settings"]["index"]["number_of_replicas"] = json!(replicas);
    let mut calls = vec![
        Call::PutComponentTemplate {
            name: names.component("analysis"),
            body: with_digest(parse(ANALYSIS)),
        },
        Call::PutComponentTemplate {
            name: names.component("settings"),
            body: with_digest(settings),
        },
    ];
    for entity in Entity::ALL {
        calls.push(Call::PutIndexTemplate {
            name: names.read_alias(entity),
            body: with_digest(index_template(names, entity)),
        });
    }
    calls
}

/// Creates a generation registered as a write target, with what [`mapping_digest`]
/// covers (its mappings, its analysis and its shard count) from this build, not from
/// whatever templates the cluster holds at that moment: in a rolling upgrade an older
/// release that restarts puts its own templates back, and a generation this build
/// creates must still be this build's. The templates add the rest (replicas, refresh).
/// The first generation is also what reads go to; a rebuild's generation backfills
/// with refresh off and no replicas.
pub fn create_generation(names: &Names, entity: Entity, generation: &str, first: bool) -> Call {
    let mut aliases = serde_json::Map::new();
    aliases.insert(write_alias(generation), json!({}));
    aliases.insert(names.targets_alias(entity), json!({}));
    let mut settings = parse(ANALYSIS)["template"]["settings"]["index"].take();
    settings["number_of_shards"] = number_of_shards();
    if first {
        aliases.insert(names.read_alias(entity), json!({}));
        aliases.insert(names.reporting_alias(entity), json!({ "filter": reporting_filter(entity) }));
    } else {
        settings["refresh_interval"] = json!("-1");
        settings["number_of_replicas"] = json!(0);
    }
    Call::CreateIndex {
        index: generation.to_owned(),
        body: json!({ "settings": { "index": settings }, "mappings": mappings(entity), "aliases": aliases }),
    }
}

/// The primary shards of every generation, as the shipped settings give them.
fn number_of_shards() -> Value {
    parse(SETTINGS)["template"]["settings"]["index"]["number_of_shards"].take()
}

/// The largest segment Lucene's merge policy makes (`index.merge.policy.
/// max_merged_segment`, 5 GB by default); a force merge past it leaves a segment the
/// policy never merges again while it takes writes.
const MAX_MERGED_SEGMENT_BYTES: u64 = 5 << 30;

/// Merges a backfilled generation (`primary_bytes` in its primaries) before it takes
/// searches, as the embedded rebuild does: into one segment a shard, or as many as keep
/// each under [`MAX_MERGED_SEGMENT_BYTES`], since the generation goes on taking writes.
pub fn merge_generation(generation: &str, primary_bytes: u64) -> Call {
    let shards = number_of_shards().as_u64().unwrap_or(1).max(1);
    Call::ForceMerge {
        index: generation.to_owned(),
        max_num_segments: (primary_bytes / shards).div_ceil(MAX_MERGED_SEGMENT_BYTES).max(1),
    }
}

/// Restores what a backfill turned off.
pub fn restore_settings(generation: &str, replicas: u32) -> Call {
    Call::PutSettings {
        index: generation.to_owned(),
        body: json!({ "index": { "refresh_interval": REFRESH_INTERVAL, "number_of_replicas": replicas } }),
    }
}

/// What the reporting alias leaves out.
fn reporting_filter(entity: Entity) -> Value {
    match entity {
        Entity::Account => json!({ "bool": { "must_not": [
            { "term": { "tombstone": true } },
            { "exists": { "field": "deleted_at" } }
        ] } }),
        Entity::Payment | Entity::KpiDay => json!({ "bool": { "must_not": [{ "term": { "tombstone": true } }] } }),
        // Like the account they belong to, a deleted account's records are left out.
        Entity::Activity | Entity::Promise | Entity::Plan => json!({ "bool": { "must_not": [
            { "term": { "tombstone": true } },
            { "term": { "account_deleted": true } }
        ] } }),
    }
}

/// Actions that put the reporting alias on `live` alone, given the indices that hold it.
fn reporting_actions(names: &Names, entity: Entity, live: &str, holders: &[String]) -> Vec<Value> {
    let alias = names.reporting_alias(entity);
    let mut actions = vec![json!({ "add": { "index": live, "alias": alias, "filter": reporting_filter(entity) } })];
    for index in holders.iter().filter(|index| *index != live) {
        actions.push(json!({ "remove": { "index": index, "alias": alias } }));
    }
    actions
}

/// Moves the reporting alias to the read generation (deployments from before it
/// existed, or after an operator moved the read alias by hand).
pub fn follow_reads(names: &Names, entity: Entity, live: &str, holders: &[String]) -> Call {
    Call::UpdateAliases {
        body: json!({ "actions": reporting_actions(names, entity, live, holders) }),
    }
}

/// One atomic `_aliases` call: reads (and the reporting alias, held by `reporting`
/// now) move to `generation`, the old generations stop being read and written.
pub fn swap_aliases(names: &Names, entity: Entity, generation: &str, old: &[String], reporting: &[String]) -> Call {
    let mut actions = vec![json!({ "add": { "index": generation, "alias": names.read_alias(entity) } })];
    actions.extend(reporting_actions(names, entity, generation, reporting));
    for index in old {
        actions.push(json!({ "remove": { "index": index, "alias": names.read_alias(entity) } }));
        actions.push(json!({ "remove": { "index": index, "alias": names.targets_alias(entity) } }));
        actions.push(json!({ "remove": { "index": index, "alias": write_alias(index) } }));
    }
    Call::UpdateAliases {
        body: json!({ "actions": actions }),
    }
}
