//! Running the client binary with a home of its own (the testkit's `client_home`), and a
//! login answered on Glewlwyd's pages.

use std::ops::Deref;

use mrmat_api_testkit::client_home::ClientHome;
pub use mrmat_api_testkit::client_home::stderr;
use mrmat_api_testkit::glewlwyd::{DeviceApproval, Glewlwyd};

/// A user's machine: the shared client home, plus a login on Glewlwyd.
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

    /// `login`, approved by `username` on Glewlwyd's pages once the URI is shown. Returns
    /// the exit code and everything printed on stderr.
    pub async fn login_as(&self, glewlwyd: &Glewlwyd, username: &str) -> (Option<i32>, String) {
        self.login_with(glewlwyd, username, &[]).await
    }

    /// A login with extra `login` arguments, as it ended: exit code and stderr.
    async fn login_with(
        &self,
        glewlwyd: &Glewlwyd,
        username: &str,
        extra: &[&str],
    ) -> (Option<i32>, String) {
        let result = self
            .login_answered(
                extra,
                // Glewlwyd's complete URI is `<issuer>/device?code=XXXX-XXXX`.
                |word| word.starts_with("http") && word.contains("code="),
                |uri| async move {
                    let approval = glewlwyd
                        .approve(&uri, username, &Glewlwyd::password(username))
                        .await;
                    assert_eq!(approval, DeviceApproval::Approved, "{uri}");
                },
            )
            .await;
        (result.code, result.stderr)
    }

    /// A login that must succeed.
    pub async fn login(&self, glewlwyd: &Glewlwyd, username: &str) {
        let (code, stderr) = self.login_as(glewlwyd, username).await;
        assert_eq!(code, Some(0), "login: {stderr}");
    }

    /// A login that must succeed, asking for plain bearer tokens (`--no-dpop`): for tests
    /// that use the cached tokens at Glewlwyd behind the client's back, which a DPoP-bound
    /// refresh token (Glewlwyd binds them) refuses without the client's key.
    pub async fn login_bearer(&self, glewlwyd: &Glewlwyd, username: &str) {
        let (code, stderr) = self.login_with(glewlwyd, username, &["--no-dpop"]).await;
        assert_eq!(code, Some(0), "login: {stderr}");
    }
}
