//! Quota alert levels: the tenant hears once when its usage crosses 80 %,
//! 95 % and 100 % of its quota, and again only after falling back below.

use serde::{Deserialize, Serialize};

use crate::validation::UnknownVariant;

/// The highest threshold reached, ordered `None < P80 < P95 < P100`.
///
/// Stored and sent as its percentage, a number: 0, 80, 95 or 100 (0 for
/// none), so that the stored level can be compared in a condition and an
/// event's `level_percent` reads naturally.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(into = "u8", try_from = "u8")]
pub enum Level {
    #[default]
    None,
    P80,
    P95,
    P100,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::None, Level::P80, Level::P95, Level::P100];

    pub fn percent(self) -> u8 {
        match self {
            Level::None => 0,
            Level::P80 => 80,
            Level::P95 => 95,
            Level::P100 => 100,
        }
    }
}

impl From<Level> for u8 {
    fn from(level: Level) -> u8 {
        level.percent()
    }
}

impl TryFrom<u8> for Level {
    type Error = UnknownVariant;
    fn try_from(percent: u8) -> Result<Self, Self::Error> {
        Self::ALL
            .into_iter()
            .find(|l| l.percent() == percent)
            .ok_or_else(|| UnknownVariant::new("quota level", &percent.to_string()))
    }
}

/// The level of `used` bytes against `quota_bytes`: a threshold is reached
/// at exactly its percentage (8 GB of 10 GB is 80 %). A zero quota (not a
/// valid quota, but possible in a half-written record) is treated as full:
/// P100 as soon as anything is stored, None while empty.
pub fn level_for(used: u64, quota_bytes: u64) -> Level {
    if quota_bytes == 0 {
        return if used > 0 { Level::P100 } else { Level::None };
    }
    // used / quota ≥ p / 100, in integers wide enough not to overflow.
    let reached = |level: Level| {
        u128::from(used) * 100 >= u128::from(quota_bytes) * u128::from(level.percent())
    };
    [Level::P100, Level::P95, Level::P80]
        .into_iter()
        .find(|l| reached(*l))
        .unwrap_or(Level::None)
}

/// Given the level last stored for the account, returns the level to store
/// now and the level to alert about, if any.
///
/// Only an upward crossing alerts, and only about the highest level crossed
/// (80 % straight to 100 % alerts 100 % alone). Falling below a level stores
/// the lower level without alerting, which re-arms the alerts above it. A
/// quota change is the same call with the new quota: a raise lowers the
/// level silently, a cut below the usage alerts at once.
///
/// The adapter stores the new level with a condition on the previous one, so
/// that of two concurrent updates only one alerts.
pub fn crossing(previous_level: Level, used: u64, quota_bytes: u64) -> (Level, Option<Level>) {
    let level = level_for(used, quota_bytes);
    (level, (level > previous_level).then_some(level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Level::*;
    use proptest::prelude::*;

    const GB: u64 = 1_000_000_000;

    #[test]
    fn levels() {
        assert_eq!(level_for(0, 10 * GB), None);
        assert_eq!(level_for(8 * GB - 1, 10 * GB), None);
        assert_eq!(level_for(8 * GB, 10 * GB), P80);
        assert_eq!(level_for(9_499_999_999, 10 * GB), P80);
        assert_eq!(level_for(9_500_000_000, 10 * GB), P95);
        assert_eq!(level_for(10 * GB - 1, 10 * GB), P95);
        assert_eq!(level_for(10 * GB, 10 * GB), P100);
        assert_eq!(level_for(50 * GB, 10 * GB), P100);
        assert_eq!(level_for(u64::MAX, u64::MAX), P100);
        assert_eq!(level_for(u64::MAX / 100 * 80, u64::MAX / 100 * 100), P80);
        assert_eq!(level_for(0, 0), None);
        assert_eq!(level_for(1, 0), P100);
    }

    #[test]
    fn crossings() {
        let q = 10 * GB;
        assert_eq!(crossing(None, 5 * GB, q), (None, Option::None));
        assert_eq!(crossing(None, 8 * GB, q), (P80, Some(P80)));
        assert_eq!(crossing(P80, 9 * GB, q), (P80, Option::None));
        // Straight from 80 % to 100 %: one alert, about 100 %.
        assert_eq!(crossing(P80, 10 * GB, q), (P100, Some(P100)));
        // Falling below re-arms without alerting.
        assert_eq!(crossing(P100, 9 * GB, q), (P80, Option::None));
        assert_eq!(crossing(P80, 10 * GB, q), (P100, Some(P100)));
        // Quota raised: the level drops silently.
        assert_eq!(crossing(P100, 10 * GB, 100 * GB), (None, Option::None));
        // Quota cut below the usage: alert at once.
        assert_eq!(crossing(None, 10 * GB, 5 * GB), (P100, Some(P100)));
    }

    #[test]
    fn serde_as_percent() {
        for level in Level::ALL {
            let json = serde_json::to_value(level).unwrap();
            assert_eq!(json, serde_json::json!(level.percent()));
            assert_eq!(serde_json::from_value::<Level>(json).unwrap(), level);
            assert_eq!(Level::try_from(level.percent()), Ok(level));
        }
        assert!(serde_json::from_value::<Level>(serde_json::json!(90)).is_err());
        assert!(serde_json::from_value::<Level>(serde_json::json!("80")).is_err());
        assert_eq!(
            Level::try_from(50).unwrap_err().to_string(),
            "unknown quota level \"50\""
        );
        assert!(None < P80 && P80 < P95 && P95 < P100);
        assert_eq!(Level::default(), None);
    }

    proptest! {
        #[test]
        fn alerts_only_on_upward_crossings_and_once_until_rearmed(
            quota in 1u64..2_000,
            walk in proptest::collection::vec(0u64..2_500, 1..60),
        ) {
            let mut stored = None;
            // For each level, whether an alert about it was sent and the
            // level has not fallen below it since.
            let mut armed = [true; 4];
            for used in walk {
                let before = stored;
                let (level, alert) = crossing(stored, used, quota);
                prop_assert_eq!(level, level_for(used, quota));
                if let Some(alerted) = alert {
                    prop_assert!(alerted > before, "alert without an upward crossing");
                    prop_assert_eq!(alerted, level, "not the highest level crossed");
                    prop_assert!(armed[alerted as usize], "alerted twice without falling below");
                    armed[alerted as usize] = false;
                } else {
                    prop_assert!(level <= before, "upward crossing without an alert");
                }
                for l in Level::ALL {
                    if level < l {
                        armed[l as usize] = true;
                    }
                }
                stored = level;
            }
        }
    }
}
