-- The org graph: employees (nodes) and typed, weighted relations (edges).
CREATE TABLE employees (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    team        TEXT NOT NULL CHECK (length(team) BETWEEN 1 AND 100),
    title       TEXT NOT NULL DEFAULT '' CHECK (length(title) <= 100),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE relations (
    id          BIGSERIAL PRIMARY KEY,
    source_id   BIGINT NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    target_id   BIGINT NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('reports_to', 'collaborates', 'mentors')),
    weight      DOUBLE PRECISION NOT NULL DEFAULT 1.0 CHECK (weight > 0 AND weight <= 100),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (source_id <> target_id),
    UNIQUE (source_id, target_id, kind)
);
CREATE INDEX relations_target ON relations (target_id);
-- An employee reports to at most one manager.
CREATE UNIQUE INDEX relations_one_manager ON relations (source_id) WHERE kind = 'reports_to';

-- Every background job the API accepted: its kind, parameters, state and outcome. The row and the
-- apalis queue entry are written in one transaction, so an accepted job is never lost.
CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('analysis', 'export', 'intervention_execute', 'intervention_rollback')),
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    params       JSONB NOT NULL DEFAULT '{}',
    result       JSONB,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ
);
CREATE INDEX jobs_kind_created ON jobs (kind, created_at DESC);

-- Planned graph changes: proposed, then executed (and possibly rolled back) by the worker.
CREATE TABLE interventions (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('reassign')),
    employee_id     BIGINT NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    new_manager_id  BIGINT NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    -- The manager before execution, recorded by the execution so a rollback can restore it.
    old_manager_id  BIGINT REFERENCES employees (id) ON DELETE SET NULL,
    reason          TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    state           TEXT NOT NULL DEFAULT 'proposed'
                    CHECK (state IN ('proposed', 'executed', 'rolled_back')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    executed_at     TIMESTAMPTZ,
    rolled_back_at  TIMESTAMPTZ,
    CHECK (employee_id <> new_manager_id)
);

-- Influence scores written by the causal-analysis job, one row per employee per analysis.
CREATE TABLE influence_scores (
    job_id       UUID NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    employee_id  BIGINT NOT NULL REFERENCES employees (id) ON DELETE CASCADE,
    pagerank     DOUBLE PRECISION NOT NULL,
    betweenness  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, employee_id)
);
