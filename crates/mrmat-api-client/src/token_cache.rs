//! The per-user token cache: one JSON file per server and client, holding every account
//! logged in there (one of them active), mode 0600 in a 0700 directory, written
//! atomically (temporary file, then rename) so it is never readable by others, not even
//! for a moment, and never half-written. A lock file keeps two processes from changing it
//! at once. Each login records the server it was made for: its tokens are sent nowhere
//! else.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mrmat_api_types::redact::without_values;
use mrmat_api_types::secret::Secret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::binding::ResourceIndicator;
use crate::dpop::DpopKey;
use crate::error::ClientError;

/// The format version this build writes and reads. Version 1 had no server binding.
/// Accounts did not change it: a file of one login is still exactly what it was (see
/// [`Accounts`]).
pub const CACHE_VERSION: u32 = 2;

/// The longest access-token lifetime (`expires_in`) the client accepts: ten years. Real
/// ones are minutes to a day; anything longer is a broken or hostile provider, and an
/// `expires_in` of 2^63 seconds cannot be stored as a time at all.
pub const MAX_TOKEN_LIFETIME: u64 = 10 * 365 * 86_400;

/// The latest expiry a cache file may hold: the end of year 9999, the last second a date
/// is shown for.
const LATEST_EXPIRY: i64 = 253_402_300_799;

/// A logged-in session as stored. The tokens are [`Secret`]s: `Debug` hides them, and
/// they are written to the file as the plain strings they came as.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CachedSession {
    /// Format version.
    pub version: u32,
    /// The API server the login was made for, normalised: the only one its tokens go to.
    pub server: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The OAuth client.
    pub client_id: String,
    /// Where to refresh.
    pub token_endpoint: String,
    /// Where to revoke, if the provider can.
    pub revocation_endpoint: Option<String>,
    /// The access token: the bearer.
    pub access_token: Secret,
    /// The refresh token, with `offline_access`.
    pub refresh_token: Option<Secret>,
    /// When the access token expires (Unix seconds), when known.
    pub expires_at: Option<i64>,
    /// The access token's full lifetime in seconds, to refresh in good time.
    pub lifetime: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The user's subject, from the ID token.
    pub subject: Option<String>,
    /// The user's name, from the ID token.
    pub name: Option<String>,
    /// Set when the provider refused a refresh: why the session ended. Its tokens are dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// What the login asked the provider to bind its tokens to (RFC 8707), sent again with
    /// every refresh. `None` for logins that sent none, and for files written before the
    /// client sent one (the format is otherwise the same, so they still load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_indicator: Option<ResourceIndicator>,
    /// The DPoP key (RFC 9449) the login's tokens are bound to: every use of them, and
    /// every refresh and revocation, carries a proof signed by it. `None` for bearer
    /// logins, and for files written before the client made keys: they stay bearer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKey>,
}

impl CachedSession {
    /// Who the login is, for messages: the name, else the subject.
    pub fn who(&self) -> &str {
        self.name
            .as_deref()
            .or(self.subject.as_deref())
            .unwrap_or("an unknown user")
    }

    /// Whether `user`, as a person types it (`--user`), names this login: its name or
    /// its subject.
    pub fn is_named(&self, user: &str) -> bool {
        self.name.as_deref() == Some(user) || self.subject.as_deref() == Some(user)
    }
}

/// Whether two logins are the same person, as far as can be told: one account.
pub fn same_user(a: &CachedSession, b: &CachedSession) -> bool {
    match (&a.subject, &b.subject) {
        (Some(x), Some(y)) => x == y && a.issuer == b.issuer,
        // Without subjects, the names decide; without those either, nothing tells them
        // apart: one account.
        _ => match (&a.name, &b.name) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        },
    }
}

/// Every account logged in to one server with one client, as its file holds them. The
/// active account is the file's top level, where a file written before there were
/// accounts kept its only login: such a file is one account as it stands (no migration,
/// no new version), and a client that knows nothing of accounts still finds the active
/// one. Such a client drops the others when it rewrites the file; they are not revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Accounts {
    /// The account commands use.
    #[serde(flatten)]
    pub active: CachedSession,
    /// The other accounts, the most recently active first: the one that becomes active
    /// when the active one logs out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inactive: Vec<CachedSession>,
}

/// What adding a login to the accounts did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// There was no account.
    First,
    /// The active account's user logged in again: its tokens were replaced.
    SameUser,
    /// Another user's login, now active; the one active before stays, inactive.
    Another(Box<CachedSession>),
}

impl Accounts {
    /// One account, active.
    pub fn new(active: CachedSession) -> Self {
        Self {
            active,
            inactive: Vec::new(),
        }
    }

    /// Every account, the active one first.
    pub fn iter(&self) -> impl Iterator<Item = &CachedSession> {
        std::iter::once(&self.active).chain(&self.inactive)
    }

    /// The account `user` names (`--user`): its name or subject.
    pub fn named(&self, user: &str) -> Option<&CachedSession> {
        self.iter().find(|a| a.is_named(user))
    }

    /// Who each account is, the active one first, for messages.
    pub fn names(&self) -> Vec<String> {
        self.iter().map(|a| a.who().to_owned()).collect()
    }

    /// `login` as the active account. The old tokens of the same user are dropped without
    /// revoking, because providers that tie both logins to one browser session would end
    /// the new one too; another user's account stays, inactive.
    pub fn add(&mut self, login: CachedSession) -> Added {
        if same_user(&self.active, &login) {
            self.active = login;
            return Added::SameUser;
        }
        // A user logging in again whose account was inactive: one account still.
        self.inactive.retain(|a| !same_user(a, &login));
        let previous = std::mem::replace(&mut self.active, login);
        self.inactive.insert(0, previous.clone());
        Added::Another(Box::new(previous))
    }

    /// Makes the account of `user` (as [`same_user`] tells) active; false when there is
    /// none.
    pub fn activate(&mut self, user: &CachedSession) -> bool {
        if same_user(&self.active, user) {
            return true;
        }
        let Some(index) = self.inactive.iter().position(|a| same_user(a, user)) else {
            return false;
        };
        let chosen = self.inactive.remove(index);
        let before = std::mem::replace(&mut self.active, chosen);
        self.inactive.insert(0, before);
        true
    }

    /// Puts `updated` (refreshed, or marked ended) in the place of its account; false
    /// when it has none.
    pub fn replace(&mut self, updated: CachedSession) -> bool {
        if same_user(&self.active, &updated) {
            self.active = updated;
            return true;
        }
        match self.inactive.iter_mut().find(|a| same_user(a, &updated)) {
            Some(slot) => {
                *slot = updated;
                true
            }
            None => false,
        }
    }

    /// Without the account of `user`: the most recently active other account becomes
    /// active when it was the active one. `None` when no account remains.
    pub fn without(mut self, user: &CachedSession) -> Option<Self> {
        if !same_user(&self.active, user) {
            self.inactive.retain(|a| !same_user(a, user));
            return Some(self);
        }
        if self.inactive.is_empty() {
            return None;
        }
        let active = self.inactive.remove(0);
        Some(Self {
            active,
            inactive: self.inactive,
        })
    }
}

/// Why the times in `session` cannot be believed, if they cannot: an expiry before 1970
/// or past year 9999, or a lifetime past [`MAX_TOKEN_LIFETIME`]. The file was edited or
/// written by a build that stored what a provider said unchecked; a login replaces it.
fn out_of_range(session: &CachedSession) -> Option<String> {
    if let Some(at) = session.expires_at
        && !(0..=LATEST_EXPIRY).contains(&at)
    {
        return Some(format!("its expiry time {at} is out of range"));
    }
    if let Some(lifetime) = session.lifetime
        && lifetime > MAX_TOKEN_LIFETIME
    {
        return Some(format!(
            "its token lifetime of {lifetime} seconds is out of range (at most {MAX_TOKEN_LIFETIME})"
        ));
    }
    None
}

/// What reading the cache found.
#[derive(Debug)]
pub enum Loaded {
    /// No cache file.
    Missing,
    /// Usable accounts.
    Found(Box<Accounts>),
    /// A file that cannot be used (corrupt, another version); it will be replaced.
    Unusable(String),
}

/// One cache file.
#[derive(Debug, Clone)]
pub struct TokenCache {
    path: PathBuf,
}

/// The default cache directory: `<platform cache dir>/mrmat-api-client/tokens`.
pub fn default_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "mrmat-api-client")
        .map(|dirs| dirs.cache_dir().join("tokens"))
}

impl TokenCache {
    /// The cache file in `dir` for `key`: the file name is a hash, so nothing about the
    /// server shows in a directory listing.
    pub fn new(dir: &Path, key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Self {
            path: dir.join(format!("{name}.json")),
        }
    }

    /// The cache file in `dir` of the login of `client_id` to `server` (normalised).
    pub fn for_login(dir: &Path, server: &str, client_id: &str) -> Self {
        Self::new(dir, &format!("v{CACHE_VERSION}|{server}|{client_id}"))
    }

    /// Every cache file in `dir` and what it holds, in file-name order.
    pub fn all(dir: &Path) -> Result<Vec<(TokenCache, Loaded)>, ClientError> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(ClientError::Cache {
                    path: dir.display().to_string(),
                    reason: format!("cannot list: {e}"),
                });
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let cache = TokenCache { path };
                let loaded = cache.load()?;
                Ok((cache, loaded))
            })
            .collect()
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> ClientError {
        ClientError::Cache {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn dir(&self) -> Result<&Path, ClientError> {
        self.path
            .parent()
            .ok_or_else(|| self.error("has no directory"))
    }

    fn ensure_dir(&self) -> Result<(), ClientError> {
        let dir = self.dir()?;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.error(format!("cannot create its directory: {e}")))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| self.error(format!("cannot restrict its directory: {e}")))
    }

    /// Reads the accounts.
    pub fn load(&self) -> Result<Loaded, ClientError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::Missing),
            Err(e) => return Err(self.error(format!("cannot read: {e}"))),
        };
        // A file someone made readable to others is closed again before it is used.
        if let Ok(metadata) = fs::metadata(&self.path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            fs::set_permissions(&self.path, fs::Permissions::from_mode(0o600))
                .map_err(|e| self.error(format!("cannot restrict it to its owner: {e}")))?;
        }
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => {
                let reason = format!("not valid JSON ({})", without_values(&e.to_string()));
                return Ok(Loaded::Unusable(reason));
            }
        };
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(CACHE_VERSION) => {}
            Some(v) => {
                return Ok(Loaded::Unusable(format!(
                    "written by another version (format {v})"
                )));
            }
            None => return Ok(Loaded::Unusable("not a token cache".into())),
        }
        let accounts: Accounts = match serde_json::from_value(value) {
            Ok(accounts) => accounts,
            Err(e) => {
                return Ok(Loaded::Unusable(format!(
                    "incomplete ({})",
                    without_values(&e.to_string())
                )));
            }
        };
        if let Some(reason) = accounts.iter().find_map(out_of_range) {
            return Ok(Loaded::Unusable(reason));
        }
        Ok(Loaded::Found(Box::new(accounts)))
    }

    /// Writes the accounts: a uniquely named temporary file, 0600 from its creation, then
    /// renamed over the old one, so readers see the old or the new accounts, never a part.
    pub fn store(&self, accounts: &Accounts) -> Result<(), ClientError> {
        self.ensure_dir()?;
        let json = serde_json::to_vec_pretty(accounts).map_err(|e| self.error(e))?;
        let write = || -> std::io::Result<()> {
            let mut file =
                tempfile::NamedTempFile::new_in(self.dir().map_err(std::io::Error::other)?)?;
            file.as_file()
                .set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(&json)?;
            file.as_file().sync_all()?;
            file.persist(&self.path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| self.error(format!("cannot write: {e}")))
    }

    /// Deletes the file; a missing file is fine.
    pub fn remove(&self) -> Result<(), ClientError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.error(format!("cannot delete: {e}"))),
        }
    }

    /// An exclusive lock on this cache, held until the returned file is dropped.
    pub fn lock(&self) -> Result<File, ClientError> {
        self.ensure_dir()?;
        let lock_path = self.path.with_extension("lock");
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.error(format!("cannot open its lock: {e}")))?;
        file.lock()
            .map_err(|e| self.error(format!("cannot lock: {e}")))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> CachedSession {
        CachedSession {
            version: CACHE_VERSION,
            server: "http://localhost:8080".into(),
            issuer: "http://idp".into(),
            client_id: "cli".into(),
            token_endpoint: "http://idp/token".into(),
            revocation_endpoint: None,
            access_token: Secret::new("secret-access"),
            refresh_token: Some(Secret::new("secret-refresh")),
            expires_at: Some(1),
            lifetime: Some(3600),
            scopes: vec!["openid".into()],
            subject: Some("alice".into()),
            name: None,
            ended: None,
            resource_indicator: None,
            dpop_key: None,
        }
    }

    #[test]
    fn stored_session_reads_back_and_is_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(&dir.path().join("tokens"), "key");
        cache.store(&Accounts::new(session())).unwrap();
        assert!(
            matches!(cache.load().unwrap(), Loaded::Found(s) if *s == Accounts::new(session()))
        );
        let mode = fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(dir.path().join("tokens"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn corrupt_and_foreign_files_are_unusable_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        fs::write(cache.path(), "{not json").unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Unusable(_)));
        fs::write(cache.path(), r#"{"version": 99}"#).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Unusable(r) if r.contains("99")));
        cache.store(&Accounts::new(session())).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(_)));
    }

    #[test]
    fn a_file_opened_to_others_is_closed_again_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        cache.store(&Accounts::new(session())).unwrap();
        fs::set_permissions(cache.path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(_)));
        assert_eq!(
            fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn no_temporary_files_are_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        cache.store(&Accounts::new(session())).unwrap();
        cache.store(&Accounts::new(session())).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A cache file exactly as this version wrote it before its tokens were `Secret`s.
    const WRITTEN_BEFORE: &str = r#"{
  "version": 2,
  "server": "http://localhost:8080",
  "issuer": "http://idp",
  "client_id": "cli",
  "token_endpoint": "http://idp/token",
  "revocation_endpoint": null,
  "access_token": "secret-access",
  "refresh_token": "secret-refresh",
  "expires_at": 1,
  "lifetime": 3600,
  "scopes": [
    "openid"
  ],
  "subject": "alice",
  "name": null
}"#;

    #[test]
    fn a_cache_file_in_the_current_format_loads_and_is_written_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        fs::write(cache.path(), WRITTEN_BEFORE).unwrap();
        let loaded = match cache.load().unwrap() {
            Loaded::Found(loaded) => *loaded,
            other => panic!("{other:?}"),
        };
        assert_eq!(loaded, Accounts::new(session()));
        assert_eq!(loaded.active.access_token.expose(), "secret-access");
        cache.store(&loaded).unwrap();
        assert_eq!(fs::read_to_string(cache.path()).unwrap(), WRITTEN_BEFORE);
    }

    #[test]
    fn a_cache_file_without_a_refresh_token_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        let text = WRITTEN_BEFORE.replace(r#""secret-refresh""#, "null");
        fs::write(cache.path(), text).unwrap();
        assert!(
            matches!(cache.load().unwrap(), Loaded::Found(s) if s.active.refresh_token.is_none())
        );
    }

    #[test]
    fn a_bound_login_keeps_its_key_owner_only_and_never_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(&dir.path().join("tokens"), "key");
        let key = DpopKey::generate().unwrap();
        let bound = CachedSession {
            dpop_key: Some(key.clone()),
            ..session()
        };
        cache.store(&Accounts::new(bound.clone())).unwrap();
        let mode = fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match cache.load().unwrap() {
            Loaded::Found(loaded) => assert_eq!(loaded.active.dpop_key, Some(key)),
            other => panic!("{other:?}"),
        }
        let stored: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(cache.path()).unwrap()).unwrap();
        let seed = stored["dpop_key"]["d"].as_str().unwrap().to_owned();
        assert_eq!(stored["dpop_key"]["alg"], "EdDSA");
        assert!(!format!("{bound:?}").contains(&seed));
    }

    #[test]
    fn a_login_stored_before_dpop_loads_as_a_bearer_login() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        fs::write(cache.path(), WRITTEN_BEFORE).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(s) if s.active.dpop_key.is_none()));
    }

    #[test]
    fn debug_output_has_no_tokens() {
        let text = format!("{:?}", session());
        assert!(!text.contains("secret-access") && !text.contains("secret-refresh"));
    }

    #[test]
    fn every_cache_file_is_listed_with_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        TokenCache::for_login(dir.path(), "http://a", "cli")
            .store(&Accounts::new(session()))
            .unwrap();
        fs::write(dir.path().join("damaged.json"), "{").unwrap();
        let all = TokenCache::all(dir.path()).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().any(|(_, l)| matches!(l, Loaded::Found(_))));
        assert!(all.iter().any(|(_, l)| matches!(l, Loaded::Unusable(_))));
        assert!(
            TokenCache::all(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn expiry_times_out_of_range_make_the_file_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        for (field, value) in [
            ("expires_at", "-9223372036854775808"),
            ("expires_at", "-1"),
            ("expires_at", "253402300800"),
            ("lifetime", "9223372036854775807"),
        ] {
            let text = WRITTEN_BEFORE.replace(
                &format!("\"{field}\": "),
                &format!("\"{field}\": {value}, \"x\": "),
            );
            fs::write(cache.path(), &text).unwrap();
            match cache.load().unwrap() {
                Loaded::Unusable(reason) => assert!(reason.contains("out of range"), "{reason}"),
                other => panic!("{field} {value}: {other:?}"),
            }
        }
    }

    fn user(name: &str) -> CachedSession {
        CachedSession {
            subject: Some(format!("sub-{name}")),
            name: Some(name.into()),
            access_token: Secret::new(format!("access-{name}")),
            ..session()
        }
    }

    #[test]
    fn a_file_written_before_accounts_is_one_active_account() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        fs::write(cache.path(), WRITTEN_BEFORE).unwrap();
        match cache.load().unwrap() {
            Loaded::Found(accounts) => {
                assert_eq!(accounts.active, session());
                assert!(accounts.inactive.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accounts_keep_the_active_one_at_the_top_level_where_older_clients_look() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        let mut accounts = Accounts::new(user("alice"));
        assert_eq!(
            accounts.add(user("bob")),
            Added::Another(Box::new(user("alice")))
        );
        cache.store(&accounts).unwrap();
        let stored: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(cache.path()).unwrap()).unwrap();
        assert_eq!(stored["name"], "bob");
        assert_eq!(stored["inactive"][0]["name"], "alice");
        assert!(matches!(cache.load().unwrap(), Loaded::Found(a) if *a == accounts));
        assert_eq!(
            fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn logging_in_again_replaces_that_account_and_makes_it_active() {
        let mut accounts = Accounts::new(user("alice"));
        accounts.add(user("bob"));
        let again = CachedSession {
            access_token: Secret::new("alice-again"),
            ..user("alice")
        };
        assert!(matches!(accounts.add(again), Added::Another(p) if p.is_named("bob")));
        assert_eq!(accounts.active.access_token.expose(), "alice-again");
        assert_eq!(accounts.names(), ["alice", "bob"]);
        let bob_again = user("bob");
        assert!(matches!(accounts.add(bob_again), Added::Another(p) if p.is_named("alice")));
        assert_eq!(accounts.names(), ["bob", "alice"]);
        assert_eq!(accounts.add(user("bob")), Added::SameUser);
        assert_eq!(accounts.names(), ["bob", "alice"]);
    }

    #[test]
    fn switching_refreshing_and_removing_keep_every_other_account() {
        let mut accounts = Accounts::new(user("alice"));
        accounts.add(user("bob"));
        accounts.add(user("carol"));
        assert_eq!(accounts.names(), ["carol", "bob", "alice"]);
        assert!(accounts.activate(&user("alice")));
        assert_eq!(accounts.names(), ["alice", "carol", "bob"]);
        assert!(!accounts.activate(&user("dave")));
        let refreshed = CachedSession {
            access_token: Secret::new("bob-refreshed"),
            ..user("bob")
        };
        assert!(accounts.replace(refreshed));
        assert_eq!(
            accounts.named("bob").unwrap().access_token.expose(),
            "bob-refreshed"
        );
        assert_eq!(accounts.named("sub-carol").unwrap().who(), "carol");
        let accounts = accounts.without(&user("alice")).unwrap();
        assert_eq!(
            accounts.names(),
            ["carol", "bob"],
            "the last active one takes over"
        );
        let accounts = accounts.without(&user("bob")).unwrap();
        assert_eq!(accounts.names(), ["carol"]);
        assert!(accounts.without(&user("carol")).is_none());
    }

    #[test]
    fn an_inactive_account_out_of_range_makes_the_file_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        let mut accounts = Accounts::new(user("alice"));
        accounts.add(CachedSession {
            expires_at: Some(-1),
            ..user("bob")
        });
        accounts.activate(&user("alice"));
        cache.store(&accounts).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Unusable(r) if r.contains("out of range")));
    }

    #[test]
    fn users_are_told_apart_by_subject_then_name() {
        let user = |subject: Option<&str>, name: Option<&str>| CachedSession {
            subject: subject.map(str::to_owned),
            name: name.map(str::to_owned),
            ..session()
        };
        assert!(same_user(
            &user(Some("a"), None),
            &user(Some("a"), Some("x"))
        ));
        assert!(!same_user(&user(Some("a"), None), &user(Some("b"), None)));
        assert!(!same_user(
            &user(None, Some("bob")),
            &user(None, Some("alice"))
        ));
        assert!(same_user(&user(None, None), &user(Some("b"), None)));
    }

    #[test]
    fn missing_file_is_missing_and_removing_it_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        assert!(matches!(cache.load().unwrap(), Loaded::Missing));
        cache.remove().unwrap();
    }
}
