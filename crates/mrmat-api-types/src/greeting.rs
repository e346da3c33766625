//! Greeting API bodies. Every version shares the same response shape.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of every greeting version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Greeting {
    /// The greeting, e.g. `Hello World`.
    // Borrowed where it is fixed: greeting v1 answers with no allocation of its own (one a
    // request, 150 instructions with its free, callgrind); read from a body it is owned.
    #[schema(value_type = String, example = "Hello World")]
    pub message: Cow<'static, str>,
}
