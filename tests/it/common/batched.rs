//! The batched store questions (`Store::get_many`, `Store::exists_all`), checked the same way
//! on every backend.

use bytes::Bytes;
use pubdeck::store::{Store, StoreError};

/// Each key gets its own answer, in its place; `exists_all` is true only when every key is
/// there; a string that is not a key is refused, not looked up.
pub async fn every_key_gets_its_own_answer(store: &Store) {
    for (k, v) in [("a.narinfo", "A"), ("b.narinfo", "B")] {
        store
            .put_if_absent(k, Bytes::from(v.as_bytes().to_vec()))
            .await
            .unwrap();
    }
    let keys: Vec<String> = ["a.narinfo", "missing.narinfo", "b.narinfo"]
        .map(String::from)
        .to_vec();
    let got = store.get_many(&keys).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().unwrap(), &Bytes::from_static(b"A"));
    assert!(
        matches!(got[1], Err(StoreError::NotFound { .. })),
        "{:?}",
        got[1]
    );
    assert_eq!(got[2].as_ref().unwrap(), &Bytes::from_static(b"B"));
    let bad = store
        .get_many(&["a.narinfo".into(), "../escape".into()])
        .await;
    assert!(bad[0].is_ok() && bad[1].is_err(), "{bad:?}");

    let present = [keys[0].clone(), keys[2].clone()];
    assert!(store.exists_all(&present).await.unwrap());
    assert!(!store.exists_all(&keys).await.unwrap());
    assert!(store.exists_all(&[]).await.unwrap());
    assert!(store.exists_all(&["../escape".into()]).await.is_err());
}
