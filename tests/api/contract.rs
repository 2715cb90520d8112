//! The backend contract: what every `SearchIndex` must do. Each case is written once
//! against `&dyn SearchIndex` and run on the embedded backend, and on Elasticsearch:
//! the tests of a live cluster are ignored (reported as skipped) unless
//! `bin/test-elastic` runs them with ELASTICSEARCH_URL set (each test under an index
//! prefix of its own).

use std::collections::HashSet;

use arrears::domain::account::{AccountStatus, Address, Bucket};
use arrears::domain::compliance::{Channel, ContactInputs, UtcWindow};
use arrears::domain::document::{AccountDoc, CustomValue, Entity, IndexOp, OpenPromise, PaymentDoc, Typed};
use arrears::domain::payment::{Method, PaymentStatus};
use arrears::domain::queue::Reason;
use arrears::domain::search::{
    AccountQuery, AgentFilter, Contactable, Counted, CustomField, CustomFilter, CustomKind, CustomTest, Facet, FieldKey, PaymentFacet,
    PaymentQuery, PaymentSort, PaymentSortField, Sort, SortField, StatsQuery,
};
use arrears::search::elastic::{ElasticConfig, ElasticIndex};
use arrears::search::embedded::EmbeddedIndex;
use arrears::search::{SearchIndex, SearchPage, Tally};
use arrears::store::dead_letters::SqlDeadLetters;
use chrono::{Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 15).unwrap()
}

pub fn doc(name: &str, version: i64) -> AccountDoc {
    let id = Uuid::new_v4();
    AccountDoc {
        id,
        account_number: format!("AC-{}", &id.simple().to_string()[..8]).to_uppercase(),
        external_ref: None,
        debtor_name: name.to_owned(),
        email: None,
        phone: None,
        address: Address::default(),
        timezone: "UTC".into(),
        status: AccountStatus::Active,
        original_balance: Decimal::new(10_000, 2),
        current_balance: Decimal::new(10_000, 2),
        currency: "USD".into(),
        due_date: None,
        assigned_agent_id: None,
        next_action_at: None,
        tags: Vec::new(),
        custom_fields: Default::default(),
        do_not_call: false,
        do_not_email: false,
        cease_communication: false,
        portfolio_id: None,
        created_by: None,
        updated_by: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
        search_version: version,
        summary: Default::default(),
        work: Default::default(),
        zone: None,
    }
}

pub fn query() -> AccountQuery {
    AccountQuery::new(today())
}

pub fn text(q: &str) -> AccountQuery {
    AccountQuery {
        text: Some(q.to_owned()),
        sort: Sort {
            field: SortField::Relevance,
            descending: true,
        },
        ..query()
    }
}

async fn ids(index: &dyn SearchIndex, q: AccountQuery) -> Vec<Uuid> {
    index.search(q).await.unwrap().hits.into_iter().map(|h| h.doc.id).collect()
}

async fn put(index: &dyn SearchIndex, docs: &[AccountDoc]) {
    index.apply(docs.iter().cloned().map(IndexOp::upsert).collect()).await.unwrap();
}

pub async fn versioned_writes(index: &dyn SearchIndex) {
    let mut account = doc("Versioned Person", 10);
    put(index, std::slice::from_ref(&account)).await;
    account.debtor_name = "Older Name".into();
    account.search_version = 9;
    let report = index.apply(vec![IndexOp::upsert(account.clone())]).await.unwrap();
    assert_eq!((report.applied, report.stale), (0, 1), "an older version is refused");
    assert_eq!(index.version_of(Entity::Account, account.id).await.unwrap(), Some(10));
    assert_eq!(ids(index, text("older")).await, Vec::<Uuid>::new());

    account.search_version = 12;
    account.debtor_name = "Newer Name".into();
    let mut same_batch_older = account.clone();
    same_batch_older.search_version = 11;
    same_batch_older.debtor_name = "Stale In Batch".into();
    index
        .apply(vec![IndexOp::upsert(account.clone()), IndexOp::upsert(same_batch_older)])
        .await
        .unwrap();
    assert_eq!(ids(index, text("newer")).await, [account.id]);
    assert!(ids(index, text("stale in batch")).await.is_empty());

    let replay = index.apply(vec![IndexOp::upsert(account.clone())]).await.unwrap();
    assert_eq!(replay.stale, 1, "a replay of the same version is a no-op");

    index
        .apply(vec![IndexOp::tombstone(Entity::Account, account.id, 20)])
        .await
        .unwrap();
    assert!(ids(index, text("newer")).await.is_empty(), "a tombstone hides the document");
    assert_eq!(index.version_of(Entity::Account, account.id).await.unwrap(), Some(20));
    assert!(
        !index.versions(Entity::Account).await.unwrap().contains_key(&account.id),
        "tombstones are not live documents"
    );
    account.search_version = 15;
    assert_eq!(
        index.apply(vec![IndexOp::upsert(account.clone())]).await.unwrap().stale,
        1,
        "a tombstone blocks older upserts"
    );
}

pub async fn text_matching(index: &dyn SearchIndex) {
    let mut jose = doc("José Álvarez", 1);
    jose.email = Some("jose.alvarez@example.com".into());
    let mut katherine = doc("Katherine Johansson", 1);
    katherine.phone = Some("+12015550134".into());
    katherine.account_number = "AC-778899".into();
    let jonathan = doc("Jonathan Smith", 1);
    let mut neighbour = doc("Nearby Numbers", 1);
    neighbour.address.line1 = Some("1034 Elm St".into());
    neighbour.address.city = Some("Springfield".into());
    neighbour.phone = Some("+12025550999".into());
    put(index, &[jose.clone(), katherine.clone(), jonathan.clone(), neighbour.clone()]).await;

    assert_eq!(ids(index, text("jose alvarez")).await, [jose.id], "accents folded");
    assert_eq!(ids(index, text("ÁLVAREZ")).await, [jose.id], "case folded");
    assert_eq!(ids(index, text("johanson")).await, [katherine.id], "typo in a surname");
    assert_eq!(
        ids(index, text("katherine johannsson")).await,
        [katherine.id],
        "typo with first name"
    );
    assert_eq!(ids(index, text("jonat")).await, [jonathan.id], "prefix of a first name");
    assert_eq!(
        ids(index, text("0134")).await,
        [katherine.id],
        "last four phone digits; numbers never match approximately"
    );
    assert_eq!(ids(index, text("1034 elm")).await, [neighbour.id], "house number and street");
    assert_eq!(ids(index, text("springf")).await, [neighbour.id], "prefix of an address word");
    assert!(ids(index, text("sprinfield")).await.is_empty(), "addresses take no typos");
    assert_eq!(ids(index, text("555-0134")).await, [katherine.id]);
    assert_eq!(ids(index, text("(555) 0134")).await, [katherine.id]);
    assert_eq!(
        ids(index, text("johansson 0134")).await,
        [katherine.id],
        "a name and the phone's last digits"
    );
    assert_eq!(
        ids(index, text("Katherine (555) 0134")).await,
        [katherine.id],
        "a name and a formatted phone"
    );
    assert!(
        ids(index, text("jonathan 0134")).await.is_empty(),
        "the digits narrow the name; they do not add every phone holding them"
    );
    assert!(
        ids(index, text("Ulrike Importfield m0x1k3s4")).await.is_empty(),
        "digits inside words are no phone number (here 0134)"
    );
    assert_eq!(ids(index, text("JOSE.ALVAREZ@EXAMPLE.COM")).await, [jose.id], "email, any case");
    assert_eq!(ids(index, text("jose.alv")).await, [jose.id], "email prefix");
    assert_eq!(ids(index, text("ac-7788")).await, [katherine.id], "account number prefix");
    assert_eq!(
        ids(index, text("Jose.Alvarez@Exam")).await,
        [jose.id],
        "a long email prefix, any case"
    );
    assert!(
        ids(index, text("jose.alvarez@exo")).await.is_empty(),
        "a long prefix matches only as a prefix"
    );
    assert!(ids(index, text("zzzzqqq")).await.is_empty());
}

/// A word typed longer than Elasticsearch's name n-grams (20 characters) still matches
/// the names it begins, as a word of any length does on the embedded backend; a string
/// that begins no word does not, even one character away from one.
pub async fn long_words_match_as_prefixes(index: &dyn SearchIndex) {
    let long = doc("Hubert Wolfeschlegelsteinhausenbergerdorff", 1);
    let exact = doc("Anna Oberschwarzenbergerhausen", 1);
    let other = doc("Wolfe Schlegel", 1);
    put(index, &[long.clone(), exact.clone(), other.clone()]).await;
    let prefix = "wolfeschlegelsteinhausenb";
    let whole = "oberschwarzenbergerhausen";
    let not_prefix = "wolfeschlegelsteinhausenx";
    assert_eq!([prefix, whole, not_prefix].map(|w| w.chars().count()), [25; 3]);
    assert_eq!(ids(index, text(prefix)).await, [long.id], "a 25-character prefix of a longer word");
    assert_eq!(ids(index, text(&prefix[..21])).await, [long.id], "one character past the n-grams");
    assert_eq!(ids(index, text(&prefix[..20])).await, [long.id], "as long as the n-grams");
    assert_eq!(
        ids(index, text("WÖLFESCHLEGELSTEINHAUSENB hubert")).await,
        [long.id],
        "folded, beside another word"
    );
    assert_eq!(ids(index, text(whole)).await, [exact.id], "a 25-character word, whole");
    assert!(
        ids(index, text(not_prefix)).await.is_empty(),
        "a 25-character string no word begins"
    );
    assert!(
        ids(index, text(&format!("{prefix}x"))).await.is_empty(),
        "a prefix one character too long"
    );
}

/// What agents type for a debtor on the phone: a name without its punctuation or
/// spacing, or with spaces it does not have, and any part of an email or reference.
pub async fn names_and_identifiers_as_agents_type_them(index: &dyn SearchIndex) {
    let oconnor = doc("Siobhan O'Connor", 1);
    let connor = doc("Connor Walsh", 1);
    let berg = doc("Pieter van der Berg", 1);
    let mcdonald = doc("Fiona McDonald", 1);
    let delacruz = doc("Maria Delacruz", 1);
    let mut adeyemi = doc("Tunde Adeyemi", 1);
    adeyemi.email = Some("tunde.adeyemi617@mail.example.com".into());
    let mut other_domain = doc("Grace Hopper", 1);
    other_domain.email = Some("grace@other.example.org".into());
    let mut gmail = doc("Alan Turing", 1);
    gmail.email = Some("alan.turing@gmail.com".into());
    let mut referenced = doc("Ada Lovelace", 1);
    referenced.external_ref = Some("CRM-2024/LOVELACE-88".into());
    put(
        index,
        &[
            oconnor.clone(),
            connor.clone(),
            berg.clone(),
            mcdonald.clone(),
            delacruz.clone(),
            adeyemi.clone(),
            other_domain.clone(),
            gmail.clone(),
            referenced.clone(),
        ],
    )
    .await;
    let set = |ids: Vec<Uuid>| ids.into_iter().collect::<HashSet<_>>();

    let found = ids(index, text("oconnor")).await;
    assert_eq!(
        found.first(),
        Some(&oconnor.id),
        "O'Connor as one word, above a typo of Connor: {found:?}"
    );
    assert_eq!(ids(index, text("o'connor")).await, [oconnor.id], "as written");
    assert_eq!(ids(index, text("siobhan oconn")).await, [oconnor.id], "joined, as a prefix");
    assert_eq!(ids(index, text("vanderberg")).await, [berg.id], "Van der Berg as one word");
    assert_eq!(ids(index, text("vander berg")).await, [berg.id]);
    assert_eq!(ids(index, text("pieter vanderb")).await, [berg.id], "joined, as a prefix");
    assert_eq!(ids(index, text("mc donald")).await, [mcdonald.id], "McDonald with a space");
    assert_eq!(
        ids(index, text("fiona mc don")).await,
        [mcdonald.id],
        "the words joined, as a prefix"
    );
    assert_eq!(ids(index, text("de la cruz")).await, [delacruz.id], "three words joined");
    assert!(ids(index, text("mc")).await.contains(&mcdonald.id));
    assert!(ids(index, text("donald")).await.is_empty(), "a word is no infix of a name");

    assert_eq!(
        ids(index, text("adeyemi617")).await,
        [adeyemi.id],
        "an email's local part, digits and all"
    );
    assert_eq!(ids(index, text("adeyemi6")).await, [adeyemi.id], "as a prefix");
    assert_eq!(ids(index, text("mail.example")).await, [adeyemi.id], "its domain");
    assert_eq!(ids(index, text("mail.example.com")).await, [adeyemi.id]);
    assert_eq!(ids(index, text("tunde mail")).await, [adeyemi.id], "a name and a part of the email");
    assert_eq!(
        set(ids(index, text("example")).await),
        set(vec![adeyemi.id, other_domain.id]),
        "a domain label, not every email"
    );
    assert_eq!(
        ids(index, text("mail")).await,
        [adeyemi.id],
        "gmail is not mail: parts match from their start"
    );
    assert!(ids(index, text("other.example.com")).await.is_empty(), "every part must match");
    assert_eq!(ids(index, text("lovelace-88")).await, [referenced.id], "a reference's parts");
    assert_eq!(ids(index, text("crm 2024")).await, [referenced.id]);
    assert!(ids(index, text("ex")).await.is_empty(), "two letters match a part only whole");
}

/// Surnames as written, the query an agent types for each (without punctuation or
/// spacing, or with spaces it does not have) and that query's kind.
const TYPED_SURNAMES: &[(&str, &str, &str)] = &[
    ("O'Connor", "oconnor", "joined"),
    ("D'Angelo", "dangelo", "joined"),
    ("O'Brien", "obrien", "joined"),
    ("N'Diaye", "ndiaye", "joined"),
    ("van der Berg", "vanderberg", "joined"),
    ("de la Cruz", "delacruz", "joined"),
    ("Van Dyke", "vandyke", "joined"),
    ("da Silva", "dasilva", "joined"),
    ("St. John", "stjohn", "joined"),
    ("Smith-Jones", "smithjones", "joined"),
    ("Garcia-Lopez", "garcialopez", "joined"),
    ("ten Bosch", "tenbosch", "joined"),
    ("McDonald", "mc donald", "spaced"),
    ("MacArthur", "mac arthur", "spaced"),
    ("Delarosa", "de la rosa", "spaced"),
    ("Vanderbilt", "van der bilt", "spaced"),
    ("LeBlanc", "le blanc", "spaced"),
    ("FitzGerald", "fitz gerald", "spaced"),
    ("Obuya", "o buya", "spaced"),
    ("DaCosta", "da costa", "spaced"),
];
const TYPED_FIRST_NAMES: &[&str] = &["Maria", "Tunde", "Siobhan", "Pieter", "Aiko"];
const TYPED_DOMAINS: &[&str] = &[
    "mail.example.com",
    "post.example.org",
    "inbox.test.net",
    "gmail.com",
    "corp.acme.co.uk",
];

/// Recall of what agents type, over generated debtors (a first name, a surname with
/// punctuation or particles, an email `first.surname123@domain`): for each kind of query,
/// how many debtors it finds among those it was typed for, and how many accounts it
/// answers on average. Printed (`--nocapture`) and held at every debtor found, with a
/// domain's query answering no more than that domain's accounts.
pub async fn recall_of_names_and_emails_as_typed(index: &dyn SearchIndex) {
    let mut debtors = Vec::new();
    for (i, (surname, typed, kind)) in TYPED_SURNAMES.iter().enumerate() {
        for (j, first) in TYPED_FIRST_NAMES.iter().enumerate() {
            let n = i * TYPED_FIRST_NAMES.len() + j;
            let mut account = doc(&format!("{first} {surname}"), 1);
            let local = format!("{}{}", typed.replace(' ', ""), 100 + n * 37 % 900);
            let domain = TYPED_DOMAINS[n % TYPED_DOMAINS.len()];
            account.email = Some(format!("{}.{local}@{domain}", first.to_lowercase()));
            debtors.push((account, first.to_lowercase(), *typed, *kind, local, domain));
        }
    }
    let accounts: Vec<AccountDoc> = debtors.iter().map(|d| d.0.clone()).collect();
    put(index, &accounts).await;
    let by_name = |q: String| AccountQuery {
        page_size: 200,
        sort: Sort {
            field: SortField::Name,
            descending: false,
        },
        ..text(&q)
    };
    let mut tally: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
    for (account, first, typed, kind, local, domain) in &debtors {
        let domain_labels: Vec<&str> = domain.split('.').collect();
        let queries = [
            (format!("surname {kind}"), typed.to_string()),
            (format!("first name and surname {kind}"), format!("{first} {typed}")),
            ("email local part with digits".to_owned(), local.clone()),
            ("email domain (two labels)".to_owned(), domain_labels[..2].join(".")),
        ];
        for (name, q) in queries {
            let found = ids(index, by_name(q.clone())).await;
            let entry = tally.entry(name.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(found.contains(&account.id));
            entry.2 += found.len();
            assert!(found.contains(&account.id), "{name}: {q:?} finds {:?}", account.debtor_name);
            if name.starts_with("email domain") {
                let on_domain = accounts
                    .iter()
                    .filter(|a| a.email.as_deref().is_some_and(|e| e.contains(&q)))
                    .count();
                assert!(
                    found.len() <= on_domain,
                    "{q:?} answers {} accounts, {on_domain} have it",
                    found.len()
                );
            }
        }
    }
    println!("recall over {} generated debtors:", debtors.len());
    for (name, (asked, found, hits)) in tally {
        println!(
            "  {name}: {found}/{asked} found, {:.1} accounts per answer",
            hits as f64 / asked as f64
        );
    }
}

pub async fn names_with_combining_marks(index: &dyn SearchIndex) {
    // A virama and vowel signs, Thai tone marks, Arabic vowel marks: each is a mark
    // (Unicode category M) inside a word.
    let priya = doc("प्रिया शर्मा", 1);
    let somchai = doc("สมชาย ใจดี", 1);
    let muhammad = doc("مُحَمَّد عَلِي", 1);
    let other = doc("Priya Sharma", 1);
    put(index, &[priya.clone(), somchai.clone(), muhammad.clone(), other.clone()]).await;
    assert_eq!(ids(index, text("प्रिया शर्मा")).await, [priya.id], "the whole name");
    assert_eq!(ids(index, text("शर्मा")).await, [priya.id], "a word with a virama");
    assert_eq!(ids(index, text("प्रि")).await, [priya.id], "a prefix ending in a vowel sign");
    assert_eq!(ids(index, text("ใจดี")).await, [somchai.id], "a word with a tone mark");
    assert_eq!(ids(index, text("مُحَمَّد")).await, [muhammad.id], "a vocalised word");
    assert_eq!(ids(index, text("priya")).await, [other.id]);
    assert!(
        ids(index, text("मा")).await.is_empty(),
        "what follows a virama is the rest of a word, not a word"
    );
}

/// Names and identifiers lowercased as Elasticsearch's `lowercase` filter lowercases them
/// (Java's `Character.toLowerCase`, one character for one): 'İ' is 'i' with no combining
/// dot, a final 'Σ' is 'σ'; found however an agent types them.
pub async fn letters_lowercased_as_lucene_does(index: &dyn SearchIndex) {
    let mut ismail = doc("İSMAİL YILDIZ", 1);
    ismail.account_number = "İST-0042".into();
    let mut odysseus = doc("ΟΔΥΣΣΕΥΣ ΠΑΠΑΔΟΠΟΥΛΟΣ", 1);
    odysseus.account_number = "ΑΘΗΝΑΣ-77".into();
    let other = doc("Ismet Yilmaz", 1);
    put(index, &[ismail.clone(), odysseus.clone(), other.clone()]).await;
    for typed in [
        "İSMAİL YILDIZ",
        "İsmail Yıldız",
        "ismail yildiz",
        "ismail",
        "İsmail",
        "İSMAİL",
        "İsma",
        "isma yild",
        "ismailyildiz",
        "Yıldız",
    ] {
        assert_eq!(ids(index, text(typed)).await, [ismail.id], "{typed:?} finds İsmail");
    }
    for typed in ["İST-0042", "ist-0042", "İST-00", "ist-0"] {
        assert_eq!(ids(index, text(typed)).await, [ismail.id], "{typed:?} finds account İST-0042");
    }
    for typed in [
        "ΟΔΥΣΣΕΥΣ ΠΑΠΑΔΟΠΟΥΛΟΣ",
        "ΟΔΥΣΣΕΥΣ",
        "Οδυσσευσ",
        "οδυσσευς",
        "Οδυσσεύς Παπαδόπουλος",
        "παπαδοπουλος",
        "οδυσσευσπαπαδοπουλοσ",
    ] {
        assert_eq!(ids(index, text(typed)).await, [odysseus.id], "{typed:?} finds Odysseus");
    }
    for typed in ["ΑΘΗΝΑΣ-77", "αθηνασ-77", "Αθηνασ-7", "ΑΘΗΝΑΣ"] {
        assert_eq!(ids(index, text(typed)).await, [odysseus.id], "{typed:?} finds account ΑΘΗΝΑΣ-77");
    }
    assert_eq!(ids(index, text("ismet")).await, [other.id]);
}

pub async fn typo_expansions_are_bounded(index: &dyn SearchIndex) {
    // Sixty one-letter typos of "smith" that it does not begin: a typo matches the
    // fifty nearest words of the dictionary, on every backend.
    let words: Vec<String> = (b'a'..=b'z')
        .filter(|&c| c != b's')
        .map(|c| format!("{}mith", c as char))
        .chain((b'a'..=b'z').filter(|&c| c != b'h').map(|c| format!("smit{}", c as char)))
        .chain((b'a'..=b'z').filter(|&c| c != b'm').map(|c| format!("s{}ith", c as char)))
        .take(60)
        .collect();
    assert_eq!(words.len(), 60);
    let docs: Vec<AccountDoc> = words.iter().map(|w| doc(w, 1)).collect();
    put(index, &docs).await;
    let found = ids(
        index,
        AccountQuery {
            page_size: 100,
            ..text("smith")
        },
    )
    .await;
    assert_eq!(found.len(), arrears::search::words::TYPO_EXPANSIONS, "{found:?}");
}

/// The longest text a search accepts (`MAX_QUERY_CHARS`) is answered on every backend,
/// whatever its words: many numbers among words (each could be a phone) and many words
/// that each expand into their typos. Elasticsearch refuses a query whose expanded
/// clauses pass its `indices.query.bool.max_clause_count`.
pub async fn the_longest_texts_are_answered(index: &dyn SearchIndex) {
    use arrears::lists::params::MAX_QUERY_CHARS;
    let mut anna = doc("Anna Smith", 1);
    anna.phone = Some("+12025551234".into());
    // Fifty words one typo from "anna" and fifty from "smith": each of those words in a
    // query expands into fifty terms, as it would over a full index.
    let letters = || (b'a'..=b'z').map(char::from);
    let typos: Vec<AccountDoc> = letters()
        .filter(|&c| c != 'a' && c != 'h')
        .map(|c| doc(&format!("Ann{c} Smit{c}"), 1))
        .chain(
            letters()
                .filter(|&c| c != 'n' && c != 't')
                .map(|c| doc(&format!("An{c}a Smi{c}h"), 1)),
        )
        .collect();
    put(index, &typos).await;
    put(index, std::slice::from_ref(&anna)).await;
    let longest = |piece: &str| {
        let text = piece.repeat(MAX_QUERY_CHARS / piece.len());
        assert!(text.trim().chars().count() <= MAX_QUERY_CHARS);
        text.trim().to_owned()
    };
    let numbers = longest("1234 anna ");
    assert!(
        ids(index, text(&numbers)).await.is_empty(),
        "no account holds every number as a word and the one as a phone"
    );
    let found = ids(
        index,
        AccountQuery {
            page_size: 50,
            ..text(&longest("anna smith "))
        },
    )
    .await;
    assert_eq!(found.first(), Some(&anna.id), "the exact name first: {found:?}");
    assert!(found.len() > 1, "typos of the repeated words match too: {found:?}");
    let phone_first = format!("555 1234 {}", longest("anna smith "))
        .chars()
        .take(MAX_QUERY_CHARS)
        .collect::<String>();
    assert_eq!(ids(index, text(phone_first.trim())).await.first(), Some(&anna.id));
}

pub async fn word_ranking_and_many_terms(index: &dyn SearchIndex) {
    let exact = doc("Anna Smith", 1);
    let prefix = doc("Bob Smithson", 1);
    let typo = doc("Carl Smyth", 1);
    let other = doc("Dan Jones", 1);
    // Two writes, so the words of one query live in different segments.
    put(index, &[exact.clone(), other.clone()]).await;
    put(index, &[prefix.clone(), typo.clone()]).await;
    let found = ids(index, text("smith")).await;
    assert_eq!(found.len(), 3, "exact, prefix and typo matches, not the others: {found:?}");
    assert_eq!(found[0], exact.id, "the word itself ranks first");
    assert_eq!(
        found[1..].iter().copied().collect::<HashSet<_>>(),
        HashSet::from([prefix.id, typo.id])
    );

    // More first names starting with "ma" than one query expands into terms.
    let many: Vec<AccountDoc> = (b'a'..=b'v').map(|c| doc(&format!("Ma{}x Doe", c as char), 1)).collect();
    put(index, &many).await;
    let found: HashSet<Uuid> = ids(
        index,
        AccountQuery {
            page_size: 50,
            ..text("ma")
        },
    )
    .await
    .into_iter()
    .collect();
    assert_eq!(found, many.iter().map(|d| d.id).collect(), "every name starting with the prefix");
    let found = ids(index, text("mabx")).await;
    assert_eq!(found.first(), Some(&many[1].id), "the word itself first among its typos: {found:?}");
}

pub async fn filters_and_buckets(index: &dyn SearchIndex) {
    let agent = Uuid::new_v4();
    let day = |n: i64| today() - Duration::days(n);
    let mut docs = Vec::new();
    for (days, status) in [
        (0, AccountStatus::Active),
        (1, AccountStatus::Delinquent),
        (29, AccountStatus::Delinquent),
        (30, AccountStatus::Delinquent),
        (59, AccountStatus::Delinquent),
        (60, AccountStatus::Delinquent),
        (89, AccountStatus::Delinquent),
        (90, AccountStatus::Delinquent),
        (119, AccountStatus::Delinquent),
        (120, AccountStatus::Delinquent),
        (400, AccountStatus::Paid),
    ] {
        let mut d = doc(&format!("Bucket {days}"), 1);
        d.due_date = Some(day(days));
        d.status = status;
        docs.push(d);
    }
    docs[3].assigned_agent_id = Some(agent);
    docs[3].tags = vec!["vip".into()];
    docs[4].current_balance = Decimal::new(500_000, 2);
    docs[5].do_not_call = true;
    let mut deleted = doc("Bucket Deleted", 1);
    deleted.deleted_at = Some(Utc::now());
    docs.push(deleted.clone());
    put(index, &docs).await;
    // A write of a tombstone alone: a segment whose one document has no status or due date.
    index
        .apply(vec![IndexOp::tombstone(Entity::Account, Uuid::new_v4(), 1)])
        .await
        .unwrap();
    let names = |hits: Vec<Uuid>| -> HashSet<String> {
        hits.into_iter()
            .map(|id| docs.iter().chain([&deleted]).find(|d| d.id == id).unwrap().debtor_name.clone())
            .collect()
    };
    let expect = |list: &[&str]| -> HashSet<String> { list.iter().map(|s| s.to_string()).collect() };
    let bucket = |b: Bucket| AccountQuery {
        buckets: vec![b],
        page_size: 50,
        ..query()
    };
    assert_eq!(
        names(ids(index, bucket(Bucket::Current)).await),
        expect(&["Bucket 0", "Bucket 400"]),
        "paid accounts are current"
    );
    assert_eq!(
        names(ids(index, bucket(Bucket::Days1To29)).await),
        expect(&["Bucket 1", "Bucket 29"])
    );
    assert_eq!(
        names(ids(index, bucket(Bucket::Days30To59)).await),
        expect(&["Bucket 30", "Bucket 59"])
    );
    assert_eq!(
        names(ids(index, bucket(Bucket::Days60To89)).await),
        expect(&["Bucket 60", "Bucket 89"])
    );
    assert_eq!(
        names(ids(index, bucket(Bucket::Days90To119)).await),
        expect(&["Bucket 90", "Bucket 119"])
    );
    assert_eq!(names(ids(index, bucket(Bucket::Days120Plus)).await), expect(&["Bucket 120"]));
    let two = AccountQuery {
        buckets: vec![Bucket::Days1To29, Bucket::Days120Plus],
        page_size: 50,
        ..query()
    };
    assert_eq!(names(ids(index, two).await), expect(&["Bucket 1", "Bucket 29", "Bucket 120"]));
    // The bucket facet agrees with the bucket filter, the paid account included, and
    // counts neither the deleted account nor the tombstone.
    let faceted = AccountQuery {
        facets: vec![Facet::Bucket, Facet::Status],
        ..query()
    };
    let page = index.search(faceted).await.unwrap();
    let counts = |name: &str| -> Vec<(String, u64)> {
        let values = &page.facets.iter().find(|(n, _)| *n == name).unwrap().1;
        let mut counts: Vec<(String, u64)> = values.iter().filter(|v| v.count > 0).map(|v| (v.value.clone(), v.count)).collect();
        counts.sort();
        counts
    };
    let owned = |list: &[(&str, u64)]| -> Vec<(String, u64)> { list.iter().map(|(v, c)| (v.to_string(), *c)).collect() };
    assert_eq!(
        counts("bucket"),
        owned(&[("1-29", 2), ("120+", 1), ("30-59", 2), ("60-89", 2), ("90-119", 2), ("current", 2)])
    );
    assert_eq!(counts("status"), owned(&[("active", 1), ("delinquent", 9), ("paid", 1)]));

    let mine = AccountQuery {
        agent: Some(AgentFilter::Agent(agent)),
        ..query()
    };
    assert_eq!(names(ids(index, mine).await), expect(&["Bucket 30"]));
    let unassigned = AccountQuery {
        agent: Some(AgentFilter::Unassigned),
        page_size: 50,
        ..query()
    };
    assert_eq!(index.search(unassigned).await.unwrap().total, 10);
    let tagged = AccountQuery {
        tags: vec!["vip".into()],
        ..query()
    };
    assert_eq!(names(ids(index, tagged).await), expect(&["Bucket 30"]));
    let rich = AccountQuery {
        min_balance: Some(Decimal::new(1000, 0)),
        max_balance: Some(Decimal::new(5000, 0)),
        ..query()
    };
    assert_eq!(names(ids(index, rich).await), expect(&["Bucket 59"]));
    let statuses = AccountQuery {
        statuses: vec![AccountStatus::Paid, AccountStatus::Active],
        page_size: 50,
        ..query()
    };
    assert_eq!(names(ids(index, statuses).await), expect(&["Bucket 0", "Bucket 400"]));
    let due = AccountQuery {
        due_from: Some(day(30)),
        due_to: Some(day(29)),
        ..query()
    };
    assert_eq!(names(ids(index, due).await), expect(&["Bucket 29", "Bucket 30"]));
    let dnc = AccountQuery {
        do_not_call: Some(true),
        ..query()
    };
    assert_eq!(names(ids(index, dnc).await), expect(&["Bucket 60"]));
    assert_eq!(
        index.search(AccountQuery { page_size: 50, ..query() }).await.unwrap().total,
        11,
        "soft-deleted hidden by default"
    );
    let with_deleted = AccountQuery {
        include_deleted: true,
        page_size: 50,
        ..query()
    };
    assert_eq!(index.search(with_deleted).await.unwrap().total, 12);
    // No account here has a next action: filtering or sorting on it answers, it does not fail.
    let next_action = AccountQuery {
        next_action_before: Some(Utc::now()),
        ..query()
    };
    assert_eq!(index.search(next_action).await.unwrap().total, 0);
    let by_next_action = AccountQuery {
        sort: Sort {
            field: SortField::NextAction,
            descending: false,
        },
        page_size: 50,
        ..query()
    };
    assert_eq!(index.search(by_next_action).await.unwrap().total, 11);
}

/// Filters over a segment large enough for the embedded backend to keep each
/// condition's bits, asked twice (built, then kept), and again after changes landed in
/// a newer segment and deleted documents from the large one: every total equals a count
/// over the documents themselves.
pub async fn filters_over_a_large_segment(index: &dyn SearchIndex) {
    const STATUSES: [AccountStatus; 4] = [
        AccountStatus::Active,
        AccountStatus::Delinquent,
        AccountStatus::Paid,
        AccountStatus::PaymentPlan,
    ];
    // Two indexing threads split one batch into two segments: each stays above the
    // embedded backend's 16,384-document threshold for keeping filter bits.
    let mut docs: Vec<AccountDoc> = (0..40_000i64)
        .map(|n| {
            let mut d = doc(&format!("Large {n}"), 1);
            d.status = STATUSES[(n * 7 % 4) as usize];
            d.current_balance = Decimal::new(n * 37 % 100_000, 2);
            d.due_date = (n % 11 != 0).then(|| today() - Duration::days(n * 13 % 200 - 20));
            d.next_action_at = (n % 3 == 0).then(|| at("2026-06-01T00:00:00Z") + Duration::hours(n % 500));
            d
        })
        .collect();
    put(index, &docs).await;
    type Wanted = Box<dyn Fn(&AccountDoc) -> bool>;
    let cases: Vec<(AccountQuery, Wanted)> = vec![
        (
            AccountQuery {
                statuses: vec![AccountStatus::Delinquent],
                buckets: vec![Bucket::Days30To59],
                min_balance: Some(Decimal::new(10_000, 2)),
                ..query()
            },
            Box::new(|d: &AccountDoc| {
                d.status == AccountStatus::Delinquent && bucket_of(d) == Bucket::Days30To59 && d.current_balance >= Decimal::new(10_000, 2)
            }),
        ),
        (
            AccountQuery {
                buckets: vec![Bucket::Current, Bucket::Days120Plus],
                ..query()
            },
            Box::new(|d: &AccountDoc| matches!(bucket_of(d), Bucket::Current | Bucket::Days120Plus)),
        ),
        (
            AccountQuery {
                statuses: vec![AccountStatus::Active, AccountStatus::Paid],
                max_balance: Some(Decimal::new(50_000, 2)),
                due_from: Some(today() - Duration::days(60)),
                due_to: Some(today()),
                ..query()
            },
            Box::new(|d: &AccountDoc| {
                matches!(d.status, AccountStatus::Active | AccountStatus::Paid)
                    && d.current_balance <= Decimal::new(50_000, 2)
                    && d.due_date.is_some_and(|due| today() - Duration::days(60) <= due && due <= today())
            }),
        ),
        (
            AccountQuery {
                next_action_before: Some(at("2026-06-10T00:00:00Z")),
                ..query()
            },
            Box::new(|d: &AccountDoc| d.next_action_at.is_some_and(|t| t < at("2026-06-10T00:00:00Z"))),
        ),
        (
            AccountQuery {
                statuses: vec![AccountStatus::Delinquent],
                ..text("large")
            },
            Box::new(|d: &AccountDoc| d.status == AccountStatus::Delinquent),
        ),
    ];
    let expected = |docs: &[AccountDoc]| -> Vec<u64> {
        cases
            .iter()
            .map(|(_, wanted)| docs.iter().filter(|d| wanted(d)).count() as u64)
            .collect()
    };
    for round in ["first", "kept"] {
        for ((q, _), expected) in cases.iter().zip(expected(&docs)) {
            assert!(expected > 0, "case {q:?} selects nothing");
            assert_eq!(index.search(q.clone()).await.unwrap().total, expected, "{round} search of {q:?}");
        }
    }
    for d in docs.iter_mut().step_by(5) {
        d.status = AccountStatus::Delinquent;
        d.current_balance = Decimal::new(20_000, 2);
        d.search_version = 2;
    }
    let changed: Vec<AccountDoc> = docs.iter().step_by(5).cloned().collect();
    put(index, &changed).await;
    for ((q, _), expected) in cases.iter().zip(expected(&docs)) {
        assert_eq!(index.search(q.clone()).await.unwrap().total, expected, "after changes: {q:?}");
    }
}

/// Searches without words, whose total and facets the embedded backend keeps per large
/// segment whatever the page (the dashboard's portfolio asks for no rows, the Accounts
/// screen for 25), and whose rows it takes band by band of the sort column: asked twice
/// (counted, then kept), and again after changes and after deletions landed, each total and
/// facet equals a count over the documents themselves, and the first two pages in each
/// sort are the documents' own order (ties by id, missing values last).
pub async fn counts_and_pages_over_a_large_segment(index: &dyn SearchIndex) {
    const STATUSES: [AccountStatus; 3] = [AccountStatus::Active, AccountStatus::Delinquent, AccountStatus::PaymentPlan];
    let portfolios = [Uuid::new_v4(), Uuid::new_v4()];
    // Two indexing threads split one batch into two segments, each above the embedded
    // backend's 16,384-document threshold for keeping answers.
    let mut docs: Vec<AccountDoc> = (0..40_000i64)
        .map(|n| {
            let mut d = doc(&format!("Counted {n}"), 1);
            d.status = STATUSES[(n * 7 % 3) as usize];
            d.currency = ["USD", "EUR", "GBP"][(n % 3) as usize].into();
            d.current_balance = Decimal::new(n * 37 % 100_000, 2);
            d.due_date = (n % 11 != 0).then(|| today() - Duration::days(n * 13 % 200 - 20));
            d.portfolio_id = (n % 4 != 0).then(|| portfolios[(n % 2) as usize]);
            d
        })
        .collect();
    put(index, &docs).await;
    let cases = [
        AccountQuery {
            facets: vec![Facet::Status, Facet::Bucket],
            page_size: 0,
            ..query()
        },
        AccountQuery {
            facets: vec![Facet::Bucket, Facet::Status],
            portfolio_scope: Some(vec![portfolios[0]]),
            statuses: vec![AccountStatus::Delinquent, AccountStatus::PaymentPlan],
            page_size: 0,
            ..query()
        },
    ];
    let in_case =
        |case: usize, d: &AccountDoc| case == 0 || (d.portfolio_id.is_none_or(|p| p == portfolios[0]) && d.status != AccountStatus::Active);
    let check = |docs: Vec<AccountDoc>, round: &'static str| {
        let cases = cases.clone();
        async move {
            for (case, q) in cases.iter().enumerate() {
                let counted = index.search(q.clone()).await.unwrap();
                assert!(counted.hits.is_empty(), "{round} case {case}: no rows");
                let matching: Vec<&AccountDoc> = docs.iter().filter(|d| in_case(case, d)).collect();
                for (sort, ordered) in [(SortField::Balance, true), (SortField::DueDate, false), (SortField::Updated, true)]
                    .map(|(field, descending)| (Sort { field, descending }, in_order(&matching, field, descending)))
                {
                    let mut q = AccountQuery {
                        page_size: 25,
                        sort,
                        ..q.clone()
                    };
                    for page in 0..2 {
                        let rows = index.search(q.clone()).await.unwrap();
                        assert_eq!(counted.total, rows.total, "{round} case {case} {sort:?}: total");
                        assert_eq!(counted.facets, rows.facets, "{round} case {case} {sort:?}: facets");
                        let ids: Vec<Uuid> = rows.hits.iter().map(|h| h.doc.id).collect();
                        assert_eq!(ids, ordered[page * 25..(page + 1) * 25], "{round} case {case} {sort:?} page {page}");
                        q.after = rows.next;
                    }
                }
                assert_eq!(
                    counted.total,
                    matching.len() as u64,
                    "{round} case {case}: total over the documents"
                );
                let status = &counted.facets.iter().find(|(n, _)| *n == "status").unwrap().1;
                for value in status {
                    let holding: Vec<&&AccountDoc> = matching.iter().filter(|d| d.status.as_str() == value.value).collect();
                    assert_eq!(value.count, holding.len() as u64, "{round} case {case}: {}", value.value);
                    let mut sums: Vec<(String, Decimal)> = Vec::new();
                    for d in holding {
                        match sums.iter_mut().find(|(c, _)| *c == d.currency) {
                            Some((_, sum)) => *sum += d.current_balance,
                            None => sums.push((d.currency.clone(), d.current_balance)),
                        }
                    }
                    sums.sort();
                    let sums: Vec<(String, Decimal)> = sums.into_iter().map(|(c, s)| (c, s.normalize())).collect();
                    assert_eq!(value.sums.clone(), Some(sums), "{round} case {case}: sums of {}", value.value);
                }
            }
        }
    };
    check(docs.clone(), "counted").await;
    check(docs.clone(), "kept").await;
    // Changes: every fifth account moves to a newer segment with another status and
    // balance; every seventh of the rest is deleted; every GBP one of a portfolio is
    // taken out of it, so a currency leaves some tallies.
    for (n, d) in docs.iter_mut().enumerate() {
        if n % 5 == 0 {
            d.status = AccountStatus::Delinquent;
            d.current_balance = Decimal::new(20_000, 2);
            d.search_version = 2;
        } else if d.currency == "GBP" && d.portfolio_id.is_some() {
            d.portfolio_id = Some(portfolios[1]);
            d.search_version = 2;
        }
    }
    let changed: Vec<AccountDoc> = docs.iter().filter(|d| d.search_version == 2).cloned().collect();
    put(index, &changed).await;
    // The answers without the documents the changes deleted are kept; the deletions
    // below take out only their own documents from them.
    check(docs.clone(), "after the changes").await;
    let deleted: Vec<Uuid> = docs
        .iter()
        .enumerate()
        .filter(|(n, _)| n % 5 != 0 && n % 7 == 0)
        .map(|(_, d)| d.id)
        .collect();
    index
        .apply(deleted.iter().map(|id| IndexOp::tombstone(Entity::Account, *id, 3)).collect())
        .await
        .unwrap();
    docs.retain(|d| !deleted.contains(&d.id));
    check(docs.clone(), "after the deletions").await;
    check(docs, "kept after the deletions").await;
}

/// The ids of `docs` in a search's order by `field`: by value, ties by id, documents
/// without a value last in either direction.
fn in_order(docs: &[&AccountDoc], field: SortField, descending: bool) -> Vec<Uuid> {
    let key = |d: &AccountDoc| -> Option<Decimal> {
        match field {
            SortField::Balance => Some(d.current_balance),
            SortField::DueDate => d.due_date.map(|due| due.to_epoch_days().into()),
            SortField::Updated => Some(d.updated_at.timestamp_micros().into()),
            other => panic!("no order for {other:?}"),
        }
    };
    let mut sorted: Vec<&AccountDoc> = docs.to_vec();
    sorted.sort_by(|a, b| {
        let by_value = match (key(a), key(b)) {
            (Some(x), Some(y)) if descending => y.cmp(&x),
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(a.id.cmp(&b.id))
    });
    sorted.into_iter().map(|d| d.id).collect()
}

fn bucket_of(d: &AccountDoc) -> Bucket {
    Bucket::from_days_past_due(arrears::domain::account::days_past_due(d.due_date, d.status, today()))
}

/// A total counted up to a bound, as Elasticsearch's `track_total_hits`: up to the bound
/// every match is counted; past it the page gives the bound and says more match. Text
/// searches, filtered lists, pages with facets (which still count every match) and pages
/// of none agree on both backends, for accounts and payments; an exact count asked for is
/// every match.
pub async fn bounded_totals(index: &dyn SearchIndex) {
    let docs: Vec<AccountDoc> = (0..30)
        .map(|n| {
            let mut d = doc(&format!("Bounded Person{n}"), 1);
            d.status = if n % 3 == 0 {
                AccountStatus::Delinquent
            } else {
                AccountStatus::Active
            };
            d
        })
        .collect();
    put(index, &docs).await;
    let cases = [
        ("everything", query(), 30),
        ("a text search", text("bounded"), 30),
        (
            "a filtered list",
            AccountQuery {
                statuses: vec![AccountStatus::Active],
                ..query()
            },
            20,
        ),
        (
            "with facets",
            AccountQuery {
                facets: vec![Facet::Status],
                ..query()
            },
            30,
        ),
        (
            "a page of none",
            AccountQuery {
                facets: vec![Facet::Status],
                page_size: 0,
                ..query()
            },
            30,
        ),
    ];
    for (name, q, matches) in cases {
        let exact = index.search(q.clone()).await.unwrap();
        assert_eq!((exact.total, exact.total_is_lower_bound), (matches, false), "{name}: exact");
        for (counted, answer) in [
            (Counted::UpTo(10), (10, true)),
            (Counted::UpTo(matches - 1), (matches - 1, true)),
            (Counted::UpTo(matches), (matches, false)),
            (Counted::LIST, (matches, false)),
        ] {
            let page = index.search(AccountQuery { counted, ..q.clone() }).await.unwrap();
            assert_eq!((page.total, page.total_is_lower_bound), answer, "{name}, {counted:?}");
            assert_eq!(page.facets, exact.facets, "{name}, {counted:?}: facets count every match");
            let ids = |p: &SearchPage| p.hits.iter().map(|h| h.doc.id).collect::<Vec<_>>();
            assert_eq!(ids(&page), ids(&exact), "{name}, {counted:?}: the same page");
        }
    }
    let payments = (0..12).map(|n| IndexOp::upsert(payment("Bounded Person", "BOUNDED-1", 100 + n, 1)));
    index.apply(payments.collect()).await.unwrap();
    for (counted, answer) in [
        (Counted::UpTo(5), (5, true)),
        (Counted::UpTo(12), (12, false)),
        (Counted::Exact, (12, false)),
    ] {
        let page = index
            .search_payments(PaymentQuery {
                counted,
                ..PaymentQuery::default()
            })
            .await
            .unwrap();
        assert_eq!((page.total, page.total_is_lower_bound), answer, "payments, {counted:?}");
    }
}

pub async fn sort_and_cursor(index: &dyn SearchIndex) {
    let mut docs = Vec::new();
    for i in 0..23 {
        let mut d = doc(&format!("Sorted {i:02}"), 1);
        d.current_balance = Decimal::new((i % 5) * 100, 0);
        d.due_date = (i % 4 != 0).then(|| today() - Duration::days(i));
        docs.push(d);
    }
    // Several commits, so ties and the cursor span segments.
    for chunk in docs.chunks(6) {
        put(index, chunk).await;
    }
    for (field, descending) in [
        (SortField::Balance, true),
        (SortField::Balance, false),
        (SortField::DueDate, false),
        (SortField::DueDate, true),
        (SortField::Name, false),
        (SortField::Updated, true),
    ] {
        let mut seen = Vec::new();
        let mut q = AccountQuery {
            sort: Sort { field, descending },
            page_size: 5,
            ..query()
        };
        loop {
            let page = index.search(q.clone()).await.unwrap();
            assert_eq!(page.total, 23);
            seen.extend(page.hits.iter().map(|h| h.doc.clone()));
            match page.next {
                Some(after) => q.after = Some(after),
                None => break,
            }
        }
        let unique: HashSet<Uuid> = seen.iter().map(|d| d.id).collect();
        assert_eq!(
            (seen.len(), unique.len()),
            (23, 23),
            "{field:?} {descending}: every hit exactly once"
        );
        let keys: Vec<Option<i64>> = seen
            .iter()
            .map(|d| match field {
                SortField::Balance => Some(i64::try_from(d.current_balance.mantissa()).unwrap()),
                SortField::DueDate => d.due_date.map(|x| x.to_epoch_days().into()),
                _ => None,
            })
            .collect();
        if matches!(field, SortField::Balance | SortField::DueDate) {
            let present: Vec<i64> = keys.iter().flatten().copied().collect();
            let mut sorted = present.clone();
            sorted.sort();
            if descending {
                sorted.reverse();
            }
            assert_eq!(present, sorted, "{field:?} {descending}");
            for pair in seen.windows(2).zip(keys.windows(2)) {
                if let ([a, b], [ka, kb]) = pair
                    && ka == kb
                {
                    assert!(a.id < b.id, "{field:?} {descending}: ties in id order");
                }
            }
            let first_missing = keys.iter().position(Option::is_none).unwrap_or(keys.len());
            assert!(keys[first_missing..].iter().all(Option::is_none), "missing values sort last");
        }
        if field == SortField::Name {
            let names: Vec<&str> = seen.iter().map(|d| d.debtor_name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted);
        }
    }
}

pub async fn facets(index: &dyn SearchIndex) {
    let agent = Uuid::new_v4();
    let mut docs = Vec::new();
    for (i, (status, currency)) in [
        (AccountStatus::Active, "USD"),
        (AccountStatus::Active, "USD"),
        (AccountStatus::Delinquent, "USD"),
        (AccountStatus::Active, "EUR"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = doc(&format!("Facet {i}"), 1);
        d.status = status;
        d.currency = currency.into();
        d.current_balance = Decimal::new(1005 + i as i64, 2);
        d.tags = vec!["vip".into(), format!("t{i}")];
        d.assigned_agent_id = (i == 0).then_some(agent);
        d.due_date = Some(today() - Duration::days(45));
        docs.push(d);
    }
    put(index, &docs).await;
    let q = AccountQuery {
        facets: vec![Facet::Status, Facet::Bucket, Facet::AssignedAgent, Facet::Tags],
        ..query()
    };
    let page = index.search(q.clone()).await.unwrap();
    // A page of none answers the same total and facets, without rows or a cursor.
    let counts = index.search(AccountQuery { page_size: 0, ..q }).await.unwrap();
    assert_eq!((counts.hits.len(), counts.next, counts.total), (0, None, page.total));
    assert_eq!(counts.facets, page.facets);
    let facet = |name: &str| page.facets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let status = facet("status");
    // Balances are summed per currency, never across.
    let active = status.iter().find(|v| v.value == "active").unwrap();
    let per_currency = vec![("EUR".to_owned(), Decimal::new(1008, 2)), ("USD".to_owned(), Decimal::new(2011, 2))];
    assert_eq!((active.count, active.sums.clone()), (3, Some(per_currency)));
    let delinquent = status.iter().find(|v| v.value == "delinquent").unwrap();
    assert_eq!(
        (delinquent.count, delinquent.sums.clone()),
        (1, Some(vec![("USD".to_owned(), Decimal::new(1007, 2))]))
    );
    let buckets = facet("bucket");
    assert_eq!(buckets.iter().find(|v| v.value == "30-59").unwrap().count, 4);
    assert_eq!(buckets.iter().map(|v| v.count).sum::<u64>(), 4);
    let overdue = buckets.iter().find(|v| v.value == "30-59").unwrap();
    let balances = vec![("EUR".to_owned(), Decimal::new(1008, 2)), ("USD".to_owned(), Decimal::new(3018, 2))];
    assert_eq!(overdue.sums, Some(balances), "the balance of each bucket, per currency");
    assert_eq!(buckets.iter().find(|v| v.value == "current").unwrap().sums, Some(vec![]));
    let agents = facet("assigned_agent_id");
    assert_eq!(agents.iter().find(|v| v.value == agent.to_string()).unwrap().count, 1);
    assert_eq!(agents.iter().find(|v| v.value == "unassigned").unwrap().count, 3);
    let tags = facet("tags");
    assert_eq!(tags[0].value, "vip");
    assert_eq!(tags[0].count, 4);
    assert!(tags.iter().all(|v| v.sums.is_none()));
    // Buckets are worked out for the day asked: fifteen days on, the same accounts are
    // 60 days past due; the status counts do not change with the day.
    let later = AccountQuery {
        facets: vec![Facet::Bucket, Facet::Status],
        ..AccountQuery::new(today() + Duration::days(15))
    };
    let later = index.search(later).await.unwrap();
    let facet = |name: &str| later.facets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(facet("bucket").iter().find(|v| v.value == "60-89").unwrap().count, 4);
    assert_eq!(facet("bucket").iter().find(|v| v.value == "30-59").map_or(0, |v| v.count), 0);
    assert_eq!(facet("status"), status);
}

fn custom_field(key: &str, kind: CustomKind) -> CustomField {
    CustomField {
        key: FieldKey::new(key),
        kind,
    }
}

fn custom(key: &str, value: Typed) -> CustomValue {
    CustomValue {
        key: key.to_owned(),
        value,
    }
}

fn only(field: CustomField, test: CustomTest) -> AccountQuery {
    AccountQuery {
        custom: vec![CustomFilter { field, test }],
        page_size: 50,
        ..query()
    }
}

/// Custom fields typed by their definitions (every kind) and portfolios: filters,
/// ranges, presence, sorts with a cursor (missing values last both ways), facets and
/// the words of searchable text, on a field no document holds too.
pub async fn custom_fields_and_portfolios(index: &dyn SearchIndex) {
    let (north, south) = (Uuid::new_v4(), Uuid::new_v4());
    let product = custom_field("product", CustomKind::Keyword);
    let channels = custom_field("channels", CustomKind::Keyword);
    let secured = custom_field("secured", CustomKind::Boolean);
    let score = custom_field("score", CustomKind::Number);
    let limit = custom_field("credit_limit", CustomKind::Money);
    let charged = custom_field("charged_off", CustomKind::Date);
    let note = custom_field("note", CustomKind::Keyword);
    let day = |n: i64| today().to_epoch_days() as i64 - n;
    let mut docs = Vec::new();
    for i in 0..6_i64 {
        let mut d = doc(&format!("Custom {i}"), 1);
        d.portfolio_id = [Some(north), Some(south), None][i as usize % 3];
        let mut values = vec![custom("product", Typed::Keywords(vec![["card", "loan"][i as usize % 2].into()]))];
        if i < 4 {
            values.push(custom("score", Typed::Number(5_000_000 + i * 12_345)));
            values.push(custom("credit_limit", Typed::Money(10_000 * (100 - i))));
            values.push(custom("charged_off", Typed::Date(day(i * 10))));
            values.push(custom("secured", Typed::Boolean(i % 2 == 0)));
        }
        if i == 0 {
            values.push(custom("channels", Typed::Keywords(vec!["mail".into(), "phone".into()])));
            values.push(custom(
                "note",
                Typed::Text {
                    text: "Transferred from Quixotic Lending".into(),
                    searchable: true,
                    filterable: true,
                },
            ));
        }
        if i == 1 {
            values.push(custom("channels", Typed::Keywords(vec!["phone".into()])));
            values.push(custom(
                "note",
                Typed::Text {
                    text: "Zanzibar private words".into(),
                    searchable: false,
                    filterable: false,
                },
            ));
        }
        d.work.custom = values;
        docs.push(d);
    }
    // Two commits: the columns of a key differ between segments.
    put(index, &docs[..3]).await;
    put(index, &docs[3..]).await;
    let id = |i: usize| docs[i].id;
    let found = |q: AccountQuery| async move { sorted(ids(index, q).await) };
    let of = |picked: &[usize]| sorted(picked.iter().map(|i| id(*i)).collect());

    let cards = only(product, CustomTest::OneOf(vec!["card".into()]));
    assert_eq!(found(cards).await, of(&[0, 2, 4]));
    let phone = only(channels, CustomTest::OneOf(vec!["phone".into()]));
    assert_eq!(found(phone).await, of(&[0, 1]), "any of a multi_list's values");
    let mail_or_fax = only(channels, CustomTest::OneOf(vec!["fax".into(), "mail".into()]));
    assert_eq!(found(mail_or_fax).await, of(&[0]));
    let yes = only(secured, CustomTest::OneOf(vec!["true".into()]));
    assert_eq!(found(yes).await, of(&[0, 2]));
    let high = only(
        score,
        CustomTest::Range {
            lo: Some(5_012_345),
            hi: None,
        },
    );
    assert_eq!(found(high).await, of(&[1, 2, 3]));
    let exact = only(
        score,
        CustomTest::Range {
            lo: Some(5_024_690),
            hi: Some(5_024_690),
        },
    );
    assert_eq!(found(exact).await, of(&[2]));
    let low_limit = only(
        limit,
        CustomTest::Range {
            lo: None,
            hi: Some(980_000),
        },
    );
    assert_eq!(found(low_limit).await, of(&[2, 3]));
    let recent = only(
        charged,
        CustomTest::Range {
            lo: Some(day(15)),
            hi: Some(day(0)),
        },
    );
    assert_eq!(found(recent).await, of(&[0, 1]));
    assert_eq!(found(only(score, CustomTest::Exists(false))).await, of(&[4, 5]));
    assert_eq!(found(only(channels, CustomTest::Exists(true))).await, of(&[0, 1]));
    let noted = only(note, CustomTest::OneOf(vec!["Transferred from Quixotic Lending".into()]));
    assert_eq!(found(noted).await, of(&[0]), "filterable text, whole");
    assert_eq!(
        found(only(note, CustomTest::Exists(true))).await,
        of(&[0]),
        "text that is not filterable is not held whole"
    );
    let both = AccountQuery {
        custom: vec![
            CustomFilter {
                field: product,
                test: CustomTest::OneOf(vec!["loan".into()]),
            },
            CustomFilter {
                field: score,
                test: CustomTest::Exists(true),
            },
        ],
        ..query()
    };
    assert_eq!(found(both).await, of(&[1, 3]));
    let nobody = custom_field("nobody_has_it", CustomKind::Number);
    assert!(found(only(nobody, CustomTest::Range { lo: Some(0), hi: None })).await.is_empty());
    assert_eq!(found(only(nobody, CustomTest::Exists(false))).await.len(), 6);

    let words = |q: &str| AccountQuery {
        text: Some(q.to_owned()),
        ..query()
    };
    assert_eq!(found(words("quixotic")).await, of(&[0]), "searchable text by its words");
    assert_eq!(found(words("quix")).await, of(&[0]), "and as a prefix");
    assert!(found(words("zanzibar")).await.is_empty(), "text that is not searchable");

    let north_or_none = AccountQuery {
        portfolios: vec![Some(north), None],
        ..query()
    };
    assert_eq!(found(north_or_none).await, of(&[0, 2, 3, 5]));
    let scoped = AccountQuery {
        portfolio_scope: Some(vec![south]),
        ..query()
    };
    assert_eq!(found(scoped).await, of(&[1, 2, 4, 5]), "the scope's portfolios and no portfolio");
    let ungranted = AccountQuery {
        portfolio_scope: Some(Vec::new()),
        ..query()
    };
    assert_eq!(found(ungranted).await, of(&[2, 5]), "no grants: the accounts in no portfolio");

    for (field, descending, expected) in [
        (score, false, [0, 1, 2, 3, 4, 5]),
        (score, true, [3, 2, 1, 0, 4, 5]),
        (charged, false, [3, 2, 1, 0, 4, 5]),
        (limit, true, [0, 1, 2, 3, 4, 5]),
        (nobody, true, [0, 1, 2, 3, 4, 5]),
    ] {
        let q = AccountQuery {
            sort: Sort {
                field: SortField::Custom(field),
                descending,
            },
            page_size: 2,
            ..query()
        };
        let seen = every_page(index, q).await;
        let (ordered, missing) = seen.split_at(if field == nobody { 0 } else { 4 });
        let expected: Vec<Uuid> = expected.iter().map(|i| id(*i)).collect();
        assert_eq!(ordered, &expected[..ordered.len()], "{field:?} {descending}");
        assert_eq!(
            sorted(missing.to_vec()),
            sorted(expected[ordered.len()..].to_vec()),
            "{field:?} {descending}: missing last"
        );
    }

    let faceted = AccountQuery {
        facets: vec![
            Facet::Custom(product),
            Facet::Custom(channels),
            Facet::Custom(secured),
            Facet::Portfolio,
        ],
        ..query()
    };
    let page = index.search(faceted).await.unwrap();
    let facet = |name: &str| -> Vec<(String, u64)> {
        let values = &page.facets.iter().find(|(n, _)| *n == name).unwrap().1;
        values.iter().map(|v| (v.value.clone(), v.count)).collect()
    };
    assert_eq!(facet("cf.product"), [("card".to_owned(), 3), ("loan".to_owned(), 3)]);
    assert_eq!(facet("cf.channels"), [("phone".to_owned(), 2), ("mail".to_owned(), 1)]);
    assert_eq!(facet("cf.secured"), [("false".to_owned(), 2), ("true".to_owned(), 2)]);
    let mut portfolios = facet("portfolio_id");
    portfolios.sort();
    let mut expected = vec![(north.to_string(), 2), (south.to_string(), 2), ("none".to_owned(), 2)];
    expected.sort();
    assert_eq!(portfolios, expected);
}

/// Balances and payments in a currency of large units (IDR) whose sums pass 2^53 minor
/// units, where a double is off by many units: facets and statistics sum them exactly.
pub async fn money_sums_stay_exact_past_two_to_the_53(index: &dyn SearchIndex) {
    // 2^52 + 1 and 2^52 + 3 minor units: together 2^53 + 4 (90,071,992,547,409.96 IDR).
    let amounts = [Decimal::new((1 << 52) + 1, 2), Decimal::new((1 << 52) + 3, 2)];
    let total = Decimal::new((1 << 53) + 4, 2);
    let mut docs = Vec::new();
    let mut payments = Vec::new();
    for (n, amount) in amounts.into_iter().enumerate() {
        let mut d = doc(&format!("Rupiah {n}"), 1);
        d.currency = "IDR".into();
        d.current_balance = amount;
        d.original_balance = amount;
        docs.push(d);
        let mut p = payment("Rupiah Payer", "AC-4004", 0, n as i64 + 1);
        p.amount = amount;
        p.currency = "IDR".into();
        p.received_at = at("2026-03-09T12:00:00Z");
        payments.push(IndexOp::upsert(p));
    }
    let mut small = doc("Rupiah Small", 1);
    small.currency = "IDR".into();
    small.current_balance = Decimal::new(1, 2);
    small.status = AccountStatus::Delinquent;
    docs.push(small);
    put(index, &docs).await;
    index.apply(payments).await.unwrap();

    let page = index
        .search(AccountQuery {
            facets: vec![Facet::Status, Facet::Bucket],
            ..query()
        })
        .await
        .unwrap();
    let facet = |name: &str| page.facets.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    let active = facet("status").into_iter().find(|v| v.value == "active").unwrap();
    assert_eq!(
        (active.count, active.sums),
        (2, Some(vec![("IDR".to_owned(), total)])),
        "exact to the unit"
    );
    let current = facet("bucket").into_iter().find(|v| v.value == "current").unwrap();
    assert_eq!(current.sums, Some(vec![("IDR".to_owned(), total + Decimal::new(1, 2))]));

    let found = index
        .search_payments(PaymentQuery {
            facets: vec![PaymentFacet::Status],
            ..PaymentQuery::default()
        })
        .await
        .unwrap();
    let statuses = &found.facets.iter().find(|(n, _)| *n == "status").unwrap().1;
    assert_eq!(statuses[0].sums, Some(vec![("IDR".to_owned(), total)]));
    let tz: chrono_tz::Tz = "UTC".parse().unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let stats = index.payment_stats(StatsQuery::new(tz, day, day, day)).await.unwrap();
    let exact = Tally { count: 2, amount: total };
    assert_eq!(
        (stats[0].today, stats[0].this_month, stats[0].series.clone()),
        (exact, exact, vec![exact])
    );
    assert_eq!(stats[0].by_status[0].sum, total);
}

pub async fn rebuild_dual_writes_and_promotes(index: &dyn SearchIndex) {
    let before = doc("Before Rebuild", 5);
    put(index, std::slice::from_ref(&before)).await;
    let generation = index.begin_rebuild(Entity::Account).await.unwrap();
    assert_eq!(ids(index, text("before")).await, [before.id], "reads stay on the live generation");
    let during = doc("During Rebuild", 6);
    put(index, std::slice::from_ref(&during)).await;
    assert_eq!(
        index.count(Entity::Account, generation.clone()).await.unwrap(),
        1,
        "writes reach the new generation too"
    );
    let mut old_copy = before.clone();
    old_copy.search_version = 4;
    index
        .apply_to(
            Entity::Account,
            generation.clone(),
            vec![IndexOp::upsert(before.clone()), IndexOp::upsert(old_copy)],
        )
        .await
        .unwrap();
    assert_eq!(index.count(Entity::Account, generation.clone()).await.unwrap(), 2);
    index.promote(Entity::Account, generation.clone()).await.unwrap();
    let promoted = index.sizes().await.unwrap();
    let promoted = promoted.iter().find(|size| size.entity == "account").unwrap();
    assert_eq!(
        (promoted.index.as_str(), promoted.segments),
        (generation.as_str(), 1),
        "the new generation's segments are merged before it takes searches"
    );
    let mut found = ids(index, AccountQuery { page_size: 10, ..query() }).await;
    found.sort();
    let mut expected = vec![before.id, during.id];
    expected.sort();
    assert_eq!(found, expected);
    assert!(
        index.promote(Entity::Account, generation).await.is_err(),
        "a generation is promoted once"
    );

    let abandoned = index.begin_rebuild(Entity::Account).await.unwrap();
    index.abandon(Entity::Account, abandoned.clone()).await.unwrap();
    assert!(index.count(Entity::Account, abandoned).await.is_err());
    assert_eq!(ids(index, text("during")).await, [during.id]);
}

pub fn payment(name: &str, account_number: &str, cents: i64, version: i64) -> PaymentDoc {
    PaymentDoc {
        id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        amount: Decimal::new(cents, 2),
        currency: "USD".into(),
        method: Method::Card,
        status: PaymentStatus::Completed,
        reference: None,
        received_at: Utc::now(),
        failure_reason: None,
        created_by: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        search_version: version,
        account_number: account_number.into(),
        debtor_name: name.into(),
        assigned_agent_id: None,
        account_deleted: false,
        portfolio_id: None,
    }
}

fn at(text: &str) -> chrono::DateTime<Utc> {
    chrono::DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

async fn payment_ids(index: &dyn SearchIndex, q: PaymentQuery) -> Vec<Uuid> {
    index.search_payments(q).await.unwrap().hits.into_iter().map(|h| h.doc.id).collect()
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

pub async fn payments_search_filters_and_versions(index: &dyn SearchIndex) {
    let agent = Uuid::new_v4();
    let mut a = payment("Zoë Lindqvist", "AC-1001", 12_500, 1);
    a.reference = Some("INV-7781-2026-0042".into());
    a.received_at = at("2026-03-01T10:00:00Z");
    a.assigned_agent_id = Some(agent);
    let mut b = payment("Marcus Oyelaran", "AC-2002", 4_000, 2);
    b.method = Method::Ach;
    b.status = PaymentStatus::Failed;
    b.failure_reason = Some("Insufficient funds: R01".into());
    b.received_at = at("2026-03-02T10:00:00Z");
    let mut c = payment("Marcus Oyelaran", "AC-2002", 9_999, 3);
    c.account_id = b.account_id;
    c.status = PaymentStatus::Pending;
    c.received_at = at("2026-03-03T10:00:00Z");
    index
        .apply(vec![
            IndexOp::upsert(a.clone()),
            IndexOp::upsert(b.clone()),
            IndexOp::upsert(c.clone()),
        ])
        .await
        .unwrap();
    let q = |f: fn(&mut PaymentQuery)| {
        let mut query = PaymentQuery::default();
        f(&mut query);
        query
    };
    let text = |t: &str| PaymentQuery {
        text: Some(t.to_owned()),
        ..PaymentQuery::default()
    };
    assert_eq!(payment_ids(index, text("lindqvst")).await, [a.id], "typo in the debtor's name");
    assert_eq!(payment_ids(index, text("zoe")).await, [a.id], "accents folded");
    assert_eq!(
        sorted(payment_ids(index, text("ac-2002")).await),
        sorted(vec![b.id, c.id]),
        "account number"
    );
    assert_eq!(payment_ids(index, text("inv-77")).await, [a.id], "reference prefix");
    assert_eq!(
        payment_ids(index, text("INV-7781-2026-00")).await,
        [a.id],
        "a long reference prefix, any case"
    );
    assert!(payment_ids(index, text("inv-7781-2026-01")).await.is_empty());
    assert_eq!(payment_ids(index, q(|q| q.statuses = vec![PaymentStatus::Failed])).await, [b.id]);
    assert_eq!(
        sorted(payment_ids(index, q(|q| q.methods = vec![Method::Card])).await),
        sorted(vec![a.id, c.id])
    );
    assert_eq!(
        sorted(payment_ids(index, q(|q| q.min_amount = Some(Decimal::new(5_000, 2)))).await),
        sorted(vec![a.id, c.id])
    );
    assert_eq!(
        sorted(payment_ids(index, q(|q| q.max_amount = Some(Decimal::new(9_999, 2)))).await),
        sorted(vec![b.id, c.id]),
        "amount bounds are inclusive"
    );
    let window = PaymentQuery {
        from: Some(at("2026-03-02T00:00:00Z")),
        to: Some(at("2026-03-03T00:00:00Z")),
        ..PaymentQuery::default()
    };
    assert_eq!(payment_ids(index, window).await, [b.id], "received in [from, to)");
    let account = PaymentQuery {
        account_id: Some(b.account_id),
        ..PaymentQuery::default()
    };
    assert_eq!(sorted(payment_ids(index, account).await), sorted(vec![b.id, c.id]));
    let mine = PaymentQuery {
        agent: Some(AgentFilter::Agent(agent)),
        ..PaymentQuery::default()
    };
    assert_eq!(payment_ids(index, mine).await, [a.id]);
    assert_eq!(
        sorted(payment_ids(index, q(|q| q.agent = Some(AgentFilter::Unassigned))).await),
        sorted(vec![b.id, c.id])
    );

    let by_amount = PaymentQuery {
        sort: PaymentSort {
            field: PaymentSortField::Amount,
            descending: false,
        },
        page_size: 2,
        facets: vec![PaymentFacet::Status, PaymentFacet::Method, PaymentFacet::FailureReason],
        ..PaymentQuery::default()
    };
    let first = index.search_payments(by_amount.clone()).await.unwrap();
    assert_eq!(first.hits.iter().map(|h| h.doc.id).collect::<Vec<_>>(), [b.id, c.id]);
    assert_eq!(first.total, 3);
    let methods = &first.facets.iter().find(|(n, _)| *n == "method").unwrap().1;
    let card = methods.iter().find(|v| v.value == "card").unwrap();
    assert_eq!(
        (card.count, card.sums.clone()),
        (2, Some(vec![("USD".to_owned(), Decimal::new(22_499, 2))]))
    );
    // The reason a failed payment gives, as it was written; the others have none.
    let reasons = &first.facets.iter().find(|(n, _)| *n == "failure_reason").unwrap().1;
    let reasons: Vec<(&str, u64)> = reasons
        .iter()
        .filter(|v| v.count > 0)
        .map(|v| (v.value.as_str(), v.count))
        .collect();
    assert_eq!(reasons, [("Insufficient funds: R01", 1)]);
    let second = PaymentQuery {
        after: first.next,
        ..by_amount
    };
    let second = index.search_payments(second).await.unwrap();
    assert_eq!(second.hits.iter().map(|h| h.doc.id).collect::<Vec<_>>(), [a.id]);
    assert!(second.next.is_none());

    let mut older = a.clone();
    older.search_version = 0;
    older.debtor_name = "Stale Name".into();
    assert_eq!(index.apply(vec![IndexOp::upsert(older)]).await.unwrap().stale, 1);
    assert!(payment_ids(index, text("stale")).await.is_empty());
    assert_eq!(index.version_of(Entity::Payment, a.id).await.unwrap(), Some(1));
    assert_eq!(
        index.version_of(Entity::Account, a.id).await.unwrap(),
        None,
        "payments and accounts are separate families"
    );
    index.apply(vec![IndexOp::tombstone(Entity::Payment, a.id, 9)]).await.unwrap();
    assert!(payment_ids(index, text("lindqvist")).await.is_empty());
    assert_eq!(index.versions(Entity::Payment).await.unwrap().len(), 2);
}

pub async fn payment_stats_follow_local_days(index: &dyn SearchIndex) {
    // New York changes to daylight time on Sunday 2026-03-08; Monday 2026-03-09 is "today".
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let mut docs = Vec::new();
    for (n, (when, cents, status, currency)) in [
        ("2026-03-08T04:59:59Z", 1_000, PaymentStatus::Completed, "USD"),
        ("2026-03-08T05:00:00Z", 2_000, PaymentStatus::Completed, "USD"),
        ("2026-03-09T03:59:59Z", 500, PaymentStatus::Completed, "USD"),
        ("2026-03-09T04:00:00Z", 700, PaymentStatus::Completed, "USD"),
        ("2026-03-09T12:00:00Z", 300, PaymentStatus::Failed, "USD"),
        ("2026-03-09T12:00:00Z", 100, PaymentStatus::Completed, "EUR"),
        ("2026-03-06T12:00:00Z", 10_000, PaymentStatus::Completed, "USD"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = payment("Stats Person", "AC-3003", cents, n as i64 + 1);
        p.received_at = at(when);
        p.status = status;
        p.currency = currency.into();
        docs.push(IndexOp::upsert(p));
    }
    index.apply(docs).await.unwrap();
    let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let stats = index.payment_stats(StatsQuery::new(tz, day(7), day(9), day(9))).await.unwrap();
    assert_eq!(stats.iter().map(|s| s.currency.as_str()).collect::<Vec<_>>(), ["EUR", "USD"]);
    let usd = &stats[1];
    // Decimals compare by value, whatever their scale.
    let tally = |count: u64, cents: i64| Tally {
        count,
        amount: Decimal::new(cents, 2),
    };
    assert_eq!(
        usd.series,
        [tally(1, 1_000), tally(2, 2_500), tally(1, 700)],
        "local days, across the DST change"
    );
    assert_eq!(usd.today, tally(1, 700));
    assert_eq!(usd.this_week, tally(1, 700), "the ISO week starts on Monday the 9th");
    assert_eq!(usd.this_month, tally(5, 14_200));
    let completed = usd.by_status.iter().find(|v| v.value == "completed").unwrap();
    assert_eq!((completed.count, completed.sum), (4, Decimal::new(4_200, 2)));
    let failed = usd.by_status.iter().find(|v| v.value == "failed").unwrap();
    assert_eq!(failed.count, 1);
    assert_eq!(stats[0].today.count, 1);
}

/// A user's portfolio scope limits payment lists and statistics to the payments of
/// accounts in no portfolio or in one of the scope's.
pub async fn payments_by_portfolio_scope(index: &dyn SearchIndex) {
    let (north, south) = (Uuid::new_v4(), Uuid::new_v4());
    let day = NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    let mut docs = Vec::new();
    let mut ids = Vec::new();
    for (n, (portfolio, cents)) in [(Some(north), 1_000), (Some(south), 2_000), (None, 400)].into_iter().enumerate() {
        let mut p = payment("Scope Person", "AC-4004", cents, n as i64 + 1);
        p.received_at = at("2026-03-09T12:00:00Z");
        p.portfolio_id = portfolio;
        ids.push(p.id);
        docs.push(IndexOp::upsert(p));
    }
    index.apply(docs).await.unwrap();
    let scoped = |scope: Option<Vec<Uuid>>| PaymentQuery {
        portfolio_scope: scope,
        ..PaymentQuery::default()
    };
    assert_eq!(sorted(payment_ids(index, scoped(None)).await), sorted(ids.clone()));
    assert_eq!(
        sorted(payment_ids(index, scoped(Some(vec![south]))).await),
        sorted(vec![ids[1], ids[2]]),
        "the scope's portfolio and no portfolio"
    );
    assert_eq!(
        payment_ids(index, scoped(Some(Vec::new()))).await,
        [ids[2]],
        "no grants: no portfolio only"
    );
    let completed = |scope: Option<Vec<Uuid>>| async move {
        let query = StatsQuery {
            portfolio_scope: scope,
            ..StatsQuery::new(chrono_tz::UTC, day, day, day)
        };
        let stats = index.payment_stats(query).await.unwrap();
        stats.iter().map(|s| (s.today.count, s.today.amount)).collect::<Vec<_>>()
    };
    assert_eq!(completed(None).await, [(3, Decimal::new(3_400, 2))]);
    assert_eq!(completed(Some(vec![north])).await, [(2, Decimal::new(1_400, 2))]);
    assert_eq!(completed(Some(Vec::new())).await, [(1, Decimal::new(400, 2))]);
}

/// The contact filter agrees with [`ContactInputs::allow`] for every channel over inputs
/// that cover each of its conditions (a window over midnight UTC included), and the
/// queue's tiers partition the accounts, each in score order.
pub async fn contact_filter_and_queue_tiers(index: &dyn SearchIndex) {
    let now = at("2026-06-15T15:30:00Z");
    let windows = [
        None,
        Some(UtcWindow {
            start_min: 900,
            end_min: 1500,
        }),
        Some(UtcWindow {
            start_min: 1000,
            end_min: 1600,
        }),
        Some(UtcWindow {
            start_min: 1380,
            end_min: 2400,
        }),
    ];
    let blocked = [vec![], vec![Channel::Call, Channel::Sms], vec![Channel::Email, Channel::Letter]];
    let opens = [None, Some(now - Duration::hours(1)), Some(now + Duration::hours(1))];
    let windowed = [vec![Channel::Call, Channel::Sms, Channel::Email, Channel::Visit], vec![]];
    let mut docs = Vec::new();
    for window in &windows {
        for blocked in &blocked {
            for open in &opens {
                for windowed in &windowed {
                    let mut d = doc(&format!("Contact Case {}", docs.len()), 1);
                    d.current_balance = Decimal::new(1000 + docs.len() as i64 * 37 % 500, 0);
                    d.work.contact = ContactInputs {
                        blocked: blocked.clone(),
                        windowed: windowed.clone(),
                        calls_open_at: *open,
                        window: *window,
                    };
                    docs.push(d);
                }
            }
        }
    }
    // Reasons on a few: a promise broken yesterday, one due today, a next action due, a
    // plan instalment missed (one of them also broken yesterday, so it is listed there),
    // and a missed instalment only listed when due by today.
    docs[0].work.broken_promise_due = Some(today() - Duration::days(1));
    docs[1].work.broken_promise_due = Some(today() - Duration::days(3));
    docs[2].summary.open_promise = Some(OpenPromise {
        id: Uuid::new_v4(),
        amount: Decimal::new(10, 0),
        due_date: today(),
    });
    docs[3].next_action_at = Some(now - Duration::minutes(5));
    docs[4].next_action_at = Some(now + Duration::minutes(5));
    docs[5].work.broken_promise_due = Some(today() - Duration::days(1));
    docs[5].next_action_at = Some(now - Duration::minutes(5));
    docs[6].work.plan_missed_due = Some(today() - Duration::days(20));
    docs[7].work.plan_missed_due = Some(today());
    docs[0].work.plan_missed_due = Some(today() - Duration::days(2));
    docs[8].work.plan_missed_due = Some(today() + Duration::days(1));
    put(index, &docs).await;

    for channel in Channel::ALL {
        let q = AccountQuery {
            contactable: Some(Contactable { channel, now }),
            page_size: 200,
            ..query()
        };
        let expected: Vec<Uuid> = docs.iter().filter(|d| d.work.contact.allow(channel, now)).map(|d| d.id).collect();
        assert!(!expected.is_empty() && expected.len() < docs.len(), "{channel:?} splits the cases");
        assert_eq!(sorted(ids(index, q).await), sorted(expected), "{channel:?}");
    }

    let mut seen = HashSet::new();
    for reason in Reason::ORDER {
        let q = AccountQuery {
            tier: Some(reason.tier(today(), now)),
            sort: Sort {
                field: SortField::Queue,
                descending: true,
            },
            page_size: 200,
            ..query()
        };
        let got = ids(index, q).await;
        let wanted: Vec<Uuid> = match reason {
            Reason::BrokenPromise => vec![docs[0].id, docs[5].id],
            Reason::PromiseDueToday => vec![docs[2].id],
            Reason::NextActionDue => vec![docs[3].id],
            Reason::PlanInstalmentMissed => vec![docs[6].id, docs[7].id],
            Reason::Score => {
                let mut rest: Vec<&AccountDoc> = docs
                    .iter()
                    .filter(|d| ![0, 2, 3, 5, 6, 7].iter().any(|i| docs[*i].id == d.id))
                    .collect();
                rest.sort_by_key(|d| (std::cmp::Reverse(d.queue_rank()), d.id));
                rest.into_iter().map(|d| d.id).collect()
            }
        };
        if reason == Reason::Score {
            assert_eq!(got, wanted, "the score tier in rank order");
        } else {
            assert_eq!(sorted(got.clone()), sorted(wanted), "{reason:?}");
        }
        assert!(
            got.iter().all(|id| seen.insert(*id)),
            "{reason:?} repeats an account of an earlier tier"
        );
    }
    assert_eq!(seen.len(), docs.len());
}

/// The ids of every page of `q` from `search`, in order.
async fn every_page(index: &dyn SearchIndex, mut q: AccountQuery) -> Vec<Uuid> {
    let mut all = Vec::new();
    loop {
        let page = index.search(q.clone()).await.unwrap();
        all.extend(page.hits.iter().map(|h| h.doc.id));
        match page.next {
            Some(next) => q.after = Some(next),
            None => return all,
        }
    }
}

/// `ranked_ids` pages through a query's order exactly as `search` does, wherever a page
/// starts or ends (the embedded backend searches band by band of the sort column's
/// values): two segments large enough to keep filter bits, ties at every value, missing
/// values, both directions, an agent filter, queue tiers and the contact filter.
pub async fn ranked_ids_page_as_search_does(index: &dyn SearchIndex) {
    let now = at("2026-06-15T15:30:00Z");
    let agents = [Uuid::new_v4(), Uuid::new_v4()];
    let docs: Vec<AccountDoc> = (0..40_000i64)
        .map(|n| {
            let mut d = doc(&format!("Ranked {n}"), 1);
            d.current_balance = Decimal::new(n * 7_919 % 300 * 100, 2);
            d.due_date = (n % 5 != 0).then(|| today() - Duration::days(n % 90));
            d.assigned_agent_id = (n % 3 != 0).then(|| agents[(n % 2) as usize]);
            d.next_action_at = (n % 7 == 0).then(|| now - Duration::minutes(n % 60));
            if n % 4 == 0 {
                d.work.contact.blocked = vec![Channel::Call];
            }
            d
        })
        .collect();
    put(index, &docs).await;
    let queue = |agent: Option<AgentFilter>, reason: Reason| AccountQuery {
        agent,
        contactable: Some(Contactable {
            channel: Channel::Call,
            now,
        }),
        tier: Some(reason.tier(today(), now)),
        sort: Sort {
            field: SortField::Queue,
            descending: true,
        },
        ..query()
    };
    let sorted_by = |field: SortField, descending: bool| AccountQuery {
        agent: Some(AgentFilter::Agent(agents[1])),
        sort: Sort { field, descending },
        ..query()
    };
    let cases = [
        queue(Some(AgentFilter::Agent(agents[0])), Reason::Score),
        queue(Some(AgentFilter::Unassigned), Reason::NextActionDue),
        queue(None, Reason::BrokenPromise),
        AccountQuery {
            min_balance: Some(Decimal::new(5_000, 2)),
            ..sorted_by(SortField::Balance, false)
        },
        sorted_by(SortField::DueDate, true),
        sorted_by(SortField::DueDate, false),
        sorted_by(SortField::Name, false),
    ];
    for case in cases {
        let expected = every_page(
            index,
            AccountQuery {
                page_size: 500,
                ..case.clone()
            },
        )
        .await;
        // Pages of 1 and 7 cross the first bands' ends; pages of 997 walk to the end.
        for (page_size, pages) in [(1, 40), (7, 150), (997, usize::MAX)] {
            let mut q = AccountQuery { page_size, ..case.clone() };
            let mut got = Vec::new();
            for _ in 0..pages {
                let page = index.ranked_ids(q.clone()).await.unwrap();
                assert!(page.ids.len() == page_size || page.next.is_none(), "a short page is the last");
                got.extend(page.ids);
                match page.next {
                    Some(next) => q.after = Some(next),
                    None => break,
                }
            }
            assert!(
                got.len() <= expected.len(),
                "{:?} by {page_size}: more ids than the search",
                case.sort
            );
            assert_eq!(
                got,
                expected[..got.len()],
                "{:?} {:?} by {page_size}",
                case.tier.map(|t| t.reason),
                case.sort
            );
            if pages == usize::MAX {
                assert_eq!(got.len(), expected.len(), "{:?} by {page_size}: every id", case.sort);
            }
        }
    }
}

fn embedded() -> (EmbeddedIndex, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("arrears-contract-{}", Uuid::new_v4().simple()));
    (EmbeddedIndex::open_owner(&dir).unwrap(), dir)
}

macro_rules! embedded_contract {
    ($($name:ident),*) => {$(
        #[tokio::test]
        async fn $name() {
            let (index, dir) = super::embedded();
            super::$name(&index).await;
            drop(index);
            let _ = std::fs::remove_dir_all(dir);
        }
    )*};
}

/// Runs `$backend!` over every contract case, so each backend runs all of them.
macro_rules! every_case {
    ($backend:ident) => {
        $backend!(
            versioned_writes,
            text_matching,
            long_words_match_as_prefixes,
            names_and_identifiers_as_agents_type_them,
            recall_of_names_and_emails_as_typed,
            names_with_combining_marks,
            letters_lowercased_as_lucene_does,
            typo_expansions_are_bounded,
            word_ranking_and_many_terms,
            the_longest_texts_are_answered,
            filters_and_buckets,
            filters_over_a_large_segment,
            counts_and_pages_over_a_large_segment,
            bounded_totals,
            sort_and_cursor,
            facets,
            money_sums_stay_exact_past_two_to_the_53,
            rebuild_dual_writes_and_promotes,
            payments_search_filters_and_versions,
            payment_stats_follow_local_days,
            contact_filter_and_queue_tiers,
            ranked_ids_page_as_search_does,
            custom_fields_and_portfolios,
            payments_by_portfolio_scope
        );
    };
}

mod embedded_backend {
    every_case!(embedded_contract);
}

/// The Elasticsearch backend on the cluster at ELASTICSEARCH_URL (credentials from
/// ELASTICSEARCH_USERNAME/PASSWORD/API_KEY/CA_FILE), prepared there. The tests that
/// call it are ignored unless run by `bin/test-elastic`; run so, they fail on a cluster
/// that does not answer rather than skip.
async fn elastic() -> (ElasticIndex, String) {
    let settings = elastic_settings();
    let pool = crate::helpers::fresh_pool().await;
    let index = ElasticIndex::new(&live_config(&settings), SqlDeadLetters::shared(pool)).unwrap();
    if let Err(e) = index.prepare().await {
        panic!("the cluster at ELASTICSEARCH_URL could not be prepared: {e:#}");
    }
    (index, settings.elasticsearch_index_prefix)
}

/// Settings for the cluster at ELASTICSEARCH_URL under an index prefix of the test's own.
fn elastic_settings() -> arrears::config::Settings {
    let mut settings = crate::helpers::test_settings();
    crate::helpers::on_test_cluster(&mut settings);
    settings
}

/// The backend's configuration for the live cluster: as in service, except that what is
/// applied is refreshed at once, since every case reads its own writes as it would from
/// the embedded index.
fn live_config(settings: &arrears::config::Settings) -> ElasticConfig {
    let mut config = ElasticConfig::from_settings(settings).unwrap();
    config.refresh_after_write = true;
    config
}

/// A request to the cluster at ELASTICSEARCH_URL with the configured credentials.
async fn raw(method: reqwest::Method, path: String) -> reqwest::Response {
    crate::helpers::cluster_request(&reqwest::Client::new(), method, &path)
        .send()
        .await
        .unwrap()
}

/// A request with a JSON body to the cluster at ELASTICSEARCH_URL.
async fn raw_json(method: reqwest::Method, path: String, body: serde_json::Value) -> reqwest::Response {
    crate::helpers::cluster_request(&reqwest::Client::new(), method, &path)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Deletes a test's indices and templates.
async fn drop_elastic(prefix: &str) {
    crate::helpers::drop_cluster_prefix(prefix).await;
}

macro_rules! elastic_contract {
    ($($name:ident),*) => {$(
        #[tokio::test]
        #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
        async fn $name() {
            let (index, prefix) = super::elastic().await;
            super::$name(&index).await;
            super::drop_elastic(&prefix).await;
        }
    )*};
}

mod elastic_backend {
    every_case!(elastic_contract);
}

/// The Elasticsearch backend on a scripted cluster (`scripted_es`) that refuses what
/// Elasticsearch refuses, grants what the shipped role grants and answers searches from
/// the documents it was sent (`scripted_search`).
async fn scripted() -> (ElasticIndex, crate::scripted_es::ScriptedEs) {
    let server = crate::elastic::alias_cluster(&[]).await;
    let pool = crate::helpers::fresh_pool().await;
    let index = ElasticIndex::new(&crate::elastic::config(&server.url), SqlDeadLetters::shared(pool)).unwrap();
    index.prepare().await.unwrap();
    (index, server)
}

macro_rules! scripted_contract {
    ($($name:ident),*) => {$(
        #[tokio::test]
        async fn $name() {
            let (index, server) = super::scripted().await;
            super::$name(&index).await;
            let refused = server.refused();
            assert!(refused.is_empty(), "a real cluster would refuse: {refused:#?}");
        }
    )*};
}

/// The cases whose queries the scripted cluster evaluates (filters, sorts, cursors,
/// facets, statistics, full-text matching by a sort other than relevance; not relevance), so the backend's requests meet the
/// cluster's rules and its reading of answers meets answers shaped as Elasticsearch's.
/// (`ranked_ids_page_as_search_does` pages 40,000 documents hundreds of times: too many
/// for a cluster that scans every document per search.)
mod scripted_backend {
    scripted_contract!(
        recall_of_names_and_emails_as_typed,
        filters_and_buckets,
        sort_and_cursor,
        facets,
        contact_filter_and_queue_tiers,
        money_sums_stay_exact_past_two_to_the_53,
        payment_stats_follow_local_days,
        custom_fields_and_portfolios
    );
}

/// What only a real cluster can show: the start-up checks, a race between processes and
/// the reporting aliases Kibana reads.
mod elastic_cluster {
    use super::*;

    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn the_doctor_passes_on_a_prepared_cluster() {
        let (index, prefix) = elastic().await;
        let checks = index.doctor().await;
        drop_elastic(&prefix).await;
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
        // A cluster that answers without credentials has no security: the doctor says so
        // (a warning), and only then.
        let base = std::env::var("ELASTICSEARCH_URL").unwrap();
        let anonymous = reqwest::get(format!("{}/_cluster/health", base.trim_end_matches('/')))
            .await
            .unwrap();
        let privileges = checks.iter().find(|c| c.name == "privileges").unwrap();
        assert_eq!(privileges.warning, anonymous.status().is_success(), "{privileges:?}");
        if privileges.warning {
            assert!(privileges.detail.contains("no security"), "{privileges:?}");
        }
    }

    /// Another deployment's index on the same cluster, red (its primary has nowhere to
    /// go): readiness and the doctor read this deployment's indices' health, not the
    /// whole cluster's.
    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn another_deployments_red_index_leaves_this_one_ready() {
        let (index, prefix) = elastic().await;
        let foreign = format!("other-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let created = raw_json(
            reqwest::Method::PUT,
            format!("/{foreign}?wait_for_active_shards=0"),
            serde_json::json!({ "settings": { "index.routing.allocation.require._name": "no-such-node" } }),
        )
        .await;
        assert!(created.status().is_success(), "{}", created.text().await.unwrap());
        let whole: serde_json::Value = raw(reqwest::Method::GET, "/_cluster/health".into()).await.json().await.unwrap();
        let health = index.health().await;
        let checks = index.doctor().await;
        raw(reqwest::Method::DELETE, format!("/{foreign}")).await;
        drop_elastic(&prefix).await;
        assert_eq!(whole["status"], "red", "the cluster as a whole is red: {whole}");
        assert_eq!(health, Ok("green".to_owned()));
        let check = checks.iter().find(|c| c.name == "cluster health").unwrap();
        assert!(check.ok, "{check:?}");
    }

    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn processes_preparing_together_put_each_read_alias_on_one_generation() {
        let settings = elastic_settings();
        let pool = crate::helpers::fresh_pool().await;
        let config = live_config(&settings);
        let indexes: Vec<ElasticIndex> = (0..4)
            .map(|_| ElasticIndex::new(&config, SqlDeadLetters::shared(pool.clone())).unwrap())
            .collect();
        let results = futures_util::future::join_all(indexes.iter().map(|i| i.prepare())).await;
        let prefix = &settings.elasticsearch_index_prefix;
        let behind: serde_json::Value = raw(reqwest::Method::GET, format!("/_alias/{prefix}-accounts"))
            .await
            .json()
            .await
            .unwrap();
        drop_elastic(prefix).await;
        for result in results {
            result.unwrap();
        }
        assert_eq!(behind.as_object().unwrap().len(), 1, "{behind}");
    }

    /// A deployment whose accounts generation an older release made: this build's
    /// mapping less one field, with another digest, behind every alias.
    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn an_upgrade_that_maps_a_new_field_is_held_then_rebuilt() {
        let settings = elastic_settings();
        let prefix = settings.elasticsearch_index_prefix.clone();
        crate::helpers::previous_release_accounts(&prefix, "an-older-release").await;
        let pool = crate::helpers::fresh_pool().await;
        let index = ElasticIndex::new(&live_config(&settings), SqlDeadLetters::shared(pool.clone())).unwrap();
        index.prepare().await.unwrap();
        let mapping = index.doctor().await.into_iter().find(|c| c.name == "accounts mapping").unwrap();
        let outdated = index.outdated().await.unwrap();
        let held = index.apply(vec![IndexOp::upsert(doc("Held Person", 1))]).await;
        sqlx::query(
            "INSERT INTO accounts (id, account_number, debtor_name, original_balance, current_balance, currency)
             VALUES ($1, 'UPG-LIVE', 'Rebuilt Person', 10, 10, 'USD')",
        )
        .bind(Uuid::new_v4())
        .execute(&pool)
        .await
        .unwrap();
        let rebuilt = arrears::sync::reindex::rebuild(&pool, &index, Entity::Account, |_| {}).await;
        let after = index.apply(vec![IndexOp::upsert(doc("Written Person", 1))]).await;
        let checks = index.doctor().await;
        drop_elastic(&prefix).await;
        assert!(!mapping.ok && mapping.detail.contains("derived.queue_rank"), "{mapping:?}");
        assert_eq!(outdated, [Entity::Account]);
        assert_eq!(arrears::search::OutdatedMapping::of(&held.unwrap_err()), Some(Entity::Account));
        assert_eq!(rebuilt.unwrap().documents, 1);
        assert_eq!(after.unwrap().applied, 1, "the new generation takes this build's documents");
        assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    }

    /// Refused credentials count as a restart for the grace, then stop the client.
    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn refused_credentials_are_transient_within_the_grace_only() {
        let mut settings = elastic_settings();
        settings.elasticsearch_username = Some("arrears-no-such-user".into());
        settings.elasticsearch_password = Some("wrong".into());
        settings.elasticsearch_api_key = None;
        let pool = crate::helpers::fresh_pool().await;
        settings.elasticsearch_auth_grace_s = 60;
        let patient = ElasticIndex::new(&live_config(&settings), SqlDeadLetters::shared(pool.clone())).unwrap();
        settings.elasticsearch_auth_grace_s = 0;
        let strict = ElasticIndex::new(&live_config(&settings), SqlDeadLetters::shared(pool)).unwrap();
        let retried = patient.health().await.unwrap_err();
        let stopped = strict.health().await.unwrap_err();
        assert!(retried.contains("401") && retried.contains("retried until"), "{retried}");
        assert!(stopped.contains("401") && stopped.contains("refuses this client"), "{stopped}");
    }

    /// A rebuild that dies after creating its generation leaves a write target that the
    /// doctor reports and `--fix` drops.
    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn a_generation_left_by_a_dead_rebuild_is_found_and_dropped() {
        let (index, prefix) = elastic().await;
        let pool = crate::helpers::fresh_pool().await;
        let orphan = index.begin_rebuild(Entity::Account).await.unwrap();
        let found = index.rebuilds(Entity::Account).await.unwrap();
        let reported = arrears::sync::reindex::rebuild_checks(&pool, &index, false).await.unwrap();
        let fixed = arrears::sync::reindex::rebuild_checks(&pool, &index, true).await.unwrap();
        let gone = raw(reqwest::Method::GET, format!("/{orphan}")).await.status();
        drop_elastic(&prefix).await;
        assert_eq!(found, std::slice::from_ref(&orphan));
        assert!(!reported[0].ok && reported[0].detail.contains(&orphan), "{reported:#?}");
        assert!(fixed[0].ok, "{fixed:#?}");
        assert_eq!(gone, 404);
    }

    #[tokio::test]
    #[ignore = "needs ELASTICSEARCH_URL: ELASTICSEARCH_URL=http://127.0.0.1:9200 bin/test-elastic runs it"]
    async fn the_reporting_alias_leaves_out_tombstones_and_deleted_accounts() {
        let (index, prefix) = elastic().await;
        let live = doc("Reported Person", 1);
        let mut deleted = doc("Deleted Person", 1);
        deleted.deleted_at = Some(Utc::now());
        let gone = doc("Gone Person", 1);
        put(&index, &[live.clone(), deleted, gone.clone()]).await;
        index.apply(vec![IndexOp::tombstone(Entity::Account, gone.id, 5)]).await.unwrap();
        let count = |alias: String| async move {
            let answer: serde_json::Value = raw(reqwest::Method::GET, format!("/{alias}/_count")).await.json().await.unwrap();
            answer["count"].as_u64().unwrap()
        };
        let read = count(format!("{prefix}-accounts")).await;
        let reported = count(format!("{prefix}-accounts-reporting")).await;
        drop_elastic(&prefix).await;
        assert_eq!(
            (read, reported),
            (3, 1),
            "the read alias holds every document, the reporting alias the live account"
        );
    }
}
