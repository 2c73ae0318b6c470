//! JSON as outsiders send it: any value at all, and values near a real
//! shape (a known-good document with fields dropped, nulled, retyped, made
//! huge or exotic, or joined by unknown ones).

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

use crate::text::{long_text, nasty_string, text};

/// Numbers at the edges of every integer and float type serde reads.
pub fn edge_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        proptest::sample::select(vec![
            Value::from(0),
            Value::from(-1),
            Value::from(1),
            Value::from(i64::MIN),
            Value::from(i64::MAX),
            Value::from(u64::MAX),
            Value::from(u32::MAX),
            Value::from(u64::from(u32::MAX) + 1),
            Value::from(i32::MIN),
            Value::from(-0.0),
            Value::from(0.5),
            Value::from(1e300),
            Value::from(-1e-300),
            Value::from(f64::MAX),
            Value::from(f64::MIN_POSITIVE),
            Value::from(4_294_967_295.5),
        ]),
    ]
}

/// A JSON scalar of any type.
pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => edge_number(),
        4 => nasty_string().prop_map(Value::String),
    ]
}

/// Any JSON value, nested a few levels deep.
pub fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((text(10), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value nested `depth` arrays or objects deep (past serde_json's
/// recursion limit of 128 when `depth` is large).
pub fn deeply_nested(depth: usize, object: bool) -> String {
    let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Remove the field or element (a scalar root becomes `null`).
    Drop,
    /// Replace it by `null`.
    Null,
    /// Replace it by a value of another (or the same) type.
    Retype(Value),
    /// Replace it by a very long string.
    Huge(String),
    /// Add an unknown field to an object (or an element to an array).
    Add(String, Value),
    /// Wrap it in an array.
    Wrap,
    /// Turn a string into a number or a number into a string, as a sloppy
    /// client would.
    Stringly,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => Just(Edit::Drop),
        2 => Just(Edit::Null),
        4 => any_json().prop_map(Edit::Retype),
        1 => long_text(20_000).prop_map(Edit::Huge),
        2 => (text(12), leaf()).prop_map(|(k, v)| Edit::Add(k, v)),
        1 => Just(Edit::Wrap),
        2 => Just(Edit::Stringly),
    ]
}

/// Where an edit goes: each number picks a child (modulo the number of
/// children) one level further down; the walk stops at a scalar.
pub type Path = Vec<u32>;

/// Zero to `max` edits at random places.
pub fn edits(max: usize) -> impl Strategy<Value = Vec<(Path, Edit)>> {
    proptest::collection::vec(
        (proptest::collection::vec(any::<u32>(), 1..5), edit()),
        0..=max,
    )
}

/// `base` with `edits` applied in turn.
pub fn apply_edits(mut base: Value, edits: &[(Path, Edit)]) -> Value {
    for (path, edit) in edits {
        edit_at(&mut base, path, edit);
    }
    base
}

fn child_count(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.len(),
        Value::Object(fields) => fields.len(),
        _ => 0,
    }
}

fn child_mut(v: &mut Value, selector: u32) -> Option<&mut Value> {
    let n = child_count(v);
    if n == 0 {
        return None;
    }
    let i = selector as usize % n;
    match v {
        Value::Array(items) => items.get_mut(i),
        Value::Object(fields) => fields.values_mut().nth(i),
        _ => None,
    }
}

fn edit_at(node: &mut Value, path: &[u32], edit: &Edit) {
    let n = child_count(node);
    match path {
        [selector, rest @ ..] if n > 0 && !rest.is_empty() => {
            let descend = child_count(child_mut(node, *selector).expect("n > 0")) > 0;
            if descend {
                edit_at(child_mut(node, *selector).expect("n > 0"), rest, edit);
            } else {
                edit_child(node, *selector, edit);
            }
        }
        [selector, ..] if n > 0 => edit_child(node, *selector, edit),
        _ => edit_value(node, edit),
    }
}

/// Applies `edit` to the child `selector` picks, or to the container itself
/// for `Add`.
fn edit_child(container: &mut Value, selector: u32, edit: &Edit) {
    match edit {
        Edit::Drop => {
            let i = selector as usize % child_count(container);
            match container {
                Value::Array(items) => {
                    items.remove(i);
                }
                Value::Object(fields) => {
                    if let Some(key) = fields.keys().nth(i).cloned() {
                        fields.remove(&key);
                    }
                }
                _ => {}
            }
        }
        Edit::Add(..) => edit_value(container, edit),
        _ => {
            if let Some(child) = child_mut(container, selector) {
                edit_value(child, edit);
            }
        }
    }
}

fn edit_value(v: &mut Value, edit: &Edit) {
    match edit {
        Edit::Drop | Edit::Null => *v = Value::Null,
        Edit::Retype(new) => *v = new.clone(),
        Edit::Huge(s) => *v = Value::String(s.clone()),
        Edit::Add(key, value) => match v {
            Value::Object(fields) => {
                fields.insert(key.clone(), value.clone());
            }
            Value::Array(items) => items.push(value.clone()),
            _ => *v = value.clone(),
        },
        Edit::Wrap => *v = Value::Array(vec![v.take()]),
        Edit::Stringly => {
            *v = match v.take() {
                Value::String(s) => s
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| s.trim().parse::<f64>().map(Value::from))
                    .unwrap_or(Value::Bool(s.is_empty())),
                Value::Null => Value::String("null".to_owned()),
                other => Value::String(other.to_string()),
            }
        }
    }
}

/// `base` as is (about a quarter of the time) or with up to `max` edits.
pub fn near(base: Value, max: usize) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Vec::new()),
        3 => edits(max),
    ]
    .prop_map(move |edits| apply_edits(base.clone(), &edits))
}

/// The bytes a client sends for `value`: compact or pretty JSON, or either
/// with trailing garbage, cut short or with a BOM in front.
pub fn body_bytes(value: &Value) -> impl Strategy<Value = Vec<u8>> + use<> {
    let compact = serde_json::to_vec(value).expect("a Value serialises");
    let pretty = serde_json::to_vec_pretty(value).expect("a Value serialises");
    prop_oneof![
        6 => Just(compact.clone()),
        2 => Just(pretty),
        1 => any::<usize>().prop_map({
            let compact = compact.clone();
            move |at| compact[..at % (compact.len() + 1)].to_vec()
        }),
        1 => text(3).prop_map({
            let compact = compact.clone();
            move |tail| [compact.as_slice(), tail.as_bytes()].concat()
        }),
        1 => Just([b"\xEF\xBB\xBF".as_slice(), &compact].concat()),
    ]
}
