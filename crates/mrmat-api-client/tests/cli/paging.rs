//! `resource list`: every page by default, one page with `--limit`, and a word when empty.

use mrmat_api_testkit::{Backend, Oidc, TestApp, TestClient};

use crate::harness::{Home, stderr, stdout};

/// A server with `count` resources, and a token that may read them.
async fn app_with_resources(count: usize) -> (TestApp, String) {
    let oidc = Oidc::shared();
    let app = TestApp::spawn_with_auth(Backend::Sqlite, oidc.settings()).await;
    let token = oidc.token(TestClient::Rw).await;
    for i in 0..count {
        app.create_resource(&token, &format!("resource {i:03}"))
            .await;
    }
    (app, token)
}

#[tokio::test]
async fn resource_list_follows_the_pages_to_the_end() {
    let (app, token) = app_with_resources(110).await;
    let home = Home::new(&app.address);
    let env = [("MRMAT_API_TOKEN", token.as_str())];

    let output = home
        .run_with_env(&["-d", "--output", "json", "resource", "list"], &env)
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<i64> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 110, "every resource, not the first page");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in id order, no repeats"
    );
    assert!(list.get("next_after").is_none(), "nothing left to fetch");
    let pages = stderr(&output)
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "debug: GET {}/api/resource/v1/ -> 200",
                app.address
            ))
        })
        .count();
    assert_eq!(
        pages,
        2,
        "two pages of the server's 100: {}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("Showing"), "nothing was cut");

    let table = home
        .run_with_env(&["--output", "table", "resource", "list"], &env)
        .await;
    assert_eq!(stdout(&table).lines().count(), 111, "a header and 110 rows");
}

#[tokio::test]
async fn a_limited_list_says_there_are_more_and_how_to_list_them_all() {
    let (app, token) = app_with_resources(15).await;
    let home = Home::new(&app.address);
    let env = [("MRMAT_API_TOKEN", token.as_str())];
    let output = home
        .run_with_env(
            &["--output", "json", "resource", "list", "--limit", "10"],
            &env,
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["resources"].as_array().unwrap().len(), 10);
    let after = list["next_after"].as_i64().expect("scripts get the cursor");
    assert_eq!(Some(after), list["resources"][9]["id"].as_i64(), "{list}");
    assert_eq!(
        stderr(&output),
        format!(
            "Showing 10 resources; the next page: `mrmat-api-client --server {0} resource list --limit 10 --after {after}`, or all of them: `mrmat-api-client --server {0} resource list --all`\n",
            app.address
        )
    );

    // The hinted command, as pasted, gives the rest; one resource is said as one.
    let after = after.to_string();
    let rest = home
        .run_with_env(
            &[
                "--output", "json", "resource", "list", "--limit", "10", "--after", &after,
            ],
            &env,
        )
        .await;
    let rest: serde_json::Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(rest["resources"].as_array().unwrap().len(), 5);
    assert!(rest.get("next_after").is_none(), "the last page: {rest}");
    let one = home
        .run_with_env(
            &["--output", "json", "resource", "list", "--limit", "1"],
            &env,
        )
        .await;
    assert!(
        stderr(&one).starts_with("Showing 1 resource; the next page: "),
        "{}",
        stderr(&one)
    );

    let all = home
        .run_with_env(&["--output", "json", "resource", "list", "--all"], &env)
        .await;
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(all["resources"].as_array().unwrap().len(), 15);
}

#[tokio::test]
async fn an_empty_list_says_there_are_no_resources() {
    let (app, token) = app_with_resources(0).await;
    let home = Home::new(&app.address);
    let output = home
        .run_with_env(
            &["--output", "table", "resource", "list"],
            &[("MRMAT_API_TOKEN", &token)],
        )
        .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "No resources.\n");
}
