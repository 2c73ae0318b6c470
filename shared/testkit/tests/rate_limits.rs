//! Rate limits against the emulator, at chosen instants: a sliding window
//! refuses a burst that straddles a window's boundary, and lets the
//! previous window's attempts go as it slides past them.

use chrono::{DateTime, TimeZone, Utc};
use nuvem_aws::store::Store;
use nuvem_testkit::TestStack;

const HOUR: i64 = 3600;

/// `seconds` into an hour-long window.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_002_000 / HOUR * HOUR + seconds, 0)
        .unwrap()
}

#[tokio::test]
async fn a_sliding_limit_holds_across_a_window_boundary() {
    let t = TestStack::new("rate").await;
    let db = Store::new(&t.sdk, t.table());
    let take = |subject: &'static str, now| {
        let db = db.clone();
        async move {
            db.take_sliding_rate_slot("signup", subject, 4, HOUR, now)
                .await
                .unwrap()
        }
    };

    // Four at the end of one window, then the boundary passes: refused, as
    // a limit per clock hour would not.
    for _ in 0..4 {
        assert!(take("a", at(HOUR - 2)).await);
    }
    assert!(!take("a", at(HOUR - 1)).await);
    assert!(!take("a", at(HOUR + 1)).await);
    // Halfway into the next window, half of the previous one's four still
    // count: two more go.
    assert!(take("a", at(HOUR + HOUR / 2)).await);
    assert!(take("a", at(HOUR + HOUR / 2)).await);
    assert!(!take("a", at(HOUR + HOUR / 2)).await);
    // Three quarters in, a quarter of them (rounded up: one) and this
    // window's two count: one more goes.
    assert!(take("a", at(HOUR + 3 * HOUR / 4)).await);
    assert!(!take("a", at(HOUR + 3 * HOUR / 4)).await);

    // Subjects are counted apart; a quiet previous window carries nothing.
    for _ in 0..4 {
        assert!(take("b", at(HOUR + 10)).await);
    }
    assert!(!take("b", at(HOUR + 11)).await);
}
