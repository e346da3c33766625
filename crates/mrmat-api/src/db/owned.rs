//! Owner-scoped tables: rows that belong to one owner (a row of `owners` per identity) and
//! carry a name unique per owner, like `resources`. What every such table shares lives
//! here once: the owner row and who is writing, the race-safe owner and name handling, and
//! [`owned_store!`], which writes a table's list, get, create, rename and delete.
//!
//! Every write is one transaction ([`transaction::write`]): the owner row and the owned
//! row land together or not at all, and a failed commit is an error, never a success. The
//! unique index, not a read-then-write check, decides which of two racing writes of one
//! name wins; the loser's transaction is rolled back and the holder of the name is looked
//! up afterwards, so the conflict can name it.
//!
//! An owner is keyed by (issuer, subject): `alice` of one provider is not `alice` of
//! another. Rows without an issuer were written before owners had one (or, during a
//! rolling upgrade, by an instance of that release); they belong to the provider that
//! release served, whose identities adopt them (see [`OwnerIdentity::adopt_legacy`]).
//!
//! Whether the caller may change a row is not decided here: a write of another owner's
//! row answers [`OwnerOnly::NotOwner`], what it found, and the API layer says 403.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::owners;
use super::transaction;
use super::{DbConnection, Deadline, StoreError};

/// The columns of `owners` an answer shows or a write checks. Not `created_at`: no answer
/// shows it, and reading a timestamp from SQLite means parsing text (a tenth of a list's
/// CPU went to parsing timestamps).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = owners)]
pub(crate) struct OwnerRow {
    /// Id.
    pub(crate) id: i64,
    /// The token subject this owner is (of its issuer, which no answer shows).
    pub(crate) subject: String,
    /// Client id seen on the owner's last write.
    pub(crate) client_id: String,
    /// Display name seen on the owner's last write.
    pub(crate) name: String,
}

/// Who is writing: what the token says about its holder.
#[derive(Debug, Clone)]
pub(crate) struct OwnerIdentity<'a> {
    /// The provider that vouches for the token; with the subject it keys the owner.
    pub(crate) issuer: &'a str,
    /// Token subject.
    pub(crate) subject: &'a str,
    /// Client the token was issued to.
    pub(crate) client_id: &'a str,
    /// Display name.
    pub(crate) name: &'a str,
    /// Whether an owner row of this subject without an issuer is this identity's, which
    /// it then adopts (sets its issuer) on its next write. Such rows come from the release
    /// before owners had an issuer, which served one provider: true only for identities of
    /// that provider, the server's primary (first configured) one. Another provider's
    /// `alice` must never inherit them.
    pub(crate) adopt_legacy: bool,
}

impl OwnerIdentity<'_> {
    /// Whether the owner row of `subject` and `issuer` (`None`: written without one) is
    /// this identity.
    pub(crate) fn is(&self, issuer: Option<&str>, subject: &str) -> bool {
        subject == self.subject
            && match issuer {
                Some(issuer) => issuer == self.issuer,
                None => self.adopt_legacy,
            }
    }
}

/// What a write that only the row's owner may make found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnerOnly<T> {
    /// The caller owns the row; the write was made.
    Done(T),
    /// The row belongs to another owner; nothing was written.
    NotOwner,
}

/// Why one attempt at a write did not commit.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// The name is taken; `owner_id` is whose.
    NameTaken {
        /// The owner whose name it is.
        owner_id: i64,
    },
    /// A concurrent first write of the same identity created (or adopted) its owner row
    /// first.
    OwnerRace,
    /// Anything else ends the write.
    Failed(StoreError),
}

impl From<DieselError> for Attempt {
    fn from(error: DieselError) -> Self {
        Self::Failed(error.into())
    }
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Self::Failed(error)
    }
}

/// Now, at the microsecond precision both backends store, so what is returned on create
/// equals what is read back later.
pub(crate) fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

fn is_unique_violation(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// A statement's `RETURNING id` gave no row: the database broke its promise.
pub(crate) fn no_id_returned() -> Attempt {
    Attempt::Failed(DieselError::NotFound.into())
}

/// The owner row for `who`, created on its first write (or adopted from a row without an
/// issuer, see [`OwnerIdentity::adopt_legacy`]) and kept current after. A concurrent first
/// write that got there first is [`Attempt::OwnerRace`]: the whole write runs again and
/// then finds the row, so one identity has one row.
pub(crate) fn ensure_owner(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
) -> Result<OwnerRow, Attempt> {
    // One query finds both the identity's own row and the legacy row it may adopt; each
    // partial unique index admits at most one of them.
    // Built per backend: `as_select` is of one backend.
    let found: Vec<(OwnerRow, Option<String>)> = if who.adopt_legacy {
        super::natively!(conn, |c| owners::table
            .filter(owners::subject.eq(who.subject))
            .filter(owners::issuer.eq(who.issuer).or(owners::issuer.is_null()))
            .select((OwnerRow::as_select(), owners::issuer))
            .load(c))?
    } else {
        super::natively!(conn, |c| owners::table
            .filter(owners::subject.eq(who.subject))
            .filter(owners::issuer.eq(who.issuer))
            .select((OwnerRow::as_select(), owners::issuer))
            .load(c))?
    };
    // The identity's own row wins over a legacy one: both exist when an instance of the
    // previous release inserted the legacy row after this identity's first write. That
    // row stays the identity's too (see `OwnerIdentity::is`), so no row is stranded.
    let own = found.iter().find(|(_, issuer)| issuer.is_some());
    let legacy = found.iter().find(|(_, issuer)| issuer.is_none());
    match (own, legacy) {
        (Some((owner, _)), _) => keep_current(conn, owner.clone(), who),
        (None, Some((owner, _))) => adopt(conn, owner.clone(), who),
        (None, None) => insert_owner(conn, who),
    }
}

/// `owner` with the name and client of `who`'s latest token.
fn keep_current(
    conn: &mut DbConnection,
    owner: OwnerRow,
    who: &OwnerIdentity<'_>,
) -> Result<OwnerRow, Attempt> {
    if owner.name == who.name && owner.client_id == who.client_id {
        return Ok(owner);
    }
    diesel::update(owners::table.find(owner.id))
        .set((
            owners::name.eq(who.name),
            owners::client_id.eq(who.client_id),
        ))
        .execute(conn)?;
    Ok(OwnerRow {
        name: who.name.to_owned(),
        client_id: who.client_id.to_owned(),
        ..owner
    })
}

/// Gives the legacy row `owner` (no issuer) `who`'s issuer, keeping its id and so its
/// rows.
fn adopt(
    conn: &mut DbConnection,
    owner: OwnerRow,
    who: &OwnerIdentity<'_>,
) -> Result<OwnerRow, Attempt> {
    // `issuer IS NULL` again in the update: a concurrent write that adopted it first
    // leaves nothing to update here (PostgreSQL re-reads the row once that write commits).
    let adopted = diesel::update(
        owners::table
            .find(owner.id)
            .filter(owners::issuer.is_null()),
    )
    .set((
        owners::issuer.eq(who.issuer),
        owners::name.eq(who.name),
        owners::client_id.eq(who.client_id),
    ))
    .execute(conn);
    match adopted {
        Ok(1) => Ok(OwnerRow {
            name: who.name.to_owned(),
            client_id: who.client_id.to_owned(),
            ..owner
        }),
        Ok(_) => Err(Attempt::OwnerRace),
        // A concurrent first write inserted the identity's own row meanwhile.
        Err(e) if is_unique_violation(&e) => Err(Attempt::OwnerRace),
        Err(e) => Err(e.into()),
    }
}

/// A new owner row for `who`; a concurrent first write of the same identity makes this one
/// collide on the unique index.
fn insert_owner(conn: &mut DbConnection, who: &OwnerIdentity<'_>) -> Result<OwnerRow, Attempt> {
    let inserted = diesel::insert_into(owners::table)
        .values((
            owners::issuer.eq(who.issuer),
            owners::subject.eq(who.subject),
            owners::client_id.eq(who.client_id),
            owners::name.eq(who.name),
            owners::created_at.eq(now()),
        ))
        .returning(owners::id)
        // Stepped to its end, so nothing of the statement is left pending.
        .get_results::<i64>(conn);
    match inserted {
        Ok(ids) => match ids.first() {
            Some(&id) => Ok(OwnerRow {
                id,
                subject: who.subject.to_owned(),
                client_id: who.client_id.to_owned(),
                name: who.name.to_owned(),
            }),
            None => Err(no_id_returned()),
        },
        Err(e) if is_unique_violation(&e) => Err(Attempt::OwnerRace),
        Err(e) => Err(e.into()),
    }
}

/// Attempts at a write that keeps losing races (to a vanished conflicting row, or to a
/// concurrent first write of the same owner).
const WRITE_ATTEMPTS: usize = 3;

/// Runs `write` in a transaction of its own until it commits. A taken name answers with
/// the id that holds it (`holder` looks it up: the id of `name` of an owner); when that
/// row vanished before it could be named, or the owner row was created concurrently, the
/// write runs again, so a race never ends in a 500.
pub(crate) fn write_unique_name<T>(
    conn: &mut DbConnection,
    deadline: Deadline,
    noun: &'static str,
    holder: impl Fn(&mut DbConnection, i64) -> Result<Option<i64>, StoreError>,
    mut write: impl FnMut(&mut DbConnection) -> Result<T, Attempt>,
) -> Result<T, StoreError> {
    for _ in 0..WRITE_ATTEMPTS {
        match transaction::write(conn, deadline, &mut write) {
            Ok(value) => return Ok(value),
            Err(Attempt::NameTaken { owner_id }) => {
                if let Some(existing_id) = holder(conn, owner_id)? {
                    return Err(StoreError::Duplicate { noun, existing_id });
                }
            }
            Err(Attempt::OwnerRace) => {}
            Err(Attempt::Failed(error)) => return Err(error),
        }
    }
    Err(StoreError::Contended)
}

/// A unique violation of the name is a taken name; anything else ends the attempt.
pub(crate) fn name_taken(owner_id: i64) -> impl Fn(DieselError) -> Attempt {
    move |error| {
        if is_unique_violation(&error) {
            Attempt::NameTaken { owner_id }
        } else {
            error.into()
        }
    }
}

/// Writes the functions of an owner-scoped table of the shape `resources` has: `id`,
/// `owner_id -> owners`, `name` unique per owner, `created_at`, `updated_at` (see
/// `migrations/`). Invoked once in the table's own module, e.g.
/// `owned_store!(resources, "resource");`, it defines there:
/// `NOUN`, `Row`, `WithOwner`, the [`Work`](super::Work)s `LIST`, `GET`, `CREATE`,
/// `UPDATE`, `DELETE`, and `list`, `get`, `create`, `update` (rename) and `delete`.
///
/// A macro, not generic functions: Diesel's query types are per table, and bounds that
/// span tables on a connection of two backends cost more to read than this does.
macro_rules! owned_store {
    ($table:ident, $noun:literal) => {
        use diesel::prelude::*;

        use $crate::db::owned::{
            Attempt, OwnerIdentity, OwnerOnly, OwnerRow, name_taken, no_id_returned, now,
        };
        use $crate::db::schema::{owners, $table};
        use $crate::db::{DbConnection, Deadline, StoreError, Work, transaction};

        /// What one row is, in messages: `no <NOUN> with id 7`.
        pub(crate) const NOUN: &str = $noun;

        /// A row of the table. Every column, as `Selectable` reads it, used or not.
        #[allow(dead_code)]
        #[derive(Debug, Clone, Queryable, Selectable)]
        #[diesel(table_name = $table)]
        pub(crate) struct Row {
            /// Id.
            pub(crate) id: i64,
            /// Owner id.
            pub(crate) owner_id: i64,
            /// Name, unique per owner.
            pub(crate) name: String,
            /// Creation time (UTC).
            #[diesel(deserialize_as = $crate::db::stamp::Stamp)]
            pub(crate) created_at: chrono::NaiveDateTime,
            /// Last change (UTC).
            #[diesel(deserialize_as = $crate::db::stamp::Stamp)]
            pub(crate) updated_at: chrono::NaiveDateTime,
        }

        /// A row joined with its owner.
        pub(crate) type WithOwner = (Row, OwnerRow);

        /// [`list`] as [`Db::run`]($crate::db::Db::run) runs and traces it.
        pub(crate) const LIST: Work = Work::read("SELECT", stringify!($table));
        /// [`get`], likewise.
        pub(crate) const GET: Work = Work::read("SELECT", stringify!($table));
        /// [`create`], likewise.
        pub(crate) const CREATE: Work = Work::write("INSERT", stringify!($table));
        /// [`update`], likewise.
        pub(crate) const UPDATE: Work = Work::write("UPDATE", stringify!($table));
        /// [`delete`], likewise.
        pub(crate) const DELETE: Work = Work::write("DELETE", stringify!($table));

        /// One page of all rows, ordered by id: at most `limit` rows with an id above
        /// `after`, skipping `offset` of them.
        pub(crate) fn list(
            conn: &mut DbConnection,
            after: i64,
            limit: i64,
            offset: i64,
        ) -> Result<Vec<WithOwner>, StoreError> {
            // Built per backend: `as_select` is of one backend.
            Ok($crate::db::natively!(conn, |c| $table::table
                .inner_join(owners::table)
                .filter($table::id.gt(after))
                .select((Row::as_select(), OwnerRow::as_select()))
                .order($table::id.asc())
                .limit(limit)
                .offset(offset)
                .load(c))?)
        }

        /// The row with `id`.
        pub(crate) fn get(conn: &mut DbConnection, id: i64) -> Result<WithOwner, StoreError> {
            $crate::db::natively!(conn, |c| $table::table
                .inner_join(owners::table)
                .filter($table::id.eq(id))
                .select((Row::as_select(), OwnerRow::as_select()))
                .first(c))
            .optional()?
            .ok_or(StoreError::NotFound { noun: NOUN, id })
        }

        /// The row `id` with its owner, when `who` is that owner. The owner's issuer is
        /// read here only: lists and reads do not show it.
        fn owned_by(
            conn: &mut DbConnection,
            who: &OwnerIdentity<'_>,
            id: i64,
        ) -> Result<OwnerOnly<WithOwner>, StoreError> {
            let (row, owner, issuer) = $table::table
                .inner_join(owners::table)
                .filter($table::id.eq(id))
                .select((Row::as_select(), OwnerRow::as_select(), owners::issuer))
                .first::<(Row, OwnerRow, Option<String>)>(conn)
                .optional()?
                .ok_or(StoreError::NotFound { noun: NOUN, id })?;
            Ok(match who.is(issuer.as_deref(), &owner.subject) {
                true => OwnerOnly::Done((row, owner)),
                false => OwnerOnly::NotOwner,
            })
        }

        /// The id of the row `name` of the owner `owner_id`, if there is one.
        fn id_of_name(
            conn: &mut DbConnection,
            owner_id: i64,
            name: &str,
        ) -> Result<Option<i64>, StoreError> {
            Ok($table::table
                .filter($table::owner_id.eq(owner_id))
                .filter($table::name.eq(name))
                .select($table::id)
                .first(conn)
                .optional()?)
        }

        /// Creates a row named `name` for `who`.
        pub(crate) fn create(
            conn: &mut DbConnection,
            deadline: Deadline,
            who: &OwnerIdentity<'_>,
            name: &str,
        ) -> Result<WithOwner, StoreError> {
            let holder = |conn: &mut DbConnection, owner_id| id_of_name(conn, owner_id, name);
            $crate::db::owned::write_unique_name(conn, deadline, NOUN, holder, |conn| {
                let owner = $crate::db::owned::ensure_owner(conn, who)?;
                let at = now();
                let insert = diesel::insert_into($table::table)
                    .values((
                        $table::owner_id.eq(owner.id),
                        $table::name.eq(name),
                        $table::created_at.eq(at),
                        $table::updated_at.eq(at),
                    ))
                    .returning($table::id);
                // Stepped to its end, so nothing of the statement is left pending.
                let ids = $crate::db::natively!(conn, |c| insert.get_results::<i64>(c))
                    .map_err(name_taken(owner.id))?;
                let id = ids.first().copied().ok_or_else(no_id_returned)?;
                let row = Row {
                    id,
                    owner_id: owner.id,
                    name: name.to_owned(),
                    created_at: at,
                    updated_at: at,
                };
                Ok((row, owner))
            })
        }

        /// Renames the row `id`, when `who` owns it.
        pub(crate) fn update(
            conn: &mut DbConnection,
            deadline: Deadline,
            who: &OwnerIdentity<'_>,
            id: i64,
            name: &str,
        ) -> Result<OwnerOnly<WithOwner>, StoreError> {
            let holder = |conn: &mut DbConnection, owner_id| id_of_name(conn, owner_id, name);
            $crate::db::owned::write_unique_name(conn, deadline, NOUN, holder, |conn| {
                // Another owner's row: nothing is written, so the (empty) transaction
                // commits, and the caller hears what was found.
                let OwnerOnly::Done((current, owner)) = owned_by(conn, who, id)? else {
                    return Ok(OwnerOnly::NotOwner);
                };
                // `updated_at` never goes back, even if the clock does.
                let at = now().max(current.updated_at);
                let updated = diesel::update($table::table.find(id))
                    .set(($table::name.eq(name), $table::updated_at.eq(at)))
                    .execute(conn)
                    .map_err(name_taken(owner.id))?;
                if updated == 0 {
                    return Err(Attempt::Failed(StoreError::NotFound { noun: NOUN, id }));
                }
                let row = Row {
                    name: name.to_owned(),
                    updated_at: at,
                    ..current
                };
                Ok(OwnerOnly::Done((row, owner)))
            })
        }

        /// Deletes the row `id`, when `who` owns it.
        pub(crate) fn delete(
            conn: &mut DbConnection,
            deadline: Deadline,
            who: &OwnerIdentity<'_>,
            id: i64,
        ) -> Result<OwnerOnly<()>, StoreError> {
            transaction::write(conn, deadline, |conn| {
                if matches!(owned_by(conn, who, id)?, OwnerOnly::NotOwner) {
                    return Ok(OwnerOnly::NotOwner);
                }
                match diesel::delete($table::table.find(id)).execute(conn)? {
                    0 => Err(StoreError::NotFound { noun: NOUN, id }),
                    _ => Ok(OwnerOnly::Done(())),
                }
            })
        }
    };
}

pub(crate) use owned_store;
