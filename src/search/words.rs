//! How text becomes words and how far a typo may reach, the same for both backends, for
//! queries and for the highlighter.
//!
//! A word is a run of letters, combining marks and digits (Unicode categories L, M and
//! N). Marks belong to the word: Devanagari vowel signs and viramas, Thai tone marks and
//! vocalised Arabic would otherwise split one name into fragments at index time. The
//! Elasticsearch analysis splits at the complement, `[^\p{L}\p{M}\p{N}]+`, which Java's
//! regular expressions read with the same categories.

use std::ops::{Range, RangeInclusive};
use std::sync::LazyLock;

use regex::Regex;
use tantivy::tokenizer::{AsciiFoldingFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// The characters a word is made of, as a regular-expression class body.
pub const WORD_CHARACTERS: &str = r"\p{L}\p{M}\p{N}";

/// What separates words, as the Elasticsearch `pattern` tokenizer takes it.
pub fn separator_pattern() -> String {
    format!("[^{WORD_CHARACTERS}]+")
}

/// A typo matches at most this many dictionary words, the nearest first (fewest
/// edits, then in dictionary order): Elasticsearch's `fuzzy` default, applied by both
/// backends, so a short common word cannot turn one query into thousands of terms.
pub const TYPO_EXPANSIONS: usize = 50;

/// Typo tolerance grows with the word: none up to 3 letters, 1 up to 6, else 2.
/// Numbers (house numbers, postal codes, phone fragments) never match approximately.
pub fn fuzziness(word: &str) -> u8 {
    if word.chars().any(|c| c.is_ascii_digit()) {
        return 0;
    }
    match word.chars().count() {
        0..=3 => 0,
        4..=6 => 1,
        _ => 2,
    }
}

/// A word, compiled once for the process. Its search caches stay with it, so the lazy
/// automaton of the Unicode classes is built once per thread. (tantivy's
/// `RegexTokenizer` clones its regex for every text, and a clone starts with empty
/// caches: every indexed name and every query word paid for building it again, which
/// was a third of a reindex's CPU.)
static WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("[{WORD_CHARACTERS}]+")).expect("the word pattern is a valid regular expression"));

/// Splits text into [`WORD`]s: tokens, offsets and positions as tantivy's
/// `RegexTokenizer` gives them for the same pattern.
#[derive(Clone, Default)]
pub struct WordTokenizer {
    token: Token,
}

pub struct WordTokenStream<'a> {
    text: &'a str,
    cursor: usize,
    token: &'a mut Token,
}

impl Tokenizer for WordTokenizer {
    type TokenStream<'a> = WordTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordTokenStream<'a> {
        self.token.reset();
        WordTokenStream {
            text,
            cursor: 0,
            token: &mut self.token,
        }
    }
}

impl TokenStream for WordTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(word) = WORD.find_at(self.text, self.cursor) else {
            return false;
        };
        self.cursor = word.end();
        self.token.text.clear();
        self.token.text.push_str(word.as_str());
        self.token.offset_from = word.start();
        self.token.offset_to = word.end();
        self.token.position = self.token.position.wrapping_add(1);
        true
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

/// Letters Rust's Unicode (17, from rust-version 1.95) lowercases and Java's (16, the JDK 24
/// Elasticsearch 8.19 bundles, and JDK 25) does not: they are unassigned there, and
/// `Character.toLowerCase` leaves them as they are.
const NEWER_THAN_LUCENE: [RangeInclusive<char>; 4] = [
    '\u{A7CE}'..='\u{A7CE}',
    '\u{A7D2}'..='\u{A7D2}',
    '\u{A7D4}'..='\u{A7D4}',
    '\u{16EA0}'..='\u{16EB8}',
];

/// One character lowercased as Lucene's `lowercase` token filter (and so the
/// `arrears_lowercase` normalizer) does it: Java's `Character.toLowerCase(int)`, the
/// simple one-to-one mapping, without context. Rust's `char::to_lowercase` follows the
/// full mapping, which takes 'İ' (U+0130) to "i\u{307}"; Java takes it to 'i'.
pub fn lucene_lowercase_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    if c == '\u{130}' {
        return 'i';
    }
    if NEWER_THAN_LUCENE.iter().any(|newer| newer.contains(&c)) {
        return c;
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(one), None) => one,
        // No other character has a longer full lowercase mapping (a test holds it).
        _ => c,
    }
}

/// `text` lowercased as Elasticsearch lowercases what it indexes (see
/// [`lucene_lowercase_char`]): every character on its own, one for one, so a final 'Σ'
/// becomes 'σ', not the 'ς' of `str::to_lowercase`, and the text keeps its number of
/// characters. Everything the search side compares with index terms is lowercased by
/// this, on both backends: the embedded index's analyzers ([`LuceneLowerCaser`]) and
/// the query words and identifiers of both backends' queries.
pub fn lucene_lowercase(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    lucene_lowercase_into(text, &mut out);
    out
}

fn lucene_lowercase_into(text: &str, out: &mut String) {
    out.clear();
    out.extend(text.chars().map(lucene_lowercase_char));
}

/// tantivy's `LowerCaser`, lowercasing with [`lucene_lowercase`] (tantivy's follows
/// Rust's full mapping, 'İ' as two characters).
#[derive(Clone, Copy, Debug, Default)]
pub struct LuceneLowerCaser;

impl TokenFilter for LuceneLowerCaser {
    type Tokenizer<T: Tokenizer> = LuceneLowerCaserFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> LuceneLowerCaserFilter<T> {
        LuceneLowerCaserFilter {
            tokenizer,
            buffer: String::new(),
        }
    }
}

#[derive(Clone)]
pub struct LuceneLowerCaserFilter<T> {
    tokenizer: T,
    buffer: String,
}

impl<T: Tokenizer> Tokenizer for LuceneLowerCaserFilter<T> {
    type TokenStream<'a> = LuceneLowerCaserStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        LuceneLowerCaserStream {
            tail: self.tokenizer.token_stream(text),
            buffer: &mut self.buffer,
        }
    }
}

pub struct LuceneLowerCaserStream<'a, T> {
    tail: T,
    buffer: &'a mut String,
}

impl<T: TokenStream> TokenStream for LuceneLowerCaserStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if token.text.is_ascii() {
            token.text.make_ascii_lowercase();
        } else {
            lucene_lowercase_into(&token.text, self.buffer);
            std::mem::swap(&mut token.text, self.buffer);
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// Words, lowercased and accent-folded: how names and addresses are indexed.
pub fn folded_analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(WordTokenizer::default())
        .filter(LuceneLowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// Each word of `text`: where it stands in `text`, and its folded form.
pub fn folded_words(text: &str) -> Vec<(Range<usize>, String)> {
    thread_local! {
        // Built once per thread: this runs per query word, per highlighted word and per indexed name.
        static ANALYZER: std::cell::RefCell<TextAnalyzer> = std::cell::RefCell::new(folded_analyzer());
    }
    ANALYZER.with_borrow_mut(|analyzer| {
        let mut stream = analyzer.token_stream(text);
        let mut words = Vec::new();
        while let Some(token) = stream.next() {
            words.push((token.offset_from..token.offset_to, token.text.clone()));
        }
        words
    })
}

/// The folded words of `text`, as the index stores names.
pub fn folded_tokens(text: &str) -> Vec<String> {
    folded_words(text).into_iter().map(|(_, word)| word).collect()
}

/// Names are also indexed with adjacent words joined, two or three at a time (O'Connor
/// as `oconnor`, Van der Berg as `vanderberg`), and a query tries its adjacent words
/// joined the same way (`mc donald` finds McDonald): Elasticsearch's `shingle` filter
/// with an empty separator and these sizes.
pub const JOIN_MAX: usize = 3;

/// A query of at most this many words also tries each run of its adjacent words joined;
/// a longer one is matched word by word only, which bounds its alternatives.
pub const JOINED_QUERY_WORDS: usize = 4;

/// A query word shorter than this matches joined names and identifier parts only
/// whole, not as a prefix: their dictionaries hold a term per account, and the terms a
/// one- or two-letter prefix begins are thousands, for words that match a name anyway.
pub const PART_PREFIX_MIN: usize = 3;

/// The runs of adjacent words joined among `count` words: every window of 2 to
/// [`JOIN_MAX`] words, shortest first.
pub fn join_windows(count: usize) -> impl Iterator<Item = Range<usize>> {
    (2..=JOIN_MAX)
        .filter(move |size| *size <= count)
        .flat_map(move |size| (0..=count - size).map(move |start| start..start + size))
}

/// The joined forms of adjacent `words` (see [`JOIN_MAX`]).
pub fn joined_words(words: &[String]) -> Vec<String> {
    join_windows(words.len()).map(|window| words[window].concat()).collect()
}

/// Edit distance with adjacent transpositions (optimal string alignment, as the
/// typo automatons of both backends count it), in characters.
pub fn edits(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use tantivy::tokenizer::RegexTokenizer;

    use super::*;

    fn tokens<T: Tokenizer>(tokenizer: &mut T, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
        }
        out
    }

    #[test]
    fn words_are_split_as_the_regex_tokenizer_splits_them() {
        let mut reference = RegexTokenizer::new(&format!("[{WORD_CHARACTERS}]+")).unwrap();
        let mut words = WordTokenizer::default();
        for text in [
            "",
            "   ",
            "O'Brien-Smith, Jr.",
            "José Álvarez  12B",
            "देवनागरी नाम",
            "ไทย่ ชื่อ",
            "مُحَمَّد علي",
            "+1 (555) 010-0134 x9",
            "名前 ＡＢＣ１２３",
            "tail.",
        ] {
            assert_eq!(tokens(&mut words, text), tokens(&mut reference, text), "{text:?}");
            // A tokenizer is reused across texts: the second text starts afresh.
            assert_eq!(tokens(&mut words, text), tokens(&mut reference, text), "{text:?} again");
        }
    }

    #[test]
    fn combining_marks_stay_inside_their_word() {
        // Devanagari with a virama and vowel signs, Thai with tone marks, vocalised Arabic.
        for name in ["प्रिया शर्मा", "สมชาย ใจดี", "مُحَمَّد عَلِي"] {
            let words = folded_tokens(name);
            assert_eq!(words.len(), 2, "{name} → {words:?}");
            assert_eq!(words.join(" "), name.to_lowercase());
        }
        assert_eq!(folded_tokens("José O'Brien-Smith, 12b"), ["jose", "o", "brien", "smith", "12b"]);
    }

    #[test]
    fn word_spans_point_into_the_text() {
        let text = "Dr. Ñúñez";
        let words = folded_words(text);
        assert_eq!(words.len(), 2);
        assert_eq!(&text[words[1].0.clone()], "Ñúñez");
        assert_eq!(words[1].1, "nunez");
    }

    #[test]
    fn adjacent_words_join_two_and_three_at_a_time() {
        assert_eq!(joined_words(&folded_tokens("O'Connor")), ["oconnor"]);
        assert_eq!(joined_words(&folded_tokens("Van der Berg")), ["vander", "derberg", "vanderberg"]);
        assert_eq!(
            joined_words(&folded_tokens("Mary Van der Berg")),
            ["maryvan", "vander", "derberg", "maryvander", "vanderberg"]
        );
        assert!(joined_words(&folded_tokens("Madonna")).is_empty());
        assert_eq!(join_windows(4).count(), 5);
        assert_eq!(join_windows(0).count() + join_windows(1).count(), 0);
    }

    #[test]
    fn letters_are_lowercased_as_lucene_lowercases_them() {
        // Expected values are Java's `Character.toLowerCase(int)` (JDK 25.0.3, Unicode 16),
        // what Lucene's LowerCaseFilter applies to each code point.
        for (upper, java) in [
            ('\u{130}', 'i'),         // İ: Rust's full mapping is "i\u{307}"
            ('\u{3A3}', '\u{3C3}'),   // Σ: σ everywhere, never the final ς
            ('\u{3C2}', '\u{3C2}'),   // ς stays
            ('I', 'i'),               // no Turkish locale
            ('\u{131}', '\u{131}'),   // ı stays (asciifolding makes it i)
            ('\u{1E9E}', '\u{DF}'),   // ẞ → ß
            ('\u{2126}', '\u{3C9}'),  // Ohm sign → ω
            ('\u{212A}', 'k'),        // Kelvin sign → k
            ('\u{3F4}', '\u{3B8}'),   // ϴ → θ
            ('\u{1C5}', '\u{1C6}'),   // ǅ → ǆ
            ('\u{1D00}', '\u{1D00}'), // small capital ᴀ stays
            ('\u{10400}', '\u{10428}'),
            // Unassigned in Java's Unicode 16, lowercased by Rust's 17: left as they are.
            ('\u{A7CE}', '\u{A7CE}'),
            ('\u{A7D2}', '\u{A7D2}'),
            ('\u{A7D4}', '\u{A7D4}'),
            ('\u{16EA0}', '\u{16EA0}'),
            ('\u{16EB8}', '\u{16EB8}'),
        ] {
            assert_eq!(lucene_lowercase_char(upper), java, "U+{:04X}", upper as u32);
        }
        assert_eq!(lucene_lowercase("İSMAİL YILDIZ"), "ismail yildiz");
        assert_eq!(lucene_lowercase("ΟΔΥΣΣΕΥΣ"), "οδυσσευσ", "a final Σ is σ");
        assert_eq!(lucene_lowercase("ΑΘΗΝΑΣ-77"), "αθηνασ-77");
        assert_eq!(folded_tokens("İSMAİL Yıldız ΟΔΥΣΣΕΥΣ"), ["ismail", "yildiz", "οδυσσευσ"]);
    }

    #[test]
    fn only_dotted_capital_i_lowercases_to_more_than_one_character() {
        // What `lucene_lowercase_char` relies on, and a reminder to compare it with
        // Java's `Character.toLowerCase` again when Rust's Unicode moves past 17.
        let longer: Vec<char> = (0..=char::MAX as u32)
            .filter_map(char::from_u32)
            .filter(|c| c.to_lowercase().count() > 1)
            .collect();
        assert_eq!(longer, ['\u{130}']);
        assert!(
            char::UNICODE_VERSION <= (17, 0, 0),
            "Rust's Unicode is {:?}: compare with Java's Character.toLowerCase and update NEWER_THAN_LUCENE",
            char::UNICODE_VERSION
        );
        for c in (0..=char::MAX as u32).filter_map(char::from_u32) {
            let lower = lucene_lowercase_char(c);
            assert_eq!(lucene_lowercase_char(lower), lower, "U+{:04X} lowercases once", c as u32);
        }
    }

    #[test]
    fn the_embedded_analyzers_lowercase_as_lucene() {
        let mut keyword = TextAnalyzer::builder(tantivy::tokenizer::RawTokenizer::default())
            .filter(LuceneLowerCaser)
            .build();
        let mut stream = keyword.token_stream("İST-ΑΘΗΝΑΣ");
        assert!(stream.advance());
        assert_eq!(stream.token().text, "ist-αθηνασ");
        assert!(!stream.advance());
    }

    #[test]
    fn edits_count_a_transposition_once() {
        assert_eq!(edits("jhonson", "johnson"), 1);
        assert_eq!(edits("smith", "smyth"), 1);
        assert_eq!(edits("", "abc"), 3);
    }
}
