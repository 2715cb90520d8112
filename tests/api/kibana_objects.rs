//! `index-templates/kibana/saved-objects.ndjson` as Kibana 8's saved-objects import
//! (`POST /api/saved_objects/_import`, what compose runs) takes it, and as Kibana then
//! loads it: every rule below is one a Kibana 8.9+ applies, with the source file of
//! Kibana's that applies it (paths as of 8.18+; before, the same files lived under
//! `src/plugins/` and `packages/core/saved-objects/`). The file must also be exactly
//! what `generate.py` writes, so the script and the file cannot drift apart.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use arrears::domain::document::Entity;
use arrears::search::elastic::templates::Names;
use serde_json::{Map, Value};

use crate::elastic::{mapped, mappings};

fn kibana_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("index-templates/kibana")
}

fn objects() -> Vec<Value> {
    let text = std::fs::read_to_string(kibana_dir().join("saved-objects.ndjson")).unwrap();
    // routes/utils.ts (createSavedObjectsStreamFromNdJson): every non-blank line is
    // parsed as JSON, and one that is not fails the whole import.
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn keys(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn references_by_name(object: &Value) -> BTreeMap<&str, &Value> {
    object["references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r))
        .collect()
}

fn json_string(value: &Value, what: &str) -> Value {
    let text = value.as_str().unwrap_or_else(|| panic!("{what} must be a JSON string, is {value}"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON ({e}): {text}"))
}

/// A version `a.b.c` as numbers, to compare.
fn semver(text: &str) -> (u32, u32, u32) {
    let parts: Vec<u32> = text
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("{text} is not semver")))
        .collect();
    assert_eq!(parts.len(), 3, "{text} is not semver");
    (parts[0], parts[1], parts[2])
}

/// The Kibana compose runs, which the import goes into.
fn compose_kibana() -> (u32, u32, u32) {
    let compose = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")).unwrap();
    let tag = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: docker.elastic.co/kibana/kibana:"))
        .expect("compose runs Kibana");
    semver(tag.trim())
}

#[test]
fn the_saved_objects_are_what_generate_py_writes() {
    let dir = std::env::temp_dir().join(format!("arrears-kibana-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(kibana_dir().join("generate.py"), dir.join("generate.py")).unwrap();
    let status = std::process::Command::new("python3")
        .arg("generate.py")
        .current_dir(&dir)
        .status()
        .expect("python3 runs generate.py");
    assert!(status.success());
    let generated = std::fs::read_to_string(dir.join("saved-objects.ndjson")).unwrap();
    let shipped = std::fs::read_to_string(kibana_dir().join("saved-objects.ndjson")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        generated == shipped,
        "saved-objects.ndjson is not what generate.py writes: run it in index-templates/kibana and commit both"
    );
}

#[test]
fn kibana_8_imports_every_saved_object_and_loads_every_panel() {
    let objects = objects();
    let kibana = compose_kibana();
    let mut seen = HashSet::new();
    for object in &objects {
        let (kind, id) = (
            object["type"].as_str().unwrap_or_default(),
            object["id"].as_str().unwrap_or_default(),
        );
        // base_schema.ts (baseConfigSchema): `id` a non-empty string, `attributes` an
        // object; collect_saved_objects.ts: a type not registered as importable is
        // refused (`unsupported_type`), and the same type:id twice fails the import.
        assert!(!id.is_empty(), "an object without an id: {object}");
        assert!(object["attributes"].is_object(), "{id}: attributes must be an object");
        assert!(
            ["index-pattern", "visualization", "dashboard"].contains(&kind),
            "{id}: type {kind:?} is not one this file is checked for"
        );
        assert!(seen.insert((kind, id)), "{kind}:{id} twice: Non-unique import objects detected");
        // base_schema.ts: a reference is exactly {name, type, id}, all strings.
        for reference in object["references"].as_array().expect("references is an array") {
            assert_eq!(keys(reference), BTreeSet::from(["id", "name", "type"]), "{id}: {reference}");
            assert!(["id", "name", "type"].iter().all(|k| reference[k].is_string()), "{id}: {reference}");
        }
        // upgrade_pipeline.ts: a typeMigrationVersion newer than the type's latest
        // migration fails the whole import ("belongs to a more recent version of
        // Kibana"), and an older or missing one runs migrations over hand-written JSON;
        // the latest are index-pattern 8.0.0 (data_views.ts, converted to multiple
        // namespaces), visualization 8.5.0 (visualization_saved_object_migrations.ts),
        // dashboard 8.9.0 (the last legacy one; later ones are model versions).
        let latest = match kind {
            "index-pattern" => "8.0.0",
            "visualization" => "8.5.0",
            _ => "8.9.0",
        };
        assert_eq!(object["typeMigrationVersion"], latest, "{id}");
        // utils.ts (assertValidCoreVersion): semver, and not newer than the Kibana that
        // imports it.
        let core = semver(object["coreMigrationVersion"].as_str().expect("coreMigrationVersion"));
        assert!(
            core <= kibana,
            "{id}: coreMigrationVersion {core:?} is newer than Kibana {kibana:?}"
        );
    }
    let ids = |kind: &str| -> HashSet<String> {
        objects
            .iter()
            .filter(|o| o["type"] == kind)
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (views, visualizations) = (ids("index-pattern"), ids("visualization"));
    for object in &objects {
        let id = object["id"].as_str().unwrap();
        // validate_references.ts: a reference to an index-pattern the file does not
        // hold (nor the space) is `missing_references`, and then nothing is imported.
        for reference in object["references"].as_array().unwrap() {
            if reference["type"] == "index-pattern" {
                assert!(
                    views.contains(reference["id"].as_str().unwrap()),
                    "{id}: missing data view {reference}"
                );
            }
        }
        match object["type"].as_str().unwrap() {
            "index-pattern" => data_view(object),
            "visualization" => visualization(object),
            _ => dashboard(object, &visualizations),
        }
    }
}

/// data_views.ts registers no attribute schema, but the data views service parses its
/// attributes on load (data_views.ts, savedObjectToSpec): these are JSON strings.
fn data_view(object: &Value) {
    let a = &object["attributes"];
    let id = &object["id"];
    assert!(a["title"].is_string() && a["name"].is_string(), "{id}: title and name");
    for filter in json_string(&a["sourceFilters"], "sourceFilters").as_array().unwrap() {
        assert_eq!(keys(filter), BTreeSet::from(["value"]), "{id}: source filter {filter}");
    }
    let entity = Entity::ALL
        .into_iter()
        .find(|e| a["title"] == Value::String(Names::new("arrears").reporting_alias(*e)))
        .unwrap_or_else(|| panic!("{id} reads no reporting alias"));
    let mapping = mappings(entity);
    let mut fields = BTreeSet::new();
    mapped(&mapping["properties"], "", &mut fields, &mut BTreeSet::new());
    let attrs = json_string(&a["fieldAttrs"], "fieldAttrs");
    for (field, attr) in attrs.as_object().unwrap() {
        assert!(fields.contains(field), "{id} labels {field}, which is not mapped");
        assert!(
            keys(attr).is_subset(&BTreeSet::from(["customLabel", "customDescription", "count"])),
            "{id}: {attr}"
        );
    }
    if let Some(time) = a.get("timeFieldName") {
        let field = time.as_str().unwrap();
        let typed = field.split('.').fold(&mapping, |m, part| &m["properties"][part]);
        assert_eq!(typed["type"], "date", "{id}: time field {field} must be a date");
    }
}

/// What a legacy visualization's schema allows (visualization.ts, schema '8.8.0':
/// unknown attributes are refused, `title` is required).
const VISUALIZATION_ATTRIBUTES: [&str; 7] = [
    "title",
    "description",
    "version",
    "kibanaSavedObjectMeta",
    "uiStateJSON",
    "visState",
    "savedSearchRefName",
];

/// The schemas each vis type's editor has (vis_types/xy, pie, table, metric): an agg of
/// another schema plays no part in the chart.
fn schemas(vis_type: &str) -> &'static [&'static str] {
    match vis_type {
        "histogram" | "line" | "area" | "horizontal_bar" => &["metric", "radius", "segment", "group", "split"],
        "pie" => &["metric", "segment", "split"],
        "table" => &["metric", "bucket", "split"],
        "metric" => &["metric", "group"],
        other => panic!("vis type {other} is not one this check knows (vis.ts refuses unknown ones on load)"),
    }
}

/// The params each agg type declares (data plugin, common/search/aggs/buckets/*.ts and
/// metrics/*.ts; every agg also takes `customLabel` and `json`). setParams drops the
/// others silently, so a chart would not be what the file says.
fn declared_params(agg: &str) -> &'static [&'static str] {
    match agg {
        "count" => &[],
        "sum" | "avg" | "min" | "max" | "cardinality" => &["field"],
        "terms" => &[
            "field",
            "size",
            "shardSize",
            "order",
            "orderBy",
            "orderAgg",
            "otherBucket",
            "otherBucketLabel",
            "missingBucket",
            "missingBucketLabel",
            "include",
            "exclude",
            "includeIsRegex",
            "excludeIsRegex",
        ],
        "date_histogram" => &[
            "field",
            "interval",
            "min_doc_count",
            "extended_bounds",
            "drop_partials",
            "useNormalizedEsInterval",
            "scaleMetricValues",
            "extendToTimeRange",
            "format",
        ],
        "histogram" => &[
            "field",
            "interval",
            "maxBars",
            "intervalBase",
            "min_doc_count",
            "has_extended_bounds",
            "extended_bounds",
        ],
        "date_range" | "range" => &["field", "ranges"],
        other => panic!("agg type {other} is not one this check knows"),
    }
}

fn visualization(object: &Value) {
    let id = &object["id"];
    let a = &object["attributes"];
    let extra: Vec<_> = keys(a).into_iter().filter(|k| !VISUALIZATION_ATTRIBUTES.contains(k)).collect();
    assert!(
        extra.is_empty(),
        "{id}: [attributes.{}]: definition for this key is missing",
        extra.join(",")
    );
    assert!(a["title"].is_string() && a["uiStateJSON"].is_string(), "{id}");
    // Schema '8.8.0': kibanaSavedObjectMeta holds searchSourceJSON and nothing else.
    assert_eq!(keys(&a["kibanaSavedObjectMeta"]), BTreeSet::from(["searchSourceJSON"]), "{id}");
    let search = json_string(&a["kibanaSavedObjectMeta"]["searchSourceJSON"], "searchSourceJSON");
    // inject_references.ts: indexRefName names one of the object's references, or the
    // visualization fails to load ("Could not find reference").
    let references = references_by_name(object);
    let view = references
        .get(search["indexRefName"].as_str().expect("indexRefName"))
        .unwrap_or_else(|| panic!("{id}: Could not find reference for {}", search["indexRefName"]));
    assert_eq!(view["type"], "index-pattern", "{id}");
    let state = json_string(&a["visState"], "visState");
    assert_eq!(state["title"], a["title"], "{id}");
    let allowed = schemas(state["type"].as_str().unwrap());
    let aggs = state["aggs"].as_array().unwrap();
    let metric_ids: HashSet<&str> = aggs
        .iter()
        .filter(|g| g["schema"] == "metric")
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    let mut agg_ids = HashSet::new();
    for agg in aggs {
        let kind = agg["type"].as_str().unwrap();
        assert!(
            agg["id"].is_string() && agg_ids.insert(agg["id"].as_str().unwrap()),
            "{id}: agg ids are unique strings"
        );
        assert_eq!(agg["enabled"], true, "{id}");
        let schema = agg["schema"].as_str().unwrap();
        assert!(allowed.contains(&schema), "{id}: {} has no {schema} schema", state["type"]);
        let params = agg["params"].as_object().unwrap();
        let declared = declared_params(kind);
        for param in params.keys() {
            assert!(
                declared.contains(&param.as_str()) || param == "customLabel" || param == "json",
                "{id}: {kind} declares no param {param} (Kibana would drop it)"
            );
        }
        check_params(id, kind, params, &metric_ids);
    }
    let count = |schema: &str| aggs.iter().filter(|g| g["schema"] == schema).count();
    match state["type"].as_str().unwrap() {
        // pie: exactly one metric; xy charts: at least one metric, one x axis, at most
        // three split series.
        "pie" => assert_eq!(count("metric"), 1, "{id}"),
        "histogram" | "line" | "area" | "horizontal_bar" => {
            assert!(count("metric") >= 1 && count("segment") <= 1 && count("group") <= 3, "{id}")
        }
        _ => {}
    }
}

/// The types of the params this file uses, as each agg type reads them.
fn check_params(id: &Value, kind: &str, params: &Map<String, Value>, metric_ids: &HashSet<&str>) {
    match kind {
        // date_histogram.ts: min_doc_count is a number; the interval one of the options
        // (_interval_options.ts) or a count of a unit.
        "date_histogram" => {
            let interval = params["interval"].as_str().unwrap();
            let unit = interval.trim_start_matches(|c: char| c.is_ascii_digit());
            assert!(
                interval == "auto" || ["ms", "s", "m", "h", "d", "w", "M", "y"].contains(&unit),
                "{id}: interval {interval}"
            );
            assert!(
                params.get("min_doc_count").is_none_or(Value::is_u64),
                "{id}: min_doc_count is a number"
            );
        }
        // histogram.ts: min_doc_count is a boolean (show empty buckets), extended_bounds
        // apply with has_extended_bounds.
        "histogram" => {
            assert!(
                params.get("min_doc_count").is_none_or(Value::is_boolean),
                "{id}: min_doc_count is a boolean"
            );
            assert_eq!(
                params.contains_key("extended_bounds"),
                params.get("has_extended_bounds") == Some(&Value::Bool(true)),
                "{id}: extended_bounds need has_extended_bounds"
            );
        }
        // terms.ts: order asc or desc, by the key or by a metric of the same chart.
        "terms" => {
            assert!(["asc", "desc"].contains(&params["order"].as_str().unwrap()), "{id}");
            let by = params["orderBy"].as_str().unwrap();
            assert!(by == "_key" || metric_ids.contains(by), "{id}: orderBy {by}");
            assert!(params["size"].is_u64(), "{id}");
        }
        _ => {}
    }
}

/// The dashboard's schema (dashboard_saved_object.ts, v1: unknown attributes refused
/// before 8.16, `title` required) and its panels as the dashboard loads them
/// (dashboard_container_references.ts, createInject).
fn dashboard(object: &Value, visualizations: &HashSet<String>) {
    const ATTRIBUTES: [&str; 12] = [
        "title",
        "description",
        "kibanaSavedObjectMeta",
        "timeRestore",
        "timeFrom",
        "timeTo",
        "refreshInterval",
        "controlGroupInput",
        "panelsJSON",
        "optionsJSON",
        "hits",
        "version",
    ];
    let id = &object["id"];
    let a = &object["attributes"];
    let extra: Vec<_> = keys(a).into_iter().filter(|k| !ATTRIBUTES.contains(k)).collect();
    assert!(extra.is_empty(), "{id}: unknown attributes {extra:?}");
    assert!(a["title"].is_string() && a["timeRestore"].is_boolean(), "{id}");
    json_string(&a["optionsJSON"], "optionsJSON");
    json_string(&a["kibanaSavedObjectMeta"]["searchSourceJSON"], "searchSourceJSON");
    let references = references_by_name(object);
    let panels = json_string(&a["panelsJSON"], "panelsJSON");
    let mut indices = HashSet::new();
    let mut cells = HashSet::new();
    for panel in panels.as_array().unwrap() {
        let index = panel["panelIndex"].as_str().expect("panelIndex is a string");
        assert!(indices.insert(index), "{id}: panel {index} twice");
        let grid = &panel["gridData"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap_or_else(|| panic!("{id}: gridData.{k}")));
        assert_eq!(grid["i"], index, "{id}: gridData.i is the panel's index");
        // The grid is 48 columns wide; panels do not overlap.
        assert!(x + w <= 48 && w > 0 && h > 0, "{id}: panel {index} off the grid");
        for cell in (x..x + w).flat_map(|cx| (y..y + h).map(move |cy| (cx, cy))) {
            assert!(cells.insert(cell), "{id}: panel {index} overlaps another");
        }
        assert!(panel["embeddableConfig"].is_object(), "{id}");
        // createInject: the references prefixed `<panelIndex>:` are the panel's, and
        // its panelRefName names one of them (else "Could not find reference"), which
        // gives the panel its type and saved object.
        let name = panel["panelRefName"].as_str().expect("panelRefName");
        assert_eq!(name, format!("panel_{index}"), "{id}");
        let reference = references
            .get(format!("{index}:{name}").as_str())
            .unwrap_or_else(|| panic!("{id}: Could not find reference \"{name}\" of panel {index}"));
        assert_eq!(reference["type"], "visualization", "{id}");
        assert_eq!(panel["type"], reference["type"], "{id}");
        assert!(
            visualizations.contains(reference["id"].as_str().unwrap()),
            "{id}: panel {index} shows {} which the file lacks (import takes it, the panel fails)",
            reference["id"]
        );
    }
}

/// What compose's kibana-setup runs, against a Kibana that answers as its import API
/// documents: 200 whether or not every object was imported, `success` and
/// `successCount` always, an `errors` list of the refused objects when `success` is
/// false. The Kibana stand-in refuses a request without the `kbn-xsrf` header, as
/// Kibana does (400), and one that is not a multipart upload of the file.
fn import_against(answer: &'static str) -> std::process::Output {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let kibana = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 65536];
        // Headers, then the body up to its Content-Length.
        loop {
            let n = stream.read(&mut chunk).unwrap();
            request.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&request).to_string();
        let head = text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        let status = if !head.starts_with("post /api/saved_objects/_import?overwrite=true ") {
            "404 Not Found"
        } else if !head.contains("\r\nkbn-xsrf:") || !head.contains("content-type: multipart/form-data") {
            "400 Bad Request"
        } else if !head.contains("\r\nauthorization: basic ") || !text.contains("\"type\":\"index-pattern\"") {
            "401 Unauthorized"
        } else {
            "200 OK"
        };
        let body = if status == "200 OK" {
            answer
        } else {
            r#"{"statusCode":400,"error":"Bad Request","message":"refused"}"#
        };
        write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        status.to_owned()
    });
    let output = std::process::Command::new("sh")
        .arg(kibana_dir().join("import.sh"))
        .env("KIBANA_URL", &url)
        .env("ELASTIC_PASSWORD", "changeme")
        .output()
        .unwrap();
    assert_eq!(kibana.join().unwrap(), "200 OK", "the request is the import Kibana documents");
    output
}

#[test]
fn the_compose_import_passes_only_when_kibana_imported_every_object() {
    let imported = import_against(r#"{"successCount":9,"success":true,"warnings":[],"successResults":[]}"#);
    assert!(imported.status.success(), "{}", String::from_utf8_lossy(&imported.stderr));
    // Kibana answers 200 when it refused some objects.
    let refused = import_against(
        r#"{"successCount":8,"success":false,"warnings":[],"errors":[{"id":"arrears-accounts","type":"dashboard","title":"Collections","meta":{"title":"Collections"},"error":{"type":"missing_references","references":[{"type":"index-pattern","id":"arrears-accounts-reporting"}]}}]}"#,
    );
    assert!(!refused.status.success(), "a half-done import fails the compose step");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("did not import every saved object"), "{said}");
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("missing_references"),
        "Kibana's errors are printed"
    );
    let compose = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml")).unwrap();
    assert!(
        compose.contains(r#"entrypoint: ["sh", "/kibana/import.sh"]"#),
        "compose's kibana-setup runs it"
    );
}
