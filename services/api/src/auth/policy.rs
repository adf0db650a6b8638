//! The one table of who may call what: reads need `read`, changes need `write`, replacing the
//! whole graph needs `admin`. Roles are ordered: `admin` may do everything `write` may, which may
//! do everything `read` may. The OpenAPI document's security requirements are generated from the
//! same function, so the document and the checks cannot disagree.

use axum::http::Method;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// What a token may do; a higher role includes the lower ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `GET`: statistics, employees, jobs, interventions.
    Read,
    /// Adding and removing employees and relations, analyses, exports, interventions.
    Write,
    /// Replacing the whole graph (`POST /api/graph/seed`).
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Read, Role::Write, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (expected read, write or admin)"))
    }
}

/// The OpenAPI document's path, open to everyone (it says how to authenticate).
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The route that replaces the whole graph.
const SEED_PATH: &str = "/api/graph/seed";

/// The role `method` on route template `route` needs; `None`: the route is open (health, the
/// OpenAPI document, anything outside `/api/`).
pub fn required_role(method: &Method, route: &str) -> Option<Role> {
    if !route.starts_with("/api/") || route == OPENAPI_PATH {
        None
    } else if route == SEED_PATH {
        Some(Role::Admin)
    } else if method == Method::GET || method == Method::HEAD {
        Some(Role::Read)
    } else {
        Some(Role::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_changes_and_the_seed_need_rising_roles() {
        assert_eq!(required_role(&Method::GET, "/api/graph/stats"), Some(Role::Read));
        assert_eq!(required_role(&Method::POST, "/api/graph/nodes"), Some(Role::Write));
        assert_eq!(required_role(&Method::DELETE, "/api/graph/edges/{id}"), Some(Role::Write));
        assert_eq!(required_role(&Method::POST, "/api/graph/seed"), Some(Role::Admin));
        assert_eq!(required_role(&Method::GET, "/health/ready"), None);
        assert_eq!(required_role(&Method::GET, OPENAPI_PATH), None);
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("root".parse::<Role>().unwrap_err().contains("root"));
    }
}
