//! The workspace's own tasks; `main.rs` dispatches to them.

pub mod new_api;
pub mod rename;
pub mod test;
pub mod workspace;
