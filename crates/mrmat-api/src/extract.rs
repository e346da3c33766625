//! Request parsing shared by every API: JSON bodies, ids and paging, to the rules of the
//! contract's fine print. Each is parsed inside the handler, after authentication, so an
//! unauthenticated request never learns whether its body or id was well-formed.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use validator::{Validate, ValidationErrors};

use crate::error::ApiError;

/// Largest accepted request body. Bodies here are a name or two; anything bigger is abuse.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

/// Longest wait for the rest of a body once its headers arrived.
pub(crate) const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A request body not yet read. Extracting it never fails and reads nothing; call
/// [`JsonBody::parse`] once the caller is authorised.
pub(crate) struct JsonBody {
    req: HttpRequest,
    payload: Payload,
}

impl std::fmt::Debug for JsonBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonBody").finish_non_exhaustive()
    }
}

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self {
            req: req.clone(),
            payload: payload.take(),
        }))
    }
}

impl JsonBody {
    /// Reads, parses and validates the body: 415 for a type other than
    /// `application/json`, 413 over [`BODY_LIMIT`], 400 for broken JSON, 422 for JSON
    /// that breaks the body's rules (the detail names the field).
    pub(crate) async fn parse<T: DeserializeOwned + Validate>(mut self) -> Result<T, ApiError> {
        check_content_type(&self.req)?;
        let declared = self
            .req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > BODY_LIMIT) {
            return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(256).min(BODY_LIMIT));
        let read = async {
            while let Some(chunk) = self.payload.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::BadRequest(format!("unreadable body: {e}")))?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(ApiError::PayloadTooLarge(BODY_LIMIT));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(())
        };
        // A client that stops sending mid-body would otherwise hold the request forever.
        tokio::time::timeout(BODY_TIMEOUT, read)
            .await
            .map_err(|_| ApiError::RequestTimeout)??;
        parse_json(&body)
    }
}

fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let unsupported = || {
        ApiError::UnsupportedMediaType(
            "the body must be JSON, sent as Content-Type: application/json".into(),
        )
    };
    match req.mime_type() {
        Ok(Some(mime)) if mime.essence_str() == "application/json" => Ok(()),
        _ => Err(unsupported()),
    }
}

/// Parses and validates a JSON body.
pub(crate) fn parse_json<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    let Some(first) = body.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(ApiError::BadRequest(
            "the body is empty; send a JSON object".into(),
        ));
    };
    if *first != b'{' {
        // serde reads a struct from an array too; the contract wants an object.
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                Ok(_) => ApiError::Unprocessable("body: must be a JSON object".into()),
                Err(e) => ApiError::BadRequest(format!("malformed JSON: {e}")),
            },
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value: T = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            return Err(if inner.is_data() {
                // Well-formed JSON of the wrong shape: say which field.
                let message = strip_position(&inner.to_string());
                if path.is_empty() || path == "." {
                    ApiError::Unprocessable(message)
                } else {
                    ApiError::Unprocessable(format!("{path}: {message}"))
                }
            } else {
                ApiError::BadRequest(format!("malformed JSON: {inner}"))
            });
        }
    };
    deserializer
        .end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    value.validate().map_err(validation_detail)?;
    Ok(value)
}

/// serde_json appends " at line 1 column 9"; the field name says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

fn validation_detail(errors: ValidationErrors) -> ApiError {
    let mut details: Vec<String> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errors)| {
            errors.iter().map(move |error| {
                let message = error
                    .message
                    .as_deref()
                    .map_or_else(|| error.code.to_string(), str::to_owned);
                format!("{field}: {message}")
            })
        })
        .collect();
    details.sort();
    ApiError::Unprocessable(details.join("; "))
}

/// The id of a `noun` (what the API serves, e.g. `resource`) from the path: a positive
/// decimal integer that fits the column, written without leading zeros. Anything else is
/// a row that does not exist: 404, in the words the database layer uses for a missing id.
pub(crate) fn parse_id(raw: &str, noun: &str) -> Result<i64, ApiError> {
    let not_found = || ApiError::NotFound(format!("no {noun} with id {}", shorten(raw)));
    // Canonical form only (no sign, no leading zero), so a row has exactly one URL.
    if raw.is_empty() || raw.starts_with('0') || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_found());
    }
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(not_found()),
    }
}

fn shorten(raw: &str) -> String {
    if raw.chars().count() <= 32 {
        return raw.to_owned();
    }
    let head: String = raw.chars().take(32).collect();
    format!("{head}...")
}

/// A page of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Paging {
    /// 1..=1000, default 100.
    pub(crate) limit: i64,
    /// At least 0, default 0.
    pub(crate) offset: i64,
    /// Keyset cursor: only ids above this one. A page then costs the same at any depth,
    /// where an offset makes the database walk past every skipped row.
    pub(crate) after: Option<i64>,
}

impl Paging {
    /// The keyset cursor: ids above this one (0 when none was given: ids are positive).
    pub(crate) fn after(&self) -> i64 {
        self.after.unwrap_or(0)
    }

    /// Default page size.
    pub(crate) const DEFAULT_LIMIT: i64 = 100;
    /// Largest page size.
    pub(crate) const MAX_LIMIT: i64 = 1000;

    /// Reads `limit`, `offset` and `after` from a query string; other parameters are
    /// ignored. `noun` is what the list holds (e.g. `resource`), for the detail of a bad
    /// `after`.
    pub(crate) fn from_query(query: &str, noun: &str) -> Result<Self, ApiError> {
        let mut paging = Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
            after: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "limit" => {
                    paging.limit = parse_integer(&value)
                        .filter(|limit| (1..=Self::MAX_LIMIT).contains(limit))
                        .ok_or_else(|| {
                            ApiError::BadRequest(format!(
                                "limit: must be an integer from 1 to {}",
                                Self::MAX_LIMIT
                            ))
                        })?;
                }
                "offset" => {
                    paging.offset = parse_integer(&value)
                        .filter(|offset| *offset >= 0)
                        .ok_or_else(|| {
                            ApiError::BadRequest("offset: must be an integer of 0 or more".into())
                        })?;
                }
                "after" => {
                    paging.after = Some(
                        parse_integer(&value)
                            .filter(|after| *after >= 0)
                            .ok_or_else(|| {
                                ApiError::BadRequest(format!(
                                    "after: must be a {noun} id (an integer of 0 or more)"
                                ))
                            })?,
                    );
                }
                _ => {}
            }
        }
        Ok(paging)
    }
}

fn parse_integer(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use mrmat_api_types::resource::ResourceInput;

    use super::*;

    #[test]
    fn ids_must_be_positive_decimal_integers() {
        assert_eq!(parse_id("42", "resource").unwrap(), 42);
        for bad in [
            "0",
            "-1",
            "1.5",
            "1e3",
            "0x10",
            "",
            "abc",
            "+1",
            " 1",
            "123456789012345678901234567890",
        ] {
            assert!(
                matches!(parse_id(bad, "resource"), Err(ApiError::NotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn paging_defaults() {
        assert_eq!(
            Paging::from_query("", "resource").unwrap(),
            Paging {
                limit: 100,
                offset: 0,
                after: None
            }
        );
    }

    #[test]
    fn paging_rejects_out_of_range_and_non_integers_naming_the_parameter() {
        for (query, name) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("offset=-1", "offset"),
            ("offset=1.5", "offset"),
            ("after=-1", "after"),
            ("after=x", "after"),
        ] {
            match Paging::from_query(query, "resource") {
                Err(ApiError::BadRequest(detail)) => {
                    assert!(detail.starts_with(name), "{query}: {detail}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn broken_json_is_400_and_wrong_shape_is_422() {
        assert!(matches!(
            parse_json::<ResourceInput>(b"{\"name\":"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<ResourceInput>(b""),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<ResourceInput>(b"\xff\xfe"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse_json::<ResourceInput>(b"[]"),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            parse_json::<ResourceInput>(br#"["name"]"#),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(
            parse_json::<ResourceInput>(b"[1,"),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn wrong_type_names_the_field() {
        match parse_json::<ResourceInput>(br#"{"name": 5}"#) {
            Err(ApiError::Unprocessable(detail)) => {
                assert!(detail.starts_with("name: "), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn trailing_garbage_is_400() {
        assert!(matches!(
            parse_json::<ResourceInput>(br#"{"name":"a"} x"#),
            Err(ApiError::BadRequest(_))
        ));
    }
}
