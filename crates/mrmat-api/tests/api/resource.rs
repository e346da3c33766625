//! Resource v1: the CRUD contract and its fine print, on every backend.

use mrmat_api_testkit::{Oidc, TestApp, TestClient, backend_tests};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::assert_problem;

const BASE: &str = "/api/resource/v1/";

async fn setup(backend: mrmat_api_testkit::Backend) -> (TestApp, String) {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    (app, token)
}

async fn list(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let response = app.get(&format!("{BASE}{query}"), Some(token)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["resources"].as_array().unwrap().clone()
}

fn raw_post(
    app: &TestApp,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::RequestBuilder {
    let mut request = app.request(Method::POST, BASE, Some(token)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request
}

backend_tests! {
    async fn create_returns_201_with_location_and_the_resource(backend) {
        let (app, token) = setup(backend).await;
        let response = app.post_json(BASE, Some(&token), &json!({"name": "first"})).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = response.json().await.unwrap();
        let id = body["id"].as_i64().unwrap();
        assert!(id > 0);
        assert_eq!(location, app.url(&format!("/api/resource/v1/{id}")));
        assert_eq!(body["name"], "first");
        assert_eq!(body["owner"]["client_id"], "mrmat-api-test-rw");
        assert_eq!(body["created_at"], body["updated_at"]);
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap();
    }

    async fn created_resource_reads_back_the_same(backend) {
        let (app, token) = setup(backend).await;
        let created = app.create_resource(&token, "read me").await;
        let id = created["id"].as_i64().unwrap();
        for path in [format!("{BASE}{id}"), format!("{BASE}{id}/")] {
            let response = app.get(&path, Some(&token)).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.json::<Value>().await.unwrap(), created);
        }
    }

    async fn list_is_ordered_by_id_and_paged(backend) {
        let (app, token) = setup(backend).await;
        let mut ids = Vec::new();
        for name in ["c", "a", "b", "d"] {
            ids.push(app.create_resource(&token, name).await["id"].as_i64().unwrap());
        }
        let all: Vec<i64> = list(&app, &token, "").await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(all, ids);
        let page: Vec<i64> = list(&app, &token, "?limit=2&offset=1").await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(page, ids[1..3]);
        assert!(list(&app, &token, "?offset=100").await.is_empty());
        assert_eq!(list(&app, &token, "?limit=1000").await.len(), 4);
    }

    async fn list_pages_link_to_the_next_with_a_keyset_cursor(backend) {
        let (app, token) = setup(backend).await;
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(app.create_resource(&token, &format!("r{n}")).await["id"].as_i64().unwrap());
        }
        let mut seen = Vec::new();
        let mut next = Some(format!("{BASE}?limit=2"));
        let mut pages = 0;
        while let Some(path) = next {
            let response = app.get(&path, Some(&token)).await;
            assert_eq!(response.status(), 200);
            let link = response.headers().get("link").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            seen.extend(body["resources"].as_array().unwrap().iter().map(|r| r["id"].as_i64().unwrap()));
            next = body["next"].as_str().map(str::to_owned);
            match &next {
                Some(next) => {
                    assert!(next.contains("after="), "{next}");
                    assert_eq!(link, Some(format!("<{next}>; rel=\"next\"")));
                }
                None => assert_eq!(link, None),
            }
            pages += 1;
        }
        assert_eq!(seen, ids);
        // 2 + 2 + 1: the last page has no next link, and no empty page is needed to know it.
        assert_eq!(pages, 3);
    }

    async fn after_cursor_starts_past_the_given_id(backend) {
        let (app, token) = setup(backend).await;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(app.create_resource(&token, name).await["id"].as_i64().unwrap());
        }
        let page: Vec<i64> = list(&app, &token, &format!("?after={}", ids[0])).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(page, ids[1..]);
        assert!(list(&app, &token, &format!("?after={}", ids[2])).await.is_empty());
    }

    async fn bad_paging_is_400_naming_the_parameter(backend) {
        let (app, token) = setup(backend).await;
        for (query, name) in [("limit=0", "limit"), ("limit=1001", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"), ("offset=1.5", "offset"), ("limit=", "limit"), ("after=-1", "after"), ("after=1e3", "after")] {
            let body = assert_problem(app.get(&format!("{BASE}?{query}"), Some(&token)).await, 400).await;
            assert!(body["detail"].as_str().unwrap().contains(name), "{query}: {body}");
        }
    }

    async fn ids_that_are_not_positive_integers_are_404(backend) {
        let (app, token) = setup(backend).await;
        app.create_resource(&token, "one").await;
        for id in ["0", "01", "-1", "1.5", "1e3", "0x10", "123456789012345678901234567890", "abc", "9223372036854775808"] {
            assert_problem(app.get(&format!("{BASE}{id}"), Some(&token)).await, 404).await;
            assert_problem(app.put_json(&format!("{BASE}{id}"), Some(&token), &json!({"name": "x"})).await, 404).await;
            assert_problem(app.delete(&format!("{BASE}{id}"), Some(&token)).await, 404).await;
        }
    }

    async fn missing_resource_is_404(backend) {
        let (app, token) = setup(backend).await;
        assert_problem(app.get(&format!("{BASE}4242"), Some(&token)).await, 404).await;
        assert_problem(app.delete(&format!("{BASE}4242"), Some(&token)).await, 404).await;
        assert_problem(app.put_json(&format!("{BASE}4242"), Some(&token), &json!({"name": "x"})).await, 404).await;
    }

    async fn names_are_trimmed_and_otherwise_stored_verbatim(backend) {
        let (app, token) = setup(backend).await;
        for (sent, stored) in [
            ("  padded\t", "padded"),
            ("Robert'); DROP TABLE resources;--", "Robert'); DROP TABLE resources;--"),
            ("50% _off_ \\ \"quoted\"", "50% _off_ \\ \"quoted\""),
            ("Grüße 🌍", "Grüße 🌍"),
        ] {
            let created = app.create_resource(&token, sent).await;
            assert_eq!(created["name"], stored);
            let id = created["id"].as_i64().unwrap();
            let read: Value = app.get(&format!("{BASE}{id}"), Some(&token)).await.json().await.unwrap();
            assert_eq!(read["name"], stored);
        }
    }

    async fn name_length_counts_characters_not_bytes(backend) {
        let (app, token) = setup(backend).await;
        let name = "é".repeat(255);
        assert_eq!(app.create_resource(&token, &name).await["name"], name);
        let body = assert_problem(app.post_json(BASE, Some(&token), &json!({"name": "é".repeat(256)})).await, 422).await;
        assert!(body["detail"].as_str().unwrap().contains("name"));
    }

    async fn invalid_names_are_422_naming_the_field(backend) {
        let (app, token) = setup(backend).await;
        for body in [json!({"name": ""}), json!({"name": "   "}), json!({"name": "a\u{0}b"}), json!({"name": 42}), json!({"name": null}), json!({})] {
            let problem = assert_problem(app.post_json(BASE, Some(&token), &body).await, 422).await;
            assert!(problem["detail"].as_str().unwrap().contains("name"), "{body}: {problem}");
        }
    }

    async fn unknown_fields_are_422_naming_the_field(backend) {
        let (app, token) = setup(backend).await;
        let problem = assert_problem(app.post_json(BASE, Some(&token), &json!({"name": "x", "colour": "red"})).await, 422).await;
        assert!(problem["detail"].as_str().unwrap().contains("colour"));
    }

    async fn json_that_is_not_an_object_is_400_or_422(backend) {
        let (app, token) = setup(backend).await;
        let created = raw_post(&app, &token, Some("application/json"), br#"["x"]"#.to_vec()).send().await.unwrap();
        assert_eq!(created.status(), 422, "an array is not an object, even when serde could read it");
        for body in ["[]", "[\"x\"]", "\"x\"", "42", "null"] {
            let status = raw_post(&app, &token, Some("application/json"), body.into()).send().await.unwrap().status();
            assert!(status == 400 || status == 422, "{body}: {status}");
        }
    }

    async fn malformed_json_is_400(backend) {
        let (app, token) = setup(backend).await;
        for body in [&b""[..], b"{\"name\": \"x\"", b"{name: x}", b"{\"name\": \"\xff\xfe\"}"] {
            assert_problem(raw_post(&app, &token, Some("application/json"), body.to_vec()).send().await.unwrap(), 400).await;
        }
    }

    async fn content_type_must_be_json(backend) {
        let (app, token) = setup(backend).await;
        let body = br#"{"name":"x"}"#.to_vec();
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            assert_problem(raw_post(&app, &token, content_type, body.clone()).send().await.unwrap(), 415).await;
        }
        let response = raw_post(&app, &token, Some("application/json; charset=utf-8"), body).send().await.unwrap();
        assert_eq!(response.status(), 201);
    }

    async fn oversized_body_is_413(backend) {
        let (app, token) = setup(backend).await;
        let body = format!("{{\"name\": \"{}\"}}", "x".repeat(100_000));
        assert_problem(raw_post(&app, &token, Some("application/json"), body.into_bytes()).send().await.unwrap(), 413).await;
    }

    async fn duplicate_name_for_the_same_owner_is_409_naming_the_existing_id(backend) {
        let (app, token) = setup(backend).await;
        let id = app.create_resource(&token, "twin").await["id"].as_i64().unwrap();
        let problem = assert_problem(app.post_json(BASE, Some(&token), &json!({"name": " twin "})).await, 409).await;
        assert!(problem["detail"].as_str().unwrap().contains(&id.to_string()), "{problem}");
        assert_eq!(list(&app, &token, "").await.len(), 1);
    }

    async fn the_same_name_for_another_owner_is_fine(backend) {
        let (app, token) = setup(backend).await;
        let other = Oidc::shared().token(TestClient::Rw2).await;
        let mine = app.create_resource(&token, "shared name").await;
        let theirs = app.create_resource(&other, "shared name").await;
        assert_ne!(mine["owner"]["id"], theirs["owner"]["id"]);
    }

    async fn put_renames_keeps_created_at_and_moves_updated_at_forward(backend) {
        let (app, token) = setup(backend).await;
        let created = app.create_resource(&token, "before").await;
        let id = created["id"].as_i64().unwrap();
        let response = app.put_json(&format!("{BASE}{id}"), Some(&token), &json!({"name": "after"})).await;
        assert_eq!(response.status(), 200);
        let updated: Value = response.json().await.unwrap();
        assert_eq!(updated["name"], "after");
        assert_eq!(updated["created_at"], created["created_at"]);
        let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
        assert!(parse(&updated["updated_at"]) >= parse(&created["updated_at"]));
        let read: Value = app.get(&format!("{BASE}{id}"), Some(&token)).await.json().await.unwrap();
        assert_eq!(read, updated);
    }

    async fn put_to_the_current_name_is_200(backend) {
        let (app, token) = setup(backend).await;
        let id = app.create_resource(&token, "same").await["id"].as_i64().unwrap();
        let response = app.put_json(&format!("{BASE}{id}"), Some(&token), &json!({"name": "same"})).await;
        assert_eq!(response.status(), 200);
    }

    async fn put_to_the_name_of_another_own_resource_is_409(backend) {
        let (app, token) = setup(backend).await;
        let first = app.create_resource(&token, "first").await["id"].as_i64().unwrap();
        let second = app.create_resource(&token, "second").await["id"].as_i64().unwrap();
        let problem = assert_problem(app.put_json(&format!("{BASE}{second}"), Some(&token), &json!({"name": "first"})).await, 409).await;
        assert!(problem["detail"].as_str().unwrap().contains(&first.to_string()));
        let read: Value = app.get(&format!("{BASE}{second}"), Some(&token)).await.json().await.unwrap();
        assert_eq!(read["name"], "second");
    }

    async fn another_owner_can_neither_change_nor_delete(backend) {
        let (app, token) = setup(backend).await;
        let other = Oidc::shared().token(TestClient::Rw2).await;
        let created = app.create_resource(&token, "mine").await;
        let id = created["id"].as_i64().unwrap();
        assert_problem(app.put_json(&format!("{BASE}{id}"), Some(&other), &json!({"name": "theirs"})).await, 403).await;
        assert_problem(app.delete(&format!("{BASE}{id}"), Some(&other)).await, 403).await;
        let read: Value = app.get(&format!("{BASE}{id}"), Some(&other)).await.json().await.unwrap();
        assert_eq!(read, created);
    }

    async fn delete_is_204_and_then_the_resource_is_gone(backend) {
        let (app, token) = setup(backend).await;
        let id = app.create_resource(&token, "doomed").await["id"].as_i64().unwrap();
        let response = app.delete(&format!("{BASE}{id}"), Some(&token)).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.unwrap().is_empty());
        assert_problem(app.get(&format!("{BASE}{id}"), Some(&token)).await, 404).await;
        assert_problem(app.delete(&format!("{BASE}{id}"), Some(&token)).await, 404).await;
    }

    async fn read_only_token_reads_but_cannot_write(backend) {
        let (app, token) = setup(backend).await;
        let read_only = Oidc::shared().token(TestClient::Ro).await;
        let id = app.create_resource(&token, "visible").await["id"].as_i64().unwrap();
        assert_eq!(app.get(&format!("{BASE}{id}"), Some(&read_only)).await.status(), 200);
        assert_problem(app.delete(&format!("{BASE}{id}"), Some(&read_only)).await, 403).await;
    }

    async fn bad_requests_change_nothing(backend) {
        let (app, token) = setup(backend).await;
        let created = app.create_resource(&token, "keep").await;
        let id = created["id"].as_i64().unwrap();
        let path = format!("{BASE}{id}");
        let _ = app.put_json(&path, Some(&token), &json!({"name": ""})).await;
        let _ = app.put_json(&path, Some(&token), &json!({"name": "x", "extra": 1})).await;
        let _ = app.request(Method::PUT, &path, Some(&token)).header("content-type", "application/json").body("{").send().await;
        let _ = app.put_json(&path, Some("bogus"), &json!({"name": "y"})).await;
        let read: Value = app.get(&path, Some(&token)).await.json().await.unwrap();
        assert_eq!(read, created);
        assert_eq!(list(&app, &token, "").await.len(), 1);
    }

    async fn concurrent_creates_of_one_name_give_one_201_and_the_rest_409(backend) {
        let (app, token) = setup(backend).await;
        let body = json!({"name": "race"});
        let requests = (0..20).map(|_| app.post_json(BASE, Some(&token), &body));
        let statuses: Vec<u16> = futures_util::future::join_all(requests).await.iter().map(|r| r.status().as_u16()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
        assert_eq!(list(&app, &token, "").await.len(), 1);
    }

    async fn owners_are_keyed_by_the_token_subject(backend) {
        let oidc = Oidc::shared();
        let Some(idp) = &oidc.idp else { return };
        let app = TestApp::spawn_with_auth(backend, oidc.settings()).await;
        let alice = idp.user_tokens("mrmat-api-cli", "alice").await.access_token;
        let bob = idp.user_tokens("mrmat-api-cli", "bob").await.access_token;
        let a = app.create_resource(&alice, "note").await;
        let b = app.create_resource(&bob, "note").await;
        assert_eq!(a["owner"]["name"], "alice");
        assert_eq!(b["owner"]["name"], "bob");
        assert_eq!(a["owner"]["client_id"], "mrmat-api-cli");
        assert_ne!(a["owner"]["id"], b["owner"]["id"]);
        let id = a["id"].as_i64().unwrap();
        assert_problem(app.delete(&format!("{BASE}{id}"), Some(&bob)).await, 403).await;
    }
}
