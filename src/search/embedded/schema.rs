//! What every kind of document shares (the common fields, the [`Kind`] trait, the
//! analyzers), and the tantivy schema for accounts and its document building.

use std::collections::BTreeMap;
use std::ops::Range;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, OwnedValue, STORED, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{NgramTokenizer, RawTokenizer, TextAnalyzer};
use tantivy::{Index, TantivyDocument};

use super::digits::DigitGrams;
use crate::domain::document::{AccountDoc, Doc, Entity, Typed};
use crate::domain::plan::PlanStatus;
use crate::domain::search::{CustomField, NO_PORTFOLIO, intern};
use uuid::Uuid;

use crate::search::words::{LuceneLowerCaser, PART_PREFIX_MIN, folded_analyzer, folded_tokens, joined_words};

/// Fields every kind has: identity, version, tombstone flag, and the stored source.
#[derive(Clone, Copy, Debug)]
pub struct Common {
    pub id: Field,
    pub id_hi: Field,
    pub id_lo: Field,
    pub version: Field,
    pub tombstone: Field,
    pub source: Field,
}

impl Common {
    /// Adds the common fields to a schema under construction.
    pub fn add(b: &mut tantivy::schema::SchemaBuilder) -> Self {
        Self {
            id: b.add_text_field("id", STRING | STORED),
            id_hi: b.add_u64_field("id_hi", FAST),
            id_lo: b.add_u64_field("id_lo", FAST),
            version: b.add_i64_field("version", FAST),
            tombstone: b.add_bool_field("tombstone", INDEXED | FAST),
            source: b.add_text_field("source", STORED),
        }
    }

    /// A new document with identity and version.
    pub fn document(&self, id: Uuid, version: i64, tombstone: bool) -> TantivyDocument {
        let mut document = TantivyDocument::default();
        let (hi, lo) = id.as_u64_pair();
        document.add_text(self.id, id.hyphenated().to_string());
        document.add_u64(self.id_hi, hi);
        document.add_u64(self.id_lo, lo);
        document.add_i64(self.version, version);
        document.add_bool(self.tombstone, tombstone);
        document
    }
}

/// A kind of document and how tantivy holds it.
pub trait Kind: Send + Sync + 'static {
    const ENTITY: Entity;
    /// The family's directory under `DATA_DIR/index`.
    const DIR: &'static str;
    type Fields: Copy + Send + Sync + 'static;

    fn schema() -> (Schema, Self::Fields);
    fn common(fields: &Self::Fields) -> Common;
    /// Builds the tantivy document; a document of another kind is a bug.
    fn document(fields: &Self::Fields, doc: &Doc) -> anyhow::Result<TantivyDocument>;
}

/// Words ([`crate::search::words`]), lowercased and accent-folded: names and addresses.
/// The analyzers are renamed when what they index changes (marks joined letters and
/// digits; letters lowercased as Lucene does, [`crate::search::words::lucene_lowercase`]),
/// so an index built with the old ones no longer matches the schema and is rebuilt on start.
pub const FOLDED: &str = "arrears_folded_words_lucene_case";
/// The whole value, lowercased: exact email, account number, reference.
pub const KEYWORD: &str = "arrears_keyword_lucene_case";
/// Lowercased prefixes of the whole value, up to [`EDGE_GRAMS`] characters: as-you-type
/// on identifiers.
pub const EDGE: &str = "arrears_edge_lucene_case";
/// Overlapping 4-digit grams with positions: phone numbers by any run of digits.
pub const DIGITS: &str = "arrears_digits";

/// Identifiers match as a prefix up to this many characters (both backends).
pub const EDGE_MAX: usize = 40;
/// The longest prefix the embedded index keeps as a term. A longer prefix is looked up
/// in the dictionary of whole identifiers instead (few identifiers share 9 characters):
/// the long prefixes of emails and references were mostly unique terms, the bulk of what
/// indexing and merging an account or payment wrote to the term dictionaries.
pub const EDGE_GRAMS: usize = 8;
pub const DIGITS_MIN: usize = 4;
pub const DIGITS_MAX: usize = 15;
/// A search reads at most this many runs of its text as phone numbers (the first ones):
/// each run asks for every other word beside its phone, so each adds a copy of the
/// whole word query (`MAX_QUERY_CHARS` allows fifty words), and nobody types three phones.
pub const PHONE_RUNS_MAX: usize = 2;

/// Money is indexed in ten-thousandths, exact for every ISO 4217 minor unit.
pub const MONEY_SCALE: i64 = 10_000;
pub const UNASSIGNED: &str = "unassigned";

/// The JSON field holding custom fields' keyword and boolean values (`true`, `false`),
/// a fast string column per key: `cf_kw.<key>`. A new definition's values need no schema
/// change: JSON fields take any key.
pub const CUSTOM_KEYWORDS: &str = "cf_kw";
/// The JSON field holding custom number, money and date values as integers (the units
/// of [`crate::domain::document::Typed`]), a fast i64 column per key: `cf_int.<key>`.
pub const CUSTOM_INTEGERS: &str = "cf_int";

/// The column of a custom field's values (see [`CUSTOM_KEYWORDS`], [`CUSTOM_INTEGERS`]).
pub fn custom_column(field: CustomField) -> &'static str {
    let family = if field.kind.is_ordered() {
        CUSTOM_INTEGERS
    } else {
        CUSTOM_KEYWORDS
    };
    intern(&format!("{family}.{}", field.key.key()))
}

/// Words a query word matches whole or, from [`PART_PREFIX_MIN`] characters, as a
/// prefix (joined names, the words of identifiers): the words, and their prefixes of
/// [`PART_PREFIX_MIN`] to [`EDGE_GRAMS`] characters, each a term. A short prefix then
/// reads one posting list: a surname's first letters began a thousand email words
/// (`smith0` to `smith999`), read one by one into a bit set as large as the segment.
#[derive(Clone, Copy, Debug)]
pub struct Part {
    pub whole: Field,
    pub prefix: Field,
}

impl Part {
    fn add(b: &mut tantivy::schema::SchemaBuilder, name: &str, tokenizer: &str) -> Self {
        Part {
            whole: b.add_text_field(name, text(tokenizer)),
            prefix: b.add_text_field(&format!("{name}_prefix"), STRING),
        }
    }

    /// Adds `text` (analyzed as the words field analyzes it into `words`).
    fn index(&self, d: &mut TantivyDocument, text: &str, words: &[String]) {
        d.add_text(self.whole, text);
        for word in words {
            // Where the word's first 1, 2, … characters end.
            let ends = word.char_indices().map(|(at, _)| at).skip(1).chain([word.len()]);
            for end in ends.skip(PART_PREFIX_MIN - 1).take(EDGE_GRAMS + 1 - PART_PREFIX_MIN) {
                d.add_text(self.prefix, &word[..end]);
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Fields {
    pub common: Common,
    pub deleted: tantivy::schema::Field,
    pub name: tantivy::schema::Field,
    /// The name's adjacent words joined (see [`crate::search::words::JOIN_MAX`]), each a term.
    pub name_joined: Part,
    pub name_sort_hi: tantivy::schema::Field,
    pub name_sort_lo: tantivy::schema::Field,
    pub address: tantivy::schema::Field,
    /// The account number and the email, whole.
    pub ident: tantivy::schema::Field,
    pub ident_prefix: tantivy::schema::Field,
    /// The words of the email (local part, domain labels).
    pub ident_parts: Part,
    /// The external reference, whole, apart from the identifiers every reader sees: an
    /// agent's summary hides it ([`crate::domain::search::AccountQuery::hidden_owner`]).
    pub reference: tantivy::schema::Field,
    pub reference_prefix: tantivy::schema::Field,
    /// The words of the external reference.
    pub reference_parts: Part,
    pub phone_digits: tantivy::schema::Field,
    pub status: tantivy::schema::Field,
    pub agent: tantivy::schema::Field,
    pub tags: tantivy::schema::Field,
    pub balance: tantivy::schema::Field,
    /// The balance's currency: facets sum balances per currency.
    pub currency: tantivy::schema::Field,
    pub due_days: tantivy::schema::Field,
    pub next_action: tantivy::schema::Field,
    pub updated: tantivy::schema::Field,
    pub do_not_call: tantivy::schema::Field,
    pub do_not_email: tantivy::schema::Field,
    pub cease_communication: tantivy::schema::Field,
    pub has_open_promise: tantivy::schema::Field,
    pub contact_blocked: tantivy::schema::Field,
    pub contact_windowed: tantivy::schema::Field,
    pub calls_open: tantivy::schema::Field,
    pub window_start: tantivy::schema::Field,
    pub window_end: tantivy::schema::Field,
    pub queue_rank: tantivy::schema::Field,
    pub promise_due_days: tantivy::schema::Field,
    pub broken_promise_days: tantivy::schema::Field,
    pub plan_missed_days: tantivy::schema::Field,
    pub has_plan: tantivy::schema::Field,
    pub plan_status: tantivy::schema::Field,
    pub plan_next_due: tantivy::schema::Field,
    /// The portfolio's id, or [`NO_PORTFOLIO`].
    pub portfolio: tantivy::schema::Field,
    pub custom_keywords: tantivy::schema::Field,
    pub custom_integers: tantivy::schema::Field,
    /// The words of searchable text custom fields.
    pub custom_words: tantivy::schema::Field,
    /// The kinds of the account's live documents (files).
    pub document_kinds: tantivy::schema::Field,
    /// The names of the account's live documents (files), as uploaded.
    pub document_names: tantivy::schema::Field,
    /// The words processing read from the account's live documents (files).
    pub document_words: tantivy::schema::Field,
}

pub fn text(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqs),
    )
}

pub fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        common: Common::add(&mut b),
        deleted: b.add_bool_field("deleted", INDEXED),
        name: b.add_text_field("name", text(FOLDED)),
        name_joined: Part::add(&mut b, "name_joined", KEYWORD),
        name_sort_hi: b.add_i64_field("name_sort_hi", FAST),
        name_sort_lo: b.add_i64_field("name_sort_lo", FAST),
        address: b.add_text_field("address", text(FOLDED)),
        ident: b.add_text_field("ident", text(KEYWORD)),
        ident_prefix: b.add_text_field("ident_prefix", text(EDGE)),
        ident_parts: Part::add(&mut b, "ident_parts", FOLDED),
        reference: b.add_text_field("reference", text(KEYWORD)),
        reference_prefix: b.add_text_field("reference_prefix", text(EDGE)),
        reference_parts: Part::add(&mut b, "reference_parts", FOLDED),
        phone_digits: b.add_text_field(
            "phone_digits",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(DIGITS)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            ),
        ),
        status: b.add_text_field("status", STRING | FAST),
        agent: b.add_text_field("agent", STRING | FAST),
        tags: b.add_text_field("tags", STRING | FAST),
        balance: b.add_i64_field("balance", FAST),
        currency: b.add_text_field("currency", STRING | FAST),
        due_days: b.add_i64_field("due_days", FAST),
        next_action: b.add_i64_field("next_action", FAST),
        updated: b.add_i64_field("updated", FAST),
        do_not_call: b.add_bool_field("do_not_call", INDEXED),
        do_not_email: b.add_bool_field("do_not_email", INDEXED),
        cease_communication: b.add_bool_field("cease_communication", INDEXED),
        has_open_promise: b.add_bool_field("has_open_promise", INDEXED),
        contact_blocked: b.add_text_field("contact_blocked", STRING),
        contact_windowed: b.add_text_field("contact_windowed", STRING),
        calls_open: b.add_i64_field("calls_open", FAST),
        window_start: b.add_i64_field("window_start", FAST),
        window_end: b.add_i64_field("window_end", FAST),
        queue_rank: b.add_i64_field("queue_rank", FAST),
        promise_due_days: b.add_i64_field("promise_due_days", FAST),
        broken_promise_days: b.add_i64_field("broken_promise_days", FAST),
        plan_missed_days: b.add_i64_field("plan_missed_days", FAST),
        has_plan: b.add_bool_field("has_plan", INDEXED),
        plan_status: b.add_text_field("plan_status", STRING),
        plan_next_due: b.add_i64_field("plan_next_due", INDEXED | FAST),
        portfolio: b.add_text_field("portfolio", STRING | FAST),
        custom_keywords: b.add_json_field(CUSTOM_KEYWORDS, FAST),
        custom_integers: b.add_json_field(CUSTOM_INTEGERS, FAST),
        custom_words: b.add_text_field("custom_words", text(FOLDED)),
        document_kinds: b.add_text_field("document_kinds", STRING | FAST),
        document_names: b.add_text_field("document_names", STRING | FAST),
        document_words: b.add_text_field("document_words", text(FOLDED)),
    };
    (b.build(), fields)
}

pub fn register_tokenizers(index: &Index) -> tantivy::Result<()> {
    let manager = index.tokenizers();
    manager.register(FOLDED, folded_analyzer());
    manager.register(
        KEYWORD,
        TextAnalyzer::builder(RawTokenizer::default()).filter(LuceneLowerCaser).build(),
    );
    manager.register(
        EDGE,
        TextAnalyzer::builder(NgramTokenizer::new(1, EDGE_GRAMS, true)?)
            .filter(LuceneLowerCaser)
            .build(),
    );
    manager.register(DIGITS, TextAnalyzer::builder(DigitGrams::default()).build());
    Ok(())
}

pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// A run of a search text that reads as a phone number: where it stands in the text,
/// and its digits.
pub struct PhoneRun {
    pub at: Range<usize>,
    pub digits: String,
}

impl PhoneRun {
    /// Whether the word at `word` is part of this run.
    pub fn covers(&self, word: &Range<usize>) -> bool {
        self.at.start <= word.start && word.end <= self.at.end
    }
}

/// The runs of `text` that read as phone numbers: adjacent pieces (between spaces) made
/// of digits and the marks that format them (`+-.()/`), [`DIGITS_MIN`] to [`DIGITS_MAX`]
/// digits in all, the first [`PHONE_RUNS_MAX`] of them. Digits inside other words are no
/// phone number (`b2d858fe` is a code, not `2858`).
pub fn phone_runs(text: &str) -> Vec<PhoneRun> {
    let formatted =
        |piece: &str| piece.chars().any(|c| c.is_ascii_digit()) && piece.chars().all(|c| c.is_ascii_digit() || "+-.()/".contains(c));
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut open: Option<Range<usize>> = None;
    for piece in text.split_whitespace() {
        let start = piece.as_ptr() as usize - text.as_ptr() as usize;
        let at = start..start + piece.len();
        if formatted(piece) {
            open = Some(open.map_or(at.clone(), |run| run.start..at.end));
        } else {
            runs.extend(open.take());
        }
    }
    runs.extend(open);
    runs.into_iter()
        .map(|at| PhoneRun {
            digits: digits(&text[at.clone()]),
            at,
        })
        .filter(|run| (DIGITS_MIN..=DIGITS_MAX).contains(&run.digits.len()))
        .take(PHONE_RUNS_MAX)
        .collect()
}

pub fn money_units(amount: Decimal) -> i64 {
    (amount * Decimal::from(MONEY_SCALE)).trunc().to_i64().unwrap_or(i64::MAX)
}

/// Days since 1970-01-01.
pub fn epoch_days(date: chrono::NaiveDate) -> i64 {
    crate::domain::queue::days(date)
}

/// Order-preserving key from the first 15 bytes of the folded name, as two i64
/// columns: bytes 0-7 (sign bit flipped) and bytes 8-14. Names equal in those bytes
/// fall back to the id order.
pub fn name_sort_key(name: &str) -> (i64, i64) {
    let folded = folded_tokens(name).join(" ");
    let mut bytes = [0u8; 16];
    for (slot, byte) in bytes.iter_mut().zip(folded.bytes().take(15)) {
        *slot = byte;
    }
    let hi = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes")) ^ (1 << 63);
    let lo = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")) >> 8;
    (hi as i64, lo as i64)
}

/// Accounts as a kind of document.
pub struct Accounts;

impl Kind for Accounts {
    const ENTITY: Entity = Entity::Account;
    const DIR: &'static str = "accounts";
    type Fields = Fields;

    fn schema() -> (Schema, Fields) {
        build()
    }

    fn common(fields: &Fields) -> Common {
        fields.common
    }

    fn document(fields: &Fields, doc: &Doc) -> anyhow::Result<TantivyDocument> {
        match doc {
            Doc::Account(account) => Ok(self::account(fields, account)?),
            Doc::Payment(payment) => anyhow::bail!("payment {} sent to the account index", payment.id),
            Doc::Report(report) => anyhow::bail!("{} {} sent to the account index", report.entity.as_str(), report.id),
        }
    }
}

pub fn account(fields: &Fields, doc: &AccountDoc) -> serde_json::Result<TantivyDocument> {
    let mut d = fields.common.document(doc.id, doc.search_version, false);
    d.add_bool(fields.deleted, doc.deleted_at.is_some());
    d.add_text(fields.name, &doc.debtor_name);
    for joined in joined_words(&folded_tokens(&doc.debtor_name)) {
        fields.name_joined.index(&mut d, &joined, std::slice::from_ref(&joined));
    }
    let (hi, lo) = name_sort_key(&doc.debtor_name);
    d.add_i64(fields.name_sort_hi, hi);
    d.add_i64(fields.name_sort_lo, lo);
    let address = &doc.address;
    for part in [
        &address.line1,
        &address.line2,
        &address.city,
        &address.region,
        &address.postal_code,
        &address.country,
    ]
    .into_iter()
    .flatten()
    {
        d.add_text(fields.address, part);
    }
    for ident in [Some(&doc.account_number), doc.email.as_ref()].into_iter().flatten() {
        d.add_text(fields.ident, ident);
        d.add_text(fields.ident_prefix, ident);
    }
    if let Some(email) = &doc.email {
        fields.ident_parts.index(&mut d, email, &folded_tokens(email));
    }
    if let Some(reference) = &doc.external_ref {
        d.add_text(fields.reference, reference);
        d.add_text(fields.reference_prefix, reference);
        fields.reference_parts.index(&mut d, reference, &folded_tokens(reference));
    }
    if let Some(phone) = &doc.phone {
        d.add_text(fields.phone_digits, digits(phone));
    }
    d.add_text(fields.status, doc.status.as_str());
    d.add_text(
        fields.agent,
        doc.assigned_agent_id
            .map(|a| a.hyphenated().to_string())
            .unwrap_or_else(|| UNASSIGNED.to_owned()),
    );
    for tag in &doc.tags {
        d.add_text(fields.tags, tag);
    }
    d.add_i64(fields.balance, money_units(doc.current_balance));
    d.add_text(fields.currency, &doc.currency);
    if let Some(due) = doc.due_date {
        d.add_i64(fields.due_days, epoch_days(due));
    }
    if let Some(at) = doc.next_action_at {
        d.add_i64(fields.next_action, at.timestamp_micros());
    }
    d.add_i64(fields.updated, doc.updated_at.timestamp_micros());
    d.add_bool(fields.do_not_call, doc.do_not_call);
    d.add_bool(fields.do_not_email, doc.do_not_email);
    d.add_bool(fields.cease_communication, doc.cease_communication);
    d.add_bool(fields.has_open_promise, doc.summary.open_promise.is_some());
    let work = &doc.work;
    for channel in &work.contact.blocked {
        d.add_text(fields.contact_blocked, channel.as_str());
    }
    for channel in &work.contact.windowed {
        d.add_text(fields.contact_windowed, channel.as_str());
    }
    d.add_i64(fields.calls_open, work.contact.calls_open_at.map_or(0, |at| at.timestamp_micros()));
    if let Some(window) = work.contact.window {
        d.add_i64(fields.window_start, i64::from(window.start_min));
        d.add_i64(fields.window_end, i64::from(window.end_min));
    }
    d.add_i64(fields.queue_rank, doc.queue_rank());
    if let Some(promise) = &doc.summary.open_promise {
        d.add_i64(fields.promise_due_days, epoch_days(promise.due_date));
    }
    if let Some(due) = work.broken_promise_due {
        d.add_i64(fields.broken_promise_days, epoch_days(due));
    }
    if let Some(due) = work.plan_missed_due {
        d.add_i64(fields.plan_missed_days, epoch_days(due));
    }
    let plan = doc.summary.plan.as_ref();
    d.add_bool(fields.has_plan, plan.is_some_and(|p| p.status == PlanStatus::Active));
    if let Some(plan) = plan {
        d.add_text(fields.plan_status, plan.status.as_str());
    }
    if let Some(next) = plan.and_then(|p| p.next_due_date) {
        d.add_i64(fields.plan_next_due, epoch_days(next));
    }
    d.add_text(
        fields.portfolio,
        doc.portfolio_id
            .map(|p| p.hyphenated().to_string())
            .unwrap_or_else(|| NO_PORTFOLIO.to_owned()),
    );
    add_custom(fields, &mut d, doc);
    for kind in work.file_kinds() {
        d.add_text(fields.document_kinds, kind);
    }
    for name in work.file_names() {
        d.add_text(fields.document_names, name);
    }
    for words in work.file_words() {
        d.add_text(fields.document_words, words);
    }
    d.add_text(fields.common.source, serde_json::to_string(doc)?);
    Ok(d)
}

/// The typed custom values: keywords and integers in their JSON fields, searchable
/// text in the words field.
fn add_custom(fields: &Fields, d: &mut TantivyDocument, doc: &AccountDoc) {
    let (mut keywords, mut integers) = (BTreeMap::new(), BTreeMap::new());
    for custom in &doc.work.custom {
        let key = custom.key.clone();
        match &custom.value {
            Typed::Text {
                text,
                searchable,
                filterable,
            } => {
                if *searchable {
                    d.add_text(fields.custom_words, text);
                }
                if *filterable {
                    keywords.insert(key, OwnedValue::Str(text.clone()));
                }
            }
            Typed::Keywords(values) => {
                keywords.insert(key, OwnedValue::Array(values.iter().cloned().map(OwnedValue::Str).collect()));
            }
            Typed::Boolean(value) => {
                keywords.insert(key, OwnedValue::Str(value.to_string()));
            }
            Typed::Number(units) | Typed::Money(units) | Typed::Date(units) => {
                integers.insert(key, OwnedValue::I64(*units));
            }
        }
    }
    if !keywords.is_empty() {
        d.add_object(fields.custom_keywords, keywords);
    }
    if !integers.is_empty() {
        d.add_object(fields.custom_integers, integers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::schema::Value;

    #[test]
    fn a_part_is_indexed_with_its_prefixes_of_three_to_eight_characters() {
        let (_, fields) = build();
        let part = fields.ident_parts;
        let mut d = TantivyDocument::default();
        let words = folded_tokens("Ángel.Smith12@Ex.io");
        part.index(&mut d, "Ángel.Smith12@Ex.io", &words);
        let prefixes: Vec<&str> = d.get_all(part.prefix).filter_map(|v| v.as_str()).collect();
        assert_eq!(words, ["angel", "smith12", "ex", "io"]);
        assert_eq!(prefixes, ["ang", "ange", "angel", "smi", "smit", "smith", "smith1", "smith12"]);
        let mut d = TantivyDocument::default();
        part.index(&mut d, "", &["jöhannßson".to_owned()]);
        let prefixes: Vec<&str> = d.get_all(part.prefix).filter_map(|v| v.as_str()).collect();
        assert_eq!(
            prefixes,
            ["jöh", "jöha", "jöhan", "jöhann", "jöhannß", "jöhannßs"],
            "characters, not bytes"
        );
    }

    #[test]
    fn only_pieces_formatted_as_a_phone_ask_phones_for_their_digits() {
        let runs =
            |text: &str| -> Vec<(String, String)> { phone_runs(text).into_iter().map(|r| (text[r.at].to_owned(), r.digits)).collect() };
        let run = |piece: &str, digits: &str| (piece.to_owned(), digits.to_owned());
        assert_eq!(runs("(201) 555-0134"), [run("(201) 555-0134", "2015550134")]);
        assert_eq!(runs("+1 201.555/0134"), [run("+1 201.555/0134", "12015550134")]);
        assert_eq!(runs("Maria OBrian 555-0134"), [run("555-0134", "5550134")]);
        assert_eq!(runs("0134 Johansson"), [run("0134", "0134")]);
        assert!(runs("Ulrike Importfield b2d858fe").is_empty(), "digits inside a word");
        assert!(runs("555 Smith").is_empty(), "too few digits");
        assert!(runs("1234567890 123456").is_empty(), "too many digits");
        assert!(runs("( - )").is_empty(), "marks without digits");
        assert_eq!(
            runs(&"1234 a ".repeat(28)),
            [run("1234", "1234"), run("1234", "1234")],
            "the first runs only"
        );
    }

    #[test]
    fn name_sort_keys_follow_folded_alphabetical_order() {
        let names = ["adams", "Álvarez", "Baker", "Sorted 01", "Sorted 02", "Sorted 10", "Zed", "zz top"];
        let keys: Vec<(i64, i64)> = names.iter().map(|n| name_sort_key(n)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(name_sort_key("Alvarez") == name_sort_key("álvarez"));
    }
}
