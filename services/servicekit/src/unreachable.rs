//! One answer, for both services, to "did this database error happen because Postgres could not
//! be reached?" (rather than because the statement was wrong): the API's breaker counts only these
//! as failures, and the worker retries its bookkeeping through them.

/// Whether `error` means Postgres could not be reached, or stopped answering: a lost or refused
/// connection, no connection within the pool's timeout, or a server shutting down or restarting
/// (SQLSTATE classes 08 and 57P).
pub fn is_unreachable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unreachable_and_statement_errors_are_not() {
        assert!(is_unreachable(&sqlx::Error::PoolTimedOut));
        assert!(is_unreachable(&sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into())));
        assert!(!is_unreachable(&sqlx::Error::RowNotFound));
        assert!(!is_unreachable(&sqlx::Error::PoolClosed));
        assert!(!is_unreachable(&sqlx::Error::ColumnNotFound("status".into())));
    }
}
