//! Path segments (`{id}`, `{name}`, `{slot}`) and the small values that the
//! routes with private body types read through public domain parsers:
//! resource ids of every prefix, bucket names, WhatsApp slots and
//! recipients, custom event types (`POST /v1/events`), activation tokens
//! (`POST /v1/activate`), quotas and licence counts (admin approval),
//! carrier codes.
//!
//! Property: nothing panics, and whatever is accepted has exactly the
//! documented shape (so a malformed id is a 404 before any lookup, a bad
//! value a 422), while the canonical forms (a new id, a catalogue event
//! type, a code in any case) are accepted.

use nuvem_domain::account::{MAX_QUOTA_GB, MIN_QUOTA_GB, quota_bytes, validate_quota_gb};
use nuvem_domain::bucket::validate_bucket_name;
use nuvem_domain::events::{CustomEventType, EventName, EventType};
use nuvem_domain::ids;
use nuvem_domain::rpa::carrier::CarrierCode;
use nuvem_domain::rpa::client::is_client_id;
use nuvem_domain::rpa::schedule_settings::is_schedule_id;
use nuvem_domain::token::{TOKEN_LEN, TOKEN_PREFIX, looks_like_activation_token};
use nuvem_domain::webhook::delivery::is_delivery_id;
use nuvem_domain::whatsapp::identity::Recipient;
use nuvem_domain::whatsapp::outbound::parse_recipient;
use nuvem_domain::whatsapp::store::{Slot, is_store_id};
use nuvem_fuzz::text::{mixed_case, nasty_string};
use proptest::prelude::*;

const PREFIXES: &[&str] = &[
    ids::ACCOUNT,
    ids::KEY,
    ids::EVENT,
    ids::AUDIT,
    ids::WEBHOOK,
    ids::STORAGE_KEY,
    ids::DELIVERY,
    ids::ATTEMPT,
    "cli",
    "sch",
    "st",
];

/// An id as the API hands them out, or one damaged in one place.
fn id() -> impl Strategy<Value = String> {
    let good = (
        proptest::sample::select(PREFIXES),
        "[0-7][0-9a-hjkmnp-tv-z]{25}",
    )
        .prop_map(|(p, ulid)| format!("{p}_{ulid}"));
    prop_oneof![
        3 => good.clone(),
        3 => (good, any::<usize>(), nuvem_fuzz::text::any_char()).prop_map(|(id, at, c)| {
            let mut chars: Vec<char> = id.chars().collect();
            let i = at % chars.len();
            chars[i] = c;
            chars.into_iter().collect()
        }),
        1 => "[a-z]{2,3}_[0-9A-Za-z]{24,28}",
        1 => nasty_string(),
    ]
}

fn id_shape(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|ulid| {
            ulid.len() == 26
                && ulid.as_bytes()[0] <= b'7'
                && ulid
                    .bytes()
                    .all(|b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b))
        })
}

proptest! {
    #![proptest_config(nuvem_fuzz::config())]

    #[test]
    fn ids_are_recognised_by_shape_alone(id in id()) {
        for prefix in PREFIXES {
            prop_assert_eq!(ids::has_prefix(&id, prefix), id_shape(&id, prefix), "{} {}", prefix, id);
        }
        prop_assert_eq!(is_client_id(&id), id_shape(&id, "cli"));
        prop_assert_eq!(is_schedule_id(&id), id_shape(&id, "sch"));
        prop_assert_eq!(is_store_id(&id), id_shape(&id, "st"));
        let _ = is_delivery_id(&id);
        // Ids are lowercase: the uppercase form of an id is not one.
        prop_assert!(!PREFIXES.iter().any(|p| ids::has_prefix(&id.to_ascii_uppercase(), p)) || id.to_ascii_uppercase() == id);
    }

    #[test]
    fn small_values_are_accepted_only_in_their_shape(
        value in prop_oneof![
            "[a-z0-9.-]{1,70}",
            "custom(\\.[a-z0-9_-]{0,70}){0,3}",
            "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
            "[A-Z]{2}\\.[A-Za-z0-9.]{1,20}",
            "[+ 0-9().-]{0,24}",
            "[0-9]{1,2}",
            nasty_string(),
        ],
        mask: u64,
    ) {
        if validate_bucket_name(&value).is_ok() {
            let b = value.as_bytes();
            prop_assert!((3..=63).contains(&b.len()));
            prop_assert!(b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.'));
            prop_assert!(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric());
            prop_assert!(!value.contains(".."));
            prop_assert!(!(value.split('.').count() == 4 && value.split('.').all(|p| p.parse::<u8>().is_ok())));
        }
        match CustomEventType::parse(&value) {
            Ok(custom) => {
                prop_assert_eq!(custom.as_str(), value.as_str());
                prop_assert!(value.len() <= 100);
                let rest = value.strip_prefix("custom.").unwrap();
                prop_assert!(rest.split('.').all(|s| (1..=64).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')));
                prop_assert_eq!(value.parse::<EventName>(), Ok(EventName::Custom(custom)));
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        match Slot::parse(&value) {
            Ok(slot) => prop_assert_eq!(slot.to_string(), value.clone()),
            Err(e) => prop_assert!(!["1", "2", "3"].contains(&value.as_str()) && e.field == "slot"),
        }
        match parse_recipient(&value) {
            Some(Recipient::Phone(digits)) => {
                prop_assert!((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()));
            }
            Some(Recipient::User(user)) => {
                prop_assert_eq!(user.as_str(), value.trim());
                prop_assert!(user.len() <= 160 && user.as_bytes()[2] == b'.');
            }
            None => {}
        }
        match CarrierCode::parse(&value) {
            Ok(code) => {
                let s = code.as_str();
                prop_assert!((2..=20).contains(&s.len()) && s.as_bytes()[0].is_ascii_alphanumeric());
                prop_assert!(s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-'));
                prop_assert_eq!(CarrierCode::parse(&mixed_case(s, mask)), Ok(code.clone()));
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
        if looks_like_activation_token(&value) {
            prop_assert!(value.len() == TOKEN_LEN && value.starts_with(TOKEN_PREFIX));
        }
    }

    #[test]
    fn quotas_are_finite_and_in_range(gb in prop_oneof![
        any::<f64>(),
        MIN_QUOTA_GB..=MAX_QUOTA_GB,
        proptest::sample::select(vec![0.0, -0.0, MIN_QUOTA_GB, MAX_QUOTA_GB, 0.000_999_9, 1e6 + 1e-9, f64::NAN, f64::INFINITY]),
    ]) {
        match validate_quota_gb(gb) {
            Ok(q) => {
                prop_assert!(q.is_finite() && (MIN_QUOTA_GB..=MAX_QUOTA_GB).contains(&q));
                let bytes = quota_bytes(q);
                prop_assert!((1_000_000..=1_000_000_000_000_000).contains(&bytes), "{} → {}", q, bytes);
            }
            Err(e) => {
                prop_assert!(!(gb.is_finite() && (MIN_QUOTA_GB..=MAX_QUOTA_GB).contains(&gb)));
                prop_assert_eq!(e.field.as_str(), "quota_gb");
            }
        }
    }
}

#[test]
fn catalogue_types_and_new_ids_are_accepted() {
    for t in EventType::ALL {
        assert_eq!(t.as_str().parse::<EventName>(), Ok(EventName::Known(t)));
    }
    for prefix in PREFIXES {
        assert!(ids::has_prefix(&ids::new_id(prefix), prefix));
    }
}
