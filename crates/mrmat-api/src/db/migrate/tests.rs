//! The migrations themselves: both backends have the same ones, and the expand step of
//! owners keyed by issuer keeps the data it finds and can be taken back.

use std::collections::BTreeSet;
use std::path::Path;

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::MigrationHarness;
use mrmat_api_testkit::{TestDb, backend_tests};

use super::*;
use crate::db::schema::{owners, resources};
use crate::db::testing::{connect, insert_resource, legacy_insert, now};

/// The migration that added `owners.issuer`.
const OWNER_ISSUER: &str = "20261210000000";

/// Each migration directory of a backend, with the files in it.
fn migrations(backend: &str) -> BTreeSet<(String, Vec<String>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let mut files: Vec<String> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            (entry.file_name().to_string_lossy().into_owned(), files)
        })
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations_each_with_up_and_down() {
    let sqlite = migrations("sqlite");
    assert_eq!(sqlite, migrations("postgres"));
    for (name, files) in &sqlite {
        assert_eq!(files, &["down.sql", "up.sql"], "{name}");
    }
}

/// Reverts the latest applied migration; returns its version.
fn revert_last(conn: &mut DbConnection) -> Result<String, String> {
    let reverted = match conn {
        DbConnection::Postgres(c) => c.revert_last_migration(POSTGRES).map(|v| v.to_string()),
        DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE).map(|v| v.to_string()),
    };
    reverted.map_err(|e| e.to_string())
}

type Owner = (i64, String, String, String);
type Resource = (i64, i64, String);

/// Every owner and resource, by the columns every schema version has.
fn contents(conn: &mut DbConnection) -> (Vec<Owner>, Vec<Resource>) {
    let owners = owners::table
        .select((owners::id, owners::subject, owners::client_id, owners::name))
        .order(owners::id)
        .load(conn)
        .unwrap();
    let resources = resources::table
        .select((resources::id, resources::owner_id, resources::name))
        .order(resources::id)
        .load(conn)
        .unwrap();
    (owners, resources)
}

fn has_issuer_column(conn: &mut DbConnection) -> bool {
    diesel::sql_query("SELECT issuer FROM owners")
        .execute(conn)
        .is_ok()
}

fn unique_violation<T: std::fmt::Debug>(result: QueryResult<T>) -> bool {
    matches!(
        result,
        Err(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            _
        ))
    )
}

backend_tests! {
    async fn the_owner_issuer_migration_keeps_existing_rows_and_ids_and_its_down_migration_reverses_it(backend) {
        let db = TestDb::new(backend);
        let mut conn = connect(&db);
        run_pending(&mut conn).unwrap();
        // The database as the previous release left it, with data in it.
        assert_eq!(revert_last(&mut conn).unwrap(), OWNER_ISSUER);
        assert!(!has_issuer_column(&mut conn));
        let alice = legacy_insert(&mut conn, "alice").unwrap();
        let bob = legacy_insert(&mut conn, "client:bob").unwrap();
        insert_resource(&mut conn, alice, "a");
        insert_resource(&mut conn, bob, "b1");
        insert_resource(&mut conn, bob, "b2");
        let gone = insert_resource(&mut conn, bob, "deleted");
        diesel::delete(resources::table.find(gone)).execute(&mut conn).unwrap();
        let before = contents(&mut conn);

        assert_eq!(run_pending(&mut conn).unwrap(), vec![OWNER_ISSUER.to_owned()]);
        assert_eq!(contents(&mut conn), before);
        let issuers: Vec<Option<String>> = owners::table.select(owners::issuer).load(&mut conn).unwrap();
        assert_eq!(issuers, vec![None, None]);
        // A deleted id is still never handed out again (SQLite's AUTOINCREMENT counter was
        // carried over by the table rebuild).
        assert!(insert_resource(&mut conn, alice, "after") > gone);
        // Subjects are unique among rows without an issuer, as before.
        assert!(unique_violation(legacy_insert(&mut conn, "alice")));
        let with_issuer = diesel::insert_into(owners::table)
            .values((
                owners::issuer.eq("https://primary.example"),
                owners::subject.eq("alice"),
                owners::client_id.eq("cli"),
                owners::name.eq("alice"),
                owners::created_at.eq(now()),
            ))
            .returning(owners::id);
        let primary_alice: i64 = with_issuer.get_result(&mut conn).unwrap();
        assert!(unique_violation(with_issuer.get_result::<i64>(&mut conn)));
        diesel::delete(owners::table.find(primary_alice)).execute(&mut conn).unwrap();
        let after = contents(&mut conn);

        assert_eq!(revert_last(&mut conn).unwrap(), OWNER_ISSUER);
        assert!(!has_issuer_column(&mut conn));
        assert_eq!(contents(&mut conn), after);
        assert!(unique_violation(legacy_insert(&mut conn, "alice")));

        // Up again, and the resources still follow their owner: the foreign key names the
        // rebuilt table, cascade included.
        run_pending(&mut conn).unwrap();
        assert_eq!(contents(&mut conn), after);
        diesel::delete(owners::table.find(bob)).execute(&mut conn).unwrap();
        let left = resources::table.filter(resources::owner_id.eq(bob)).count().get_result::<i64>(&mut conn).unwrap();
        assert_eq!(left, 0);
        let orphan = diesel::insert_into(resources::table)
            .values((
                resources::owner_id.eq(bob),
                resources::name.eq("orphan"),
                resources::created_at.eq(now()),
                resources::updated_at.eq(now()),
            ))
            .execute(&mut conn);
        assert!(orphan.is_err(), "{orphan:?}");
    }

    async fn the_down_migration_refuses_to_merge_two_providers_owners_of_one_subject(backend) {
        let db = TestDb::new(backend);
        let mut conn = connect(&db);
        run_pending(&mut conn).unwrap();
        for issuer in ["https://a.example", "https://b.example"] {
            diesel::insert_into(owners::table)
                .values((
                    owners::issuer.eq(issuer),
                    owners::subject.eq("alice"),
                    owners::client_id.eq("cli"),
                    owners::name.eq("alice"),
                    owners::created_at.eq(now()),
                ))
                .execute(&mut conn)
                .unwrap();
        }
        let before = contents(&mut conn);
        assert!(revert_last(&mut conn).is_err());
        // Nothing of it happened: still migrated, both owners there.
        assert!(has_issuer_column(&mut conn));
        assert_eq!(contents(&mut conn), before);
        assert!(status(&mut conn).unwrap().pending.is_empty());
    }
}
