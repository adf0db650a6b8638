-- The trace a job belongs to: the W3C traceparent of the API's `send` span, written in the
-- transaction that queues the job, read by the worker to continue the trace in its `process`
-- span. NULL when the request was not traced (traces off, unsampled) and for older rows.
ALTER TABLE jobs ADD COLUMN traceparent TEXT;
