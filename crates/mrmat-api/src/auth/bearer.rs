//! The access token of a request: only the `Authorization` header, with the scheme
//! `Bearer` (RFC 6750 section 2.1) or `DPoP` (RFC 9449 section 7.1).
//!
//! Parsed here rather than with actix-web-httpauth's `Bearer` (so that crate is not a
//! dependency): its scheme match is case-sensitive, against RFC 9110, and its errors are
//! not problem+json. Tokens in the query string or the body are ignored on purpose (they
//! end up in logs and caches).

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::error::ApiError;

/// Longest token passed on to the provider; anything longer is refused unseen.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// How the token was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Bearer`: whoever holds it may use it.
    Bearer,
    /// `DPoP`: with a proof of the key it is bound to.
    Dpop,
}

/// A presented access token, read in place from the request's header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Credential<'a> {
    /// Its scheme.
    pub(crate) scheme: Scheme,
    /// The token.
    pub(crate) token: &'a str,
}

/// The token, or why there is none: "no token" (missing header, other scheme, empty
/// token) is 401 without an error code; one too long or not UTF-8 is `invalid_token`;
/// two `Authorization` headers are 400.
///
/// Its characters are judged by [`well_formed`] only when the token is not one already
/// judged (see `Issuers::authenticate`): a warm request's token is then read once, by
/// the hash that finds it in the cache, and never copied.
pub(super) fn credential(req: &HttpRequest) -> Result<Credential<'_>, ApiError> {
    let missing = ApiError::Unauthenticated {
        invalid_token: false,
    };
    let invalid = ApiError::Unauthenticated {
        invalid_token: true,
    };
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Err(missing);
    };
    // Two credentials are no credential: which one a proxy checked is unknown. The request
    // middleware refuses this before anything else; here too, so no path round it exists.
    if values.next().is_some() {
        return Err(ApiError::BadRequest(
            "more than one Authorization header; send it once".into(),
        ));
    }
    // The scheme is judged on the raw bytes: a non-ASCII credential of another scheme is
    // still "another scheme", not a bad bearer token.
    let value = value.as_bytes().trim_ascii();
    let split = value.iter().position(|b| *b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
        Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case(b"dpop") {
        Scheme::Dpop
    } else {
        return Err(missing);
    };
    let Ok(token) = std::str::from_utf8(rest) else {
        return Err(invalid);
    };
    let token = token.trim();
    if token.is_empty() {
        return Err(missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid);
    }
    Ok(Credential { scheme, token })
}

/// Whether `token` is made of the characters RFC 6750 allows; `invalid_token` if not.
/// A token that is not is never sent to a provider.
pub(super) fn well_formed(token: &str) -> Result<(), ApiError> {
    if is_b64token(token) {
        Ok(())
    } else {
        Err(ApiError::Unauthenticated {
            invalid_token: true,
        })
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
///
/// Every byte is judged, without stopping at the first bad one, and without a branch: the
/// compiler turns the loop into vector compares. Judged byte by byte with an early exit,
/// a 770-byte JWT cost 8,800 instructions a request (callgrind), a quarter of a greeting.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().fold(true, |ok, b| ok & is_b64char(b))
}

/// A character of `b64token` before its `=` padding.
fn is_b64char(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    /// The token of `value`, judged as a request's token is on a cache miss.
    fn parse(value: &str) -> Result<String, ApiError> {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, value))
            .to_http_request();
        let token = credential(&req)?.token;
        well_formed(token)?;
        Ok(token.to_owned())
    }

    fn is_missing(result: Result<String, ApiError>) -> bool {
        matches!(
            result,
            Err(ApiError::Unauthenticated {
                invalid_token: false
            })
        )
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(parse("bearer abc.def").unwrap(), "abc.def");
        assert_eq!(parse("BEARER abc").unwrap(), "abc");
    }

    #[test]
    fn other_scheme_counts_as_no_token() {
        assert!(is_missing(parse("Basic dXNlcjpwYXNz")));
    }

    #[test]
    fn empty_bearer_counts_as_no_token() {
        assert!(is_missing(parse("Bearer")));
        assert!(is_missing(parse("Bearer    ")));
    }

    #[test]
    fn missing_header_is_no_token() {
        assert!(is_missing(
            credential(&TestRequest::default().to_http_request()).map(|c| c.token.to_owned())
        ));
    }

    #[test]
    fn non_ascii_credentials_of_another_scheme_count_as_no_token() {
        let req = TestRequest::default()
            .insert_header((
                header::AUTHORIZATION,
                header::HeaderValue::from_bytes("Basic é".as_bytes()).unwrap(),
            ))
            .to_http_request();
        assert!(is_missing(credential(&req).map(|c| c.token.to_owned())));
    }

    #[test]
    fn token_with_spaces_is_invalid() {
        assert!(matches!(
            parse("Bearer abc def"),
            Err(ApiError::Unauthenticated {
                invalid_token: true
            })
        ));
    }

    #[test]
    fn two_authorization_headers_are_a_bad_request() {
        let req = TestRequest::default()
            .append_header((header::AUTHORIZATION, "Bearer abc"))
            .append_header((header::AUTHORIZATION, "Bearer def"))
            .to_http_request();
        assert!(matches!(credential(&req), Err(ApiError::BadRequest(_))));
    }

    #[test]
    fn the_dpop_scheme_is_read_case_insensitively() {
        let req = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "dpop abc.def"))
            .to_http_request();
        let credential = credential(&req).unwrap();
        assert_eq!(
            (credential.scheme, credential.token),
            (Scheme::Dpop, "abc.def")
        );
    }

    #[test]
    fn b64token_characters_are_exactly_rfc_6750s() {
        for b in 0..=u8::MAX {
            let rfc =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64char(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn padding_is_allowed_only_at_the_end() {
        assert!(parse("Bearer abc==").is_ok());
        assert!(parse("Bearer a=bc").is_err());
    }
}
