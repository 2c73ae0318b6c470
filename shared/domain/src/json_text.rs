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

/// Reads what [`serialize`] wrote, or a value stored before as attributes
/// (items written before a field moved to text stay readable). Only for
/// fields whose JSON is never a bare string, such as an object.
pub fn deserialize_text_or_value<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<serde_json::Value, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(text) => {
            serde_json::from_str(&text).map_err(serde::de::Error::custom)
        }
        value => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Stored {
        #[serde(
            serialize_with = "super::serialize",
            deserialize_with = "super::deserialize_text_or_value"
        )]
        data: serde_json::Value,
    }

    #[test]
    fn text_and_older_attribute_forms_read_the_same() {
        let data = json!({"N": 1, "L": [{"M": {}}], "big": 12345678901234567890u64, "s": "x"});
        let stored = Stored { data: data.clone() };
        let text = serde_json::to_value(&stored).unwrap();
        assert!(text["data"].is_string(), "{text}");
        let back: Stored = serde_json::from_value(text).unwrap();
        assert_eq!(back.data, data);
        let older: Stored = serde_json::from_value(json!({ "data": data.clone() })).unwrap();
        assert_eq!(older.data, data);
    }
}
