//! Claims of at-least-once consumers against the emulator: what each kind
//! of repeat finds (`nuvem_aws::idempotency`).

use chrono::{Duration, Utc};
use nuvem_aws::idempotency::{Claim, Delivery};
use nuvem_aws::store::Store;
use nuvem_testkit::TestStack;

fn message(message_id: &str, receive_count: u32) -> Option<Delivery<'_>> {
    Some(Delivery {
        message_id,
        receive_count,
    })
}

/// The repeats of one piece of work, in the order a queue can hand them out:
/// a copy in another message is acknowledged, a copy of the same receive is
/// busy, the holder's message received again takes over, and once done
/// every repeat is done.
#[tokio::test]
async fn each_repeat_of_a_claimed_effect_finds_what_it_should() {
    let t = TestStack::new("claims").await;
    let store = Store::new(&t.sdk, t.table());
    let now = Utc::now();
    let claim = |delivery| store.claim("tests", "evt_1", 60, now, delivery);

    assert_eq!(claim(message("m1", 1)).await.unwrap(), Claim::Acquired);
    // The outbox relay's copy of the same event, while m1 is at work.
    assert_eq!(
        claim(message("m2", 1)).await.unwrap(),
        Claim::HeldByAnotherMessage
    );
    // m1 handed out twice at once (a standard queue may): still busy.
    assert_eq!(claim(message("m1", 1)).await.unwrap(), Claim::Busy);
    // A claim without a message waits for the lease.
    assert_eq!(claim(None).await.unwrap(), Claim::Busy);
    // m1 back after its visibility timeout: the holder's invocation is over.
    assert_eq!(claim(message("m1", 2)).await.unwrap(), Claim::Acquired);
    // ... and the copy of that receive does not take it again.
    assert_eq!(claim(message("m1", 2)).await.unwrap(), Claim::Busy);

    store.finish("tests", "evt_1").await.unwrap();
    for delivery in [message("m1", 3), message("m2", 2), None] {
        assert_eq!(claim(delivery).await.unwrap(), Claim::Done);
    }
}

/// A claim whose lease ran out is taken by whoever comes next, with or
/// without a message; a released claim too.
#[tokio::test]
async fn an_expired_or_released_claim_is_taken_by_the_next_delivery() {
    let t = TestStack::new("claims-lease").await;
    let store = Store::new(&t.sdk, t.table());
    let then = Utc::now() - Duration::seconds(120);
    let now = Utc::now();
    assert_eq!(
        store
            .claim("tests", "evt_2", 60, then, message("m1", 1))
            .await
            .unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store
            .claim("tests", "evt_2", 60, now, message("m2", 1))
            .await
            .unwrap(),
        Claim::Acquired
    );
    store.release("tests", "evt_2").await.unwrap();
    assert_eq!(
        store.claim("tests", "evt_2", 60, now, None).await.unwrap(),
        Claim::Acquired
    );
}
