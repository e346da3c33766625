//! `src/db/schema.rs` says what the migrations make: on a fresh database of each backend,
//! after every migration, the tables, their columns in order, each column's type and
//! whether it may be NULL are those of the `table!` definitions. A migration written
//! without its `schema.rs` change (or the reverse) compiles, and fails here.
//!
//! The definitions are read from the source text, so a new table needs no edit here.

use diesel::pg::PgConnection;
use diesel::sql_types::{Integer, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use mrmat_api::Settings;
use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::db::sqlite_connection;
use mrmat_api_testkit::{Backend, TestDb, backend_tests};

const SCHEMA: &str = include_str!("../../src/db/schema.rs");

/// A column as `schema.rs` declares it, or as the database reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    name: String,
    /// The Diesel SQL type, without `Nullable<...>`.
    sql_type: String,
    nullable: bool,
}

/// The tables of `schema.rs`, each with its columns in order.
fn declared() -> Vec<(String, Vec<Column>)> {
    let mut tables = Vec::new();
    let mut current: Option<(String, Vec<Column>)> = None;
    for line in SCHEMA.lines().map(str::trim) {
        if line.starts_with("///") {
            continue;
        }
        if let Some((name, rest)) = line.split_once(" (")
            && rest.ends_with(") {")
            && !name.contains(' ')
        {
            current = Some((name.to_owned(), Vec::new()));
        } else if let Some((name, sql_type)) = line.split_once(" -> ") {
            let sql_type = sql_type.trim_end_matches(',');
            let (sql_type, nullable) = match sql_type
                .strip_prefix("Nullable<")
                .and_then(|t| t.strip_suffix('>'))
            {
                Some(inner) => (inner, true),
                None => (sql_type, false),
            };
            if let Some((_, columns)) = current.as_mut() {
                columns.push(Column {
                    name: name.to_owned(),
                    sql_type: sql_type.to_owned(),
                    nullable,
                });
            }
        } else if line == "}"
            && let Some(table) = current.take()
        {
            tables.push(table);
        }
    }
    assert!(!tables.is_empty(), "no table! found in schema.rs");
    tables.sort();
    tables
}

/// The Diesel type a column of `declared_type` (as the database names it) reads as.
fn diesel_type(backend: Backend, declared_type: &str) -> String {
    let declared_type = declared_type.to_ascii_lowercase();
    let name = match (backend, declared_type.as_str()) {
        // SQLite: an INTEGER PRIMARY KEY is the 64-bit rowid, and integers are 64-bit.
        (Backend::Sqlite, "integer" | "bigint") => "BigInt",
        (Backend::Postgres, "bigint") => "BigInt",
        (Backend::Postgres, "integer") => "Integer",
        (_, "text") => "Text",
        (Backend::Sqlite, "timestamp") | (Backend::Postgres, "timestamp without time zone") => {
            "Timestamp"
        }
        (Backend::Sqlite, "boolean") | (Backend::Postgres, "boolean") => "Bool",
        _ => panic!("no Diesel type known here for the column type {declared_type:?}: add it"),
    };
    name.to_owned()
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text, column_name = type_)]
    declared: String,
    #[diesel(sql_type = Integer)]
    notnull: i32,
    #[diesel(sql_type = Integer)]
    pk: i32,
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// The tables the migrations made, each with its columns in order.
fn migrated(backend: Backend, db: &TestDb) -> Vec<(String, Vec<Column>)> {
    let mut tables = match &db.url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlite_connection(path);
            let names: Vec<Name> = diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__diesel%'",
            )
            .load(&mut conn)
            .unwrap();
            names
                .into_iter()
                .map(|table| {
                    // `type` is a keyword in Rust: the query renames it.
                    let columns: Vec<SqliteColumn> = diesel::sql_query(format!(
                        "SELECT name, type AS type_, \"notnull\", pk FROM pragma_table_info('{}') ORDER BY cid",
                        table.name
                    ))
                    .load(&mut conn)
                    .unwrap();
                    let columns = columns
                        .into_iter()
                        .map(|c| Column {
                            sql_type: diesel_type(backend, &c.declared),
                            name: c.name,
                            // A primary key is never NULL, whatever the pragma says.
                            nullable: c.notnull == 0 && c.pk == 0,
                        })
                        .collect();
                    (table.name, columns)
                })
                .collect::<Vec<_>>()
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = PgConnection::establish(url.expose()).unwrap();
            let rows: Vec<PgColumn> = diesel::sql_query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
                 FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name NOT LIKE '__diesel%' \
                 ORDER BY table_name, ordinal_position",
            )
            .load(&mut conn)
            .unwrap();
            let mut tables: Vec<(String, Vec<Column>)> = Vec::new();
            for row in rows {
                let column = Column {
                    name: row.column_name,
                    sql_type: diesel_type(backend, &row.data_type),
                    nullable: row.is_nullable == "YES",
                };
                match tables.last_mut() {
                    Some((table, columns)) if *table == row.table_name => columns.push(column),
                    _ => tables.push((row.table_name, vec![column])),
                }
            }
            tables
        }
    };
    tables.sort();
    tables
}

backend_tests! {
    async fn schema_rs_matches_what_the_migrations_create(backend) {
        let db = TestDb::new(backend);
        mrmat_api::migrate(&Settings::with_database(db.url.clone())).unwrap();
        assert_eq!(migrated(backend, &db), declared());
    }
}

#[test]
fn the_schema_text_is_read_whole() {
    let tables = declared();
    let names: Vec<&str> = tables.iter().map(|(name, _)| name.as_str()).collect();
    assert!(
        names.contains(&"owners") && names.contains(&"resources"),
        "{names:?}"
    );
    let owners = &tables.iter().find(|(name, _)| name == "owners").unwrap().1;
    assert!(owners.iter().any(|c| c.name == "issuer" && c.nullable));
}
