//! The greeting API. Each version is its own module; old versions are never edited.

pub(crate) mod v1;
pub(crate) mod v2;
pub(crate) mod v3;
