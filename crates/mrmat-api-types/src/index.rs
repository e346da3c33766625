//! `GET /api/`: the APIs this server mounts.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One mounted API version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MountedApi {
    /// API name, e.g. `greeting`.
    pub name: String,
    /// Version, e.g. `v2`.
    pub version: String,
    /// Where it is mounted, e.g. `/api/greeting/v2`.
    pub path: String,
}

/// The list of mounted APIs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiIndex {
    /// Every mounted API version, in registry order.
    pub apis: Vec<MountedApi>,
}
