//! `#[serde(with = "crate::json_text")]`: a tenant's free-form JSON kept as
//! its text in storage. Mapped into DynamoDB attributes it could fail the
//! write or poison later reads (numbers beyond 38 digits, empty sets); as
//! text it round-trips exactly and is parsed only when shown.

use serde::{Deserialize, Deserializer, Serializer};

pub fn serialize<S: Serializer>(value: &serde_json::Value, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&value.to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<serde_json::Value, D::Error> {
    let text = String::deserialize(d)?;
    serde_json::from_str(&text).map_err(serde::de::Error::custom)
}
