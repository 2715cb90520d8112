//! The README and the pages under docs/ hold together: every relative link points at a
//! file that exists and, when it names an anchor, at a heading of that file; the README
//! stays a short front door (under 200 lines).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

const README_MAX_LINES: usize = 200;

#[test]
fn readme_is_under_200_lines() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let lines = readme.lines().count();
    assert!(
        lines < README_MAX_LINES,
        "README.md has {lines} lines; keep it under {README_MAX_LINES} and move the rest to docs/"
    );
}

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let root = root();
    let mut pages = vec![root.join("README.md")];
    markdown_under(&root.join("docs"), &mut pages);
    assert!(pages.len() > 1, "no page found under docs/");
    let broken = broken_links(&root, &pages);
    assert!(broken.is_empty(), "links that point at nothing:\n{}", broken.join("\n"));
}

/// The checker itself finds a missing file, a missing heading and a missing same-page
/// heading, and passes links that resolve (a test of the test: it cannot pass by
/// finding nothing).
#[test]
fn a_broken_link_or_anchor_is_reported() {
    let dir = std::env::temp_dir().join(format!("arrears-docs-test-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("docs")).unwrap();
    fs::write(
        dir.join("README.md"),
        "# Top\n\n[ok](docs/a.md#the-api-v1-list) [ok](docs/a.md) [code `x`](#top) [web](https://example.com/x.md)\n\
         [gone](docs/missing.md) [no heading](docs/a.md#nowhere) `[in code](nowhere.md)`\n\
         ```\n[in a fence](nowhere.md)\n```\n",
    )
    .unwrap();
    fs::write(
        dir.join("docs/a.md"),
        "# A\n\n## The `API`: v1 list\n\n[here](#missing-here) [up](../README.md#top)\n",
    )
    .unwrap();
    let broken = broken_links(&dir, &[dir.join("README.md"), dir.join("docs/a.md")]);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(
        broken[0].contains("README.md:4") && broken[0].contains("docs/missing.md"),
        "{}",
        broken[0]
    );
    assert!(broken[1].contains("README.md:4") && broken[1].contains("#nowhere"), "{}", broken[1]);
    assert!(broken[2].contains("a.md:5") && broken[2].contains("#missing-here"), "{}", broken[2]);
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("The contact-compliance guard"), "the-contact-compliance-guard");
    assert_eq!(slug("`GET /api/v1/payments/stats?from&to&tz`"), "get-apiv1paymentsstatsfromtotz");
    assert_eq!(slug("Issue 44 (third pass): decisions"), "issue-44-third-pass-decisions");
    assert_eq!(slug("The app's Elasticsearch user"), "the-apps-elasticsearch-user");
    assert_eq!(slug("snake_case and Ünïcode"), "snake_case-and-ünïcode");
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_under(dir: &Path, pages: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            markdown_under(&path, pages);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            pages.push(path);
        }
    }
}

/// Every relative link of `pages` whose file or anchor does not exist, as
/// `page:line: [text](target): why`, in page and line order.
fn broken_links(root: &Path, pages: &[PathBuf]) -> Vec<String> {
    let mut broken = Vec::new();
    for page in pages {
        let text = fs::read_to_string(page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let shown = page.strip_prefix(root).unwrap_or(page).display().to_string();
        for (line, target) in links(&text) {
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            let why = if !file.exists() {
                Some(format!("no file {}", file.display()))
            } else {
                anchor.and_then(|anchor| missing_anchor(&file, anchor))
            };
            if let Some(why) = why {
                broken.push(format!("{shown}:{line}: ({target}): {why}"));
            }
        }
    }
    broken
}

/// Why `anchor` names nothing in `file`, or `None` when it does: a heading's slug in a
/// markdown file, a line (`L12`) in any other file.
fn missing_anchor(file: &Path, anchor: &str) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    if file.extension().is_some_and(|ext| ext == "md") {
        let slugs = heading_slugs(&text);
        (!slugs.contains(anchor)).then(|| format!("no heading with the slug {anchor:?} in {}", file.display()))
    } else {
        match anchor.strip_prefix('L').and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if (1..=text.lines().count()).contains(&n) => None,
            _ => Some(format!("{anchor:?} is not a line of {}", file.display())),
        }
    }
}

/// The relative link targets of a markdown text with their line numbers, leaving out
/// fenced code blocks, inline code and links with a scheme (`https:`, `mailto:`).
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_inline_code(line);
        let mut rest = line.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(|c| c == '<' || c == '>');
            if !target.is_empty() && !has_scheme(target) {
                found.push((number, target.to_string()));
            }
            rest = &after[end..];
        }
    }
    found
}

/// The slugs GitHub gives the headings of a markdown text; a repeated heading's later
/// slugs end in `-1`, `-2`, ...
fn heading_slugs(text: &str) -> HashSet<String> {
    let mut slugs = HashSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&link_texts(line[hashes..].trim()));
        let mut candidate = base.clone();
        let mut n = 0;
        while !slugs.insert(candidate.clone()) {
            n += 1;
            candidate = format!("{base}-{n}");
        }
    }
    slugs
}

/// GitHub's heading anchor: lowercase, punctuation dropped except `-` and `_`, spaces
/// turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == '-' || c == '_' || c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// A heading as it reads: each `[text](target)` replaced by its text.
fn link_texts(heading: &str) -> String {
    let mut out = String::new();
    let mut rest = heading;
    while let Some(start) = rest.find('[') {
        let Some(close) = rest[start..].find("](").map(|i| start + i) else {
            break;
        };
        let Some(end) = rest[close..].find(')').map(|i| close + i) else {
            break;
        };
        out.push_str(&rest[..start]);
        out.push_str(&rest[start + 1..close]);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The lines outside fenced code blocks, numbered from 1.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => lines.push((i + 1, line)),
            _ => {}
        }
    }
    lines
}

/// `line` with every inline code span blanked out.
fn without_inline_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
            out.push(' ');
        } else {
            out.push(if in_code { ' ' } else { c });
        }
    }
    out
}

fn has_scheme(target: &str) -> bool {
    match target.split_once(':') {
        Some((scheme, _)) => !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)),
        None => false,
    }
}
