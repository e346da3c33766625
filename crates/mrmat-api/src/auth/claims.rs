//! What an introspection answer (RFC 7662) means: whether it describes a usable access
//! token, and whose. A pure function of the answer, so every rule has a unit test.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::Utc;
use oauth2::basic::BasicTokenType;
use oauth2::{ExtraTokenFields, StandardTokenIntrospectionResponse, TokenIntrospectionResponse};
use serde::{Deserialize, Serialize};

use super::Identity;

/// How long a "not valid" answer is remembered, so a client hammering with a dead token
/// does not hammer the provider too.
const INVALID_TTL: Duration = Duration::from_secs(10);

/// The owner of a token without a user (client credentials) is its client, in a namespace
/// of its own: a user whose `sub` happens to equal a client id must not own its resources.
pub(crate) const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// The namespace a user's `sub` moves into when it would otherwise look like a client's
/// owner (or like a subject already moved): `client:svc` as a `sub` is stored as
/// `user:client:svc`, so no user can become a client's owner, whatever `sub` the provider
/// lets it have. Every other `sub` is stored as it is, so existing owners keep theirs.
pub(crate) const USER_SUBJECT_PREFIX: &str = "user:";

/// The owner key of a user whose token says `sub`: one-to-one, and never a client's.
fn user_subject(sub: &str) -> String {
    if sub.starts_with(CLIENT_SUBJECT_PREFIX) || sub.starts_with(USER_SUBJECT_PREFIX) {
        format!("{USER_SUBJECT_PREFIX}{sub}")
    } else {
        sub.to_owned()
    }
}

/// Introspection fields beyond RFC 7662 that real providers send.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ProviderClaims {
    #[serde(default)]
    preferred_username: Option<String>,
    #[serde(default)]
    azp: Option<String>,
    /// Keycloak's token type (`Bearer`, `Refresh`, `ID`).
    #[serde(default)]
    typ: Option<String>,
    /// The key a DPoP-bound token is bound to (RFC 9449 section 6.2).
    #[serde(default)]
    cnf: Option<Confirmation>,
}

/// `cnf`: what the holder must prove.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Confirmation {
    /// The RFC 7638 thumbprint of the DPoP key.
    #[serde(default)]
    pub(crate) jkt: Option<String>,
}

impl ExtraTokenFields for ProviderClaims {}

/// An introspection answer.
pub(crate) type IntrospectionResponse =
    StandardTokenIntrospectionResponse<ProviderClaims, BasicTokenType>;

/// A judgement of one token, and how long it may be trusted.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    pub(crate) principal: Option<Arc<Identity>>,
    pub(crate) ttl: Duration,
    /// When it was made: it may be trusted until `judged_at + ttl`, wherever it is kept.
    pub(crate) judged_at: Instant,
}

impl Verdict {
    /// Not a usable token.
    pub(crate) fn invalid() -> Self {
        Self {
            principal: None,
            ttl: INVALID_TTL,
            judged_at: Instant::now(),
        }
    }

    /// The holder, or 401 `invalid_token`.
    pub(crate) fn into_principal(self) -> Result<super::Principal, crate::error::ApiError> {
        self.principal
            .map(super::Principal)
            .ok_or(crate::error::ApiError::Unauthenticated {
                invalid_token: true,
            })
    }

    /// The moment it is no longer trusted.
    pub(crate) fn until(&self) -> Instant {
        self.judged_at + self.ttl
    }

    /// No verdict outlives the configured ceiling (0 turns caching off).
    pub(crate) fn capped(self, ceiling: Duration) -> Self {
        Self {
            ttl: self.ttl.min(ceiling),
            ..self
        }
    }
}

/// What a token must be besides active.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules<'a> {
    /// Longest a verdict is trusted.
    pub(crate) ceiling: Duration,
    /// `aud` must name one of these; empty accepts any.
    pub(crate) audiences: &'a [String],
    /// The provider asked, as [`Identity::issuer`] names it.
    pub(crate) issuer: &'a Arc<str>,
    /// Whether it is the primary provider.
    pub(crate) primary: bool,
}

/// Whether an introspection answer describes a usable access token, and whose.
pub(crate) fn judge(response: &IntrospectionResponse, rules: Rules<'_>) -> Verdict {
    if !response.active() {
        return Verdict::invalid();
    }
    let extra = response.extra_fields();
    // `active` alone would admit refresh and ID tokens: only access tokens are bearers.
    let bound_to = extra.cnf.as_ref().and_then(|cnf| cnf.jkt.clone());
    let is_access_token = match (response.token_type(), extra.typ.as_deref()) {
        (Some(BasicTokenType::Bearer), _) => true,
        // A DPoP-bound access token says so (RFC 9449 section 6.2), and names its key.
        (Some(BasicTokenType::Extension(kind)), _) => {
            kind.eq_ignore_ascii_case("dpop") && bound_to.is_some()
        }
        (Some(_), _) => false,
        (None, Some(typ)) => typ.eq_ignore_ascii_case("bearer"),
        (None, None) => false,
    };
    if !is_access_token {
        return Verdict::invalid();
    }
    if !rules.audiences.is_empty() {
        let audience_ok = response
            .aud()
            .is_some_and(|aud| aud.iter().any(|a| audience_accepted(a, rules.audiences)));
        if !audience_ok {
            return Verdict::invalid();
        }
    }
    let now = Utc::now();
    if response.nbf().is_some_and(|nbf| nbf > now) {
        return Verdict::invalid();
    }
    holder_verdict(
        Holder {
            sub: response.sub(),
            client_id: response
                .client_id()
                .map(|id| id.as_str().to_owned())
                .or_else(|| extra.azp.clone()),
            username: extra
                .preferred_username
                .clone()
                .or_else(|| response.username().map(str::to_owned)),
            scopes: response
                .scopes()
                .map(|scopes| scopes.iter().map(|s| s.to_string()).collect())
                .unwrap_or_default(),
            expires_at: response.exp(),
            bound_to,
        },
        rules,
    )
}

/// What a valid token says about its holder, read from an introspection answer or from
/// a JWT's claims.
#[derive(Debug)]
pub(crate) struct Holder<'a> {
    /// `sub`.
    pub(crate) sub: Option<&'a str>,
    /// `client_id`, else `azp`.
    pub(crate) client_id: Option<String>,
    /// `preferred_username`, else `username`.
    pub(crate) username: Option<String>,
    /// Granted scopes.
    pub(crate) scopes: Vec<String>,
    /// `exp`.
    pub(crate) expires_at: Option<chrono::DateTime<Utc>>,
    /// `cnf.jkt`: the DPoP key the token is bound to.
    pub(crate) bound_to: Option<String>,
}

/// The verdict on a token already found valid, active and meant for this server: whose it
/// is and how long that may be trusted. One place for the identity rules of both ways of
/// checking a token.
pub(crate) fn holder_verdict(holder: Holder<'_>, rules: Rules<'_>) -> Verdict {
    let now = Utc::now();
    let remaining = match holder.expires_at {
        Some(exp) if exp <= now => return Verdict::invalid(),
        Some(exp) => (exp - now).to_std().unwrap_or_default(),
        None => rules.ceiling,
    };
    let client_id = holder.client_id;
    let subject = match (holder.sub, &client_id) {
        // A subject is an identity: one carrying control characters is refused, not
        // cleaned up into somebody else's.
        (Some(sub), _) if sub.is_empty() || sub.chars().any(char::is_control) => {
            return Verdict::invalid();
        }
        (Some(sub), _) => user_subject(sub),
        (None, Some(client)) => format!("{CLIENT_SUBJECT_PREFIX}{client}"),
        (None, None) => return Verdict::invalid(),
    };
    let username = holder
        .username
        .or_else(|| holder.sub.map(str::to_owned))
        .or_else(|| client_id.clone())
        .unwrap_or_else(|| subject.clone());
    // Names are for display; PostgreSQL text cannot hold NUL, so a claim carrying one
    // must not become a 500.
    let display = |s: String| s.chars().filter(|c| *c != '\0').collect::<String>();
    let principal = Identity {
        issuer: Arc::clone(rules.issuer),
        primary: rules.primary,
        client_id: display(client_id.unwrap_or_else(|| subject.clone())),
        username: display(username),
        subject: Arc::from(subject),
        scopes: holder.scopes,
        expires_at: holder.expires_at.map(SystemTime::from),
        bound_to: holder.bound_to.map(Arc::from),
    };
    Verdict {
        principal: Some(Arc::new(principal)),
        ttl: remaining.min(rules.ceiling),
        judged_at: Instant::now(),
    }
}

/// Whether `aud` names one of `accepted`. A URL and the same URL with a trailing slash
/// are one audience: clients send the server's URL as they were given it (RFC 8707).
pub(crate) fn audience_accepted(aud: &str, accepted: &[String]) -> bool {
    let aud = aud.trim_end_matches('/');
    accepted.iter().any(|a| a.trim_end_matches('/') == aud)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Scope;

    fn judged(json: serde_json::Value, audiences: &[String]) -> Verdict {
        let response: IntrospectionResponse = serde_json::from_value(json).unwrap();
        judge(
            &response,
            Rules {
                ceiling: Duration::from_secs(300),
                audiences,
                issuer: &Arc::from("https://idp.example"),
                primary: true,
            },
        )
    }

    fn verdict(json: serde_json::Value) -> Verdict {
        judged(json, &[])
    }

    fn in_an_hour() -> i64 {
        Utc::now().timestamp() + 3600
    }

    #[test]
    fn active_bearer_token_names_its_holder() {
        let v = verdict(serde_json::json!({
            "active": true, "token_type": "Bearer", "sub": "u1", "client_id": "cli",
            "preferred_username": "alice", "username": "alice2",
            "scope": format!("openid {}", Scope::ResourceRead), "exp": in_an_hour()
        }));
        let p = v.principal.unwrap();
        assert_eq!(
            (
                &*p.issuer,
                &*p.subject,
                p.username.as_str(),
                p.client_id.as_str()
            ),
            ("https://idp.example", "u1", "alice", "cli")
        );
        assert!(p.has_scope(Scope::ResourceRead));
        assert!(!p.has_scope(Scope::ResourceWrite));
        assert_eq!(v.ttl, Duration::from_secs(300));
    }

    #[test]
    fn inactive_token_is_invalid() {
        assert!(
            verdict(serde_json::json!({"active": false}))
                .principal
                .is_none()
        );
    }

    #[test]
    fn token_without_token_type_is_not_a_bearer() {
        let v = verdict(
            serde_json::json!({"active": true, "sub": "u1", "client_id": "c", "exp": in_an_hour()}),
        );
        assert!(v.principal.is_none());
    }

    #[test]
    fn keycloak_typ_bearer_counts_and_refresh_does_not() {
        let bearer = verdict(
            serde_json::json!({"active": true, "typ": "Bearer", "sub": "u", "azp": "c", "username": null, "exp": in_an_hour()}),
        );
        let p = bearer.principal.unwrap();
        assert_eq!((p.client_id.as_str(), p.username.as_str()), ("c", "u"));
        let refresh = verdict(
            serde_json::json!({"active": true, "typ": "Refresh", "sub": "u", "exp": in_an_hour()}),
        );
        assert!(refresh.principal.is_none());
    }

    #[test]
    fn expired_token_is_invalid_even_when_active() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "bearer", "sub": "u", "exp": Utc::now().timestamp() - 5}),
        );
        assert!(v.principal.is_none());
    }

    #[test]
    fn client_credentials_token_is_its_client_in_a_namespace_of_its_own() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "svc", "exp": in_an_hour()}),
        );
        let p = v.principal.unwrap();
        assert_eq!(&*p.subject, "client:svc");
        assert_eq!(p.username, "svc");
    }

    #[test]
    fn a_user_named_like_a_client_is_not_that_client() {
        let user = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "svc", "client_id": "cli", "exp": in_an_hour()}),
        );
        let client = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "svc", "exp": in_an_hour()}),
        );
        assert_ne!(
            user.principal.unwrap().subject,
            client.principal.unwrap().subject
        );
    }

    #[test]
    fn a_user_whose_sub_names_a_client_owner_is_not_that_client() {
        let user = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "client:svc", "client_id": "cli", "exp": in_an_hour()}),
        );
        let client = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "client_id": "svc", "exp": in_an_hour()}),
        );
        let (user, client) = (user.principal.unwrap(), client.principal.unwrap());
        assert_eq!(&*client.subject, "client:svc");
        assert_eq!(&*user.subject, "user:client:svc");
        assert_eq!(user.username, "client:svc");
    }

    #[test]
    fn a_user_whose_sub_looks_moved_moves_too_so_no_two_users_meet() {
        let moved = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "user:client:svc", "exp": in_an_hour()}),
        );
        assert_eq!(&*moved.principal.unwrap().subject, "user:user:client:svc");
    }

    #[test]
    fn an_ordinary_sub_is_stored_as_it_is() {
        let plain = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "248289761001", "exp": in_an_hour()}),
        );
        assert_eq!(&*plain.principal.unwrap().subject, "248289761001");
    }

    #[test]
    fn a_subject_with_control_characters_is_refused() {
        for sub in ["al\u{0}ice", "bob\n", "\u{1b}[31m", ""] {
            let v = verdict(
                serde_json::json!({"active": true, "token_type": "Bearer", "sub": sub, "exp": in_an_hour()}),
            );
            assert!(v.principal.is_none(), "{sub:?}");
        }
    }

    #[test]
    fn cache_life_is_capped_by_the_token_life() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "exp": Utc::now().timestamp() + 20}),
        );
        assert!(v.ttl <= Duration::from_secs(20));
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        for aud in [
            serde_json::json!("mrmat-api"),
            serde_json::json!(["a", "mrmat-api"]),
        ] {
            let v = judged(
                serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "aud": aud, "exp": in_an_hour()}),
                &["mrmat-api".to_owned()],
            );
            assert!(v.principal.is_some());
        }
    }

    #[test]
    fn a_configured_audience_must_be_named() {
        let audiences = ["mrmat-api".to_owned()];
        for json in [
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "aud": "other", "exp": in_an_hour()}),
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "exp": in_an_hour()}),
        ] {
            assert!(judged(json, &audiences).principal.is_none());
        }
    }

    #[test]
    fn without_a_configured_audience_any_is_accepted() {
        let v = verdict(
            serde_json::json!({"active": true, "token_type": "Bearer", "sub": "u", "aud": "other", "exp": in_an_hour()}),
        );
        assert!(v.principal.is_some());
    }
}
