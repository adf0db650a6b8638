//! The reporting lines (`reports_to` relations) form a forest: nobody reports, even through
//! others, to themselves. Every change to them (the API's new edges, the worker's reassignments
//! and their rollbacks) runs in a transaction that first takes one advisory lock, then checks the
//! change against the lines as they are: two changes can no longer each pass the check against
//! the other's old state (5 → 9 and 9 → 5 at once).

use sqlx::PgConnection;

/// The advisory lock's key (any fixed number no other lock of the database uses: "orgraph").
const LOCK_KEY: i64 = 0x006f_7267_7261_7068;

/// Takes the reporting lines' lock until the end of the current transaction.
pub async fn lock(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK_KEY).execute(conn).await?;
    Ok(())
}

/// Whether making `employee` report to `manager` would close a loop: `manager` is `employee` or
/// reports to them, directly or through others. Call it holding [`lock`].
pub async fn would_loop(
    conn: &mut PgConnection,
    employee: i64,
    manager: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "WITH RECURSIVE chain(id) AS ( \
           SELECT $2::int8 UNION \
           SELECT r.target_id FROM relations r JOIN chain c ON r.source_id = c.id \
           WHERE r.kind = 'reports_to') \
         SELECT EXISTS (SELECT 1 FROM chain WHERE id = $1)",
    )
    .bind(employee)
    .bind(manager)
    .fetch_one(conn)
    .await
}
