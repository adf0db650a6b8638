//! Who may do what. Every `/api/*` route needs a bearer token (health and the OpenAPI document
//! stay open); each token has a role, and each route needs one ([`policy`]). Tokens are read at
//! start-up from `API_TOKENS_FILE` as SHA-256 hashes and checked in constant time ([`tokens`]);
//! the check runs before the handler, so a refused request never reaches the database
//! ([`layer`]). Each token then has its own request rate limit ([`limit`]).
//!
//! Refusals are problems like every other error: 401 (no token, or not a known one), 403 (a known
//! token whose role is too low), 429 (over the token's rate). The HTTP metrics count them by route
//! and status, never by token.

pub mod layer;
pub mod limit;
pub mod policy;
pub mod tokens;

pub use policy::{Role, required_role};
pub use tokens::{Caller, Tokens, TokensError};
