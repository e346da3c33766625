//! Unexpected failures: a generic 500 whose cause is logged, never sent.

use diesel::{Connection, RunQueryDsl};
use mrmat_api::settings::DatabaseUrl;
use mrmat_api_testkit::db::sqlite_connection;
use mrmat_api_testkit::{Oidc, TestApp, TestClient, backend_tests};

use crate::helpers::assert_problem;

/// Breaks the database under the running server, as an operator's mistake would.
fn drop_resources_table(url: &DatabaseUrl) {
    let sql = "DROP TABLE resources";
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = sqlite_connection(path);
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = diesel::pg::PgConnection::establish(url.expose()).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap();
        }
    }
}

backend_tests! {
    async fn database_failure_is_a_generic_500_without_internals(backend) {
        let oidc = Oidc::shared();
        let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
        let token = oidc.token(TestClient::Rw).await;
        app.create_resource(&token, "before").await;
        drop_resources_table(&app.db.url);

        let body = assert_problem(app.get("/api/resource/v1/", Some(&token)).await, 500).await;
        let detail = body["detail"].as_str().unwrap();
        assert_eq!(detail, "an unexpected error occurred; it has been logged");
        assert!(!body.to_string().contains("resources"), "no SQL or table names: {body}");
        assert_eq!(app.get("/healthz/", None).await.status(), 200, "the server goes on");
    }
}
