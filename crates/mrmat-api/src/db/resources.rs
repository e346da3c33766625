//! Owners and resources: plain functions of a connection, returning domain rows.
//!
//! Every write is one transaction ([`transaction::write`]): the owner row and the resource
//! land together or not at all, and a failed commit is an error, never a success. The
//! unique index, not a read-then-write check, decides which of two racing writes of one
//! name wins; the loser's transaction is rolled back and the holder of the name is looked
//! up afterwards, so the conflict can name it.
//!
//! An owner is keyed by (issuer, subject): `alice` of one provider is not `alice` of
//! another. Rows without an issuer were written before owners had one (or, during a
//! rolling upgrade, by an instance of that release); they belong to the provider that
//! release served, whose identities adopt them (see [`OwnerIdentity::adopt_legacy`]).

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::schema::{owners, resources};
use super::transaction;
use super::{DbConnection, DbFailure, Work};
use crate::error::ApiError;

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

/// A database row of `resources`. Every column, as `Selectable` reads it, used or not.
#[allow(dead_code)]
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = resources)]
pub(crate) struct ResourceRow {
    /// Id.
    pub(crate) id: i64,
    /// Owner id.
    pub(crate) owner_id: i64,
    /// Name, unique per owner.
    pub(crate) name: String,
    /// Creation time (UTC).
    pub(crate) created_at: NaiveDateTime,
    /// Last change (UTC).
    pub(crate) updated_at: NaiveDateTime,
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
    fn is(&self, issuer: Option<&str>, subject: &str) -> bool {
        subject == self.subject
            && match issuer {
                Some(issuer) => issuer == self.issuer,
                None => self.adopt_legacy,
            }
    }
}

/// Why a resource operation did not happen.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// No resource has that id.
    #[error("no resource with id {0}")]
    NotFound(i64),
    /// The caller does not own the resource.
    #[error("only the owner may change or delete resource {0}")]
    NotOwner(i64),
    /// The owner already has a resource of that name.
    #[error("you already have a resource with this name: id {existing_id}")]
    Duplicate {
        /// The resource that has the name.
        existing_id: i64,
    },
    /// The name kept conflicting with rows that vanished before they could be named.
    #[error("the name is being changed concurrently; retry")]
    Contended,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbFailure),
}

impl From<DieselError> for StoreError {
    fn from(error: DieselError) -> Self {
        Self::Database(DbFailure::from(error))
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => ApiError::NotFound(error.to_string()),
            StoreError::NotOwner(_) => ApiError::Forbidden(error.to_string()),
            StoreError::Duplicate { .. } | StoreError::Contended => {
                ApiError::Conflict(error.to_string())
            }
            StoreError::Database(failure) => failure.into(),
        }
    }
}

/// A resource joined with its owner.
pub(crate) type ResourceWithOwner = (ResourceRow, OwnerRow);

/// [`list`] as [`Db::run`](super::Db::run) runs and traces it.
pub(crate) const LIST: Work = Work::read("SELECT", "resources");
/// [`get`], likewise.
pub(crate) const GET: Work = Work::read("SELECT", "resources");
/// [`create`], likewise.
pub(crate) const CREATE: Work = Work::write("INSERT", "resources");
/// [`update`], likewise.
pub(crate) const UPDATE: Work = Work::write("UPDATE", "resources");
/// [`delete`], likewise.
pub(crate) const DELETE: Work = Work::write("DELETE", "resources");

/// Now, at the microsecond precision both backends store, so what is returned on create
/// equals what is read back later.
fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

fn is_unique_violation(error: &DieselError) -> bool {
    matches!(
        error,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// One page of all resources, ordered by id: at most `limit` rows with an id above
/// `after`, skipping `offset` of them.
pub(crate) fn list(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<ResourceWithOwner>, StoreError> {
    Ok(resources::table
        .inner_join(owners::table)
        .filter(resources::id.gt(after))
        .select((ResourceRow::as_select(), OwnerRow::as_select()))
        .order(resources::id.asc())
        .limit(limit)
        .offset(offset)
        .load(conn)?)
}

/// The resource with `id`.
pub(crate) fn get(conn: &mut DbConnection, id: i64) -> Result<ResourceWithOwner, StoreError> {
    resources::table
        .inner_join(owners::table)
        .filter(resources::id.eq(id))
        .select((ResourceRow::as_select(), OwnerRow::as_select()))
        .first(conn)
        .optional()?
        .ok_or(StoreError::NotFound(id))
}

/// Why one attempt at a write did not commit.
enum Attempt {
    /// The name is taken; `owner_id` is whose.
    NameTaken { owner_id: i64 },
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

/// The owner row for `who`, created on its first write (or adopted from a row without an
/// issuer, see [`OwnerIdentity::adopt_legacy`]) and kept current after. A concurrent first
/// write that got there first is [`Attempt::OwnerRace`]: the whole write runs again and
/// then finds the row, so one identity has one row.
fn ensure_owner(conn: &mut DbConnection, who: &OwnerIdentity<'_>) -> Result<OwnerRow, Attempt> {
    // One query finds both the identity's own row and the legacy row it may adopt; each
    // partial unique index admits at most one of them.
    let by_subject = owners::table
        .filter(owners::subject.eq(who.subject))
        .select((OwnerRow::as_select(), owners::issuer));
    let found: Vec<(OwnerRow, Option<String>)> = if who.adopt_legacy {
        by_subject
            .filter(owners::issuer.eq(who.issuer).or(owners::issuer.is_null()))
            .load(conn)?
    } else {
        by_subject
            .filter(owners::issuer.eq(who.issuer))
            .load(conn)?
    };
    // The identity's own row wins over a legacy one: both exist when an instance of the
    // previous release inserted the legacy row after this identity's first write. That
    // row stays the identity's too (see `owned_by`), so no resource is stranded.
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
/// resources.
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
            None => Err(Attempt::Failed(StoreError::Database(DbFailure::Other(
                DieselError::NotFound,
            )))),
        },
        Err(e) if is_unique_violation(&e) => Err(Attempt::OwnerRace),
        Err(e) => Err(e.into()),
    }
}

/// The resource `id` with its owner, when `who` is that owner; [`StoreError::NotOwner`]
/// otherwise. The owner's issuer is read here only: lists and reads do not show it.
fn owned_by(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    id: i64,
) -> Result<ResourceWithOwner, StoreError> {
    let (resource, owner, issuer) = resources::table
        .inner_join(owners::table)
        .filter(resources::id.eq(id))
        .select((
            ResourceRow::as_select(),
            OwnerRow::as_select(),
            owners::issuer,
        ))
        .first::<(ResourceRow, OwnerRow, Option<String>)>(conn)
        .optional()?
        .ok_or(StoreError::NotFound(id))?;
    if !who.is(issuer.as_deref(), &owner.subject) {
        return Err(StoreError::NotOwner(id));
    }
    Ok((resource, owner))
}

fn id_of_name(
    conn: &mut DbConnection,
    owner_id: i64,
    name: &str,
) -> Result<Option<i64>, StoreError> {
    Ok(resources::table
        .filter(resources::owner_id.eq(owner_id))
        .filter(resources::name.eq(name))
        .select(resources::id)
        .first(conn)
        .optional()?)
}

/// Attempts at a write that keeps losing races (to a vanished conflicting row, or to a
/// concurrent first write of the same owner).
const WRITE_ATTEMPTS: usize = 3;

/// Runs `write` in a transaction of its own until it commits. A taken name answers with the
/// id that holds it; when that row vanished before it could be named, or the owner row was
/// created concurrently, the write runs again, so a race never ends in a 500.
fn write_unique_name<T>(
    conn: &mut DbConnection,
    name: &str,
    mut write: impl FnMut(&mut DbConnection) -> Result<T, Attempt>,
) -> Result<T, StoreError> {
    for _ in 0..WRITE_ATTEMPTS {
        match transaction::write(conn, &mut write) {
            Ok(value) => return Ok(value),
            Err(Attempt::NameTaken { owner_id }) => {
                if let Some(existing_id) = id_of_name(conn, owner_id, name)? {
                    return Err(StoreError::Duplicate { existing_id });
                }
            }
            Err(Attempt::OwnerRace) => {}
            Err(Attempt::Failed(error)) => return Err(error),
        }
    }
    Err(StoreError::Contended)
}

/// A unique violation of the name is a taken name; anything else ends the attempt.
fn name_taken(owner_id: i64) -> impl Fn(DieselError) -> Attempt {
    move |error| {
        if is_unique_violation(&error) {
            Attempt::NameTaken { owner_id }
        } else {
            error.into()
        }
    }
}

/// Creates a resource named `name` for `who`.
pub(crate) fn create(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    name: &str,
) -> Result<ResourceWithOwner, StoreError> {
    write_unique_name(conn, name, |conn| {
        let owner = ensure_owner(conn, who)?;
        let at = now();
        let ids = diesel::insert_into(resources::table)
            .values((
                resources::owner_id.eq(owner.id),
                resources::name.eq(name),
                resources::created_at.eq(at),
                resources::updated_at.eq(at),
            ))
            .returning(resources::id)
            // Stepped to its end, so nothing of the statement is left pending.
            .get_results::<i64>(conn)
            .map_err(name_taken(owner.id))?;
        let id = ids
            .first()
            .copied()
            .ok_or(Attempt::Failed(StoreError::Database(DbFailure::Other(
                DieselError::NotFound,
            ))))?;
        let resource = ResourceRow {
            id,
            owner_id: owner.id,
            name: name.to_owned(),
            created_at: at,
            updated_at: at,
        };
        Ok((resource, owner))
    })
}

/// Renames the resource `id`, which `who` must own.
pub(crate) fn update(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    id: i64,
    name: &str,
) -> Result<ResourceWithOwner, StoreError> {
    write_unique_name(conn, name, |conn| {
        let (current, owner) = owned_by(conn, who, id)?;
        // `updated_at` never goes back, even if the clock does.
        let at = now().max(current.updated_at);
        let updated = diesel::update(resources::table.find(id))
            .set((resources::name.eq(name), resources::updated_at.eq(at)))
            .execute(conn)
            .map_err(name_taken(owner.id))?;
        if updated == 0 {
            return Err(StoreError::NotFound(id).into());
        }
        let resource = ResourceRow {
            name: name.to_owned(),
            updated_at: at,
            ..current
        };
        Ok((resource, owner))
    })
}

/// Deletes the resource `id`, which `who` must own.
pub(crate) fn delete(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    id: i64,
) -> Result<(), StoreError> {
    transaction::write(conn, |conn| {
        owned_by(conn, who, id)?;
        match diesel::delete(resources::table.find(id)).execute(conn)? {
            0 => Err(StoreError::NotFound(id)),
            _ => Ok(()),
        }
    })
}

#[cfg(test)]
mod tests;
