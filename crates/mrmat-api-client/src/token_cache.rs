//! The per-user token cache: one JSON file per server and client, mode 0600 in a 0700
//! directory, written atomically (temporary file, then rename) so it is never readable by
//! others, not even for a moment, and never half-written. A lock file keeps two processes
//! from refreshing at once. Each login records the server it was made for: its tokens are
//! sent nowhere else.

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
    /// A usable session.
    Found(Box<CachedSession>),
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

    /// Reads the session.
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
        let session: CachedSession = match serde_json::from_value(value) {
            Ok(session) => session,
            Err(e) => {
                return Ok(Loaded::Unusable(format!(
                    "incomplete ({})",
                    without_values(&e.to_string())
                )));
            }
        };
        if let Some(reason) = out_of_range(&session) {
            return Ok(Loaded::Unusable(reason));
        }
        Ok(Loaded::Found(Box::new(session)))
    }

    /// Writes the session: a uniquely named temporary file, 0600 from its creation, then
    /// renamed over the old one, so readers see the old or the new session, never a part.
    pub fn store(&self, session: &CachedSession) -> Result<(), ClientError> {
        self.ensure_dir()?;
        let json = serde_json::to_vec_pretty(session).map_err(|e| self.error(e))?;
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
        cache.store(&session()).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(s) if *s == session()));
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
        cache.store(&session()).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(_)));
    }

    #[test]
    fn a_file_opened_to_others_is_closed_again_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        cache.store(&session()).unwrap();
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
        cache.store(&session()).unwrap();
        cache.store(&session()).unwrap();
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
        assert_eq!(loaded, session());
        assert_eq!(loaded.access_token.expose(), "secret-access");
        cache.store(&loaded).unwrap();
        assert_eq!(fs::read_to_string(cache.path()).unwrap(), WRITTEN_BEFORE);
    }

    #[test]
    fn a_cache_file_without_a_refresh_token_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        let text = WRITTEN_BEFORE.replace(r#""secret-refresh""#, "null");
        fs::write(cache.path(), text).unwrap();
        assert!(matches!(cache.load().unwrap(), Loaded::Found(s) if s.refresh_token.is_none()));
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
        cache.store(&bound).unwrap();
        let mode = fs::metadata(cache.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        match cache.load().unwrap() {
            Loaded::Found(loaded) => assert_eq!(loaded.dpop_key, Some(key)),
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
        assert!(matches!(cache.load().unwrap(), Loaded::Found(s) if s.dpop_key.is_none()));
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
            .store(&session())
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

    #[test]
    fn missing_file_is_missing_and_removing_it_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::new(dir.path(), "key");
        assert!(matches!(cache.load().unwrap(), Loaded::Missing));
        cache.remove().unwrap();
    }
}
