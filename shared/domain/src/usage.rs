//! Exact storage accounting from S3 event notifications.
//!
//! S3 delivers notifications at least once and in no particular order, so
//! counting "+size on put, −size on delete" drifts. Instead nuvem records,
//! per object key, what it last applied (size, live or deleted, sequencer),
//! and each record is turned into a decision here: the new per-key state and
//! the change to the account's bytes and object counts. The adapter writes
//! both with conditional writes (the key's item only if it still holds the
//! state this decision was made from), retrying from a fresh read on a
//! conflict.
//!
//! Guarantee: with sequencers (real S3), whatever the duplication and order
//! of delivery, the sum of the applied deltas is the live objects' total size
//! and count once every record has arrived, because the recorded state of a
//! key always comes from the record with the highest sequencer seen for it.
//! Without sequencers (the local emulator sends none), records apply in
//! arrival order: exact only when they arrive in order, and a redelivery
//! right after its original is harmless, but a late duplicate is counted
//! again (the usage reconciler corrects such drift).
//!
//! Assumes unversioned buckets (the ones nuvem creates): a key holds at most
//! one object, and an overwrite replaces it. Objects are identified by bucket
//! and *decoded* key (see [`crate::s3_event::decode_key`]).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::s3_event::sequencer_cmp;

/// What a notification record did to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ObjectCreated:*` (put, post, copy, multipart completion): the key now
    /// holds an object of `size` bytes, replacing any previous one.
    Put { size: u64 },
    /// `ObjectRemoved:Delete`, `LifecycleExpiration:Delete`: the object is gone.
    Delete,
    /// `ObjectRemoved:DeleteMarkerCreated`,
    /// `LifecycleExpiration:DeleteMarkerCreated`: only in versioned buckets;
    /// the data stays stored as a noncurrent version, so nothing is freed.
    DeleteMarker,
}

/// Why a record is not accounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// `s3:TestEvent`, sent when notifications are configured.
    TestEvent,
    /// A known event that does not change stored bytes (restore, replication,
    /// tagging, ACL, lifecycle transition, Intelligent-Tiering…).
    NoStorageChange,
    /// An `ObjectCreated` record without a size (S3 always sends one): worth
    /// a loud log, since the reconciler must then correct the usage.
    MissingSize,
    /// An event name nuvem does not know.
    Unknown,
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IgnoreReason::TestEvent => "test event",
            IgnoreReason::NoStorageChange => "does not change stored bytes",
            IgnoreReason::MissingSize => "object created without a size",
            IgnoreReason::Unknown => "unknown event name",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    Apply(Change),
    Ignore(IgnoreReason),
}

/// Event name families that never change the stored bytes.
const NO_STORAGE_CHANGE: [&str; 7] = [
    "ObjectRestore:",
    "Replication:",
    "ObjectTagging:",
    "ObjectAcl:",
    "LifecycleTransition",
    "IntelligentTiering",
    "ReducedRedundancyLostObject",
];

/// Classifies a record by its `eventName` (as in records, `ObjectCreated:Put`;
/// the `s3:` form used in configurations is accepted too) and its object
/// size. The size of a delete record is ignored: real S3 sends none (the
/// emulator does), and what a delete frees is what nuvem recorded.
pub fn classify(event_name: &str, size: Option<u64>) -> Classified {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    match name {
        "TestEvent" => return Classified::Ignore(IgnoreReason::TestEvent),
        "ObjectRemoved:Delete" | "LifecycleExpiration:Delete" => {
            return Classified::Apply(Change::Delete);
        }
        "ObjectRemoved:DeleteMarkerCreated" | "LifecycleExpiration:DeleteMarkerCreated" => {
            return Classified::Apply(Change::DeleteMarker);
        }
        _ => {}
    }
    if let Some(kind) = name.strip_prefix("ObjectCreated:") {
        if kind.is_empty() {
            return Classified::Ignore(IgnoreReason::Unknown);
        }
        return match size {
            Some(size) => Classified::Apply(Change::Put { size }),
            None => Classified::Ignore(IgnoreReason::MissingSize),
        };
    }
    if NO_STORAGE_CHANGE.iter().any(|p| name.starts_with(p)) {
        Classified::Ignore(IgnoreReason::NoStorageChange)
    } else {
        Classified::Ignore(IgnoreReason::Unknown)
    }
}

/// What nuvem last recorded for one object key. A key never seen has no
/// state (`None`); a deleted key keeps a tombstone (`live: false`) so that an
/// older put arriving after the delete is recognised and ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    /// Bytes of the live object; 0 for a tombstone.
    pub size: u64,
    pub live: bool,
    /// Sequencer of the record that produced this state, as received.
    pub sequencer: Option<String>,
}

impl ObjectState {
    /// What this state adds to the account's usage: (bytes, objects).
    fn counted(state: Option<&ObjectState>) -> (u64, u64) {
        match state {
            Some(s) if s.live => (s.size, 1),
            _ => (0, 0),
        }
    }
}

/// The decision for one record: store `new_state` for the key and add the
/// deltas to the account (and bucket) totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub new_state: ObjectState,
    pub bytes_delta: i64,
    pub objects_delta: i64,
}

/// Applies one record to the key's recorded state `prev`. `None` means the
/// record must change nothing, neither the key's item nor the totals:
///
/// - a record whose sequencer is not above the recorded one (a duplicate or
///   an older event) changes nothing;
/// - a record without a sequencer, or over a state without one, applies in
///   arrival order (the weaker guarantee, see the module doc); it keeps the
///   recorded sequencer, so older sequenced records stay recognisable;
/// - a put over a live key counts the size difference and no new object;
/// - a delete of an unknown or deleted key frees nothing, but its tombstone
///   is still recorded with its sequencer (unless it has none, when the
///   tombstone would carry no information);
/// - a delete marker frees nothing and changes nothing.
pub fn apply(
    prev: Option<&ObjectState>,
    change: &Change,
    sequencer: Option<&str>,
) -> Option<Outcome> {
    if let (Some(new), Some(old)) = (sequencer, prev.and_then(|p| p.sequencer.as_deref()))
        && sequencer_cmp(new, old) != Ordering::Greater
    {
        return None;
    }
    let (size, live) = match change {
        Change::Put { size } => (*size, true),
        Change::Delete => (0, false),
        Change::DeleteMarker => return None,
    };
    let sequencer = sequencer
        .map(str::to_owned)
        .or_else(|| prev.and_then(|p| p.sequencer.clone()));
    let new_state = ObjectState {
        size,
        live,
        sequencer,
    };
    if !live && new_state.sequencer.is_none() && !prev.is_some_and(|p| p.live) {
        // Equivalent to "never seen" for every later record.
        return None;
    }
    let (old_bytes, old_objects) = ObjectState::counted(prev);
    let (new_bytes, new_objects) = ObjectState::counted(Some(&new_state));
    Some(Outcome {
        bytes_delta: signed_diff(new_bytes, old_bytes),
        objects_delta: signed_diff(new_objects, old_objects),
        new_state,
    })
}

/// `a − b`, saturating at the bounds of i64 (object sizes are at most 5 TB,
/// so this never saturates in practice).
fn signed_diff(a: u64, b: u64) -> i64 {
    let d = i128::from(a) - i128::from(b);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// What S3's listing (ListObjectsV2) says of a key: its size and when it
/// was last written (epoch seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub size: u64,
    pub last_modified: i64,
}

/// The usage reconciler's decision for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// What nuvem counts for the key is what S3 holds.
    Agrees,
    /// They differ, but one side changed after `cutoff`: an event about the
    /// key may still be in flight (or just applied after the listing was
    /// read), so the key is left to the events and the next run.
    Settling,
    /// Drift: store `new_state` and add the deltas.
    Correct(Outcome),
}

/// Compares S3's listing of a key (`None`: not listed) with what nuvem
/// recorded for it and when (`recorded_at`, epoch seconds; `None` for
/// states written before that was kept, i.e. old). S3 is the truth, but
/// only for keys whose both sides are at or before `cutoff` (the run's start
/// minus a settling time): anything newer may be the subject of an event
/// that has not been applied yet, or a change after the listing page was
/// read. A correction keeps the recorded sequencer, so that older records
/// arriving later are still recognised.
pub fn reconcile(
    listed: Option<&Listed>,
    recorded: Option<&ObjectState>,
    recorded_at: Option<i64>,
    cutoff: i64,
) -> Verdict {
    let (new_bytes, new_objects) = match listed {
        Some(l) => (l.size, 1),
        None => (0, 0),
    };
    let (old_bytes, old_objects) = ObjectState::counted(recorded);
    if (new_bytes, new_objects) == (old_bytes, old_objects) {
        return Verdict::Agrees;
    }
    if listed.is_some_and(|l| l.last_modified > cutoff) || recorded_at.is_some_and(|t| t > cutoff) {
        return Verdict::Settling;
    }
    Verdict::Correct(Outcome {
        new_state: ObjectState {
            size: new_bytes,
            live: listed.is_some(),
            sequencer: recorded.and_then(|r| r.sequencer.clone()),
        },
        bytes_delta: signed_diff(new_bytes, old_bytes),
        objects_delta: signed_diff(new_objects, old_objects),
    })
}

#[cfg(test)]
mod reconcile_tests {
    use super::*;

    const CUTOFF: i64 = 1_000;

    fn live(size: u64) -> ObjectState {
        ObjectState {
            size,
            live: true,
            sequencer: Some("0A".into()),
        }
    }

    fn listed(size: u64, at: i64) -> Listed {
        Listed {
            size,
            last_modified: at,
        }
    }

    #[test]
    fn agreement_changes_nothing_however_recent() {
        assert_eq!(reconcile(None, None, None, CUTOFF), Verdict::Agrees);
        let tomb = ObjectState {
            size: 0,
            live: false,
            sequencer: None,
        };
        assert_eq!(
            reconcile(None, Some(&tomb), Some(5_000), CUTOFF),
            Verdict::Agrees
        );
        assert_eq!(
            reconcile(Some(&listed(7, 5_000)), Some(&live(7)), Some(5_000), CUTOFF),
            Verdict::Agrees
        );
    }

    #[test]
    fn missed_put_lost_delete_and_wrong_size_are_corrected() {
        let Verdict::Correct(added) = reconcile(Some(&listed(9, 10)), None, None, CUTOFF) else {
            panic!("missed put not corrected");
        };
        assert_eq!((added.bytes_delta, added.objects_delta), (9, 1));
        assert!(added.new_state.live);
        assert_eq!(added.new_state.sequencer, None);

        let Verdict::Correct(removed) = reconcile(None, Some(&live(4)), Some(10), CUTOFF) else {
            panic!("lost delete not corrected");
        };
        assert_eq!((removed.bytes_delta, removed.objects_delta), (-4, -1));
        assert!(!removed.new_state.live);
        assert_eq!(removed.new_state.sequencer.as_deref(), Some("0A"));

        let Verdict::Correct(fixed) =
            reconcile(Some(&listed(3, CUTOFF)), Some(&live(8)), None, CUTOFF)
        else {
            panic!("size not corrected");
        };
        assert_eq!((fixed.bytes_delta, fixed.objects_delta), (-5, 0));
        assert_eq!(fixed.new_state, ObjectState { size: 3, ..live(3) });
    }

    #[test]
    fn recent_changes_on_either_side_are_left_to_the_events() {
        // Put after the cutoff, its event not applied yet.
        assert_eq!(
            reconcile(Some(&listed(9, CUTOFF + 1)), None, None, CUTOFF),
            Verdict::Settling
        );
        // Recorded (put) after the cutoff, so possibly after the listing.
        assert_eq!(
            reconcile(None, Some(&live(4)), Some(CUTOFF + 1), CUTOFF),
            Verdict::Settling
        );
        // Deleted after the listing: the tombstone is recent.
        let tomb = ObjectState {
            size: 0,
            live: false,
            sequencer: Some("0B".into()),
        };
        assert_eq!(
            reconcile(Some(&listed(4, 10)), Some(&tomb), Some(CUTOFF + 1), CUTOFF),
            Verdict::Settling
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn state(size: u64, live: bool, seq: Option<&str>) -> ObjectState {
        ObjectState {
            size,
            live,
            sequencer: seq.map(str::to_owned),
        }
    }

    fn outcome(size: u64, live: bool, seq: Option<&str>, bytes: i64, objects: i64) -> Outcome {
        Outcome {
            new_state: state(size, live, seq),
            bytes_delta: bytes,
            objects_delta: objects,
        }
    }

    #[test]
    fn classification() {
        use Classified::*;
        for name in [
            "ObjectCreated:Put",
            "ObjectCreated:Post",
            "ObjectCreated:Copy",
            "ObjectCreated:CompleteMultipartUpload",
            "s3:ObjectCreated:Put",
        ] {
            assert_eq!(
                classify(name, Some(7)),
                Apply(Change::Put { size: 7 }),
                "{name}"
            );
        }
        assert_eq!(
            classify("ObjectCreated:Put", None),
            Ignore(IgnoreReason::MissingSize)
        );
        for name in ["ObjectRemoved:Delete", "LifecycleExpiration:Delete"] {
            assert_eq!(classify(name, None), Apply(Change::Delete));
            // The emulator's delete size is not trusted.
            assert_eq!(classify(name, Some(9)), Apply(Change::Delete));
        }
        for name in [
            "ObjectRemoved:DeleteMarkerCreated",
            "LifecycleExpiration:DeleteMarkerCreated",
        ] {
            assert_eq!(classify(name, None), Apply(Change::DeleteMarker));
        }
        assert_eq!(
            classify("s3:TestEvent", None),
            Ignore(IgnoreReason::TestEvent)
        );
        for name in [
            "ObjectRestore:Completed",
            "ObjectRestore:Post",
            "Replication:OperationFailedReplication",
            "ObjectTagging:Put",
            "ObjectAcl:Put",
            "LifecycleTransition",
            "IntelligentTiering",
        ] {
            assert_eq!(
                classify(name, Some(1)),
                Ignore(IgnoreReason::NoStorageChange),
                "{name}"
            );
        }
        for name in [
            "",
            "ObjectCreated:",
            "ObjectRemoved:Everything",
            "objectcreated:put",
            "Boom",
        ] {
            assert_eq!(
                classify(name, Some(1)),
                Ignore(IgnoreReason::Unknown),
                "{name}"
            );
        }
    }

    #[test]
    fn put_then_overwrite_then_delete() {
        let put = apply(None, &Change::Put { size: 100 }, Some("01")).unwrap();
        assert_eq!(put, outcome(100, true, Some("01"), 100, 1));
        let over = apply(Some(&put.new_state), &Change::Put { size: 40 }, Some("02")).unwrap();
        assert_eq!(over, outcome(40, true, Some("02"), -60, 0));
        let del = apply(Some(&over.new_state), &Change::Delete, Some("03")).unwrap();
        assert_eq!(del, outcome(0, false, Some("03"), -40, -1));
        let again = apply(Some(&del.new_state), &Change::Put { size: 5 }, Some("04")).unwrap();
        assert_eq!(again, outcome(5, true, Some("04"), 5, 1));
    }

    #[test]
    fn duplicates_and_older_records_change_nothing() {
        let s = state(100, true, Some("0055AED6DCD90281E5"));
        for seq in [
            "0055AED6DCD90281E5",
            "0055aed6dcd90281e5",
            "0055AED6DCD90281E500",
            "0055AED6DCD90281E4",
        ] {
            assert_eq!(
                apply(Some(&s), &Change::Put { size: 1 }, Some(seq)),
                None,
                "{seq}"
            );
            assert_eq!(apply(Some(&s), &Change::Delete, Some(seq)), None, "{seq}");
        }
        assert!(apply(Some(&s), &Change::Delete, Some("0055AED6DCD90281E501")).is_some());
    }

    #[test]
    fn delete_before_its_put_keeps_a_tombstone() {
        // The delete (seq 02) overtakes the put (seq 01).
        let del = apply(None, &Change::Delete, Some("02")).unwrap();
        assert_eq!(del, outcome(0, false, Some("02"), 0, 0));
        assert_eq!(
            apply(Some(&del.new_state), &Change::Put { size: 9 }, Some("01")),
            None
        );
        let tomb = state(0, false, Some("02"));
        assert_eq!(
            apply(Some(&tomb), &Change::Delete, Some("03")),
            Some(outcome(0, false, Some("03"), 0, 0))
        );
    }

    #[test]
    fn delete_markers_change_nothing() {
        let s = state(100, true, Some("01"));
        assert_eq!(apply(Some(&s), &Change::DeleteMarker, Some("02")), None);
        assert_eq!(apply(None, &Change::DeleteMarker, Some("02")), None);
        assert_eq!(apply(None, &Change::DeleteMarker, None), None);
    }

    #[test]
    fn without_sequencers_records_apply_in_arrival_order() {
        let put = apply(None, &Change::Put { size: 10 }, None).unwrap();
        assert_eq!(put, outcome(10, true, None, 10, 1));
        let dup = apply(Some(&put.new_state), &Change::Put { size: 10 }, None).unwrap();
        assert_eq!((dup.bytes_delta, dup.objects_delta), (0, 0));
        let del = apply(Some(&put.new_state), &Change::Delete, None).unwrap();
        assert_eq!(del, outcome(0, false, None, -10, -1));
        // A tombstone without a sequencer is the same as never seen.
        assert_eq!(apply(Some(&del.new_state), &Change::Delete, None), None);
        assert_eq!(apply(None, &Change::Delete, None), None);
        // An unsequenced record keeps the recorded sequencer.
        let s = state(10, true, Some("05"));
        assert_eq!(
            apply(Some(&s), &Change::Put { size: 3 }, None),
            Some(outcome(3, true, Some("05"), -7, 0))
        );
    }

    #[test]
    fn state_serializes() {
        let s = state(5, true, Some("0A"));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"size": 5, "live": true, "sequencer": "0A"})
        );
        assert_eq!(serde_json::from_value::<ObjectState>(json).unwrap(), s);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u64),
        Delete,
    }

    /// (key, op) pairs in the order S3 performed them.
    fn history() -> impl Strategy<Value = Vec<(usize, Op)>> {
        let op = prop_oneof![
            3 => (0u64..1_000_000).prop_map(Op::Put),
            1 => Just(Op::Delete),
        ];
        (1usize..=4)
            .prop_flat_map(move |keys| proptest::collection::vec((0..keys, op.clone()), 0..40))
    }

    /// Live bytes and objects once the history is done.
    fn final_usage(history: &[(usize, Op)]) -> (i64, i64) {
        let mut last: HashMap<usize, &Op> = HashMap::new();
        for (key, op) in history {
            last.insert(*key, op);
        }
        last.values().fold((0, 0), |(b, o), op| match op {
            Op::Put(size) => (b + *size as i64, o + 1),
            Op::Delete => (b, o),
        })
    }

    fn change(op: &Op) -> Change {
        match op {
            Op::Put(size) => Change::Put { size: *size },
            Op::Delete => Change::Delete,
        }
    }

    /// Folds records (key, change, sequencer) per key from nothing and sums
    /// the deltas.
    fn fold(records: &[(usize, Change, Option<String>)]) -> (i64, i64) {
        let mut states: HashMap<usize, ObjectState> = HashMap::new();
        let (mut bytes, mut objects) = (0, 0);
        for (key, change, seq) in records {
            if let Some(out) = apply(states.get(key), change, seq.as_deref()) {
                bytes += out.bytes_delta;
                objects += out.objects_delta;
                states.insert(*key, out.new_state);
            }
        }
        (bytes, objects)
    }

    /// An increasing sequencer for the i-th operation, shaped like S3's:
    /// fixed-width hex, but with trailing zeros dropped and mixed case, so
    /// comparisons exercise padding and case.
    fn sequencer(i: usize, upper: bool) -> String {
        let s = format!("{:016x}", (i as u64 + 1) << 8);
        let s = s.trim_end_matches('0');
        if upper {
            s.to_ascii_uppercase()
        } else {
            s.to_owned()
        }
    }

    proptest! {
        #[test]
        fn duplicated_shuffled_records_are_counted_exactly(
            history in history(),
            dup_picks in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
            case in any::<Vec<bool>>(),
            shuffle_seed in any::<u64>(),
        ) {
            let mut records: Vec<(usize, Change, Option<String>)> = history
                .iter()
                .enumerate()
                .map(|(i, (key, op))| {
                    let upper = case.get(i).copied().unwrap_or(false);
                    (*key, change(op), Some(sequencer(i, upper)))
                })
                .collect();
            if !records.is_empty() {
                for pick in &dup_picks {
                    let dup = pick.get(&records).clone();
                    records.push(dup);
                }
            }
            shuffle(&mut records, shuffle_seed);
            prop_assert_eq!(fold(&records), final_usage(&history));
        }

        #[test]
        fn in_order_records_without_sequencers_are_counted_exactly(
            history in history(),
            redeliver in any::<Vec<bool>>(),
        ) {
            // A redelivery right after its original is harmless too.
            let mut records = Vec::new();
            for (i, (key, op)) in history.iter().enumerate() {
                records.push((*key, change(op), None));
                if redeliver.get(i).copied().unwrap_or(false) {
                    records.push((*key, change(op), None));
                }
            }
            prop_assert_eq!(fold(&records), final_usage(&history));
        }
    }

    /// Fisher–Yates with a small xorshift, so the shuffle is reproducible from
    /// the case proptest prints.
    fn shuffle<T>(items: &mut [T], seed: u64) {
        let mut x = seed | 1;
        for i in (1..items.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            items.swap(i, (x % (i as u64 + 1)) as usize);
        }
    }
}
