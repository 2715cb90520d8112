//! The Elasticsearch 8 backend. Any number of processes may read and write it: the
//! state a rebuild needs (which generation is read, which ones are written) lives in
//! the cluster's aliases, not in a process.

pub mod bulk;
pub mod client;
pub mod doctor;
pub mod dsl;
pub mod source;
pub mod templates;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use elasticsearch::http::Url;

use anyhow::Context;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

use self::bulk::{Item, Outcome, Retry};
use self::client::{Call, Client, ClientConfig, EsError, Reply};
use self::dsl::Order;
use self::templates::{Names, write_alias};
use super::{ApplyReport, CurrencyStats, FacetValue, Hit, IdPage, IndexSize, OutdatedMapping, SearchIndex, SearchPage, StatValue, Tally};
use crate::config::Settings;
use crate::domain::document::{AccountDoc, DeadLetters, Entity, IndexOp, PaymentDoc};
use crate::domain::search::{ALL_BUCKETS, AccountQuery, After, Counted, PaymentQuery, StatsQuery};
use crate::error::{Code, Error, Result};

#[derive(Clone, Debug)]
pub struct ElasticConfig {
    pub client: ClientConfig,
    /// Index, alias and template names start with it.
    pub prefix: String,
    /// Replicas of every generation once built (0 on a single node).
    pub replicas: u32,
    /// Keep the previous generation after a rebuild's alias swap (for a rollback).
    pub keep_old: bool,
    /// Refresh what searches read after every write, so a search finds it at once (the
    /// backend contract's read-your-writes, as the embedded index's commit gives it). Off
    /// in service: the refresh interval makes writes searchable within a second, and
    /// Elastic calls a refresh after every write resource-intensive.
    pub refresh_after_write: bool,
}

impl ElasticConfig {
    /// The Elasticsearch backend's configuration; an error names what is missing.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<ElasticConfig> {
        let Some(url) = &settings.elasticsearch_url else {
            anyhow::bail!("SEARCH_BACKEND=elasticsearch needs ELASTICSEARCH_URL");
        };
        let url = Url::parse(url).map_err(|e| anyhow::anyhow!("ELASTICSEARCH_URL is not a URL: {e}"))?;
        let prefix = &settings.elasticsearch_index_prefix;
        // Elasticsearch's index name rules: lowercase, no leading '-', '_' or '+', at
        // most 255 bytes (the generation suffix and `-write` take up to 40 more).
        if prefix.is_empty()
            || prefix.starts_with(['-', '_'])
            || prefix.len() > 200
            || !prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "ELASTICSEARCH_INDEX_PREFIX must be 1 to 200 lowercase letters, digits, '-' or '_', \
                 and start with a letter or digit (Elasticsearch refuses index names starting with '-' or '_')"
            );
        }
        Ok(ElasticConfig {
            client: ClientConfig {
                url,
                username: settings.elasticsearch_username.clone(),
                password: settings.elasticsearch_password.clone(),
                api_key: settings.elasticsearch_api_key.clone(),
                ca_file: settings.elasticsearch_ca_file.clone(),
                timeout: Duration::from_millis(settings.elasticsearch_timeout_ms),
                auth_grace: Duration::from_secs(settings.elasticsearch_auth_grace_s),
            },
            prefix: prefix.clone(),
            replicas: settings.elasticsearch_replicas,
            keep_old: settings.elasticsearch_keep_old,
            refresh_after_write: false,
        })
    }
}

pub struct ElasticIndex {
    client: Client,
    names: Names,
    replicas: u32,
    keep_old: bool,
    refresh_after_write: bool,
    retry: Retry,
    identity: String,
    /// Where refused documents are kept.
    dead_letters: Arc<dyn DeadLetters>,
    /// Whether a generation's mapping is this build's, by the generation's uuid (a
    /// generation's mapping never changes, so each is read from the cluster once; a
    /// name deleted and created again, perhaps by another release, is another index).
    current: Mutex<HashMap<String, bool>>,
}

fn units_to_decimal(units: i128) -> Decimal {
    Decimal::from_i128_with_scale(units, 4)
}

/// A bucket's money sum in units, put together from the sums of its two parts: each an
/// integral double below 2^53 (see [`source::UNITS_LOW_BITS`]), so read exactly.
fn sum_of(bucket: &Value) -> i128 {
    let part = |name: &str| {
        let sum = bucket.get(name).and_then(|agg| agg.get("value")).and_then(Value::as_f64);
        sum.unwrap_or(0.0).round() as i128
    };
    source::join_units(part(dsl::UNITS_HI), part(dsl::UNITS_LO))
}

fn count_of(bucket: &Value) -> u64 {
    bucket.get("doc_count").and_then(Value::as_u64).unwrap_or(0)
}

fn buckets(agg: Option<&Value>) -> Vec<Value> {
    agg.and_then(|a| a.get("buckets"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn key_of(bucket: &Value) -> String {
    // A boolean's key is 1 or 0; its `key_as_string` says true or false.
    if let Some(Value::String(s)) = bucket.get("key_as_string") {
        return s.clone();
    }
    match bucket.get("key") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A bucket's `currencies` sub-buckets: the sum per currency, by currency code.
fn sums_of(bucket: &Value) -> Vec<(String, Decimal)> {
    let mut sums: Vec<(String, Decimal)> = buckets(bucket.get("currencies"))
        .iter()
        .map(|c| (key_of(c), units_to_decimal(sum_of(c)).normalize()))
        .collect();
    sums.sort();
    sums
}

/// Terms buckets as facet values, most frequent first (then by value); with
/// `with_sums`, each carries its `currencies` sub-buckets' sums.
fn term_values(agg: Option<&Value>, with_sums: bool) -> Vec<FacetValue> {
    let mut values: Vec<FacetValue> = buckets(agg)
        .iter()
        .map(|b| FacetValue {
            value: key_of(b),
            count: count_of(b),
            sums: with_sums.then(|| sums_of(b)),
        })
        .collect();
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    values
}

/// Terms buckets of one currency's statistics, each with its sum.
fn stat_values(agg: Option<&Value>) -> Vec<StatValue> {
    let mut values: Vec<StatValue> = buckets(agg)
        .iter()
        .map(|b| StatValue {
            value: key_of(b),
            count: count_of(b),
            sum: units_to_decimal(sum_of(b)),
        })
        .collect();
    values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    values
}

fn tally(agg: Option<&Value>) -> Tally {
    agg.map_or_else(Tally::default, |a| Tally {
        count: count_of(a),
        amount: units_to_decimal(sum_of(a)),
    })
}

fn bad_response(what: &str, err: impl std::fmt::Display) -> Error {
    Error::Internal(anyhow::anyhow!("unexpected elasticsearch {what} response: {err}"))
}

/// A search response's hits as documents, with its total (bounded as `counted` says,
/// whether the node counted that far or further: see `dsl::tracked`) and the cursor
/// after the page; the facets are the caller's to read.
fn page_of<D: serde::de::DeserializeOwned>(
    response: &Value,
    (order, counted): (Order, Counted),
    page_size: usize,
    id_of: impl Fn(&D) -> Uuid,
) -> Result<SearchPage<D>> {
    let raw = response
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let counted_by_node = response.pointer("/hits/total/value").and_then(Value::as_u64).unwrap_or(0);
    let (total, past_the_bound) = counted.total(counted_by_node);
    let total_is_lower_bound = past_the_bound || response.pointer("/hits/total/relation").and_then(Value::as_str) == Some("gte");
    let more = raw.len() > page_size;
    let mut hits = Vec::with_capacity(page_size);
    let mut next = None;
    for hit in raw.into_iter().take(page_size) {
        let doc: D = serde_json::from_value(hit.get("_source").cloned().unwrap_or(Value::Null)).map_err(|e| bad_response("search", e))?;
        let sort = hit.get("sort").and_then(Value::as_array).cloned().unwrap_or_default();
        let key = order.key(&sort);
        let score = (order == Order::Score).then(|| hit.get("_score").and_then(Value::as_f64).unwrap_or(0.0) as f32);
        next = Some(After { key, id: id_of(&doc) });
        hits.push(Hit { doc, score });
    }
    Ok(SearchPage {
        hits,
        total,
        total_is_lower_bound,
        next: if more { next } else { None },
        facets: Vec::new(),
    })
}

/// A response of [`dsl::ranked_ids`] as ids (each hit's `_id`), with the cursor after
/// the page.
fn ids_of(response: &Value, order: Order, page_size: usize) -> Result<IdPage> {
    let raw = response
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let mut page = IdPage::default();
    for hit in raw.iter().take(page_size) {
        let id = hit
            .get("_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| bad_response("search", "a hit without a document id"))?;
        let sort = hit.get("sort").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        page.next = Some(After { key: order.key(sort), id });
        page.ids.push(id);
    }
    if raw.len() <= page_size {
        page.next = None;
    }
    Ok(page)
}

impl ElasticIndex {
    /// A backend for the cluster in `config`; nothing is sent until [`Self::prepare`].
    pub fn new(config: &ElasticConfig, dead_letters: Arc<dyn DeadLetters>) -> anyhow::Result<Self> {
        let url = &config.client.url;
        let identity = format!(
            "elasticsearch:{}://{}:{}{}#{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default(),
            url.path().trim_end_matches('/'),
            config.prefix
        );
        Ok(Self {
            client: Client::new(&config.client)?,
            names: Names::new(config.prefix.clone()),
            replicas: config.replicas,
            keep_old: config.keep_old,
            refresh_after_write: config.refresh_after_write,
            retry: Retry::default(),
            identity,
            dead_letters,
            current: Mutex::default(),
        })
    }

    /// Replaces the bulk retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The cluster and prefix this backend talks to, for people (no credentials).
    pub fn identity_url(&self) -> String {
        self.identity.trim_start_matches("elasticsearch:").to_owned()
    }

    async fn send_ok(&self, call: &Call) -> Result<Value, EsError> {
        self.client.send(call).await?.success()
    }

    /// Merges a backfilled generation's segments before the swap ([`templates::
    /// merge_generation`]), beside the dual writes, which keep landing. The merge only
    /// speeds searches up (a search over the 20-odd segments a backfill leaves runs at
    /// about half the rate), so one that fails is reported and the swap goes ahead.
    async fn merge(&self, entity: Entity, generation: &str) {
        let started = std::time::Instant::now();
        let merged = async {
            self.send_ok(&Call::Refresh {
                index: generation.to_owned(),
            })
            .await?;
            let stats = self
                .send_ok(&Call::IndexStats {
                    index: generation.to_owned(),
                })
                .await?;
            let bytes = index_sizes(entity, &stats).iter().map(|size| size.bytes).sum();
            self.send_ok(&templates::merge_generation(generation, bytes)).await
        };
        match merged.await {
            Ok(_) => tracing::info!(generation, elapsed_ms = started.elapsed().as_millis() as u64, "segments merged"),
            Err(err) => tracing::warn!(generation, error = %err, "could not merge the segments; promoting unmerged"),
        }
    }

    /// Applies the templates and creates the first generation of every entity that has
    /// none. Returns the entities whose index was created now (a backfill is due).
    ///
    /// Safe when several processes start at once: the first generation always has the
    /// same name, so Elasticsearch itself lets one creation through and refuses the
    /// others (`resource_already_exists_exception`); the index is created with its
    /// aliases in the same request. Any other state (the read alias missing while
    /// generations exist, or on two indices) is refused with the fix, never papered over
    /// with a new generation that would put reads on two indices.
    pub async fn prepare(&self) -> anyhow::Result<Vec<Entity>> {
        for call in templates::apply_requests(&self.names, self.replicas) {
            self.send_ok(&call)
                .await
                .with_context(|| format!("applying the template {}", call.target().map_or("", |(_, t)| t)))?;
        }
        let mut fresh = Vec::new();
        for entity in Entity::ALL {
            let alias = self.names.read_alias(entity);
            if self.aliased(&alias).await?.is_empty() {
                let first = self.names.generation(entity, 1);
                let reply = self
                    .client
                    .send(&templates::create_generation(&self.names, entity, &first, true))
                    .await?;
                match reply.status {
                    200..=299 => fresh.push(entity),
                    // Another process created it first (or it exists without the alias,
                    // which the check below refuses).
                    400 if client::error_type(&reply.body) == "resource_already_exists_exception" => {}
                    _ => {
                        return Err(reply
                            .success()
                            .err()
                            .map_or_else(|| anyhow::anyhow!("creating {first}"), Into::into));
                    }
                }
            }
            let behind = self.aliased(&alias).await?;
            if behind.len() != 1 {
                anyhow::bail!(
                    "the read alias {alias} points at {} indices ({}); it must point at exactly one generation. \
                     `arrears doctor` shows the aliases and the fix",
                    behind.len(),
                    behind.join(", ")
                );
            }
            let reporting = self.aliased(&self.names.reporting_alias(entity)).await?;
            if reporting != behind {
                self.send_ok(&templates::follow_reads(&self.names, entity, &behind[0], &reporting))
                    .await
                    .context("moving the reporting alias to the read generation")?;
            }
        }
        Ok(fresh)
    }

    /// Indices an alias points to (none when it does not exist).
    async fn aliased(&self, alias: &str) -> Result<Vec<String>, EsError> {
        let reply = self.client.send(&Call::GetAlias { name: alias.to_owned() }).await?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        let body = reply.success()?;
        let mut indices: Vec<String> = body.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        indices.sort();
        Ok(indices)
    }

    /// The name of the generation after the highest that exists.
    async fn next_generation(&self, entity: Entity) -> Result<String, EsError> {
        let body = self
            .send_ok(&Call::IndexAliases {
                index: self.names.pattern(entity),
            })
            .await?;
        let highest = body
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter_map(|index| self.names.generation_number(entity, index))
            .max()
            .unwrap_or(0);
        Ok(self.names.generation(entity, highest + 1))
    }

    async fn search_json(&self, entity: Entity, body: Value, by_relevance: bool) -> Result<Value> {
        self.searched(Call::search(self.names.read_alias(entity), body, by_relevance)).await
    }

    /// The generations behind `alias`, each with its uuid (none when the alias is
    /// missing), by name.
    async fn generations_behind(&self, alias: &str) -> Result<Vec<(String, String)>, EsError> {
        let reply = self.client.send(&Call::GetUuids { index: alias.to_owned() }).await?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        let status = reply.status;
        let body = reply.success()?;
        let mut generations = Vec::new();
        for (name, index) in body.as_object().into_iter().flatten() {
            let uuid = index
                .pointer("/settings/index/uuid")
                .and_then(Value::as_str)
                .ok_or_else(|| EsError::Rejected {
                    status,
                    reason: format!("the cluster answered no {} for {name}", client::UUID_SETTING),
                })?;
            generations.push((name.clone(), uuid.to_owned()));
        }
        generations.sort();
        Ok(generations)
    }

    /// Which of `generations` (name and uuid) have this build's mapping, reading each
    /// one's mapping from the cluster the first time it is asked about.
    async fn with_current_mapping(&self, entity: Entity, generations: &[(String, String)]) -> Result<Vec<String>> {
        let mut current = Vec::with_capacity(generations.len());
        for (generation, uuid) in generations {
            let known = self.current.lock().unwrap_or_else(|p| p.into_inner()).get(uuid).copied();
            let is_current = match known {
                Some(known) => known,
                None => {
                    let digest = self.mapping_digests(generation).await?.remove(generation).flatten();
                    let is_current = digest.as_deref() == Some(templates::mapping_digest(entity).as_str());
                    self.current
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(uuid.clone(), is_current);
                    is_current
                }
            };
            if is_current {
                current.push(generation.clone());
            }
        }
        Ok(current)
    }

    /// The mapping digest of every index `index` names (a name or a pattern), as the
    /// cluster holds it.
    async fn mapping_digests(&self, index: &str) -> Result<HashMap<String, Option<String>>, EsError> {
        let body = self.send_ok(&Call::GetMapping { index: index.to_owned() }).await?;
        Ok(body
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, index)| (name.clone(), templates::digest_of(&index["mappings"]).map(str::to_owned)))
            .collect())
    }

    /// The read generation of `entity` when its mapping is an older release's than this
    /// build's. One a newer release built is not outdated: in a rolling upgrade this
    /// instance is the older one, and rebuilding would undo the upgrade; its changes wait
    /// in the outbox for the newer release's workers.
    pub async fn outdated_generation(&self, entity: Entity) -> Result<Option<String>> {
        let read = self.generations_behind(&self.names.read_alias(entity)).await?;
        let current = self.with_current_mapping(entity, &read).await?;
        for (generation, _) in read.into_iter().filter(|(name, _)| !current.contains(name)) {
            let mapping = self.send_ok(&Call::GetMapping { index: generation.clone() }).await?;
            let schema = templates::schema_of(&mapping[&generation]["mappings"]);
            if schema <= templates::mapping_schema(entity) {
                return Ok(Some(generation));
            }
            tracing::warn!(
                generation = %generation,
                schema,
                this_build = templates::mapping_schema(entity),
                "a newer release built this generation; this instance leaves it alone (finish the upgrade)"
            );
        }
        Ok(None)
    }

    /// A search's answer, refused when some shards failed (the page would be partial).
    async fn searched(&self, call: Call) -> Result<Value> {
        let reply = self.client.send(&call).await?;
        self.searched_reply(reply)
    }

    /// A search's answer, as [`Self::searched`] reads it.
    fn searched_reply(&self, reply: Reply) -> Result<Value> {
        let response = reply.success()?;
        let failed = response.pointer("/_shards/failed").and_then(Value::as_u64).unwrap_or(0);
        if failed > 0 {
            let total = response.pointer("/_shards/total").and_then(Value::as_u64).unwrap_or(0);
            let reason = response
                .pointer("/_shards/failures/0/reason/reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            tracing::error!(failed, total, reason, "elasticsearch search had failed shards");
            return Err(Error::new(
                Code::ServiceUnavailable,
                format!(
                    "the search index answered from only {} of {total} shards; results would be incomplete",
                    total - failed
                ),
            )
            .with_retry_after(std::time::Duration::from_secs(1)));
        }
        Ok(response)
    }

    /// Writes `ops` to `targets` and reports each operation once: applied when any
    /// target took it, rejected when any refused it for good, stale otherwise.
    async fn write(&self, targets: &[String], ops: &[IndexOp], retry: Retry) -> Result<ApplyReport> {
        let mut items = Vec::with_capacity(ops.len() * targets.len());
        for op in ops {
            let source = source::of(op).map_err(|e| Error::Internal(e.into()))?;
            for target in targets {
                items.push(Item {
                    target: write_alias(target),
                    entity: op.entity.as_str(),
                    id: op.id,
                    version: op.version,
                    source: source.clone(),
                });
            }
        }
        let outcomes = bulk::write(&self.client, &items, retry).await?;
        let letters = bulk::dead_letters(&items, &outcomes);
        if !letters.is_empty() {
            tracing::error!(count = letters.len(), first = %letters[0].reason, "elasticsearch refused documents; kept in search_dead_letters");
            self.dead_letters.record(&letters).await?;
        }
        let mut report = ApplyReport::default();
        for per_op in outcomes.chunks(targets.len().max(1)) {
            if per_op.iter().any(|o| matches!(o, Outcome::Dead { .. })) {
                report.rejected += 1;
            } else if per_op.contains(&Outcome::Applied) {
                report.applied += 1;
            } else {
                report.stale += 1;
            }
        }
        Ok(report)
    }

    /// Every id (and version) a query matches, in id order, page by page, all read
    /// from one point in time: a scan that crosses a rebuild's alias swap keeps reading
    /// the generation it began on, and no page shifts under concurrent writes.
    ///
    /// A rebuild's promote deletes the generation a scan may still be reading
    /// (Elasticsearch keeps no deleted index for an open point in time: the next page
    /// fails, [`client::pit_index_gone`]). The scan then opens a point in time on the new generation and goes on
    /// after the last id it read: ids sort the scan, so nothing is read twice or missed.
    async fn scan(&self, entity: Entity, query: Value, limit: usize) -> Result<Vec<(Uuid, i64)>> {
        let mut out = Vec::new();
        let mut after = None;
        let mut reopened = 0;
        loop {
            let mut pit = self.open_pit(entity).await?;
            let scanned = self.scan_pit(&mut pit, &query, limit, &mut out, &mut after).await;
            if let Err(err) = self.send_ok(&Call::ClosePit { id: pit }).await {
                tracing::debug!(error = %err, "closing a point in time failed; it expires by itself");
            }
            match scanned {
                Err(Error::Internal(err)) if reopened < 3 && err.is::<PitIndexGone>() => {
                    reopened += 1;
                    // The last sort values end in the old generation's `_shard_doc`,
                    // which means nothing in the new one (after it, the last id read
                    // would come again): the id alone places the next page.
                    after = after.and_then(|sort| sort.get(0).map(|id| json!([id])));
                    tracing::info!(read = out.len(), "the scanned generation was replaced; going on in the new one");
                }
                other => return other.map(|()| out),
            }
        }
    }

    async fn open_pit(&self, entity: Entity) -> Result<String> {
        let opened = self
            .send_ok(&Call::OpenPit {
                index: self.names.read_alias(entity),
                keep_alive: dsl::PIT_KEEP_ALIVE,
            })
            .await?;
        Ok(opened
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_response("open point in time", "no id"))?
            .to_owned())
    }

    async fn scan_pit(
        &self,
        pit: &mut String,
        query: &Value,
        limit: usize,
        out: &mut Vec<(Uuid, i64)>,
        after: &mut Option<Value>,
    ) -> Result<()> {
        while out.len() < limit {
            let size = dsl::SCAN_PAGE.min(limit - out.len());
            let body = dsl::scan_body(query.clone(), pit, after.clone(), size);
            let call = Call::SearchPit { body };
            let reply = self.client.send(&call).await?;
            if client::pit_index_gone(reply.status, &reply.body) {
                return Err(Error::Internal(anyhow::Error::new(PitIndexGone)));
            }
            let response = self.searched_reply(reply)?;
            // Elasticsearch may hand back a new id for the same point in time.
            if let Some(id) = response.get("pit_id").and_then(Value::as_str) {
                id.clone_into(pit);
            }
            let hits = response
                .pointer("/hits/hits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for hit in &hits {
                let id = hit
                    .get("_id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| bad_response("scan", "a hit without a uuid _id"))?;
                let version = hit.get("_version").and_then(Value::as_i64).unwrap_or(0);
                out.push((id, version));
                // With a point in time the sort values end in the implicit `_shard_doc`
                // tiebreaker; the next page starts after all of them.
                *after = hit.get("sort").cloned();
            }
            if hits.len() < size {
                break;
            }
        }
        Ok(())
    }
}

/// A point-in-time search whose index was deleted under it (a rebuild's promote).
#[derive(Debug, thiserror::Error)]
#[error("the point in time's index was deleted")]
struct PitIndexGone;

/// The sizes an `indices.stats` answer gives of the indices behind `entity`'s alias:
/// their primaries' documents, segments and store (`IndicesStatsResponse` in Elastic's
/// specification: `indices.<name>.primaries.{docs.count, docs.deleted, segments.count,
/// store.size_in_bytes}`).
fn index_sizes(entity: Entity, answer: &Value) -> Vec<IndexSize> {
    answer
        .get("indices")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, stats)| {
            let of = |pointer: &str| stats.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
            IndexSize {
                entity: entity.as_str().to_owned(),
                index: name.clone(),
                documents: of("/primaries/docs/count"),
                deleted_documents: of("/primaries/docs/deleted"),
                segments: of("/primaries/segments/count"),
                bytes: of("/primaries/store/size_in_bytes"),
            }
        })
        .collect()
}

impl SearchIndex for ElasticIndex {
    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn entities(&self) -> &'static [Entity] {
        &Entity::ALL
    }

    fn apply(&self, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>> {
        async move {
            let mut report = ApplyReport::default();
            for entity in Entity::ALL {
                let of_entity: Vec<IndexOp> = ops.iter().filter(|op| op.entity == entity).cloned().collect();
                if of_entity.is_empty() {
                    continue;
                }
                // Resolved per batch, after the documents were read from SQL: a rebuild
                // registered later backfills from SQL that is at least this new.
                let targets = self.generations_behind(&self.names.targets_alias(entity)).await?;
                if targets.is_empty() {
                    return Err(Error::Internal(anyhow::anyhow!(
                        "no {} index to write to: the alias {} is missing",
                        entity.plural(),
                        self.names.targets_alias(entity)
                    )));
                }
                // A generation built by another release would refuse this build's
                // documents (`dynamic: strict`) or analyse them otherwise: it gets none.
                // Its replacement, when a rebuild has registered one, gets them all;
                // with none, the changes wait in the outbox.
                let current = self.with_current_mapping(entity, &targets).await?;
                if current.is_empty() {
                    return Err(Error::Internal(anyhow::Error::new(OutdatedMapping {
                        entity,
                        generations: targets.into_iter().map(|(name, _)| name).collect(),
                    })));
                }
                // The index's refresh interval makes the batch searchable (Elastic calls
                // an explicit refresh after every write resource-intensive).
                let retry = Retry {
                    whole_requests: false,
                    ..self.retry
                };
                report += self.write(&current, &of_entity, retry).await?;
                if self.refresh_after_write {
                    self.send_ok(&Call::Refresh {
                        index: self.names.read_alias(entity),
                    })
                    .await?;
                }
            }
            Ok(report)
        }
        .boxed()
    }

    fn search(&self, query: AccountQuery) -> BoxFuture<'_, Result<SearchPage>> {
        async move {
            let order = Order::of_accounts(&query);
            let response = self
                .search_json(Entity::Account, dsl::account_search(&query), order == Order::Score)
                .await?;
            let mut page = page_of(&response, (order, query.counted), query.page_size, |d: &AccountDoc| d.id)?;
            let aggs = response.get("aggregations");
            page.facets = query
                .facets
                .iter()
                .map(|facet| {
                    let agg = aggs.and_then(|a| a.get(facet.name()));
                    let agg = match query.facet_owner(*facet) {
                        Some(_) => agg.and_then(|a| a.get(dsl::OWNED_VALUES)),
                        None => agg,
                    };
                    let values = match facet {
                        crate::domain::search::Facet::Bucket => ALL_BUCKETS
                            .iter()
                            .map(|b| {
                                let bucket = agg.and_then(|a| a.pointer(&format!("/buckets/{}", b.as_str())));
                                FacetValue {
                                    value: b.as_str().to_owned(),
                                    count: bucket.map_or(0, count_of),
                                    sums: Some(bucket.map_or_else(Vec::new, sums_of)),
                                }
                            })
                            .collect(),
                        crate::domain::search::Facet::Status => term_values(agg, true),
                        _ => term_values(agg, false),
                    };
                    (facet.name(), values)
                })
                .collect();
            Ok(page)
        }
        .boxed()
    }

    fn ranked_ids(&self, query: AccountQuery) -> BoxFuture<'_, Result<IdPage>> {
        async move {
            let order = Order::of_accounts(&query);
            let response = self
                .search_json(Entity::Account, dsl::ranked_ids(&query), order == Order::Score)
                .await?;
            ids_of(&response, order, query.page_size)
        }
        .boxed()
    }

    fn account_ids(&self, query: AccountQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>> {
        async move {
            let found = self.scan(Entity::Account, dsl::account_query(&query), limit).await?;
            Ok(found.into_iter().map(|(id, _)| id).collect())
        }
        .boxed()
    }

    fn payment_ids(&self, query: PaymentQuery, limit: usize) -> BoxFuture<'_, Result<Vec<Uuid>>> {
        async move {
            let found = self.scan(Entity::Payment, dsl::payment_query(&query), limit).await?;
            Ok(found.into_iter().map(|(id, _)| id).collect())
        }
        .boxed()
    }

    fn search_payments(&self, query: PaymentQuery) -> BoxFuture<'_, Result<SearchPage<PaymentDoc>>> {
        async move {
            let order = Order::of_payments(&query);
            let response = self
                .search_json(Entity::Payment, dsl::payment_search(&query), order == Order::Score)
                .await?;
            let mut page = page_of(&response, (order, query.counted), query.page_size, |d: &PaymentDoc| d.id)?;
            let aggs = response.get("aggregations");
            page.facets = query
                .facets
                .iter()
                .map(|facet| (facet.name(), term_values(aggs.and_then(|a| a.get(facet.name())), true)))
                .collect();
            Ok(page)
        }
        .boxed()
    }

    fn payment_stats(&self, query: StatsQuery) -> BoxFuture<'_, Result<Vec<CurrencyStats>>> {
        async move {
            let response = self.search_json(Entity::Payment, dsl::stats_body(&query), false).await?;
            let days = query.day_starts.len().saturating_sub(1);
            let mut out: Vec<CurrencyStats> = buckets(response.pointer("/aggregations/currencies"))
                .iter()
                .map(|currency| {
                    let completed = currency.get("completed");
                    let window = |name: &str| tally(completed.and_then(|c| c.get(name)));
                    let mut series: Vec<Tally> = buckets(completed.and_then(|c| c.get("series")))
                        .iter()
                        .map(|b| tally(Some(b)))
                        .collect();
                    series.resize(days, Tally::default());
                    let in_range = currency.get("in_range");
                    CurrencyStats {
                        currency: currency.get("key").and_then(Value::as_str).unwrap_or_default().to_owned(),
                        today: window("today"),
                        this_week: window("this_week"),
                        this_month: window("this_month"),
                        series,
                        by_status: stat_values(in_range.and_then(|r| r.get("by_status"))),
                        by_method: stat_values(in_range.and_then(|r| r.get("by_method"))),
                    }
                })
                .collect();
            out.sort_by(|a, b| a.currency.cmp(&b.currency));
            Ok(out)
        }
        .boxed()
    }

    fn version_of(&self, entity: Entity, id: Uuid) -> BoxFuture<'_, Result<Option<i64>>> {
        async move {
            let call = Call::GetDocVersion {
                index: self.names.read_alias(entity),
                id: id.hyphenated().to_string(),
            };
            let reply = self.client.send(&call).await?;
            if reply.status == 404 {
                return Ok(None);
            }
            let body = reply.success()?;
            Ok(body.get("_version").and_then(Value::as_i64))
        }
        .boxed()
    }

    fn searchable_everywhere(&self, entity: Entity) -> BoxFuture<'_, Result<()>> {
        async move {
            // `version_of` reads one copy; the others refresh on their own schedule. A
            // refresh reaches every copy of every shard before it answers.
            if self.replicas > 0 {
                self.send_ok(&Call::Refresh {
                    index: self.names.read_alias(entity),
                })
                .await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn versions(&self, entity: Entity) -> BoxFuture<'_, Result<HashMap<Uuid, i64>>> {
        async move {
            let found = self.scan(entity, dsl::live_documents(), usize::MAX).await?;
            Ok(found.into_iter().collect())
        }
        .boxed()
    }

    fn begin_rebuild(&self, entity: Entity) -> BoxFuture<'_, Result<String>> {
        async move {
            let generation = self.next_generation(entity).await?;
            let created = self
                .send_ok(&templates::create_generation(&self.names, entity, &generation, false))
                .await;
            if let Err(err) = created {
                // The cluster may have made the index (and its write aliases) although
                // the answer failed: it must not stay a write target.
                tracing::error!(generation = %generation, error = %err, "creating a rebuild's generation failed; dropping it");
                if let Err(cleanup) = self.abandon(entity, generation.clone()).await {
                    tracing::warn!(generation = %generation, error = %cleanup, "could not drop it; the next reindex or `arrears doctor --fix` does");
                }
                return Err(err.into());
            }
            Ok(generation)
        }
        .boxed()
    }

    /// Each document's source is built for its batch's bulk requests: a rebuild of
    /// 200,000 accounts peaked at 1.95 GB with batches of 100,000 rows and at 675 MB
    /// with these, and took less time (docs/benchmarks.md).
    fn backfill_rows(&self) -> usize {
        20_000
    }

    fn apply_to(&self, entity: Entity, generation: String, ops: Vec<IndexOp>) -> BoxFuture<'_, Result<ApplyReport>> {
        async move {
            if let Some(op) = ops.iter().find(|op| op.entity != entity) {
                return Err(Error::Internal(anyhow::anyhow!(
                    "a {} document in a {} backfill",
                    op.entity.as_str(),
                    entity.as_str()
                )));
            }
            self.write(&[generation], &ops, self.retry).await
        }
        .boxed()
    }

    fn count(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<u64>> {
        async move {
            if self.names.entity_of(&generation) != Some(entity) {
                return Err(Error::Internal(anyhow::anyhow!("{generation} is not a {} index", entity.plural())));
            }
            self.send_ok(&Call::Refresh { index: generation.clone() }).await?;
            let body = self
                .send_ok(&Call::Count {
                    index: generation,
                    body: json!({ "query": dsl::live_documents() }),
                })
                .await?;
            body.get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| bad_response("count", "no count"))
        }
        .boxed()
    }

    fn promote(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            let old = self.aliased(&self.names.read_alias(entity)).await?;
            let targets = self.aliased(&self.names.targets_alias(entity)).await?;
            let reporting = self.aliased(&self.names.reporting_alias(entity)).await?;
            if old.contains(&generation) || !targets.contains(&generation) {
                return Err(Error::new(
                    Code::Conflict,
                    format!("{generation} is not a {} rebuild in progress", entity.plural()),
                ));
            }
            self.merge(entity, &generation).await;
            self.send_ok(&templates::restore_settings(&generation, self.replicas)).await?;
            self.send_ok(&Call::Refresh { index: generation.clone() }).await?;
            if self.keep_old {
                // Marked before the swap, so that a process dying between the two never
                // leaves a kept generation looking like a leftover.
                let kept: Vec<Value> = old
                    .iter()
                    .map(|index| json!({ "add": { "index": index, "alias": self.names.kept_alias(entity) } }))
                    .collect();
                self.send_ok(&Call::UpdateAliases {
                    body: json!({ "actions": kept }),
                })
                .await?;
            }
            self.send_ok(&templates::swap_aliases(&self.names, entity, &generation, &old, &reporting))
                .await?;
            tracing::info!(generation = %generation, old = ?old, keep_old = self.keep_old, "alias swapped");
            if !self.keep_old {
                for index in old {
                    let reply = self.client.send(&Call::DeleteIndex { index }).await?;
                    if reply.status != 404 {
                        reply.success()?;
                    }
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn abandon(&self, entity: Entity, generation: String) -> BoxFuture<'_, Result<()>> {
        async move {
            if self.aliased(&self.names.read_alias(entity)).await?.contains(&generation) {
                return Err(Error::new(
                    Code::Conflict,
                    format!("{generation} is what searches read; it is not a rebuild to abandon"),
                ));
            }
            let reply = self.client.send(&Call::DeleteIndex { index: generation }).await?;
            if reply.status != 404 {
                reply.success()?;
            }
            Ok(())
        }
        .boxed()
    }

    fn leftovers(&self, entity: Entity) -> BoxFuture<'_, Result<Vec<String>>> {
        async move {
            // A generation kept on purpose for a rollback has the kept alias.
            let aliases = self
                .send_ok(&Call::IndexAliases {
                    index: self.names.pattern(entity),
                })
                .await?;
            let mut leftovers: Vec<String> = aliases
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(index, found)| {
                    self.names.generation_number(entity, index).is_some()
                        && found["aliases"].as_object().is_none_or(|aliases| aliases.is_empty())
                })
                .map(|(index, _)| index.clone())
                .collect();
            leftovers.sort();
            Ok(leftovers)
        }
        .boxed()
    }

    fn rebuilds(&self, entity: Entity) -> BoxFuture<'_, Result<Vec<String>>> {
        async move {
            let read = self.aliased(&self.names.read_alias(entity)).await?;
            let targets = self.aliased(&self.names.targets_alias(entity)).await?;
            Ok(targets.into_iter().filter(|target| !read.contains(target)).collect())
        }
        .boxed()
    }

    fn outdated(&self) -> BoxFuture<'_, Result<Vec<Entity>>> {
        async move {
            let mut outdated = Vec::new();
            for entity in Entity::ALL {
                if self.outdated_generation(entity).await?.is_some() {
                    outdated.push(entity);
                }
            }
            Ok(outdated)
        }
        .boxed()
    }

    fn sizes(&self) -> BoxFuture<'_, Result<Vec<IndexSize>>> {
        async move {
            let mut sizes = Vec::new();
            for entity in Entity::ALL {
                let index = self.names.read_alias(entity);
                let reply = self.client.send(&Call::IndexStats { index }).await?;
                // No index behind the alias yet: nothing to size.
                if reply.status != 404 {
                    sizes.extend(index_sizes(entity, &reply.success()?));
                }
            }
            Ok(sizes)
        }
        .boxed()
    }

    fn health(&self) -> BoxFuture<'_, std::result::Result<String, String>> {
        async move {
            let answer = self
                .send_ok(&Call::ClusterHealth {
                    index: self.names().family(),
                })
                .await
                .map_err(|e| e.to_string())?;
            match answer.get("status").and_then(Value::as_str) {
                Some("red") => Err("cluster status red: some primary shards are unassigned".to_owned()),
                Some(status) => Ok(status.to_owned()),
                None => Err("cluster health without a status".to_owned()),
            }
        }
        .boxed()
    }

    fn is_permanent(&self, err: &Error) -> bool {
        EsError::is_fatal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_stats_answer_gives_each_index_behind_the_alias_its_primaries() {
        // An `IndicesStatsResponse` as Elastic's specification types it, cut to the
        // metrics asked for (`_all` and `total` are there and not read).
        let index = |docs: u64, deleted: u64, segments: u64, bytes: u64| {
            json!({
                "uuid": "x7EBxwjOR1a1kqkNsDXo5A",
                "health": "green",
                "status": "open",
                "primaries": {
                    "docs": {"count": docs, "deleted": deleted, "total_size_in_bytes": bytes},
                    "store": {"size_in_bytes": bytes, "reserved_in_bytes": 0},
                    "segments": {"count": segments, "memory_in_bytes": 0, "file_sizes": {}}
                },
                "total": {"docs": {"count": docs * 2, "deleted": 0, "total_size_in_bytes": 0}}
            })
        };
        let answer = json!({
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_all": index(0, 0, 0, 0),
            "indices": {"arrears-accounts-g2": index(1_000_000, 312, 14, 412_000_000)}
        });
        assert_eq!(
            index_sizes(Entity::Account, &answer),
            vec![IndexSize {
                entity: "account".into(),
                index: "arrears-accounts-g2".into(),
                documents: 1_000_000,
                deleted_documents: 312,
                segments: 14,
                bytes: 412_000_000,
            }]
        );
        assert_eq!(index_sizes(Entity::Payment, &json!({"_shards": {}})), vec![]);
    }

    #[test]
    fn a_scored_search_is_counted_whole_by_the_node_and_bounded_here_a_sorted_list_by_the_node() {
        use crate::domain::search::{Sort, SortField};
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        let sorted_by = |field, counted| AccountQuery {
            text: Some("smit".into()),
            sort: Sort { field, descending: true },
            counted,
            ..AccountQuery::new(today)
        };
        let tracked = |query: &AccountQuery| dsl::account_search(query)["track_total_hits"].clone();
        assert_eq!(tracked(&sorted_by(SortField::Relevance, Counted::LIST)), json!(true));
        assert_eq!(tracked(&sorted_by(SortField::Balance, Counted::LIST)), json!(10_000));
        assert_eq!(tracked(&sorted_by(SortField::Relevance, Counted::Exact)), json!(true));
        assert_eq!(tracked(&sorted_by(SortField::Balance, Counted::Exact)), json!(true));

        // A search response's total as Elastic's `TotalHits` types it.
        let answered = |value: u64, relation: &str, read: (Order, Counted)| {
            let response = json!({"hits": {"total": {"value": value, "relation": relation}, "hits": []}});
            let page = page_of(&response, read, 25, |d: &AccountDoc| d.id).unwrap();
            (page.total, page.total_is_lower_bound)
        };
        assert_eq!(
            answered(16_600, "eq", (Order::Score, Counted::LIST)),
            (10_000, true),
            "counted whole, answered bounded"
        );
        assert_eq!(answered(9_999, "eq", (Order::Score, Counted::LIST)), (9_999, false));
        assert_eq!(answered(16_600, "eq", (Order::Score, Counted::Exact)), (16_600, false));
        let by_balance = Order::Column("derived.balance_units", true);
        assert_eq!(
            answered(10_000, "gte", (by_balance, Counted::LIST)),
            (10_000, true),
            "the node stopped at the bound"
        );
        assert_eq!(answered(10_000, "eq", (by_balance, Counted::LIST)), (10_000, false));
    }
}
