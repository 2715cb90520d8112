//! Changing a field's type: what each value accounts hold becomes under the new
//! definition, or why it cannot (docs/features/custom-fields.md, "Changing a field's
//! type"). A value is first recast into the new type's wire form, then checked and
//! brought to its canonical form by the new definition's rules, as any written value is.

use serde_json::{Number, Value};

use super::{Checks, Definition, FieldType, decimal_of};
use crate::domain::money::Currency;
use crate::domain::refusal::FieldError;

/// How the values of a field of one type become values of a new definition.
#[derive(Clone, Debug)]
pub struct Conversion {
    from: FieldType,
    to: FieldType,
    checks: Checks,
}

impl Conversion {
    /// The conversion of `from` values to `to`, whose rules are checked here (named
    /// `rules.<rule>` when wrong).
    pub fn new(from: FieldType, to: &Definition) -> Result<Self, Vec<FieldError>> {
        Ok(Self {
            from,
            to: to.field_type,
            checks: Checks::of(to.field_type, &to.rules)?,
        })
    }

    /// What `value`, held by an account in `currency`, becomes: its canonical form under
    /// the new definition, `None` when it holds nothing, or why it does not convert.
    pub fn convert(&self, value: &Value, currency: Currency) -> Result<Option<Value>, String> {
        let wire = recast(self.from, self.to, value)?;
        self.checks.value(self.to, &wire, Some(currency))
    }
}

/// `value`, held by a `from` field, in the wire form of a `to` field (its rules not yet
/// applied), or why it has none.
pub(super) fn recast(from: FieldType, to: FieldType, value: &Value) -> Result<Value, String> {
    if value.is_null() || from == to {
        return Ok(value.clone());
    }
    if from == FieldType::MultiList {
        let items = value.as_array().ok_or_else(|| not_held(from))?;
        let texts: Vec<&str> = items
            .iter()
            .map(|i| i.as_str().ok_or_else(|| not_held(from)))
            .collect::<Result<_, _>>()?;
        return match (to, texts.as_slice()) {
            (FieldType::Text, _) => Ok(Value::from(texts.join("; "))),
            (_, []) => Ok(Value::Null),
            (_, [one]) => recast(FieldType::List, to, &Value::from(*one)),
            (_, many) => Err(format!("holds {} values; a {} field holds one", many.len(), to.as_str())),
        };
    }
    let text = text_of(from, value)?;
    let textual = matches!(from, FieldType::Text | FieldType::List);
    match to {
        FieldType::Text | FieldType::List => Ok(Value::from(text)),
        FieldType::MultiList if from == FieldType::Text => Ok(Value::from(
            text.split([';', ',']).map(str::trim).filter(|t| !t.is_empty()).collect::<Vec<_>>(),
        )),
        FieldType::MultiList => Ok(Value::from(vec![text])),
        FieldType::Number if textual || from == FieldType::Money => serde_json::from_str::<Number>(&text)
            .map(Value::Number)
            .map_err(|_| format!("{text:?} is not a number")),
        FieldType::Money if textual || from == FieldType::Number => Ok(Value::from(text)),
        FieldType::Date if textual => Ok(Value::from(text)),
        FieldType::Boolean if textual => match text.to_lowercase().as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("{text:?} is neither true nor false")),
        },
        _ => Err(format!("{} values do not convert to {}", from.as_str(), to.as_str())),
    }
}

/// A value of a field of the single-valued type `from` as text: numbers as plain
/// decimals, booleans `true` or `false`.
fn text_of(from: FieldType, value: &Value) -> Result<String, String> {
    let text = match from {
        FieldType::Number => value.as_number().and_then(decimal_of).map(|d| d.normalize().to_string()),
        FieldType::Boolean => value.as_bool().map(|b| b.to_string()),
        _ => value.as_str().map(str::to_owned),
    };
    text.ok_or_else(|| not_held(from))
}

fn not_held(from: FieldType) -> String {
    format!("is not a {} value (it was stored before the field had its rules)", from.as_str())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::custom_field::{CreateField, PatchField};

    fn definition(body: Value) -> Definition {
        let mut body = body;
        body["key"] = json!("f");
        body["label"] = json!("F");
        let create: CreateField = serde_json::from_value(body.clone()).expect("a create body");
        Definition::from_create(create).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    fn currency(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    /// What `value`, a `from` value on a USD account, becomes under `to`.
    fn convert(from: &str, to: Value, value: Value) -> Result<Value, String> {
        convert_in(from, to, value, "USD")
    }

    fn convert_in(from: &str, to: Value, value: Value, code: &str) -> Result<Value, String> {
        let from: FieldType = serde_json::from_value(json!(from)).unwrap();
        let conversion = Conversion::new(from, &definition(to)).unwrap();
        conversion.convert(&value, currency(code)).map(|v| v.unwrap_or(Value::Null))
    }

    #[test]
    fn text_converts_when_it_reads_as_the_new_type() {
        let number = json!({"type": "number"});
        assert_eq!(convert("text", number.clone(), json!("12.5")), Ok(json!(12.5)));
        assert_eq!(convert("text", number.clone(), json!("-3")), Ok(json!(-3)));
        assert_eq!(convert("text", number.clone(), json!("12.50")), Ok(json!(12.5)));
        assert!(convert("text", number.clone(), json!("abc")).unwrap_err().contains("not a number"));
        assert!(convert("text", number.clone(), json!("1,000")).is_err());
        assert!(convert("text", number, json!("1.23456")).unwrap_err().contains("4 decimal places"));
        let date = json!({"type": "date"});
        assert_eq!(convert("text", date.clone(), json!("2026-02-28")), Ok(json!("2026-02-28")));
        assert!(convert("text", date, json!("28/02/2026")).unwrap_err().contains("YYYY-MM-DD"));
        let flag = json!({"type": "boolean"});
        assert_eq!(convert("text", flag.clone(), json!("TRUE")), Ok(json!(true)));
        assert_eq!(convert("text", flag.clone(), json!("false")), Ok(json!(false)));
        assert!(convert("text", flag, json!("yes")).unwrap_err().contains("neither true nor false"));
        let fee = json!({"type": "money"});
        assert_eq!(convert("text", fee.clone(), json!("12.5")), Ok(json!("12.50")));
        assert!(convert("text", fee, json!("$12")).is_err());
    }

    #[test]
    fn everything_converts_to_text_within_the_new_rules() {
        let text = json!({"type": "text"});
        assert_eq!(convert("number", text.clone(), json!(12.5)), Ok(json!("12.5")));
        assert_eq!(convert("number", text.clone(), json!(1e2)), Ok(json!("100")));
        assert_eq!(convert("money", text.clone(), json!("12.50")), Ok(json!("12.50")));
        assert_eq!(convert("date", text.clone(), json!("2026-02-28")), Ok(json!("2026-02-28")));
        assert_eq!(convert("boolean", text.clone(), json!(true)), Ok(json!("true")));
        assert_eq!(convert("list", text.clone(), json!("Card")), Ok(json!("Card")));
        assert_eq!(convert("multi_list", text, json!(["sms", "post"])), Ok(json!("sms; post")));
        let short = json!({"type": "text", "rules": {"max_length": 3}});
        assert!(convert("number", short, json!(12.5)).unwrap_err().contains("0 to 3"));
        let coded = json!({"type": "text", "rules": {"pattern": "[0-9]+"}});
        assert!(convert("boolean", coded, json!(false)).unwrap_err().contains("pattern"));
    }

    #[test]
    fn numbers_money_dates_and_booleans_convert_only_where_they_mean_the_same() {
        let fee = json!({"type": "money", "rules": {"max": "100"}});
        assert_eq!(convert("number", fee.clone(), json!(12.5)), Ok(json!("12.50")));
        assert_eq!(convert_in("number", fee.clone(), json!(12), "JPY"), Ok(json!("12")));
        assert!(
            convert_in("number", fee.clone(), json!(12.5), "JPY")
                .unwrap_err()
                .contains("JPY allows at most 0"),
            "the account's currency's minor digits"
        );
        assert!(convert("number", fee.clone(), json!(-1)).unwrap_err().contains("negative"));
        assert!(convert("number", fee, json!(100.5)).unwrap_err().contains("at most 100"));
        let score = json!({"type": "number", "rules": {"max": 999}});
        assert_eq!(convert("money", score.clone(), json!("12.50")), Ok(json!(12.5)));
        assert!(convert("money", score, json!("1000.00")).unwrap_err().contains("at most 999"));
        for (from, to, value) in [
            ("date", json!({"type": "number"}), json!("2026-02-28")),
            ("boolean", json!({"type": "number"}), json!(true)),
            ("number", json!({"type": "date"}), json!(20260228)),
            ("money", json!({"type": "boolean"}), json!("1.00")),
            ("date", json!({"type": "money"}), json!("2026-02-28")),
        ] {
            let why = convert(from, to.clone(), value).unwrap_err();
            assert!(why.contains("do not convert"), "{from} -> {to}: {why}");
        }
    }

    #[test]
    fn lists_take_only_allowed_values_and_one_of_several() {
        let product = json!({"type": "list", "rules": {"allowed": ["Card", "Loan", "12.5", "true"]}});
        assert_eq!(convert("text", product.clone(), json!("card")), Ok(json!("Card")));
        assert!(
            convert("text", product.clone(), json!("Mortgage"))
                .unwrap_err()
                .contains("not one of the allowed values")
        );
        assert_eq!(convert("number", product.clone(), json!(12.5)), Ok(json!("12.5")));
        assert_eq!(convert("boolean", product.clone(), json!(true)), Ok(json!("true")));
        assert_eq!(convert("multi_list", product.clone(), json!(["Loan"])), Ok(json!("Loan")));
        assert_eq!(convert("multi_list", product.clone(), json!([])), Ok(Value::Null), "nothing held");
        assert!(
            convert("multi_list", product, json!(["Card", "Loan"]))
                .unwrap_err()
                .contains("holds 2 values; a list field holds one")
        );
        let channels = json!({"type": "multi_list", "rules": {"allowed": ["sms", "email", "post"]}});
        assert_eq!(convert("list", channels.clone(), json!("SMS")), Ok(json!(["sms"])), "wrapped");
        assert_eq!(
            convert("text", channels.clone(), json!("post; sms,email")),
            Ok(json!(["sms", "email", "post"])),
            "text splits as an import's cell does"
        );
        assert!(convert("text", channels, json!("sms; fax")).unwrap_err().contains("\"fax\""));
        let score = json!({"type": "number"});
        assert_eq!(convert("multi_list", score.clone(), json!(["7"])), Ok(json!(7)));
        assert_eq!(convert("list", score, json!("7.25")), Ok(json!(7.25)));
    }

    #[test]
    fn values_not_of_the_old_type_and_nothing_held() {
        let number = json!({"type": "number"});
        assert!(convert("text", number.clone(), json!(12)).unwrap_err().contains("not a text value"));
        assert!(
            convert("multi_list", number.clone(), json!("7"))
                .unwrap_err()
                .contains("not a multi_list value")
        );
        assert_eq!(convert("text", number, Value::Null), Ok(Value::Null));
    }

    #[test]
    fn a_new_type_converts_the_default_and_takes_only_its_own_rules_and_flags() {
        let patch = |body: Value| serde_json::from_value::<PatchField>(body).unwrap();
        let named = |errors: Vec<FieldError>| errors.into_iter().map(|e| (e.field, e.message)).collect::<Vec<_>>();
        let code = definition(json!({"type": "text", "default": "12.5", "rules": {"max_length": 10}, "searchable": true}));
        let errors = named(code.clone().apply(patch(json!({"type": "number"}))).unwrap_err());
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["searchable", "rules.max_length"]);
        let number = code
            .clone()
            .apply(patch(json!({"type": "number", "rules": {}, "searchable": false})))
            .unwrap();
        assert_eq!((number.field_type, number.default), (FieldType::Number, Some(json!(12.5))));
        let errors = named(
            code.clone()
                .apply(patch(json!({"type": "boolean", "rules": {}, "searchable": false})))
                .unwrap_err(),
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "default");
        assert!(errors[0].1.contains("does not convert to boolean"), "{errors:?}");
        let flag = code
            .apply(patch(json!({"type": "boolean", "rules": {}, "searchable": false, "default": null})))
            .unwrap();
        assert_eq!((flag.field_type, flag.default), (FieldType::Boolean, None));
    }
}
