//! `--cors-origins`: the origins whose pages' scripts may call the API, each checked when
//! the configuration is read. The policy itself is in `cors`, above.

use url::Url;

/// The allowed origins: the value of `--cors-origins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// `*`: any origin, never with credentials.
    Any,
    /// These serialised origins.
    List(Vec<String>),
}

impl CorsOrigins {
    /// The origins of `--cors-origins`, each checked; why not, naming the bad one.
    pub fn parse(values: &[String]) -> Result<Self, String> {
        let values: Vec<&str> = values
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err("name at least one origin (https://app.example.com) or *".into());
        }
        if values.contains(&"*") {
            if values.len() > 1 {
                return Err(
                    "* allows every origin and stands alone: list origins, or give * only".into(),
                );
            }
            return Ok(Self::Any);
        }
        let mut origins = Vec::new();
        for value in values {
            let origin = serialise(value)?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(Self::List(origins))
    }

    /// Whether some allowed origin is plain http on a host other than loopback: a script
    /// injected on the way could call the API as that origin.
    pub fn insecure(&self) -> Vec<&str> {
        match self {
            Self::Any => Vec::new(),
            Self::List(list) => list
                .iter()
                .map(String::as_str)
                .filter(|o| {
                    o.starts_with("http://")
                        && !["http://localhost", "http://127.", "http://[::1]"]
                            .iter()
                            .any(|p| o.starts_with(p))
                })
                .collect(),
        }
    }
}

/// `value` as RFC 6454 serialises an origin, or why it is not one.
fn serialise(value: &str) -> Result<String, String> {
    if value.eq_ignore_ascii_case("null") {
        return Err(
            "null is the origin of sandboxed frames and data: and file: pages, which anyone can make; it is never allowed".into(),
        );
    }
    let url = Url::parse(value)
        .map_err(|e| format!("{value:?} is not an origin (scheme://host[:port]): {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "{value:?}: only http and https origins are allowed"
        ));
    }
    if mrmat_api_types::urls::has_userinfo(&url)
        || url.query().is_some()
        || url.fragment().is_some()
        || url.path() != "/"
        || value.trim_end_matches('/').len() + 1 < value.len()
    {
        return Err(format!(
            "{value:?} is not an origin: write scheme://host[:port] only, without a path, query, user or fragment"
        ));
    }
    let origin = url.origin();
    if !origin.is_tuple() {
        return Err(format!("{value:?} is not an origin"));
    }
    Ok(origin.ascii_serialization())
}
