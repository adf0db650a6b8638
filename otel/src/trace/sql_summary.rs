//! A short, low-cardinality name for a SQL statement: its operation and the main table it works
//! on (`SELECT employees`, `INSERT apalis.jobs`), the Postgres client span's name and
//! `db.query.summary`. The statement text itself never leaves this module: it holds ids and
//! values, and a span name must come from a bounded set.
//!
//! The set is bounded because the operation is one of [`OPERATIONS`] (anything else is `_OTHER`)
//! and the table is an identifier written in the statement, and the services' statements are
//! static strings in the code. A name that is not a plain (optionally schema-qualified)
//! identifier is left out rather than guessed.
//!
//! This is a reader of the statements the platform runs, not a SQL parser: it skips string
//! literals, quoted identifiers, comments and anything in parentheses (sub-queries, function
//! arguments, column lists), then takes the target after the operation's keyword at the top
//! level: `FROM` for `SELECT`/`DELETE`, `INTO` for `INSERT`/`MERGE`, the next word for
//! `UPDATE`/`TRUNCATE`/`LOCK`. For a `WITH` statement, `db.operation.name` is `WITH` (its first
//! keyword) and the summary is that of the statement after the common table expressions, which is
//! what the query does (`SELECT employees`).

/// The operations kept as themselves in `db.operation.name`; any other first word is `_OTHER`.
pub const OPERATIONS: &[&str] = &[
    "ALTER",
    "ANALYZE",
    "BEGIN",
    "CALL",
    "COMMIT",
    "COPY",
    "CREATE",
    "DELETE",
    "DROP",
    "END",
    "EXPLAIN",
    "INSERT",
    "LOCK",
    "MERGE",
    "RELEASE",
    "RESET",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHOW",
    "START",
    "TRUNCATE",
    "UPDATE",
    "VACUUM",
    "VALUES",
    "WITH",
];

/// What a statement is summarised to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuerySummary {
    /// `db.operation.name`: the statement's first keyword, upper case, or `_OTHER`.
    pub operation: &'static str,
    /// `db.query.summary`: the operation of the main statement and its table, if one was found.
    pub summary: String,
}

/// Summarises `sql`; see the module doc.
pub fn summarise(sql: &str) -> QuerySummary {
    let tokens = tokenize(sql);
    let top: Vec<&str> = tokens.iter().filter(|t| t.depth == 0).map(|t| t.text.as_str()).collect();
    let first = top.first().map_or("_OTHER", |word| operation(word));
    let main = if first == "WITH" {
        const MAIN: [&str; 5] = ["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"];
        top.iter().position(|w| MAIN.contains(&operation(w)))
    } else {
        Some(0)
    };
    let summary = match main {
        None => first.to_string(),
        Some(at) => {
            let main_operation = top.get(at).map_or(first, |w| operation(w));
            match target(main_operation, top.get(at + 1..).unwrap_or_default()) {
                Some(table) => format!("{main_operation} {table}"),
                None => main_operation.to_string(),
            }
        }
    };
    QuerySummary { operation: first, summary }
}

/// `word` as one of [`OPERATIONS`], or `_OTHER`.
fn operation(word: &str) -> &'static str {
    OPERATIONS.iter().copied().find(|op| op.eq_ignore_ascii_case(word)).unwrap_or("_OTHER")
}

/// The table `operation` works on, from the top-level words that follow it.
fn target<'a>(operation: &str, rest: &[&'a str]) -> Option<&'a str> {
    let after = |keyword: &str| {
        let at = rest.iter().position(|w| w.eq_ignore_ascii_case(keyword))?;
        Some(&rest[at + 1..])
    };
    let words = match operation {
        "SELECT" | "DELETE" => after("FROM")?,
        "INSERT" | "MERGE" => after("INTO")?,
        "UPDATE" | "TRUNCATE" | "LOCK" => rest,
        _ => return None,
    };
    words
        .iter()
        .copied()
        .find(|w| !["ONLY", "TABLE"].iter().any(|skip| skip.eq_ignore_ascii_case(w)))
        .filter(|w| is_identifier(w))
}

/// A plain identifier, optionally schema-qualified: what a table name looks like.
fn is_identifier(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A word of the statement and how deep in parentheses it is.
struct Token {
    text: String,
    depth: u32,
}

/// The words of `sql` (identifiers, keywords, numbers, `$1`), without literals and comments.
fn tokenize(sql: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut depth = 0u32;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '\'' => skip_quoted(&mut chars, '\''),
            '-' if chars.peek().map(|(_, d)| *d) == Some('-') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().map(|(_, d)| *d) == Some('*') => {
                chars.next();
                let mut previous = ' ';
                for (_, d) in chars.by_ref() {
                    if previous == '*' && d == '/' {
                        break;
                    }
                    previous = d;
                }
            }
            c if c == '"' || is_word_char(c) => {
                tokens.push(Token { text: read_name(c, &mut chars), depth });
            }
            _ => {}
        }
    }
    tokens
}

/// A word that starts with `first`: unquoted parts and quoted identifiers (without their quotes)
/// up to the first character that is neither, so `"apalis"."jobs"` reads as `apalis.jobs`.
fn read_name(first: char, chars: &mut Chars<'_>) -> String {
    let mut name = String::new();
    let mut next = Some(first);
    while let Some(c) = next {
        if c == '"' {
            for (_, d) in chars.by_ref() {
                if d == '"' {
                    break;
                }
                name.push(d);
            }
        } else {
            name.push(c);
        }
        next = chars.next_if(|&(_, d)| d == '"' || is_word_char(d)).map(|(_, d)| d);
    }
    name
}

type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '$')
}

/// Skips to the end of a literal opened by `quote` (a doubled quote is an escaped one).
fn skip_quoted(chars: &mut Chars<'_>, quote: char) {
    while let Some((_, c)) = chars.next() {
        if c == quote {
            if chars.peek().map(|(_, d)| *d) == Some(quote) {
                chars.next();
            } else {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(sql: &str, operation: &str, summary: &str) {
        let got = summarise(sql);
        assert_eq!((got.operation, got.summary.as_str()), (operation, summary), "{sql}");
    }

    #[test]
    fn the_services_statements_are_named_by_operation_and_table() {
        // Statements as the services (services/api, services/domain, services/worker) and apalis
        // write them.
        let cases = [
            ("SELECT id FROM employees ORDER BY id", "SELECT", "SELECT employees"),
            (
                "SELECT id, name, team, title FROM employees WHERE id > $1 ORDER BY id LIMIT $2",
                "SELECT",
                "SELECT employees",
            ),
            ("SELECT 1", "SELECT", "SELECT"),
            ("SELECT pg_advisory_xact_lock($1, hashtext('jobs:' || $2))", "SELECT", "SELECT"),
            ("SELECT set_config('statement_timeout', $1, true)", "SELECT", "SELECT"),
            (
                "SELECT (SELECT count(*) FROM employees) AS nodes, (SELECT count(*) FROM relations) AS edges",
                "SELECT",
                "SELECT",
            ),
            (
                "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8 \
                 FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending'",
                "SELECT",
                "SELECT apalis.jobs",
            ),
            (
                "SELECT state FROM interventions WHERE id = $1 FOR UPDATE",
                "SELECT",
                "SELECT interventions",
            ),
            (
                "SELECT\n    *\nFROM\n    apalis.get_jobs($1, $2, $3)",
                "SELECT",
                "SELECT apalis.get_jobs",
            ),
            (
                "INSERT INTO influence_scores (job_id, employee_id, pagerank, betweenness) \
                 SELECT $1, * FROM unnest($2::int8[], $3::float8[], $4::float8[])",
                "INSERT",
                "INSERT influence_scores",
            ),
            (
                "INSERT INTO apalis.jobs \
                 VALUES ($1, $2, $3, 'Pending', 0, $4, now(), 0, ''::hstore)",
                "INSERT",
                "INSERT apalis.jobs",
            ),
            ("INSERT INTO jobs (id, kind, params) VALUES ($1, $2, $3)", "INSERT", "INSERT jobs"),
            (
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(), \
                 error = NULL WHERE id = $1",
                "UPDATE",
                "UPDATE jobs",
            ),
            ("UPDATE apalis.workers w SET last_seen = now()", "UPDATE", "UPDATE apalis.workers"),
            ("DELETE FROM relations WHERE id = $1", "DELETE", "DELETE relations"),
            (
                "WITH latest AS (SELECT id FROM jobs WHERE kind = 'analysis' AND status = 'done' \
                                 ORDER BY finished_at DESC LIMIT 1), \
                      ends AS (SELECT source_id AS id FROM relations UNION ALL SELECT target_id FROM relations), \
                      deg AS (SELECT id, count(*) AS d FROM ends GROUP BY id) \
                 SELECT e.id, e.name, COALESCE(deg.d, 0)::int8 AS degree \
                 FROM employees e LEFT JOIN deg ON deg.id = e.id",
                "WITH",
                "SELECT employees",
            ),
            (
                "WITH RECURSIVE chain(id) AS ( \
                   SELECT $2::int8 UNION \
                   SELECT r.target_id FROM relations r JOIN chain c ON r.source_id = c.id \
                   WHERE r.kind = 'reports_to') \
                 SELECT EXISTS (SELECT 1 FROM chain WHERE id = $1)",
                "WITH",
                "SELECT",
            ),
            ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", "SET", "SET"),
            ("SET LOCAL lock_timeout = '10s'", "SET", "SET"),
            (
                "TRUNCATE employees, relations, interventions, influence_scores RESTART IDENTITY CASCADE",
                "TRUNCATE",
                "TRUNCATE employees",
            ),
            ("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE", "LOCK", "LOCK employees"),
            ("BEGIN", "BEGIN", "BEGIN"),
            ("COMMIT", "COMMIT", "COMMIT"),
            ("ROLLBACK", "ROLLBACK", "ROLLBACK"),
        ];
        for (sql, operation, summary) in cases {
            check(sql, operation, summary);
        }
    }

    #[test]
    fn case_quotes_comments_and_literals_do_not_confuse_it() {
        check("select * from Employees", "SELECT", "SELECT Employees");
        check(r#"SELECT * FROM "apalis"."jobs""#, "SELECT", "SELECT apalis.jobs");
        check(r#"SELECT * FROM "odd name""#, "SELECT", "SELECT");
        check(r#"DELETE FROM "jobs" WHERE id = 1"#, "DELETE", "DELETE jobs");
        check("-- a comment FROM x\nSELECT a FROM b", "SELECT", "SELECT b");
        check("/* FROM x */ SELECT a FROM b", "SELECT", "SELECT b");
        check("SELECT 'it''s FROM secrets' AS a FROM b", "SELECT", "SELECT b");
        check("  \n\tUPDATE ONLY t SET a = 1", "UPDATE", "UPDATE t");
    }

    #[test]
    fn values_and_odd_statements_never_reach_the_summary() {
        check("", "_OTHER", "_OTHER");
        check("(SELECT 1)", "_OTHER", "_OTHER");
        check("FROBNICATE the_table", "_OTHER", "_OTHER");
        check("SELECT a FROM $1", "SELECT", "SELECT");
        check("SELECT a FROM 'users; DROP TABLE x'", "SELECT", "SELECT");
        check("SELECT a FROM a.b.c", "SELECT", "SELECT");
        let long = format!("SELECT a FROM {}", "t".repeat(64));
        check(&long, "SELECT", "SELECT");
        check("INSERT INTO (SELECT 1)", "INSERT", "INSERT");
    }
}
