//! Trust boundaries: plain http only to this machine, provider and server text neutralised
//! before it reaches the terminal, a login's tokens only for its own server, and a server
//! that is not mrmat-api named as such.

use std::time::Duration;

use mrmat_api_testkit::idp::{Approval, Idp, IdpOptions, eventually};
use mrmat_api_testkit::{Backend, Oidc, TestApp};

use crate::harness::{Home, stderr, stdout};
use crate::hostile::{Fake, json, not_found};

/// What an escape sequence that reached the terminal would leave in the output.
fn assert_neutralised(text: &str) {
    for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{9d}', '\u{202e}'] {
        assert!(!text.contains(c), "{c:?} reached the terminal: {text:?}");
    }
    assert!(
        !text.contains("evil.example"),
        "a hidden link target: {text:?}"
    );
}

#[tokio::test]
async fn plain_http_to_another_machine_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // 0.0.0.0 reaches this machine's loopback, but it is not a loopback address.
    let home = Home::new(&format!("http://0.0.0.0:{}", app.port));
    let output = home.run(&["greeting"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "error: --server http://0.0.0.0:{}/ is plain http to another machine, where tokens can be read on the way: use https, or accept the risk with --allow-insecure-http\n",
            app.port
        )
    );
}

#[tokio::test]
async fn plain_http_to_another_machine_is_allowed_with_the_flag_and_warned_every_time() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let home = Home::new(&format!("http://0.0.0.0:{}", app.port));
    let warning = "warning: --allow-insecure-http: tokens may cross the network over plain http, readable by anyone on the way\n";
    let flag = home
        .run(&[
            "--allow-insecure-http",
            "-q",
            "--output",
            "json",
            "greeting",
        ])
        .await;
    assert_eq!(flag.status.code(), Some(0), "{}", stderr(&flag));
    assert!(stdout(&flag).contains("Hello World"));
    assert_eq!(stderr(&flag), warning, "warned even with --quiet");
    let env = home
        .run_with_env(
            &["--output", "json", "greeting"],
            &[("MRMAT_API_CLIENT_ALLOW_INSECURE_HTTP", "1")],
        )
        .await;
    assert_eq!(env.status.code(), Some(0), "{}", stderr(&env));
    assert_eq!(stderr(&env), warning);
}

#[tokio::test]
async fn escape_sequences_in_server_text_are_neutralised() {
    // The real server refuses such names (and escapes them in its logs), so a hostile
    // server plays it: the client must not trust that any server does.
    let hostile = "\u{1b}]8;;https://evil.example/\u{7}click me\u{1b}]8;;\u{7} \u{1b}[2J\u{1b}[31mred\u{1b}[0m \u{9b}1A \u{202e}txt.exe";
    let resource = serde_json::json!({
        "id": 7, "name": hostile,
        "owner": {"id": 1, "client_id": "cli\u{1b}[2J", "name": "\u{202e}alice"},
        "created_at": "2026-12-06T10:00:00Z", "updated_at": "2026-12-06T10:00:00Z"
    });
    let list = serde_json::json!({"resources": [resource.clone()]});
    let fake = Fake::start(move |_, request| match request.path.as_str() {
        "/api/resource/v1/" => json(list.clone()),
        "/api/resource/v1/7" => json(resource.clone()),
        _ => not_found(),
    })
    .await;
    let home = Home::new(&fake.url);
    let env = [("MRMAT_API_TOKEN", "a-token")];
    for args in [
        &["--output", "table", "resource", "list"][..],
        &["--output", "table", "resource", "get", "7"],
    ] {
        let output = home.run_with_env(args, &env).await;
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        assert_neutralised(&text);
        assert!(text.contains("\u{fffd}click me\u{fffd}"), "{text:?}");
        assert!(text.contains("red"), "{text:?}");
    }
    let json_output = home
        .run_with_env(&["--output", "json", "resource", "get", "7"], &env)
        .await;
    let value: serde_json::Value = serde_json::from_slice(&json_output.stdout).unwrap();
    assert_eq!(
        value["name"], hostile,
        "JSON carries the value as the server sent it, escaped"
    );
}

#[tokio::test]
async fn escape_sequences_in_provider_text_are_neutralised() {
    let oidc = Oidc::local(Idp::start_with(IdpOptions {
        env: vec![("IDP_REFUSE_REFRESH".into(), "hostile".into())],
        ..IdpOptions::default()
    }));
    let idp = oidc.idp.as_ref().unwrap();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let home = Home::new(&app.address);
    let short = "mrmat-api-cli-short";
    let result = home
        .login_with(
            idp,
            &["--client-id", short],
            "alice",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert_neutralised(&result.stderr);
    eventually(Duration::from_secs(10), || async {
        home.status(&["--client-id", short]).await.0["logins"][0]["state"] == "refreshable"
    })
    .await;

    let output = home.run(&["--client-id", short, "token"]).await;
    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert_neutralised(&message);
    assert_eq!(message.lines().count(), 1, "{message:?}");
    assert!(
        message.contains("\u{fffd}Open https://idp.example/\u{fffd}"),
        "{message:?}"
    );
    assert!(message.contains("the grant is gone"), "{message:?}");

    let status = home
        .run(&["--client-id", short, "--output", "table", "auth", "status"])
        .await;
    assert_neutralised(&stdout(&status));
    assert_neutralised(&stderr(&status));
}

#[tokio::test]
async fn a_cached_login_is_never_sent_to_another_server() {
    let oidc = Oidc::local(Idp::start());
    let idp = oidc.idp.as_ref().unwrap();
    let first = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let other = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let discovery = format!("{}/.well-known/openid-configuration", idp.issuer);
    let home = Home::new(&first.address);
    // The provider configured directly, as in the original's config file: a login made
    // through it could otherwise look valid for any server.
    let result = home
        .login_with(
            idp,
            &["--discovery-url", &discovery],
            "alice",
            Some(Approval::Approve),
            || async {},
        )
        .await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    idp.reset_stats().await;

    for args in [
        &["--discovery-url", &discovery, "greeting", "--api", "v3"][..],
        &["--discovery-url", &discovery, "resource", "list"],
        &["--discovery-url", &discovery, "token"],
    ] {
        let output = home.run_on(&other.address, args).await;
        assert_eq!(output.status.code(), Some(3), "{args:?}");
        assert_eq!(
            stderr(&output),
            format!(
                "error: not logged in to {other}; there is a login for {first} (a login is only used with the server it was made for): to use it, pass --server {first}; to log in: `mrmat-api-client --server {other} --discovery-url {discovery} login`\n",
                other = other.address,
                first = first.address,
            )
        );
    }
    let stats = idp.stats().await;
    assert_eq!(
        stats.introspections, 0,
        "the other server never saw a token"
    );
    assert!(
        stats.token_requests.is_empty(),
        "and nothing was refreshed for it"
    );
}

#[tokio::test]
async fn a_server_that_is_not_mrmat_api_is_named_as_such() {
    let Some(idp) = Oidc::shared().idp.as_ref() else {
        return;
    };
    let home = Home::new(&idp.issuer);
    let expected = |path: &str| {
        format!(
            "error: {} is not an mrmat-api server (neither {path} nor /api/ answers like one); check --server\n",
            idp.issuer
        )
    };
    let login = home.run(&["login"]).await;
    assert_eq!(login.status.code(), Some(2));
    assert_eq!(
        stderr(&login),
        expected("/.well-known/oauth-protected-resource")
    );

    let list = home
        .run_with_env(&["resource", "list"], &[("MRMAT_API_TOKEN", "t")])
        .await;
    assert_eq!(list.status.code(), Some(2));
    assert_eq!(stderr(&list), expected("/api/resource/v1/"));
}

/// Runs `openssl` with `args` in `dir`, bounded.
async fn openssl(dir: &std::path::Path, args: &[&str]) {
    let output = crate::harness::bounded(
        "openssl",
        tokio::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("openssl (Debian package openssl) is needed for the TLS test");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        stderr(&output)
    );
}

#[tokio::test]
async fn a_server_behind_a_private_ca_is_trusted_only_with_ca_file() {
    use tokio::io::AsyncBufReadExt;

    // A private CA and a certificate for localhost it signed; `openssl s_server` is a
    // real TLS server on loopback (it answers every request with an HTML status page).
    let dir = tempfile::tempdir().unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mrmat test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ]);
    openssl(dir.path(), &ca).await;
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(dir.path(), &csr).await;
    std::fs::write(
        dir.path().join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir.path(),
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    )
    .await;
    let mut server = tokio::process::Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            "127.0.0.1:0",
            "-cert",
            "leaf.pem",
            "-key",
            "leaf.key",
            "-www",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let port = loop {
        let line = crate::harness::bounded("s_server's ACCEPT line", lines.next_line())
            .await
            .unwrap()
            .expect("s_server printed its port");
        if let Some(address) = line.strip_prefix("ACCEPT ") {
            break address.rsplit(':').next().unwrap().to_owned();
        }
    };
    let home = Home::new(&format!("https://localhost:{port}"));

    let untrusted = home.run(&["greeting"]).await;
    assert_eq!(untrusted.status.code(), Some(1));
    assert!(
        stderr(&untrusted).contains("invalid peer certificate: UnknownIssuer"),
        "{}",
        stderr(&untrusted)
    );

    let ca_file = dir.path().join("ca.pem");
    let trusted = home
        .run(&["--ca-file", ca_file.to_str().unwrap(), "greeting"])
        .await;
    // The handshake passed: what answered is a TLS test server, not mrmat-api.
    assert_eq!(trusted.status.code(), Some(2), "{}", stderr(&trusted));
    assert!(
        stderr(&trusted).contains("is not an mrmat-api server"),
        "{}",
        stderr(&trusted)
    );

    server.start_kill().unwrap();
    crate::harness::bounded("s_server", server.wait())
        .await
        .unwrap();
}
