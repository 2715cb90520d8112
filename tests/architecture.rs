//! The crate's modules form layers: a module uses only modules of lower layers, so
//! there is no cycle and each module can be read knowing only what is below it. The
//! test reads the `crate::` paths in `src/`, so a new upward dependency fails CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A module may use modules of earlier layers only.
const LAYERS: &[&[&str]] = &[
    &["clock", "config", "shutdown"],
    &["telemetry"],
    &["domain"],
    &["error"],
    &["import"],
    &["search", "store", "storage", "messaging"],
    &["lists", "telephony"],
    &["auth", "quota", "sync"],
    &["events", "seed"],
    &["service"],
    &["jobs"],
    &["state"],
    &["http"],
    &["app"],
    &["cli"],
];

/// `http`'s modules that are not handlers: routing and serving, and the support every
/// handler may use (query and list parsing, cursors, replies), and the API description
/// that names every handler's operation. The other modules are
/// handlers, and a handler uses no other handler.
const HTTP_SUPPORT: &[&str] = &[
    "mod",
    "server",
    "compress",
    "throttle",
    "filters",
    "headers",
    "query",
    "indexed",
    "idempotent",
    "paging",
    "recover",
    "openapi",
    "account_view",
    "ranges",
    "multipart",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b` path in `text`, as `[a, b]`, including those inside
/// `use crate::{a::x, b}` groups.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    paths_after(text, "crate::")
}

/// Every path in `text` that starts with `prefix` (`crate::`, `super::`), without it, as
/// [`crate_paths`] reads them.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let preceded_by_word = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + prefix.len()..];
        if preceded_by_word {
            continue;
        }
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        let prefix: Vec<String> = path.split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        match rest[path.len()..].strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let item = item.split(" as ").next().unwrap_or_default().trim();
                    let mut segments = prefix.clone();
                    segments.extend(
                        item.split("::")
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty() && s != "self"),
                    );
                    if !segments.is_empty() {
                        paths.push(segments);
                    }
                }
            }
            None => paths.push(prefix),
        }
    }
    paths
}

/// (module, file under src/) for each source file: `src/store/accounts.rs` is in
/// `store`, file `accounts`.
fn place(root: &Path, path: &Path) -> (String, String) {
    let relative = path.strip_prefix(root).unwrap();
    let mut parts = relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned());
    let module = parts.next().unwrap();
    let file = parts.next().unwrap_or_else(|| "mod".to_owned());
    (module, file)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn modules_use_only_lower_layers_and_nothing_but_app_uses_http() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut unplaced = BTreeSet::new();
    let mut handler_edges = BTreeSet::new();
    for path in &files {
        let (module, file) = place(&root, path);
        if module == "lib" || module == "main" {
            continue;
        }
        if layer_of(&module).is_none() {
            unplaced.insert(module.clone());
        }
        let text = fs::read_to_string(path).unwrap();
        for segments in crate_paths(&text) {
            let target = &segments[0];
            if *target != module {
                edges
                    .entry((module.clone(), target.clone()))
                    .or_default()
                    .insert(path.strip_prefix(&root).unwrap().display().to_string());
            } else if module == "http"
                && let Some(other) = segments.get(1)
                && *other != file
                && root.join("http").join(format!("{other}.rs")).exists()
                && !HTTP_SUPPORT.contains(&file.as_str())
                && !HTTP_SUPPORT.contains(&other.as_str())
            {
                handler_edges.insert(format!("http::{file} uses http::{other}"));
            }
        }
    }
    assert!(unplaced.is_empty(), "modules missing from LAYERS: {unplaced:?}");
    let upward: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| match (layer_of(from), layer_of(to)) {
            (Some(from), Some(to)) => to >= from,
            _ => false,
        })
        .map(|((from, to), files)| format!("{from} -> {to} (in {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(
        upward.is_empty(),
        "modules using their own or a higher layer:\n{}",
        upward.join("\n")
    );
    let into_http: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| to == "http" && from != "app")
        .map(|((from, _), files)| format!("{from} (in {})", files.iter().cloned().collect::<Vec<_>>().join(", ")))
        .collect();
    assert!(
        into_http.is_empty(),
        "only `app` (which mounts the routes) may use `http`; the CLI and jobs call `service`:\n{}",
        into_http.join("\n")
    );
    assert!(
        handler_edges.is_empty(),
        "handler modules using each other:\n{}",
        handler_edges.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn only_store_writes_sql() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    // Every way to run a statement (`sqlx::query(`, `query_as::<..>(`, the macros, the
    // module's types); not the name `"sqlx::query"` alone, which is also sqlx's tracing
    // target (telemetry::queries listens to it).
    let statements = [
        "sqlx::query(",
        "sqlx::query!",
        "sqlx::query_",
        "sqlx::query::",
        "query_as(",
        "query_scalar(",
        "copy_in_raw(",
    ];
    let outside: Vec<String> = files
        .iter()
        .filter(|path| place(&root, path).0 != "store")
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            statements.iter().any(|s| text.contains(s))
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(outside.is_empty(), "SQL outside store/: {outside:?}");
}

/// The code of `text`, without its comments (`//` to the end of the line).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.split_once("//").map_or(line, |(code, _)| code)))
}

/// Role checks a handler could forget: each belongs in the `service` operation the
/// handler calls (or in a guard value that operation takes).
const ROLE_CHECKS: [&str; 4] = [".require(", ".require_assigned(", ".require_work_on(", ".can("];

#[test]
fn http_reaches_the_store_and_role_checks_only_through_service() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root.join("http"), &mut files);
    let mut found = Vec::new();
    for path in &files {
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        let text = fs::read_to_string(path).unwrap();
        let code: String = code_lines(&text).map(|(_, line)| format!("{line}\n")).collect();
        if crate_paths(&code).iter().any(|segments| segments[0] == "store") {
            found.push(format!("{name} uses store"));
        }
        for (line, code) in code_lines(&text) {
            if let Some(check) = ROLE_CHECKS.iter().find(|check| code.contains(*check)) {
                found.push(format!("{name}:{line} checks a role ({check}..)"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "http reads and writes through `service`, whose operations take the caller and check its role:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_reader_finds_paths_in_uses_groups_and_code() {
    let text = "use crate::{http, jobs::run};\nuse crate::http::{self as api, paging::Page};\nlet x = crate::store::accounts::get();\nlet y = notcrate::z;";
    let found = crate_paths(text);
    assert_eq!(
        found,
        vec![
            vec!["http".to_owned()],
            vec!["jobs".to_owned(), "run".to_owned()],
            vec!["http".to_owned()],
            vec!["http".to_owned(), "paging".to_owned(), "Page".to_owned()],
            vec!["store".to_owned(), "accounts".to_owned(), "get".to_owned()],
        ]
    );
}

/// The code of a file: without its comment lines (a link in a doc comment is not a use)
/// and its unit tests (`#[cfg(test)] mod tests`, at the end by convention), where
/// `super::` is the file itself.
fn code_of(text: &str) -> String {
    let text = text.find("#[cfg(test)]\nmod tests").map_or(text, |at| &text[..at]);
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules directly inside `dir` (its files but `mod.rs`, and its directories), each
/// with the siblings it names: `super::x` in its own file (or its directory's `mod.rs`),
/// `crate::<dir>::x` anywhere in it.
fn sibling_uses(root: &Path, dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let crate_prefix: Vec<String> = dir
        .strip_prefix(root)
        .unwrap()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut children = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || (path.extension().is_some_and(|e| e == "rs") && name != "mod") {
            children.insert(name, path);
        }
    }
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in &children {
        let mut files = Vec::new();
        if path.is_dir() {
            sources(path, &mut files);
        } else {
            files.push(path.clone());
        }
        let named = uses.entry(name.clone()).or_default();
        for file in &files {
            let text = code_of(&fs::read_to_string(file).unwrap());
            let text = text.as_str();
            let own_level = file == path || *file == path.join("mod.rs");
            let mut targets: Vec<String> = crate_paths(text)
                .into_iter()
                .filter(|segments| segments.len() > crate_prefix.len() && segments[..crate_prefix.len()] == crate_prefix[..])
                .map(|segments| segments[crate_prefix.len()].clone())
                .collect();
            if own_level {
                targets.extend(paths_after(text, "super::").into_iter().map(|segments| segments[0].clone()));
            }
            named.extend(targets.into_iter().filter(|t| t != name && children.contains_key(t)));
        }
    }
    uses
}

/// A cycle in `uses` (module -> the modules it names), as the modules along it.
fn cycle(uses: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        uses: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut found = path[at..].to_vec();
            found.push(module.to_owned());
            return Some(found);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in uses.get(module).into_iter().flatten() {
            if let Some(found) = visit(next, uses, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    uses.keys().find_map(|module| visit(module, uses, &mut Vec::new(), &mut done))
}

fn directories(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_owned());
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            directories(&path, out);
        }
    }
}

#[test]
fn modules_of_a_directory_use_each_other_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = Vec::new();
    directories(&root.join("search"), &mut dirs);
    let cycles: Vec<String> = dirs
        .iter()
        .filter_map(|dir| {
            cycle(&sibling_uses(&root, dir))
                .map(|modules| format!("{}: {}", dir.strip_prefix(&root).unwrap().display(), modules.join(" -> ")))
        })
        .collect();
    assert!(cycles.is_empty(), "modules naming each other in a cycle:\n{}", cycles.join("\n"));
}

#[test]
fn the_sync_worker_sees_the_search_abstraction_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root.join("sync"), &mut files);
    let naming: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = fs::read_to_string(path).unwrap();
            crate_paths(&text)
                .iter()
                .any(|s| s.len() > 1 && s[0] == "search" && s[1] == "elastic")
        })
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        naming.is_empty(),
        "sync names a search backend (it goes through `search::SearchIndex`): {naming:?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_loop_of_three_and_none_in_a_chain() {
    let graph = |edges: &[(&str, &str)]| {
        let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            uses.entry((*from).to_owned()).or_default().insert((*to).to_owned());
            uses.entry((*to).to_owned()).or_default();
        }
        uses
    };
    assert_eq!(cycle(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])), None);
    assert_eq!(
        cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), "a".to_owned()])
    );
    assert_eq!(
        paths_after("use super::{dense::Dense, filter};", "super::"),
        vec![vec!["dense".to_owned(), "Dense".to_owned()], vec!["filter".to_owned()]]
    );
}
