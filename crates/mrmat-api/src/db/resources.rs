//! Owners and resources: plain functions of a connection.
//!
//! No multi-statement transactions: every write is one statement, so SQLite's busy
//! timeout covers contention and the unique index, not a read-then-write check, decides
//! which of two racing creates wins. A conflict is looked up afterwards to name the
//! existing id; when that row vanished in between, the write is tried again.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use mrmat_api_types::resource as wire;

use super::DbConnection;
use super::schema::{owners, resources};

/// A database row of `owners`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = owners)]
pub struct OwnerRow {
    /// Id.
    pub id: i64,
    /// The token subject this owner is.
    pub subject: String,
    /// Client id seen on the owner's last write.
    pub client_id: String,
    /// Display name seen on the owner's last write.
    pub name: String,
    /// First write.
    pub created_at: NaiveDateTime,
}

/// A database row of `resources`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = resources)]
pub struct ResourceRow {
    /// Id.
    pub id: i64,
    /// Owner id.
    pub owner_id: i64,
    /// Name, unique per owner.
    pub name: String,
    /// Creation time (UTC).
    pub created_at: NaiveDateTime,
    /// Last change (UTC).
    pub updated_at: NaiveDateTime,
}

/// Who is writing: what the token says about its holder.
#[derive(Debug, Clone)]
pub struct OwnerIdentity<'a> {
    /// Token subject.
    pub subject: &'a str,
    /// Client the token was issued to.
    pub client_id: &'a str,
    /// Display name.
    pub name: &'a str,
}

/// Why a resource operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No resource has that id.
    #[error("no resource with id {0}")]
    NotFound(i64),
    /// The caller does not own the resource.
    #[error("resource {0} belongs to another owner")]
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
    Database(#[from] DieselError),
}

/// A resource joined with its owner.
pub type ResourceWithOwner = (ResourceRow, OwnerRow);

/// The wire form of a stored resource.
pub fn to_wire((resource, owner): ResourceWithOwner) -> wire::Resource {
    wire::Resource {
        id: resource.id,
        name: resource.name,
        owner: wire::Owner {
            id: owner.id,
            client_id: owner.client_id,
            name: owner.name,
        },
        created_at: utc(resource.created_at),
        updated_at: utc(resource.updated_at),
    }
}

fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(naive, Utc)
}

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
pub fn list(
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
pub fn get(conn: &mut DbConnection, id: i64) -> Result<ResourceWithOwner, StoreError> {
    resources::table
        .inner_join(owners::table)
        .filter(resources::id.eq(id))
        .select((ResourceRow::as_select(), OwnerRow::as_select()))
        .first(conn)
        .optional()?
        .ok_or(StoreError::NotFound(id))
}

/// The owner row for `who`, created on its first write and kept current after.
pub fn ensure_owner(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
) -> Result<OwnerRow, StoreError> {
    let existing = owners::table
        .filter(owners::subject.eq(who.subject))
        .select(OwnerRow::as_select())
        .first(conn)
        .optional()?;
    match existing {
        Some(owner) if owner.name == who.name && owner.client_id == who.client_id => Ok(owner),
        Some(owner) => {
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
        None => {
            let inserted = diesel::insert_into(owners::table)
                .values((
                    owners::subject.eq(who.subject),
                    owners::client_id.eq(who.client_id),
                    owners::name.eq(who.name),
                    owners::created_at.eq(now()),
                ))
                .execute(conn);
            match inserted {
                // A concurrent first write of the same subject inserted it: use that row.
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            }
            Ok(owners::table
                .filter(owners::subject.eq(who.subject))
                .select(OwnerRow::as_select())
                .first(conn)?)
        }
    }
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

/// Attempts at a write whose conflicting row keeps vanishing before it can be named.
const WRITE_ATTEMPTS: usize = 3;

/// Runs `write`, which may break the owner's unique name. A conflict answers with the id
/// that holds the name; when that row vanished before it could be named, `write` runs
/// again, so a race never ends in a 500.
fn write_unique_name<T>(
    conn: &mut DbConnection,
    owner_id: i64,
    name: &str,
    mut write: impl FnMut(&mut DbConnection) -> QueryResult<T>,
) -> Result<T, StoreError> {
    for _ in 0..WRITE_ATTEMPTS {
        match write(conn) {
            Ok(value) => return Ok(value),
            Err(e) if is_unique_violation(&e) => {
                if let Some(existing_id) = id_of_name(conn, owner_id, name)? {
                    return Err(StoreError::Duplicate { existing_id });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Contended)
}

/// Creates a resource named `name` for `who`.
pub fn create(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    name: &str,
) -> Result<ResourceWithOwner, StoreError> {
    let owner = ensure_owner(conn, who)?;
    let at = now();
    let id = write_unique_name(conn, owner.id, name, |conn| {
        diesel::insert_into(resources::table)
            .values((
                resources::owner_id.eq(owner.id),
                resources::name.eq(name),
                resources::created_at.eq(at),
                resources::updated_at.eq(at),
            ))
            .returning(resources::id)
            .get_result::<i64>(conn)
    })?;
    let resource = ResourceRow {
        id,
        owner_id: owner.id,
        name: name.to_owned(),
        created_at: at,
        updated_at: at,
    };
    Ok((resource, owner))
}

/// Renames the resource `id`, which `who` must own.
pub fn update(
    conn: &mut DbConnection,
    who: &OwnerIdentity<'_>,
    id: i64,
    name: &str,
) -> Result<ResourceWithOwner, StoreError> {
    let (current, owner) = get(conn, id)?;
    if owner.subject != who.subject {
        return Err(StoreError::NotOwner(id));
    }
    // `updated_at` never goes back, even if the clock does.
    let at = now().max(current.updated_at);
    let updated = write_unique_name(conn, owner.id, name, |conn| {
        diesel::update(resources::table.find(id))
            .set((resources::name.eq(name), resources::updated_at.eq(at)))
            .execute(conn)
    })?;
    if updated == 0 {
        return Err(StoreError::NotFound(id));
    }
    let resource = ResourceRow {
        name: name.to_owned(),
        updated_at: at,
        ..current
    };
    Ok((resource, owner))
}

/// Deletes the resource `id`, which `who` must own.
pub fn delete(conn: &mut DbConnection, who: &OwnerIdentity<'_>, id: i64) -> Result<(), StoreError> {
    let (_, owner) = get(conn, id)?;
    if owner.subject != who.subject {
        return Err(StoreError::NotOwner(id));
    }
    match diesel::delete(resources::table.find(id)).execute(conn)? {
        0 => Err(StoreError::NotFound(id)),
        _ => Ok(()),
    }
}
