//! mrmat-api-client: a typed Rust client for the mrmat-api HTTP interface, and the OAuth
//! 2.0 device-flow login, token cache and refresh behind the `mrmat-api-client` CLI.
//!
//! [`api::ApiClient`] calls the API with a token; [`session::Session`] gets and keeps
//! that token; [`authorized::AuthorizedApi`] puts the two together, refreshing and
//! retrying once when the server refuses a token. Every request goes through one
//! [`http::Http`], which keeps tokens off plain http to other machines. The CLI is a thin
//! layer over these.
//!
//! The modules form a stack: each uses only modules on the lines above its own, so no
//! two import each other (a test below reads this list and the sources and holds them to
//! it; the binary's modules, `main.rs` and below, sit on top of all of these).
//!
//! 1. `error`, `sanitise`, `words`
//! 2. `dpop`, `server_url`
//! 3. `http`, `binding`
//! 4. `token_cache`, `api`, `config`
//! 5. `oauth`, `revocation`, `provider`
//! 6. `session`
//! 7. `device_login`, `authorized`

pub mod api;
pub mod authorized;
pub mod binding;
pub mod config;
pub mod device_login;
pub mod dpop;
pub mod error;
pub mod http;
mod oauth;
pub mod provider;
pub mod revocation;
pub mod sanitise;
pub mod server_url;
pub mod session;
pub mod token_cache;
pub mod words;

pub use api::ApiClient;
pub use authorized::{AuthorizedApi, TokenSource};
pub use error::ClientError;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    /// The layer of each module, read from the numbered list in this file's header.
    fn layers() -> HashMap<String, usize> {
        let header = include_str!("lib.rs");
        let mut layers = HashMap::new();
        for line in header.lines().take_while(|line| line.starts_with("//!")) {
            let line = line.trim_start_matches("//!").trim();
            let Some((number, modules)) = line.split_once(". ") else {
                continue;
            };
            let Ok(number) = number.parse::<usize>() else {
                continue;
            };
            for module in modules.split(',') {
                layers.insert(module.trim().trim_matches('`').to_owned(), number);
            }
        }
        layers
    }

    #[test]
    fn every_module_uses_only_modules_of_lower_layers() {
        let layers = layers();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut checked = 0;
        for (module, &layer) in &layers {
            let source = std::fs::read_to_string(dir.join(format!("{module}.rs"))).unwrap();
            for used in source.split("crate::").skip(1) {
                let used: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let Some(&used_layer) = layers.get(&used) else {
                    panic!("{module} uses crate::{used}, which the layer list does not name");
                };
                assert!(
                    used_layer < layer,
                    "{module} (layer {layer}) uses {used} (layer {used_layer}): move one of them"
                );
            }
            checked += 1;
        }
        let listed = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| name.ends_with(".rs"))
            .count();
        // Every library module is in the list; lib.rs, main.rs and the binary's own
        // modules (browser, cli, output, progress) are not.
        assert_eq!(
            checked + 6,
            listed,
            "a module is missing from the layer list"
        );
    }
}
