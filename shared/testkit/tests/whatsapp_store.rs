//! The WhatsApp stores and number slots of the table, against the emulator:
//! the per-account bound, one claim per number across accounts, routing,
//! replacing and emptying slots, and deleting a store with its numbers.

use chrono::Utc;
use nuvem_aws::store::{CreateStoreError, PutNumberError, Store, StoreRecord, StoreWithNumbers};
use nuvem_domain::whatsapp::store::{MAX_STORES_PER_ACCOUNT, NumberStatus, Slot};
use nuvem_testkit::{TestStack, tenants};

use tenants::{whatsapp_number_record as number_in, whatsapp_store_record as store_of};

async fn fetch(store: &Store, s: &StoreRecord) -> StoreWithNumbers {
    store
        .get_whatsapp_store(&s.account_id, &s.id)
        .await
        .unwrap()
        .expect("the store")
}

#[tokio::test]
async fn stores_slots_and_number_claims() {
    let t = TestStack::new("wa-store").await;
    let db = Store::new(&t.sdk, t.table());
    let account = tenants::active_account(&db, 1_000, 0).await.id;
    let other = tenants::active_account(&db, 1_000, 0).await.id;

    // An account holds at most MAX_STORES_PER_ACCOUNT stores.
    let mut stores = Vec::new();
    for i in 0..MAX_STORES_PER_ACCOUNT {
        let s = store_of(&account, &format!("Loja {i}"));
        db.create_whatsapp_store(&s).await.unwrap().unwrap();
        stores.push(s);
    }
    let extra = store_of(&account, "Uma a mais");
    assert_eq!(
        db.create_whatsapp_store(&extra).await.unwrap(),
        Err(CreateStoreError::TooMany)
    );
    assert_eq!(
        db.create_whatsapp_store(&store_of("acc_nobody", "x"))
            .await
            .unwrap(),
        Err(CreateStoreError::NoAccount)
    );
    assert_eq!(
        db.list_whatsapp_stores(&account).await.unwrap().len(),
        MAX_STORES_PER_ACCOUNT
    );
    let mine = &stores[0];
    let theirs = store_of(&other, "Outra conta");
    db.create_whatsapp_store(&theirs).await.unwrap().unwrap();

    // A number is claimed by one slot; another slot of any account is refused.
    let first = number_in(mine, 1, "106540352242922");
    db.put_whatsapp_number(&first, None).await.unwrap().unwrap();
    assert_eq!(
        db.put_whatsapp_number(&number_in(&theirs, 1, "106540352242922"), None)
            .await
            .unwrap(),
        Err(PutNumberError::Claimed)
    );
    assert_eq!(
        db.put_whatsapp_number(&number_in(mine, 2, "106540352242922"), None)
            .await
            .unwrap(),
        Err(PutNumberError::Claimed)
    );
    // A slot of a store that does not exist (or of another account).
    let mut ghost = number_in(&theirs, 2, "999");
    ghost.account_id = account.clone();
    assert_eq!(
        db.put_whatsapp_number(&ghost, None).await.unwrap(),
        Err(PutNumberError::NoStore)
    );
    // Saving the same number in its own slot again (a new token) is fine.
    let mut again = first.clone();
    again.sealed_token = "sealed-again".into();
    db.put_whatsapp_number(&again, Some(&first))
        .await
        .unwrap()
        .unwrap();
    // A stale read of the slot is refused, not overwritten.
    assert_eq!(
        db.put_whatsapp_number(&number_in(mine, 1, "555"), None)
            .await
            .unwrap(),
        Err(PutNumberError::Conflict)
    );

    let route = db.whatsapp_route("106540352242922").await.unwrap().unwrap();
    assert_eq!(
        (route.account_id.as_str(), route.store_id.as_str()),
        (account.as_str(), mine.id.as_str())
    );
    let read = fetch(&db, mine).await;
    assert_eq!(read.numbers.len(), 1);
    assert_eq!(read.numbers[0].sealed_token, "sealed-again");

    // Replacing the slot's number releases the old one.
    let second = number_in(mine, 1, "200");
    db.put_whatsapp_number(&second, Some(&again))
        .await
        .unwrap()
        .unwrap();
    assert!(
        db.whatsapp_route("106540352242922")
            .await
            .unwrap()
            .is_none()
    );
    db.put_whatsapp_number(&number_in(&theirs, 1, "106540352242922"), None)
        .await
        .unwrap()
        .unwrap();

    // Status: recorded with Meta's error, then cleared; a check made from
    // a stale read of the slot is refused.
    let now = Utc::now();
    assert!(
        db.record_number_check(&second, &NumberStatus::error(190, "expired"), None, now)
            .await
            .unwrap()
    );
    let slot = db
        .get_whatsapp_number(&account, &mine.id, Slot::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slot.status, NumberStatus::error(190, "expired"));
    assert!(
        !db.record_number_check(&second, &NumberStatus::Connected, None, now)
            .await
            .unwrap(),
        "read as unchecked, but it is in error by now"
    );
    assert!(
        db.record_number_check(&slot, &NumberStatus::Connected, None, now)
            .await
            .unwrap()
    );
    let slot = db
        .get_whatsapp_number(&account, &mine.id, Slot::new(1).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slot.status, NumberStatus::Connected);

    // Emptying a slot stops routing at once.
    db.put_whatsapp_number(&number_in(mine, 3, "300"), None)
        .await
        .unwrap()
        .unwrap();
    let read = fetch(&db, mine).await;
    assert_eq!(
        read.numbers
            .iter()
            .map(|n| n.slot.get())
            .collect::<Vec<_>>(),
        vec![1, 3]
    );
    assert!(db.delete_whatsapp_number(&read.numbers[1]).await.unwrap());
    assert!(db.whatsapp_route("300").await.unwrap().is_none());
    assert!(!db.delete_whatsapp_number(&read.numbers[1]).await.unwrap());

    // Deleting a store releases its numbers and makes room for another.
    assert!(db.delete_whatsapp_store(&account, &mine.id).await.unwrap());
    assert!(db.whatsapp_route("200").await.unwrap().is_none());
    assert!(!db.delete_whatsapp_store(&account, &mine.id).await.unwrap());
    assert!(
        !db.delete_whatsapp_store(&account, &theirs.id)
            .await
            .unwrap(),
        "another account's store is not found"
    );
    db.create_whatsapp_store(&extra).await.unwrap().unwrap();
}
