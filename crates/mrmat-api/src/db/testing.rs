//! For the database layer's own tests: a fresh database per test from the testkit, on
//! SQLite and on PostgreSQL (when `MRMAT_TEST_POSTGRES_URL` is set), reached through this
//! crate's connection type, and the owner rows the release before owners had an issuer
//! wrote. The tests sit here, not behind HTTP, because one test provider cannot issue
//! tokens of two issuers.

use std::time::Duration;

use diesel::prelude::*;
use mrmat_api_testkit::TestDb;

use super::schema::{owners, resources};
use super::{DbConnection, establish, migrate};
use crate::settings::DatabaseUrl;

/// A connection of its own to `db`; a SQLite one waits up to ten seconds for a lock.
pub(crate) fn connect(db: &TestDb) -> DbConnection {
    let url = DatabaseUrl::parse(&db.url_string()).unwrap();
    establish(&url, Duration::from_secs(10)).unwrap()
}

/// A connection to `db` with every migration applied.
pub(crate) fn migrated(db: &TestDb) -> DbConnection {
    let mut conn = connect(db);
    migrate::run_pending(&mut conn).unwrap();
    conn
}

pub(crate) use super::owned::now;

/// A resource of the owner `owner_id`, inserted as the releases before this one wrote it:
/// one statement, no transaction of its own.
pub(crate) fn insert_resource(conn: &mut DbConnection, owner_id: i64, name: &str) -> i64 {
    let at = now();
    diesel::insert_into(resources::table)
        .values((
            resources::owner_id.eq(owner_id),
            resources::name.eq(name),
            resources::created_at.eq(at),
            resources::updated_at.eq(at),
        ))
        .returning(resources::id)
        .get_result(conn)
        .unwrap()
}

/// The owner insert of the release before owners had an issuer, statement for statement:
/// no `issuer` column, so the row has none.
pub(crate) fn legacy_insert(conn: &mut DbConnection, subject: &str) -> QueryResult<i64> {
    diesel::insert_into(owners::table)
        .values((
            owners::subject.eq(subject),
            owners::client_id.eq("legacy-cli"),
            owners::name.eq(subject),
            owners::created_at.eq(now()),
        ))
        .returning(owners::id)
        .get_result(conn)
}

/// That release's owner lookup: by subject alone.
pub(crate) fn legacy_lookup(conn: &mut DbConnection, subject: &str) -> QueryResult<Vec<i64>> {
    owners::table
        .filter(owners::subject.eq(subject))
        .select(owners::id)
        .load(conn)
}
