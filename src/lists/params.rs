//! One parser for every list's query string. A list declares its parameters once, each
//! as a name and what reading it does to the list's request; [`read`] walks the query,
//! refuses unknown names, and collects every bad value so one answer names them all.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{RefOr, Required, Schema};
use uuid::Uuid;

use crate::domain::search::AgentFilter;
use crate::error::{Code, Error, FieldError, Result};
use crate::lists::values;
use crate::lists::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// The longest free-text query a list accepts, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The most bad parameters one answer names; a query of thousands of bad values gets
/// an answer of bounded size, saying how many more there were.
pub const MAX_REPORTED: usize = 50;

/// Collects parameter errors so one answer names every bad parameter (up to
/// [`MAX_REPORTED`]).
#[derive(Default)]
pub struct Problems {
    named: Vec<FieldError>,
    more: usize,
}

impl Problems {
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        if self.named.len() < MAX_REPORTED {
            self.named.push(FieldError::new(field, message));
        } else {
            self.more += 1;
        }
    }

    /// A 400 naming every bad parameter, if there was one.
    pub fn finish(self) -> Result<()> {
        if self.named.is_empty() {
            return Ok(());
        }
        let mut detail = self
            .named
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        if self.more > 0 {
            detail.push_str(&format!("; and {} more", self.more));
        }
        Err(Error::with_fields(Code::InvalidParameter, detail, self.named))
    }
}

/// One parameter of a list: its name, what its value does to the request `R`, and how
/// the API description shows it (so a parameter is declared once, for the parser and
/// the description alike).
pub struct Param<R> {
    pub name: &'static str,
    apply: fn(&mut R, &mut Value<'_>),
    about: &'static str,
    schema: fn() -> RefOr<Schema>,
}

impl<R> Param<R> {
    /// The parameter `name`, described by `about` with the schema `schema` makes.
    pub const fn new(name: &'static str, about: &'static str, schema: fn() -> RefOr<Schema>, apply: fn(&mut R, &mut Value<'_>)) -> Self {
        Self {
            name,
            apply,
            about,
            schema,
        }
    }
}

/// `params` as query parameters of the API description, in their order; none is
/// required. Repeatable ones (arrays) also take comma-separated values.
pub fn describe<R>(params: &[Param<R>]) -> Vec<Parameter> {
    params
        .iter()
        .map(|param| {
            let about = (!param.about.is_empty()).then_some(param.about);
            ParameterBuilder::new()
                .name(param.name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(about)
                .schema(Some((param.schema)()))
                .build()
        })
        .collect()
}

/// Declares `$name`, the parameters of the table `$table` as the API description shows
/// them (`params($name)` in an operation's annotation).
macro_rules! described_by {
    ($(#[$meta:meta])* $name:ident, $table:expr) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::lists::params::describe($table)
            }
        }
    };
}
pub(crate) use described_by;

/// The schemas of parameter values, for [`Param::new`].
pub mod schema {
    use utoipa::PartialSchema;
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{RefOr, Schema};

    use super::MAX_QUERY_CHARS;
    use crate::lists::MAX_PAGE_SIZE;
    use crate::lists::{DEFAULT_PAGE_SIZE, values};

    /// One value of `T`'s schema.
    pub fn one<T: PartialSchema>() -> RefOr<Schema> {
        T::schema()
    }

    /// Values of `T`'s schema, repeated or comma-separated.
    pub fn list<T: PartialSchema>() -> RefOr<Schema> {
        ArrayBuilder::new().items(T::schema()).into()
    }

    /// Any text.
    pub fn text() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).into()
    }

    /// A day, `YYYY-MM-DD`.
    pub fn date() -> RefOr<Schema> {
        formatted(KnownFormat::Date)
    }

    /// An RFC 3339 time.
    pub fn time() -> RefOr<Schema> {
        formatted(KnownFormat::DateTime)
    }

    /// An id.
    pub fn id() -> RefOr<Schema> {
        formatted(KnownFormat::Uuid)
    }

    /// Ids, repeated or comma-separated.
    pub fn ids() -> RefOr<Schema> {
        ArrayBuilder::new().items(id()).into()
    }

    fn formatted(format: KnownFormat) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
            .into()
    }

    /// A search's words, at most [`MAX_QUERY_CHARS`] characters.
    pub fn words() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .max_length(Some(MAX_QUERY_CHARS))
            .into()
    }

    /// A non-negative decimal amount, as text.
    pub fn amount() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(values::AMOUNT_PATTERN))
            .into()
    }

    /// Rows per page.
    pub fn page_size() -> RefOr<Schema> {
        rows_from(1)
    }

    /// Rows per page of a search: 0 answers only the total and the facets.
    pub fn search_page_size() -> RefOr<Schema> {
        rows_from(0)
    }

    fn rows_from(minimum: u32) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(minimum))
            .maximum(Some(MAX_PAGE_SIZE))
            .default(Some(DEFAULT_PAGE_SIZE.into()))
            .into()
    }
}

/// A parameter's value as it is read: refusals name the parameter by itself.
pub struct Value<'a> {
    name: &'a str,
    text: &'a str,
    problems: &'a mut Problems,
}

impl Value<'_> {
    /// The parameter's name as the query gave it.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The raw text, untrimmed.
    pub fn raw(&self) -> &str {
        self.text
    }

    /// Refuses the value with `message`.
    pub fn refuse(&mut self, message: impl Into<String>) {
        self.problems.push(self.name, message);
    }

    /// The value read by `parse`, or a refusal saying what was `expected`.
    pub fn one<T>(&mut self, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Option<T> {
        let parsed = parse(self.text.trim());
        if parsed.is_none() {
            let message = format!("`{}` is not {expected}", self.text);
            self.refuse(message);
        }
        parsed
    }

    /// Each comma-separated item read by `parse`; every bad item is refused, and so is a
    /// value with no item at all (`status=`: the description allows only listed values).
    pub fn each<T>(&mut self, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Vec<T> {
        if items(self.text).next().is_none() {
            self.problems.push(self.name, format!("must be {expected}, not empty"));
            return Vec::new();
        }
        let mut parsed = Vec::new();
        for item in items(self.text) {
            match parse(item) {
                Some(value) => parsed.push(value),
                None => self.problems.push(self.name, format!("`{item}` is not {expected}")),
            }
        }
        parsed
    }

    /// The comma-separated items as they are.
    pub fn items(&self) -> impl Iterator<Item = &str> {
        items(self.text)
    }

    pub fn boolean(&mut self) -> Option<bool> {
        self.one(values::boolean, "true or false")
    }

    /// Free text of at most [`MAX_QUERY_CHARS`]; none when blank.
    pub fn text(&mut self) -> Option<String> {
        let text = self.text.trim();
        if text.chars().count() > MAX_QUERY_CHARS {
            self.refuse(format!("must be at most {MAX_QUERY_CHARS} characters"));
            return None;
        }
        (!text.is_empty()).then(|| text.to_owned())
    }

    /// A user id, `me` (the caller) or `unassigned`.
    pub fn agent(&mut self, caller: Uuid) -> Option<AgentFilter> {
        match self.text.trim() {
            "me" => Some(AgentFilter::Agent(caller)),
            "unassigned" => Some(AgentFilter::Unassigned),
            _ => self
                .one(|v| Uuid::parse_str(v).ok(), "a user id, `me` or `unassigned`")
                .map(AgentFilter::Agent),
        }
    }

    /// A page size from 1 to [`MAX_PAGE_SIZE`]; the default when refused.
    pub fn page_size(&mut self) -> usize {
        self.rows_from(1)
    }

    /// A search's page size from 0 (the total and facets only, no rows) to
    /// [`MAX_PAGE_SIZE`]; the default when refused.
    pub fn search_page_size(&mut self) -> usize {
        self.rows_from(0)
    }

    fn rows_from(&mut self, minimum: usize) -> usize {
        self.one(
            |v| v.parse::<usize>().ok().filter(|n| (minimum..=MAX_PAGE_SIZE as usize).contains(n)),
            &format!("a number from {minimum} to {MAX_PAGE_SIZE}"),
        )
        .unwrap_or(DEFAULT_PAGE_SIZE as usize)
    }
}

fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|v| !v.is_empty())
}

/// Reads `raw` into `request` through `params`; an unknown name is refused with the
/// names this list knows.
pub fn read<R>(raw: &str, params: &[Param<R>], request: &mut R, problems: &mut Problems) {
    read_with(raw, params, request, problems, |_, _| false);
}

/// [`read`], where `family` reads a parameter the table does not declare (names made
/// from data, such as `cf.<key>`) and says whether the name was one of its family; a
/// name neither knows is refused.
pub fn read_with<R>(
    raw: &str,
    params: &[Param<R>],
    request: &mut R,
    problems: &mut Problems,
    mut family: impl FnMut(&mut R, &mut Value<'_>) -> bool,
) {
    for (key, text) in form_urlencoded::parse(raw.as_bytes()) {
        let param = params.iter().find(|p| p.name == key);
        let mut value = Value {
            name: param.map_or(&*key, |p| p.name),
            text: &text,
            problems,
        };
        match param {
            Some(param) => (param.apply)(request, &mut value),
            None => {
                if !family(request, &mut value) {
                    let known: Vec<&str> = params.iter().map(|p| p.name).collect();
                    value.refuse(format!("unknown parameter; this list takes {}", known.join(", ")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param<Vec<bool>>] = &[Param::new("flag", "", schema::one::<bool>, |r, v| r.extend(v.boolean()))];

    fn problems_of(raw: &str) -> (usize, String) {
        let (mut request, mut p) = (Vec::new(), Problems::default());
        read(raw, PARAMS, &mut request, &mut p);
        match p.finish() {
            Err(Error::Problem(problem)) => (problem.errors.len(), problem.detail),
            other => panic!("expected a problem, got {other:?}"),
        }
    }

    #[test]
    fn every_bad_parameter_is_named_but_the_answer_stays_bounded() {
        let (named, detail) = problems_of("flag=maybe&colour=red");
        assert_eq!(named, 2, "{detail}");
        assert!(
            detail.contains("`maybe` is not true or false") && detail.contains("this list takes flag"),
            "{detail}"
        );
        let hostile = vec!["x=1"; 10_000].join("&");
        let (named, detail) = problems_of(&hostile);
        assert_eq!(named, MAX_REPORTED);
        assert!(detail.ends_with(&format!("and {} more", 10_000 - MAX_REPORTED)), "{detail}");
    }
}
