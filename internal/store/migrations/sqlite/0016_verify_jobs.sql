-- Comparison jobs (数据比对任务): up to a million records compared
-- asynchronously, the data never leaving the provider (数据不落地).
-- Everything a job needs lives here, not in a server's files, so any
-- server sharing the database may run it and a job survives restarts.

-- A job is 'uploading' while its records arrive (invisible; removed if
-- its upload dies), then 'queued', 'running' under a lease held by one
-- server (worker is the claim's token; a job whose lease_until lapsed is
-- taken over), and 'done' or 'failed'. fields are the chunks' columns
-- (the key items, then the compared items) as a JSON list; items the
-- compared items. The caller (user, app, department, purpose) is kept
-- for the audit events the worker writes on their behalf. purged_at is
-- when the results were deleted.
CREATE TABLE verify_jobs (
    id               INTEGER PRIMARY KEY,
    resource_code    TEXT NOT NULL,
    items            TEXT NOT NULL,
    fields           TEXT NOT NULL,
    state            TEXT NOT NULL,
    total            INTEGER NOT NULL DEFAULT 0,
    chunks           INTEGER NOT NULL DEFAULT 0,
    done             INTEGER NOT NULL DEFAULT 0,
    matched          INTEGER NOT NULL DEFAULT 0,
    mismatched       INTEGER NOT NULL DEFAULT 0,
    not_found        INTEGER NOT NULL DEFAULT 0,
    error_code       TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    consumer_dept_id INTEGER NOT NULL REFERENCES departments(id),
    grant_id         INTEGER NOT NULL,
    app_id           INTEGER NOT NULL DEFAULT 0,
    app_key          TEXT NOT NULL DEFAULT '',
    user_id          INTEGER NOT NULL DEFAULT 0,
    login            TEXT NOT NULL DEFAULT '',
    purpose          TEXT NOT NULL,
    worker           TEXT NOT NULL DEFAULT '',
    lease_until      TIMESTAMP,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    started_at       TIMESTAMP,
    finished_at      TIMESTAMP,
    purged_at        TIMESTAMP
);
CREATE INDEX verify_jobs_dept ON verify_jobs(consumer_dept_id, id);
CREATE INDEX verify_jobs_state ON verify_jobs(state, id);

-- A job's records in chunks of a few thousand, in upload order: input is
-- their canonical key and compared values, result the answers (index,
-- result, per item), each a gzip-compressed CSV. A chunk's result and
-- the job's progress are written in one transaction; its input is
-- dropped then, as the records are no longer needed.
CREATE TABLE verify_job_chunks (
    job_id      INTEGER NOT NULL REFERENCES verify_jobs(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    first_index INTEGER NOT NULL,
    records     INTEGER NOT NULL,
    input       BLOB,
    result      BLOB,
    PRIMARY KEY (job_id, seq)
);
