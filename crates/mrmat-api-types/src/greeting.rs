//! Greeting API bodies. Every version shares the same response shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of every greeting version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Greeting {
    /// The greeting, e.g. `Hello World`.
    #[schema(example = "Hello World")]
    pub message: String,
}
