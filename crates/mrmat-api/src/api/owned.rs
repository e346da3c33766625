//! What every owner-scoped CRUD API (like `resource/v1`) shares in the HTTP layer: the one
//! mapping of the database layer's errors to HTTP, the "not the owner" answer, who the
//! caller is as an owner, owners and times on the wire, the keyset-paged list with its
//! `next` link, and the `Location` of a created row. An API version keeps only what is its
//! own: its wire types and its handlers' documentation.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, NaiveDateTime, Utc};
use mrmat_api_types::owner::Owner;

use crate::auth::Principal;
use crate::db::StoreError;
use crate::db::owned::{OwnerIdentity, OwnerOnly, OwnerRow};
use crate::error::{ApiError, Dependency};
use crate::extract::Paging;
use crate::state::AppState;

/// The one place the database layer's answers become HTTP: 404, 409, 503 with
/// `Retry-After`, 507, and 500 whose cause is logged, never sent.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound { .. } => ApiError::NotFound(error.to_string()),
            StoreError::Duplicate { .. } | StoreError::Contended => {
                ApiError::Conflict(error.to_string())
            }
            StoreError::Unavailable(cause) => ApiError::Unavailable {
                dependency: Dependency::Database,
                cause,
            },
            StoreError::StorageFull(cause) => ApiError::StorageFull(cause),
            StoreError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// The row a write of its owner only found: 403 when it is another owner's.
pub(crate) fn only_owner<T>(noun: &str, id: i64, found: OwnerOnly<T>) -> Result<T, ApiError> {
    match found {
        OwnerOnly::Done(value) => Ok(value),
        OwnerOnly::NotOwner => Err(ApiError::Forbidden(format!(
            "only the owner may change or delete {noun} {id}"
        ))),
    }
}

/// The caller, as the owner of what it writes.
pub(crate) fn identity(principal: &Principal) -> OwnerIdentity<'_> {
    OwnerIdentity {
        issuer: &principal.issuer,
        subject: &principal.subject,
        client_id: &principal.client_id,
        name: &principal.username,
        // Owner rows without an issuer were stored by a release that knew one provider,
        // the primary; a second one is added only once no such release runs (README).
        adopt_legacy: principal.primary,
    }
}

/// The wire form of an owner.
pub(crate) fn owner(row: OwnerRow) -> Owner {
    Owner {
        id: row.id,
        client_id: row.client_id,
        name: row.name,
    }
}

/// A stored time (UTC without a zone, as both backends keep it) on the wire.
pub(crate) fn utc(naive: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(naive, Utc)
}

/// One page of a list: the rows of this page and the path of the next one.
#[derive(Debug)]
pub(crate) struct Page<T> {
    /// At most `limit` rows.
    pub(crate) rows: Vec<T>,
    /// `{prefix}/?limit=N&after=<last id>` when more rows follow.
    pub(crate) next: Option<String>,
}

impl<T> Page<T> {
    /// What the database gave for `paging` (asked for one row more than the page, which
    /// tells whether a next page exists without counting), cut to the page; `id` reads a
    /// row's id for the cursor.
    pub(crate) fn of(mut rows: Vec<T>, paging: Paging, prefix: &str, id: fn(&T) -> i64) -> Self {
        let limit = usize::try_from(paging.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(last) if more => Some(format!(
                "{prefix}/?limit={}&after={}",
                paging.limit,
                id(last)
            )),
            _ => None,
        };
        Self { rows, next }
    }

    /// 200, with a `Link` header with rel="next" when there is a next page.
    pub(crate) fn response(&self) -> HttpResponseBuilder {
        let mut response = HttpResponse::Ok();
        if let Some(next) = &self.next {
            response.insert_header((header::LINK, format!("<{next}>; rel=\"next\"")));
        }
        response
    }
}

/// 201 with the `Location` of the row `id` under `prefix`: absolute when the request came
/// through a trusted proxy that says how it was reached, else a path.
pub(crate) fn created(
    state: &AppState,
    req: &HttpRequest,
    prefix: &str,
    id: i64,
) -> HttpResponseBuilder {
    let path = format!("{prefix}/{id}");
    let location = match state.proxies.base_url(req) {
        Some(base) => format!("{base}{path}"),
        None => path,
    };
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, location));
    response
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;
    use actix_web::http::StatusCode;

    use super::*;

    /// The database layer's answers keep the statuses, details and headers the contract
    /// gives them.
    #[test]
    fn each_database_answer_maps_to_its_status() {
        let cases = [
            (
                StoreError::NotFound {
                    noun: "widget",
                    id: 7,
                },
                StatusCode::NOT_FOUND,
                "no widget with id 7",
            ),
            (
                StoreError::Duplicate {
                    noun: "widget",
                    existing_id: 3,
                },
                StatusCode::CONFLICT,
                "you already have a widget with this name: id 3",
            ),
            (
                StoreError::Contended,
                StatusCode::CONFLICT,
                "the name is being changed concurrently; retry",
            ),
            (
                StoreError::Unavailable("database is locked".to_owned()),
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable",
            ),
            (
                StoreError::StorageFull("disk full".to_owned()),
                StatusCode::INSUFFICIENT_STORAGE,
                "storage is full",
            ),
            (
                StoreError::Internal("no such table".to_owned()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ),
        ];
        for (store, status, shown) in cases {
            let error = ApiError::from(store);
            assert_eq!(error.status_code(), status);
            assert_eq!(error.to_string(), shown);
            let retry = error.error_response().headers().contains_key("retry-after");
            assert_eq!(retry, status == StatusCode::SERVICE_UNAVAILABLE, "{status}");
        }
    }

    #[test]
    fn another_owners_row_is_403_naming_it() {
        let error = only_owner("widget", 5, OwnerOnly::<()>::NotOwner).unwrap_err();
        assert_eq!(error.status_code(), StatusCode::FORBIDDEN);
        assert_eq!(
            error.to_string(),
            "only the owner may change or delete widget 5"
        );
        assert_eq!(only_owner("widget", 5, OwnerOnly::Done(1)).unwrap(), 1);
    }

    #[test]
    fn a_page_links_to_the_next_only_when_more_rows_follow() {
        let paging = Paging::from_query("limit=2", "widget").unwrap();
        let page = Page::of(vec![1_i64, 2, 3], paging, "/api/widgets/v1", |id| *id);
        assert_eq!(page.rows, [1, 2]);
        assert_eq!(
            page.next.as_deref(),
            Some("/api/widgets/v1/?limit=2&after=2")
        );
        let last = Page::of(vec![4_i64, 5], paging, "/api/widgets/v1", |id| *id);
        assert_eq!(last.rows, [4, 5]);
        assert_eq!(last.next, None);
    }
}
