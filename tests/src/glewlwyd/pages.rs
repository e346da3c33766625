//! A person approving a device login the way Glewlwyd's pages do. Its login page is a
//! single-page app that calls Glewlwyd's REST API; these are the same calls:
//!
//! 1. the verification URI redirects to `login.html?client_id=..&scope=..&callback_url=..`
//!    (or with `prompt=deviceCodeError` for an unknown code);
//! 2. `POST /api/auth/` signs the person in with the password scheme (a session cookie);
//! 3. `PUT /api/auth/grant/{client_id}` grants the client the scopes it asked for;
//! 4. the app returns to `callback_url` with `g_continue` added, which completes the code
//!    and redirects with `prompt=deviceComplete`.

use serde_json::json;
use url::Url;

use super::provision::session_cookie;

/// How a scripted visit to the verification page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceApproval {
    /// Signed in and approved: the device's next poll gets tokens.
    Approved,
    /// The password was refused.
    LoginRejected,
    /// Glewlwyd does not know the code (or it expired).
    UnknownCode,
}

fn location(response: &reqwest::Response) -> Url {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a redirect, got {}", response.status()));
    Url::parse(location).expect("an absolute Location")
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn prompt_is(url: &Url, prompt: &str) -> bool {
    query(url, "prompt").as_deref() == Some(prompt)
}

/// Opens `verification_uri_complete`, signs in as `username` and approves. `http` must not
/// follow redirects; `api` is Glewlwyd's API base (`http://127.0.0.1:PORT/api`).
pub(super) async fn approve(
    http: &reqwest::Client,
    api: &str,
    verification_uri_complete: &str,
    username: &str,
    password: &str,
) -> DeviceApproval {
    let visit = http
        .get(verification_uri_complete)
        .send()
        .await
        .expect("open the verification URI");
    let login_page = location(&visit);
    if prompt_is(&login_page, "deviceCodeError") {
        return DeviceApproval::UnknownCode;
    }
    let client_id = query(&login_page, "client_id").expect("client_id on the login page");
    let scope = query(&login_page, "scope").expect("scope on the login page");
    let callback = query(&login_page, "callback_url").expect("callback_url on the login page");

    let login = http
        .post(format!("{api}/auth/"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .expect("sign-in request");
    if login.status() == 401 {
        return DeviceApproval::LoginRejected;
    }
    assert_eq!(login.status(), 200, "sign-in");
    let cookie = session_cookie(&login).expect("session cookie");

    let grant = http
        .put(format!("{api}/auth/grant/{client_id}"))
        .header(reqwest::header::COOKIE, &cookie)
        .json(&json!({ "scope": scope }))
        .send()
        .await
        .expect("grant request");
    assert_eq!(grant.status(), 200, "grant {scope:?} to {client_id}");

    let mut resume = Url::parse(&callback).expect("callback_url is a URL");
    resume.query_pairs_mut().append_pair("g_continue", "");
    let done = http
        .get(resume)
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("return to the device page");
    let end = location(&done);
    if prompt_is(&end, "deviceComplete") {
        DeviceApproval::Approved
    } else if prompt_is(&end, "deviceCodeError") {
        DeviceApproval::UnknownCode
    } else {
        panic!("the device page ended at {end}")
    }
}
