//! A person approving a device login on Keycloak's own HTML pages, as a browser would:
//!
//! 1. the verification URI redirects to the login page (a session cookie set);
//! 2. its form (`kc-form-login`) is posted with the username and password;
//! 3. Keycloak shows its consent page ("Do you grant these access privileges?") for
//!    every device login, whatever the client's `consentRequired`: its form is posted
//!    with `accept`;
//! 4. Keycloak redirects to `/device/status`, the "device login successful" page.
//!
//! Forms and their fields are read from the HTML, redirects followed by hand and cookies
//! kept here: Keycloak marks its cookies `Secure`, which a cookie store would then not
//! send back over plain http on loopback, and a browser does.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use url::Url;

/// How a scripted visit to the verification page ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceApproval {
    /// Signed in and approved: the device's next poll gets tokens.
    Approved,
    /// The login page came back after the password was posted.
    LoginRejected,
    /// Keycloak does not know the code (or it expired).
    UnknownCode,
}

/// Redirects a visit may take before it is a loop.
const MAX_HOPS: usize = 10;

/// A browser of one visit: cookies by name.
struct Browser<'a> {
    http: &'a reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// A page the browser ended on.
struct Page {
    url: Url,
    html: String,
}

/// A form: where it posts and its fields (hidden inputs with their values).
#[derive(Debug)]
struct Form {
    action: Url,
    fields: Vec<(String, String)>,
    /// The names of its inputs and buttons, for telling forms apart.
    names: Vec<String>,
}

impl Browser<'_> {
    fn keep_cookies(&mut self, response: &reqwest::Response) {
        for header in response.headers().get_all(SET_COOKIE) {
            let Ok(text) = header.to_str() else { continue };
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                let expired = text.to_ascii_lowercase().contains("max-age=0");
                if expired || value.is_empty() {
                    self.cookies.remove(name.trim());
                } else {
                    self.cookies
                        .insert(name.trim().to_owned(), value.trim().to_owned());
                }
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Sends `request` and follows redirects (with GET) to a page that is not one.
    async fn visit(&mut self, mut url: Url, form: Option<&[(String, String)]>) -> Page {
        let mut form = form;
        for _ in 0..MAX_HOPS {
            let request = match form.take() {
                Some(fields) => self.http.post(url.clone()).form(fields),
                None => self.http.get(url.clone()),
            };
            let response = request
                .header(COOKIE, self.cookie_header())
                .send()
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            self.keep_cookies(&response);
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("a redirect without Location from {url}"));
                url = url.join(location).expect("a valid Location");
                continue;
            }
            let status = response.status();
            let html = response.text().await.expect("read a page");
            assert!(
                status.is_success() || status.is_client_error(),
                "{url} answered {status}: {html}"
            );
            return Page { url, html };
        }
        panic!("more than {MAX_HOPS} redirects from {url}")
    }
}

/// `&amp;` and friends as a browser reads them in attribute values.
fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the tag text `tag` (`<input ... name="x" ...`).
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// Every tag `<element ...>` in `html`, as its text without the closing `>`.
fn tags(html: &str, element: &str) -> Vec<String> {
    let open = format!("<{element}");
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let tag = &rest[start..];
        let end = tag.find('>').unwrap_or(tag.len());
        // `<form` must not match `<formx`: the next character ends the name.
        if tag[open.len()..]
            .chars()
            .next()
            .is_some_and(char::is_whitespace)
        {
            found.push(tag[..end].replace('\n', " "));
        }
        rest = &tag[end..];
    }
    found
}

/// The forms of `page`.
fn forms(page: &Page) -> Vec<Form> {
    page.html
        .split("<form")
        .skip(1)
        .filter_map(|chunk| {
            let body = chunk.split("</form>").next().unwrap_or(chunk);
            let head = &body[..body.find('>')?];
            let action = page.url.join(&attribute(head, "action")?).ok()?;
            let body = format!("<x {body}");
            let mut fields = Vec::new();
            let mut names = Vec::new();
            for input in tags(&body, "input") {
                let Some(name) = attribute(&input, "name") else {
                    continue;
                };
                let value = attribute(&input, "value").unwrap_or_default();
                names.push(name.clone());
                fields.push((name, value));
            }
            for button in tags(&body, "button") {
                if let Some(name) = attribute(&button, "name") {
                    names.push(name);
                }
            }
            Some(Form {
                action,
                fields,
                names,
            })
        })
        .collect()
}

fn form_with(page: &Page, field: &str) -> Option<Form> {
    forms(page)
        .into_iter()
        .find(|form| form.names.iter().any(|n| n == field))
}

fn set(fields: &mut Vec<(String, String)>, name: &str, value: &str) {
    fields.retain(|(n, _)| n != name);
    fields.push((name.to_owned(), value.to_owned()));
}

/// Opens `verification_uri_complete`, signs in as `username` and grants access. `http`
/// must not follow redirects.
pub(super) async fn approve(
    http: &reqwest::Client,
    verification_uri_complete: &str,
    username: &str,
    password: &str,
) -> DeviceApproval {
    // One approval at a time: a person approves one login after another, and Keycloak
    // answered 500 on the consent page when two logins of one user granted at once.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut browser = Browser {
        http,
        cookies: BTreeMap::new(),
    };
    let start = Url::parse(verification_uri_complete).expect("verification_uri_complete");
    let mut page = browser.visit(start, None).await;
    let mut signed_in = false;
    for _ in 0..MAX_HOPS {
        if page.url.path().ends_with("/device/status") {
            return DeviceApproval::Approved;
        }
        if let Some(mut login) = form_with(&page, "password") {
            if signed_in {
                return DeviceApproval::LoginRejected;
            }
            set(&mut login.fields, "username", username);
            set(&mut login.fields, "password", password);
            signed_in = true;
            page = browser.visit(login.action, Some(&login.fields)).await;
            continue;
        }
        if let Some(mut consent) = form_with(&page, "accept") {
            // The button pressed is sent as a field, as a browser does.
            set(&mut consent.fields, "accept", "Yes");
            page = browser.visit(consent.action, Some(&consent.fields)).await;
            continue;
        }
        // The page that asks for a code again ("Enter the code ...") means it was
        // not accepted.
        if form_with(&page, "device_user_code").is_some() {
            return DeviceApproval::UnknownCode;
        }
        panic!("no form to go on with at {}: {}", page.url, page.html);
    }
    panic!("the device login did not end within {MAX_HOPS} pages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_form_is_read_with_its_action_and_fields() {
        let page = Page {
            url: Url::parse("http://127.0.0.1:1/realms/r/device").unwrap(),
            html: r#"<html><form id="kc-form-login" action="/realms/r/login-actions/authenticate?a=1&amp;b=2" method="post">
              <input id="username" name="username" value="" type="text">
              <input type="hidden" name="credentialId" />
              <button name="login" type="submit">Sign In</button></form></html>"#
                .to_owned(),
        };
        let form = form_with(&page, "login").expect("the login form");
        assert_eq!(
            form.action.as_str(),
            "http://127.0.0.1:1/realms/r/login-actions/authenticate?a=1&b=2"
        );
        assert_eq!(
            form.fields,
            vec![
                ("username".to_owned(), String::new()),
                ("credentialId".to_owned(), String::new())
            ]
        );
    }
}
