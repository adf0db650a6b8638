-- The API caps the work waiting at once (API_MAX_QUEUED_JOBS pending jobs per kind,
-- API_MAX_OPEN_PROPOSALS proposed interventions) and counts it on every new job and proposal:
-- these partial indexes keep the count to the waiting rows, however many finished ones there are.
CREATE INDEX jobs_pending_by_kind ON jobs (kind) WHERE status = 'pending';
CREATE INDEX interventions_proposed ON interventions (created_at) WHERE state = 'proposed';
