//! What a hostile client can send (issue 19): a second `Authorization`, other spellings of
//! a path, names that forge or hide text. Each is refused in the contract's problem body.

use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::assert_problem;

const BASE: &str = "/api/resource/v1/";

async fn setup(backend: Backend) -> (TestApp, String) {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    (app, token)
}

/// The status line's code of a request sent byte for byte (reqwest and the url crate would
/// rewrite `%2e` segments and refuse other forms before they are sent).
async fn raw_status(app: &TestApp, head: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut answer),
    )
    .await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

fn get_head(path: &str, token: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
}

#[tokio::test]
async fn a_second_authorization_header_is_400_problem_json_before_anything_else() {
    let (app, token) = setup(Backend::Sqlite).await;
    for (method, path) in [
        (Method::GET, BASE),
        (Method::GET, "/api/greeting/v3/"),
        (Method::GET, "/healthz/"),
        (Method::POST, BASE),
        (Method::GET, "/no/such/path"),
    ] {
        let response = app
            .request(method.clone(), path, None)
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", "Bearer someone-elses")
            // A malformed body is not looked at: the headers decide first.
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        let body = assert_problem(response, 400).await;
        assert!(
            body["detail"].as_str().unwrap().contains("authorization"),
            "{method} {path}: {body}"
        );
    }
    // One header still works.
    assert_eq!(app.get(BASE, Some(&token)).await.status(), 200);
}

#[tokio::test]
async fn a_second_content_type_or_host_is_400_problem_json() {
    let (app, token) = setup(Backend::Sqlite).await;
    let response = app
        .request(Method::POST, BASE, Some(&token))
        .header("content-type", "application/json")
        .header("content-type", "text/plain")
        .body(json!({"name": "twice"}).to_string())
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
    let status = raw_status(
        &app,
        "GET /healthz/ HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_percent_encoded_spelling_of_a_path_is_404() {
    let (app, token) = setup(Backend::Sqlite).await;
    let created = app.create_resource(&token, "one").await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        app.get(&format!("{BASE}{id}"), Some(&token)).await.status(),
        200
    );
    let digits: String = id
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    for path in [
        format!("{BASE}{digits}"),
        format!("{BASE}{digits}/"),
        "/api/greeting/v%31/".to_owned(),
        "/api/greeting/%76%31/".to_owned(),
        "/api/gr%65eting/v1/".to_owned(),
        "/healthz%2F".to_owned(),
        "/healthz%2f".to_owned(),
        "/api/greeting/v1/%2e/".to_owned(),
        "/api/greeting/v1/%2E%2E/".to_owned(),
        "/api/greeting/v1%20".to_owned(),
        format!("{BASE}{id}%20"),
        "/api/greeting/v1/%C0%AE%C0%AE/".to_owned(),
        "/api/greeting/v1/%c3%a9".to_owned(),
    ] {
        // Through a client library where it sends the path as written (the url crate
        // rewrites `%2e` segments to `.` and resolves them), and byte for byte always.
        if reqwest::Url::parse(&app.url(&path)).unwrap().path() == path {
            let response = app.get(&path, Some(&token)).await;
            assert_problem(response, 404).await;
        }
        assert_eq!(
            raw_status(&app, &get_head(&path, &token)).await,
            404,
            "{path}"
        );
    }
    for path in [
        "/api/greeting/v1/./",
        "/api/greeting/x/../v1/",
        "/api/greeting/v1/\"",
    ] {
        assert_eq!(
            raw_status(&app, &get_head(path, &token)).await,
            404,
            "{path}"
        );
    }
    // `+` is itself in a path, not a space and not a sign.
    assert_problem(app.get(&format!("{BASE}+{id}"), Some(&token)).await, 404).await;
    // The canonical forms still answer.
    assert_eq!(app.get("/api/greeting/v1/", None).await.status(), 200);
    assert_eq!(app.get("/api/greeting/v1", None).await.status(), 200);
}

backend_tests! {
    async fn names_are_stored_in_nfc_so_nfc_and_nfd_are_one_name(backend) {
        let (app, token) = setup(backend).await;
        let response = app.post_json(BASE, Some(&token), &json!({"name": "Cafe\u{301}"})).await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["name"], "Caf\u{e9}");
        let twin = app.post_json(BASE, Some(&token), &json!({"name": "Caf\u{e9}"})).await;
        let problem = assert_problem(twin, 409).await;
        assert!(problem["detail"].as_str().unwrap().contains(&body["id"].to_string()));
        // A rename to the other form is a rename to itself.
        let id = body["id"].as_i64().unwrap();
        let renamed = app
            .put_json(&format!("{BASE}{id}"), Some(&token), &json!({"name": "Cafe\u{301}"}))
            .await;
        assert_eq!(renamed.status(), 200);
    }

    async fn names_with_controls_bidi_or_zero_width_characters_are_422(backend) {
        let (app, token) = setup(backend).await;
        let created = app.create_resource(&token, "plain").await;
        let id = created["id"].as_i64().unwrap();
        for name in [
            "a\u{1b}[2Jb",
            "a\u{1b}]8;;http://evil/\u{7}link\u{1b}]8;;\u{7}",
            "invoice\u{202e}fdp.exe",
            "a\u{2066}b\u{2069}",
            "a\u{200e}b",
            "pay\u{200b}pal",
            "a\u{feff}b",
            "a\u{2060}b",
            "line\nbreak",
            "tab\tinside",
            "a\u{85}b",
            "a\u{9b}31mb",
            "a\u{7f}b",
            "a\u{2028}b",
        ] {
            let problem = assert_problem(
                app.post_json(BASE, Some(&token), &json!({ "name": name })).await,
                422,
            )
            .await;
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.starts_with("name: "), "{name:?}: {detail}");
            let problem = assert_problem(
                app.put_json(&format!("{BASE}{id}"), Some(&token), &json!({ "name": name })).await,
                422,
            )
            .await;
            assert!(problem["detail"].as_str().unwrap().starts_with("name: "));
        }
        let stored = app.get(&format!("{BASE}{id}"), Some(&token)).await;
        let stored: Value = stored.json().await.unwrap();
        assert_eq!(stored["name"], "plain");
    }
}
