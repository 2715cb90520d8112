//! Distinguishes an absent JSON field from an explicit `null` in PATCH bodies.

use serde::{Deserialize, Deserializer};

/// `None`: field absent; `Some(None)`: set to null; `Some(Some(v))`: set to `v`.
/// Use with `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}
