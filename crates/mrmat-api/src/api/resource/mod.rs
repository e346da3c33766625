//! The resource API.

pub(crate) mod v1;
