//! Marks what matched the query in a hit, the same way for every backend.
//!
//! A highlight is HTML: `<em>` and `</em>` are its only markup, and every character of
//! the value itself is escaped, so a debtor name holding markup cannot run in a console.

use serde_json::{Map, Value};

use super::embedded::schema::{digits, phone_runs};
use super::words::{JOIN_MAX, PART_PREFIX_MIN, edits, folded_tokens, folded_words, fuzziness, lucene_lowercase, lucene_lowercase_char};
use crate::domain::document::AccountDoc;

const OPEN: &str = "<em>";
const CLOSE: &str = "</em>";

/// Appends `text` with the characters HTML gives a meaning escaped.
fn escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `text` with each of `ranges` (byte ranges of it, in order) wrapped in the marks, all escaped.
fn wrap(text: &str, ranges: impl IntoIterator<Item = std::ops::Range<usize>>) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut copied = 0;
    for range in ranges {
        escaped(&mut out, &text[copied..range.start]);
        out.push_str(OPEN);
        escaped(&mut out, &text[range.clone()]);
        out.push_str(CLOSE);
        copied = range.end;
    }
    escaped(&mut out, &text[copied..]);
    out
}

fn word_matches(word: &str, query_word: &str) -> bool {
    word.starts_with(query_word) || edits(word, query_word) <= usize::from(fuzziness(query_word))
}

/// Whether a joined name or an identifier part matches a query word: whole, or as a prefix
/// from [`PART_PREFIX_MIN`] characters.
fn part_matches(part: &str, query_word: &str) -> bool {
    part == query_word || (query_word.chars().count() >= PART_PREFIX_MIN && part.starts_with(query_word))
}

/// Wraps each word of `text` that matches a query word, and each run of adjacent words
/// that a query word matches joined (`oconnor` marks O'Connor whole).
fn mark_words(text: &str, query_words: &[String]) -> Option<String> {
    let words = folded_words(text);
    let mut ranges: Vec<_> = words
        .iter()
        .filter(|(_, folded)| query_words.iter().any(|q| word_matches(folded, q)))
        .map(|(span, _)| span.clone())
        .collect();
    for start in 0..words.len() {
        let mut joined = words[start].1.clone();
        for end in start + 1..words.len().min(start + JOIN_MAX) {
            let before = joined.len();
            joined.push_str(&words[end].1);
            // The query word reaches into the last word joined.
            if query_words.iter().any(|q| q.len() > before && part_matches(&joined, q)) {
                ranges.push(words[start].0.start..words[end].0.end);
            }
        }
    }
    ranges.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    (!merged.is_empty()).then(|| wrap(text, merged))
}

/// Wraps each word of an identifier (a part of an email or reference) that a query word
/// matches.
fn mark_parts(value: &str, query_words: &[String]) -> Option<String> {
    let ranges: Vec<_> = folded_words(value)
        .into_iter()
        .filter(|(_, part)| query_words.iter().any(|q| part_matches(part, q)))
        .map(|(span, _)| span)
        .collect();
    (!ranges.is_empty()).then(|| wrap(value, ranges))
}

/// Marks the start of an identifier that `query` (lowercased as the index lowercases,
/// one character for one) begins: as many characters of `value` as `query` has.
fn mark_prefix(value: &str, query: &str) -> Option<String> {
    let mut chars = value.char_indices();
    let mut end = 0;
    for wanted in query.chars() {
        let (at, c) = chars.next()?;
        if lucene_lowercase_char(c) != wanted {
            return None;
        }
        end = at + c.len_utf8();
    }
    (end > 0).then(|| wrap(value, std::iter::once(0..end)))
}

fn mark_digits(phone: &str, wanted: &str) -> Option<String> {
    let at = digits(phone).find(wanted)?;
    let positions: Vec<usize> = phone.char_indices().filter(|(_, c)| c.is_ascii_digit()).map(|(i, _)| i).collect();
    let (start, last) = (positions[at], positions[at + wanted.len() - 1]);
    Some(wrap(phone, std::iter::once(start..last + 1)))
}

/// Field name to marked-up value, for the fields the text matched.
pub fn highlight(doc: &AccountDoc, text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let words = folded_tokens(text);
    if let Some(marked) = mark_words(&doc.debtor_name, &words) {
        out.insert("debtor_name".into(), marked.into());
    }
    let whole = lucene_lowercase(text.trim());
    for (field, value) in [
        ("account_number", Some(&doc.account_number)),
        ("email", doc.email.as_ref()),
        ("external_ref", doc.external_ref.as_ref()),
    ] {
        let parts = field != "account_number";
        if let Some(marked) = value.and_then(|v| mark_prefix(v, &whole).or_else(|| parts.then(|| mark_parts(v, &words)).flatten())) {
            out.insert(field.into(), marked.into());
        }
    }
    let runs = phone_runs(text);
    if let Some(marked) = doc
        .phone
        .as_deref()
        .and_then(|p| runs.iter().find_map(|run| mark_digits(p, &run.digits)))
    {
        out.insert("phone".into(), marked.into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_fuzzy_and_prefix_words_and_phone_digits() {
        assert_eq!(mark_words("José Álvarez", &["alvares".into()]).unwrap(), "José <em>Álvarez</em>");
        assert_eq!(mark_words("Jonathan Smith", &["jon".into()]).unwrap(), "<em>Jonathan</em> Smith");
        assert!(mark_words("Jonathan Smith", &["xyz".into()]).is_none());
        assert_eq!(
            mark_words("Mary O'Connor", &["oconnor".into()]).unwrap(),
            "Mary <em>O&#39;Connor</em>"
        );
        assert_eq!(
            mark_words("Anna van der Berg", &["vanderb".into()]).unwrap(),
            "Anna <em>van der Berg</em>",
            "a joined prefix marks the words it reaches"
        );
        assert_eq!(mark_words("Van der Berg", &["vander".into()]).unwrap(), "<em>Van der</em> Berg");
        assert_eq!(
            mark_parts("tunde.adeyemi617@mail.example.com", &["adeyemi617".into()]).unwrap(),
            "tunde.<em>adeyemi617</em>@mail.example.com"
        );
        assert!(
            mark_parts("ab@mail.example.com", &["ex".into()]).is_none(),
            "short words mark whole parts only"
        );
        assert_eq!(mark_digits("+12015550134", "0134").unwrap(), "+1201555<em>0134</em>");
        assert_eq!(mark_prefix("AC-1001", "ac-1").unwrap(), "<em>AC-1</em>001");
        assert_eq!(
            mark_prefix("İST-0042", "ist").unwrap(),
            "<em>İST</em>-0042",
            "'İ' is lowercased to one 'i', as the index lowercases it"
        );
        assert_eq!(mark_prefix("ΑΘΗΝΑΣ-77", "αθηνασ").unwrap(), "<em>ΑΘΗΝΑΣ</em>-77");
        assert!(mark_prefix("AC-1001", "").is_none());
        assert_eq!(
            mark_words("प्रिया शर्मा", &["शर्मा".into()]).unwrap(),
            "प्रिया <em>शर्मा</em>",
            "a word with combining marks is marked whole"
        );
    }
}
