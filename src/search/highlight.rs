//! Marks what matched the query in a hit, the same way for every backend.

use serde_json::{Map, Value};

use super::document::AccountDoc;
use super::embedded::schema::{DIGITS_MIN, digits, folded_tokens};

const OPEN: &str = "<em>";
const CLOSE: &str = "</em>";

/// Edit distance with adjacent transpositions, for short words.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

fn word_matches(word: &str, query_word: &str) -> bool {
    let budget = match query_word.chars().count() {
        _ if query_word.chars().any(|c| c.is_ascii_digit()) => 0,
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    };
    word.starts_with(query_word) || distance(word, query_word) <= budget
}

/// Wraps each word of `text` that matches a query word.
fn mark_words(text: &str, query_words: &[String]) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut matched = false;
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest.find(char::is_alphanumeric).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len());
        let word = &rest[..end];
        let folded = folded_tokens(word).join("");
        if !word.is_empty() && query_words.iter().any(|q| word_matches(&folded, q)) {
            matched = true;
            out.push_str(OPEN);
            out.push_str(word);
            out.push_str(CLOSE);
        } else {
            out.push_str(word);
        }
        rest = &rest[end..];
    }
    matched.then_some(out)
}

fn mark_prefix(value: &str, query: &str) -> Option<String> {
    let lower = value.to_lowercase();
    (!query.is_empty() && lower.starts_with(query) && value.is_char_boundary(query.len()))
        .then(|| format!("{OPEN}{}{CLOSE}{}", &value[..query.len()], &value[query.len()..]))
}

fn mark_digits(phone: &str, wanted: &str) -> Option<String> {
    let phone_digits = digits(phone);
    let at = phone_digits.find(wanted)?;
    let (mut out, mut seen) = (String::new(), 0);
    for c in phone.chars() {
        if c.is_ascii_digit() {
            if seen == at {
                out.push_str(OPEN);
            }
            out.push(c);
            seen += 1;
            if seen == at + wanted.len() {
                out.push_str(CLOSE);
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Field name to marked-up value, for the fields the text matched.
pub fn highlight(doc: &AccountDoc, text: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let words = folded_tokens(text);
    if let Some(marked) = mark_words(&doc.debtor_name, &words) {
        out.insert("debtor_name".into(), marked.into());
    }
    let whole = text.trim().to_lowercase();
    for (field, value) in [
        ("account_number", Some(&doc.account_number)),
        ("email", doc.email.as_ref()),
        ("external_ref", doc.external_ref.as_ref()),
    ] {
        if let Some(marked) = value.and_then(|v| mark_prefix(v, &whole)) {
            out.insert(field.into(), marked.into());
        }
    }
    let wanted = digits(text);
    if wanted.len() >= DIGITS_MIN
        && let Some(marked) = doc.phone.as_deref().and_then(|p| mark_digits(p, &wanted))
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
        assert_eq!(mark_digits("+12015550134", "0134").unwrap(), "+1201555<em>0134</em>");
        assert_eq!(mark_prefix("AC-1001", "ac-1").unwrap(), "<em>AC-1</em>001");
        assert_eq!(distance("jhonson", "johnson"), 1);
    }
}
