//! The greeting API. Each version is its own module; old versions are never edited.

pub mod v1;
pub mod v2;
pub mod v3;
