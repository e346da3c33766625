//! Health check bodies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Overall state of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HealthStatus {
    /// Everything the service needs works.
    Ok,
    /// A dependency failed; the service cannot answer every request.
    Degraded,
}

/// `GET /healthz/`: the process is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Liveness {
    /// Always `OK` when the process answers.
    pub status: HealthStatus,
}

/// `GET /healthz/ready`: whether the dependencies answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `OK` when every check passed.
    pub status: HealthStatus,
    /// One entry per dependency (`database`, `oidc`) with `OK` or what is wrong.
    pub checks: BTreeMap<String, String>,
}
