//! Owners keyed by (issuer, subject), and owner rows without an issuer (from the release
//! before owners had one) living beside them during a rolling upgrade.

use std::sync::Barrier;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use mrmat_api_testkit::{TestDb, backend_tests};

use super::*;
use crate::db::owned::{OwnerIdentity, OwnerOnly};
use crate::db::testing::{connect, insert_resource, legacy_insert, legacy_lookup, migrated};
use crate::db::transaction;

const PRIMARY: &str = "https://primary.example";
const OTHER: &str = "https://other.example";

fn identity<'a>(issuer: &'a str, subject: &'a str) -> OwnerIdentity<'a> {
    OwnerIdentity {
        issuer,
        subject,
        client_id: "cli",
        name: subject,
        adopt_legacy: issuer == PRIMARY,
    }
}

/// Each owner row of `subject`: its id and issuer.
fn owner_rows(conn: &mut DbConnection, subject: &str) -> Vec<(i64, Option<String>)> {
    owners::table
        .filter(owners::subject.eq(subject))
        .select((owners::id, owners::issuer))
        .order(owners::id)
        .load(conn)
        .unwrap()
}

fn is_unique_violation(result: &QueryResult<i64>) -> bool {
    matches!(
        result,
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

/// The value of an owner's write, which must have been made.
fn done<T>(result: Result<OwnerOnly<T>, StoreError>) -> T {
    match result.unwrap() {
        OwnerOnly::Done(value) => value,
        OwnerOnly::NotOwner => panic!("refused as not the owner"),
    }
}

/// Runs `work` on `n` threads at once, each with a connection of its own.
fn at_once<T: Send>(
    db: &TestDb,
    n: usize,
    work: impl Fn(&mut DbConnection, usize) -> T + Sync,
) -> Vec<T> {
    let start = Barrier::new(n);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    let mut conn = connect(db);
                    start.wait();
                    work(&mut conn, i)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

backend_tests! {
    async fn one_subject_of_two_issuers_is_two_owners_who_cannot_touch_each_others_resources(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let primary = identity(PRIMARY, "alice");
        let other = identity(OTHER, "alice");
        let (mine, my_owner) = create(&mut conn, Deadline::NONE, &primary, "note").unwrap();
        // The same name is no conflict: another owner has it.
        let (theirs, their_owner) = create(&mut conn, Deadline::NONE, &other, "note").unwrap();
        assert_ne!(my_owner.id, their_owner.id);
        assert_eq!(
            owner_rows(&mut conn, "alice"),
            vec![
                (my_owner.id, Some(PRIMARY.to_owned())),
                (their_owner.id, Some(OTHER.to_owned()))
            ]
        );
        assert!(matches!(update(&mut conn, Deadline::NONE, &other, mine.id, "taken"), Ok(OwnerOnly::NotOwner)));
        assert!(matches!(delete(&mut conn, Deadline::NONE, &other, mine.id), Ok(OwnerOnly::NotOwner)));
        assert!(matches!(update(&mut conn, Deadline::NONE, &primary, theirs.id, "taken"), Ok(OwnerOnly::NotOwner)));
        assert!(matches!(delete(&mut conn, Deadline::NONE, &primary, theirs.id), Ok(OwnerOnly::NotOwner)));
        assert_eq!(get(&mut conn, mine.id).unwrap().0.name, "note");
        assert_eq!(get(&mut conn, theirs.id).unwrap().0.name, "note");
        // Each still changes its own, and a second write finds its owner again.
        assert_eq!(done(update(&mut conn, Deadline::NONE, &other, theirs.id, "renamed")).1.id, their_owner.id);
        assert_eq!(create(&mut conn, Deadline::NONE, &primary, "second").unwrap().1.id, my_owner.id);
        done(delete(&mut conn, Deadline::NONE, &primary, mine.id));
        assert_eq!(owner_rows(&mut conn, "alice").len(), 2);
    }

    async fn a_legacy_owner_is_adopted_by_the_primary_providers_identity_and_keeps_its_resources(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let legacy = legacy_insert(&mut conn, "alice").unwrap();
        let old = insert_resource(&mut conn, legacy, "old note");
        let alice = identity(PRIMARY, "alice");
        // Before adopting it, the legacy row is already alice's to change.
        let (renamed, owner) = done(update(&mut conn, Deadline::NONE, &alice, old, "old note, renamed"));
        assert_eq!((renamed.owner_id, owner.id), (legacy, legacy));
        // The first write that needs an owner adopts the row: same id, now with an issuer.
        let (created, owner) = create(&mut conn, Deadline::NONE, &alice, "new note").unwrap();
        assert_eq!(owner.id, legacy);
        assert_eq!(created.owner_id, legacy);
        assert_eq!(owner_rows(&mut conn, "alice"), vec![(legacy, Some(PRIMARY.to_owned()))]);
        assert_eq!(get(&mut conn, old).unwrap().1.id, legacy);
        // The name owners show follows the latest token, as before.
        let renamed_alice = OwnerIdentity { name: "Alice A.", ..alice.clone() };
        assert_eq!(create(&mut conn, Deadline::NONE, &renamed_alice, "third").unwrap().1.name, "Alice A.");
        done(delete(&mut conn, Deadline::NONE, &alice, old));
    }

    async fn another_providers_namesake_neither_adopts_nor_touches_a_legacy_owner(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let legacy = legacy_insert(&mut conn, "alice").unwrap();
        let old = insert_resource(&mut conn, legacy, "note");
        let namesake = identity(OTHER, "alice");
        assert!(matches!(update(&mut conn, Deadline::NONE, &namesake, old, "mine now"), Ok(OwnerOnly::NotOwner)));
        assert!(matches!(delete(&mut conn, Deadline::NONE, &namesake, old), Ok(OwnerOnly::NotOwner)));
        let (_, owner) = create(&mut conn, Deadline::NONE, &namesake, "note").unwrap();
        assert_ne!(owner.id, legacy);
        assert_eq!(
            owner_rows(&mut conn, "alice"),
            vec![(legacy, None), (owner.id, Some(OTHER.to_owned()))]
        );
    }

    async fn a_legacy_row_written_after_the_identitys_own_stays_the_identitys(backend) {
        // An instance of the previous release that looked before the new code's first
        // write and inserted after it: two rows of one person. Neither is stranded.
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let alice = identity(PRIMARY, "alice");
        let (_, own) = create(&mut conn, Deadline::NONE, &alice, "new").unwrap();
        let legacy = legacy_insert(&mut conn, "alice").unwrap();
        let old = insert_resource(&mut conn, legacy, "old");
        assert_eq!(create(&mut conn, Deadline::NONE, &alice, "newer").unwrap().1.id, own.id);
        done(update(&mut conn, Deadline::NONE, &alice, old, "old, renamed"));
        done(delete(&mut conn, Deadline::NONE, &alice, old));
    }

    async fn the_previous_releases_owner_writes_still_work_and_still_collide_after_the_expand_migration(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let carol = legacy_insert(&mut conn, "carol").unwrap();
        assert_eq!(legacy_lookup(&mut conn, "carol").unwrap(), vec![carol]);
        assert!(is_unique_violation(&legacy_insert(&mut conn, "carol")));
        // Concurrent first writes of one subject: each looked and found nothing, each
        // inserts in a transaction of its own; the unique index lets one through.
        let results = at_once(&db, 8, |conn, _| {
            transaction::write(conn, Deadline::NONE, |conn| legacy_insert(conn, "dave"))
        });
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
        assert!(results.iter().filter(|r| r.is_err()).all(is_unique_violation), "{results:?}");
        // Once the new code adopted a row, the previous release still finds that one row.
        create(&mut conn, Deadline::NONE, &identity(PRIMARY, "carol"), "note").unwrap();
        assert_eq!(legacy_lookup(&mut conn, "carol").unwrap(), vec![carol]);
        assert!(is_unique_violation(&legacy_insert(&mut conn, "dave")));
    }

    async fn concurrent_first_writes_of_one_identity_make_one_owner(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let results = at_once(&db, 8, |conn, i| {
            create(conn, Deadline::NONE, &identity(OTHER, "erin"), &format!("note {i}")).map(|(_, owner)| owner.id)
        });
        let ids: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
        let rows = owner_rows(&mut conn, "erin");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(ids.iter().all(|id| *id == rows[0].0), "{ids:?} {rows:?}");
    }

    async fn concurrent_first_writes_of_the_primary_identity_adopt_its_legacy_owner_once(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let legacy = legacy_insert(&mut conn, "frank").unwrap();
        let results = at_once(&db, 8, |conn, i| {
            create(conn, Deadline::NONE, &identity(PRIMARY, "frank"), &format!("note {i}")).map(|(_, owner)| owner.id)
        });
        let ids: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
        assert!(ids.iter().all(|id| *id == legacy), "{ids:?}");
        assert_eq!(owner_rows(&mut conn, "frank"), vec![(legacy, Some(PRIMARY.to_owned()))]);
    }
}

backend_tests! {
    async fn timestamps_read_back_exactly_as_they_were_written(backend) {
        let db = TestDb::new(backend);
        let mut conn = migrated(&db);
        let (made, _) = create(&mut conn, Deadline::NONE, &identity(PRIMARY, "alice"), "note").unwrap();
        done(update(&mut conn, Deadline::NONE, &identity(PRIMARY, "alice"), made.id, "renamed"));
        let (read, _) = get(&mut conn, made.id).unwrap();
        assert_eq!(read.created_at, made.created_at);
        assert!(read.updated_at >= read.created_at);
        let listed = list(&mut conn, 0, 10, 0).unwrap();
        assert_eq!((listed[0].0.created_at, listed[0].0.updated_at), (read.created_at, read.updated_at));
    }
}

/// Text SQLite holds in a form Diesel does not write (by hand, or by SQLite's own date
/// functions) still reads: the hand-written reading gives way to Diesel's.
#[test]
fn sqlite_timestamps_written_in_other_forms_still_read() {
    let db = TestDb::new(mrmat_api_testkit::Backend::Sqlite);
    let mut conn = migrated(&db);
    let (made, _) = create(
        &mut conn,
        Deadline::NONE,
        &identity(PRIMARY, "alice"),
        "note",
    )
    .unwrap();
    let at = chrono::NaiveDate::from_ymd_opt(2026, 12, 7)
        .unwrap()
        .and_hms_opt(8, 43, 15)
        .unwrap();
    for value in [
        "'2026-12-07T08:43:15Z'",
        "'2026-12-07 08:43:15'",
        "'2026-12-07T08:43:15.000'",
        "datetime('2026-12-07 08:43:15')",
    ] {
        diesel::sql_query(format!(
            "UPDATE resources SET created_at = {value} WHERE id = {}",
            made.id
        ))
        .execute(&mut conn)
        .unwrap();
        assert_eq!(get(&mut conn, made.id).unwrap().0.created_at, at, "{value}");
    }
    diesel::sql_query(format!(
        "UPDATE resources SET created_at = julianday('2026-12-07 08:43:15') WHERE id = {}",
        made.id
    ))
    .execute(&mut conn)
    .unwrap();
    let read = get(&mut conn, made.id).unwrap().0.created_at;
    assert!((read - at).num_milliseconds().abs() < 5, "{read}");
}
