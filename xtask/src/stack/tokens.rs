//! The native stack's API token: made on the first start of the API (256 random bits), kept in
//! the stack directory so it survives restarts. `api-tokens` holds its hash, the file the API
//! reads (`API_TOKENS_FILE`); `api-token` holds the token itself (mode 0600), which `cargo xtask
//! load` and the live proof send. One token, of role `admin`: the stack is a developer's.

use super::service::stack_dir;
use std::path::PathBuf;

/// The tokens file the native API reads.
pub fn tokens_file() -> PathBuf {
    stack_dir().join("api-tokens")
}

/// The name of the admin token's file in the stack directory.
pub const ADMIN_TOKEN_FILE: &str = "api-token";

/// The admin token of the native stack, in a file of its own.
pub fn admin_token_file() -> PathBuf {
    stack_dir().join(ADMIN_TOKEN_FILE)
}

/// The admin token of the native stack, if one was made.
pub fn admin_token() -> Option<String> {
    let token = std::fs::read_to_string(admin_token_file()).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Makes the token and the tokens file unless both exist; `Some(token)` when it made them.
pub fn ensure() -> anyhow::Result<Option<String>> {
    if admin_token().is_some() && tokens_file().exists() {
        return Ok(None);
    }
    let token = testkit::tokens::random()?;
    let line = testkit::tokens::line("stack-admin", "admin", &token);
    testkit::tokens::write_private(
        &tokens_file(),
        &format!("# the native stack's API token (cargo xtask stack)\n{line}\n"),
    )?;
    testkit::tokens::write_private(&admin_token_file(), &format!("{token}\n"))?;
    Ok(Some(token))
}
