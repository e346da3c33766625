//! Running the client binary with a home of its own (the testkit's `client_home`), and
//! logins answered on the test provider's pages.

use std::ops::Deref;

use mrmat_api_testkit::client_home::ClientHome;
pub use mrmat_api_testkit::client_home::{LoginResult, bounded, finish, mode, stderr, stdout};
use mrmat_api_testkit::idp::{Approval, Idp};

/// A user's machine: the shared client home, plus what these tests ask of it.
pub struct Home(ClientHome);

impl Deref for Home {
    type Target = ClientHome;

    fn deref(&self) -> &ClientHome {
        &self.0
    }
}

impl Home {
    pub fn new(server: &str) -> Self {
        Self(ClientHome::new(
            env!("CARGO_BIN_EXE_mrmat-api-client"),
            server,
        ))
    }

    /// `auth status` as JSON, whatever its exit code, and the exit code.
    pub async fn status(&self, extra: &[&str]) -> (serde_json::Value, Option<i32>) {
        let mut args = vec!["--output", "json", "auth", "status"];
        args.extend_from_slice(extra);
        let output = self.run(&args).await;
        let json = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("auth status printed no JSON ({e}): {}", stderr(&output)));
        (json, output.status.code())
    }

    /// The login to this home's server, from `auth status`.
    pub async fn current_login(&self) -> serde_json::Value {
        let (status, _) = self.status(&[]).await;
        status["logins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["current"] == true)
            .cloned()
            .unwrap_or(serde_json::Value::Null)
    }

    /// `login`, answered by `username` on the provider's pages once the code is shown
    /// (not at all when `answer` is `None`). `before_answer` runs between the prompt and
    /// the answer.
    pub async fn login_with<F, Fut>(
        &self,
        idp: &Idp,
        extra: &[&str],
        username: &str,
        answer: Option<Approval>,
        before_answer: F,
    ) -> LoginResult
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        self.login_answered(
            extra,
            |word| word.contains("user_code="),
            |uri| async move {
                if let Some(answer) = answer {
                    before_answer().await;
                    let password = format!("{username}-password");
                    assert_eq!(
                        idp.approve(&uri, username, &password, answer).await,
                        0,
                        "approve.mjs"
                    );
                }
            },
        )
        .await
    }

    /// A login approved by `username` that must succeed, asking for a plain bearer token
    /// (`--no-dpop`): for tests that present the cached token to the server themselves.
    pub async fn login_bearer(&self, idp: &Idp, username: &str) {
        let result = self
            .login_with(
                idp,
                &["--no-dpop"],
                username,
                Some(Approval::Approve),
                || async {},
            )
            .await;
        assert_eq!(result.code, Some(0), "login: {}", result.stderr);
    }

    /// A login approved by `username` that must succeed.
    pub async fn login(&self, idp: &Idp, username: &str) {
        let result = self
            .login_with(idp, &[], username, Some(Approval::Approve), || async {})
            .await;
        assert_eq!(result.code, Some(0), "login: {}", result.stderr);
    }
}

/// A server that accepts connections and never answers; stopped when dropped.
pub struct SilentServer {
    /// Its `http://` address.
    pub address: String,
    holder: tokio::task::JoinHandle<()>,
}

impl SilentServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { address, holder }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.holder.abort();
    }
}
