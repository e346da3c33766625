//! End-to-end tests of the `mrmat-api-client` binary against the real server and the real
//! test identity provider, with a scripted person approving logins on the provider's pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod binding;
mod browser;
mod completion;
mod ctrl_c;
mod dpop;
mod first_day;
mod harness;
mod hostile;
mod login;
mod logout;
mod paging;
mod session;
mod status;
mod table;
mod terminal;
mod trust;
mod waiting;
