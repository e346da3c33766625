//! The resource API.

pub mod v1;
