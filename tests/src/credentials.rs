//! A test client's id and secret, as the test providers (Glewlwyd, Keycloak) are given
//! them: made up for each run, so nothing usable is published with the tests.

/// A client id and its secret.
#[derive(Clone)]
pub struct Credentials {
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `client_id` with a secret of this run only.
    pub(crate) fn random(client_id: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            client_secret: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}
