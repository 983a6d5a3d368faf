-- The exchange system (交换体系): jobs the center defines and its nodes run
-- (前置交换), subscriptions that deliver granted resources into consumers'
-- databases (交换桥接), runs counted at both ends (桥接核对) and alarms.

-- A job reads a node's data source into a resource. spec holds the job as
-- the node gets it (wire.Job without id, version and the run switches).
CREATE TABLE exchange_jobs (
    id            INTEGER PRIMARY KEY,
    node_id       INTEGER NOT NULL REFERENCES nodes(id),
    resource_id   INTEGER NOT NULL REFERENCES resources(id),
    name          TEXT NOT NULL,
    spec          TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    running       INTEGER NOT NULL DEFAULT 0,
    run_now       INTEGER NOT NULL DEFAULT 0,
    deleted_at    TIMESTAMP,
    -- as the node last reported
    node_state    TEXT NOT NULL DEFAULT '',
    node_version  INTEGER NOT NULL DEFAULT 0,
    checkpoint    TEXT NOT NULL DEFAULT '',
    last_run_at   TIMESTAMP,
    lag_seconds   REAL NOT NULL DEFAULT 0,
    rows_per_sec  REAL NOT NULL DEFAULT 0,
    queued        INTEGER NOT NULL DEFAULT 0,
    error         TEXT NOT NULL DEFAULT '',
    reported_at   TIMESTAMP,
    created_by    INTEGER NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX exchange_jobs_node ON exchange_jobs(node_id);
CREATE INDEX exchange_jobs_resource ON exchange_jobs(resource_id);
CREATE UNIQUE INDEX exchange_jobs_name ON exchange_jobs(node_id, name) WHERE deleted_at IS NULL;

-- A subscription delivers a resource, as a grant with method exchange
-- allows, into a table of a consumer node's target database. cursor_batch
-- is the last resource batch fanned out to it; epoch changes on a re-sync.
CREATE TABLE exchange_subscriptions (
    id               INTEGER PRIMARY KEY,
    grant_id         INTEGER NOT NULL REFERENCES share_grants(id),
    node_id          INTEGER NOT NULL REFERENCES nodes(id),
    resource_id      INTEGER NOT NULL REFERENCES resources(id),
    target           TEXT NOT NULL,
    target_table     TEXT NOT NULL,
    create_table     INTEGER NOT NULL DEFAULT 0,
    realtime         INTEGER NOT NULL DEFAULT 1,
    interval_seconds INTEGER NOT NULL DEFAULT 0,
    items            TEXT NOT NULL,
    state            TEXT NOT NULL DEFAULT 'active',
    stop_reason      TEXT NOT NULL DEFAULT '',
    version          INTEGER NOT NULL DEFAULT 1,
    epoch            INTEGER NOT NULL DEFAULT 1,
    cursor_batch     INTEGER NOT NULL DEFAULT -1,
    -- as the node last reported
    applied_seq      INTEGER NOT NULL DEFAULT 0,
    node_state       TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    last_applied_at  TIMESTAMP,
    created_by       INTEGER NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX exchange_subscriptions_node ON exchange_subscriptions(node_id);
CREATE INDEX exchange_subscriptions_resource ON exchange_subscriptions(resource_id, state);

-- A run is counted at both ends: direction 'in' is a job's run (node →
-- center), 'out' a delivery to a subscription (center → node; run_no is
-- the resource batch it carries, 0 the initial snapshot).
CREATE TABLE exchange_runs (
    id              INTEGER PRIMARY KEY,
    direction       TEXT NOT NULL,
    job_id          INTEGER NOT NULL DEFAULT 0,
    subscription_id INTEGER NOT NULL DEFAULT 0,
    epoch           INTEGER NOT NULL DEFAULT 0,
    run_no          INTEGER NOT NULL,
    mode            TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL DEFAULT 'running',
    batches_sent    INTEGER NOT NULL DEFAULT 0,
    attempt         INTEGER NOT NULL DEFAULT 0,
    live_before     INTEGER NOT NULL DEFAULT 0,
    sent            TEXT NOT NULL DEFAULT '',
    started_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    finished_at     TIMESTAMP,
    note            TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX exchange_runs_run ON exchange_runs(direction, job_id, subscription_id, epoch, run_no);
CREATE INDEX exchange_runs_open ON exchange_runs(state, updated_at);

-- One row per batch or delivery of a run, written once: the sender's and
-- the receiver's counts of it. A batch received twice counts once.
CREATE TABLE exchange_run_batches (
    run_id        INTEGER NOT NULL REFERENCES exchange_runs(id),
    seq           INTEGER NOT NULL,
    ref           INTEGER NOT NULL DEFAULT 0,
    sent_rows     INTEGER NOT NULL DEFAULT 0,
    sent_deletes  INTEGER NOT NULL DEFAULT 0,
    received      INTEGER NOT NULL DEFAULT 0,
    recv_rows     INTEGER NOT NULL DEFAULT 0,
    inserted      INTEGER NOT NULL DEFAULT 0,
    updated       INTEGER NOT NULL DEFAULT 0,
    unchanged     INTEGER NOT NULL DEFAULT 0,
    deleted       INTEGER NOT NULL DEFAULT 0,
    missing       INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    at            TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- Keys a node saw at its source during a key comparison run; what the
-- resource holds beyond them was deleted at the source.
CREATE TABLE exchange_seen_keys (
    run_id  INTEGER NOT NULL,
    k       TEXT NOT NULL,
    PRIMARY KEY (run_id, k)
);

-- Alarms of the monitoring page; each is a to-do for the data
-- administrators of both departments and the platform administrators.
CREATE TABLE exchange_alarms (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    job_id          INTEGER NOT NULL DEFAULT 0,
    subscription_id INTEGER NOT NULL DEFAULT 0,
    run_id          INTEGER NOT NULL DEFAULT 0,
    dept_ids        TEXT NOT NULL,
    message_zh      TEXT NOT NULL,
    message_en      TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'open',
    created_at      TIMESTAMP NOT NULL,
    closed_at       TIMESTAMP,
    closed_by       INTEGER,
    note            TEXT NOT NULL DEFAULT ''
);
CREATE INDEX exchange_alarms_open ON exchange_alarms(state, created_at);
CREATE UNIQUE INDEX exchange_alarms_run ON exchange_alarms(kind, run_id) WHERE run_id <> 0 AND state = 'open';

-- What nodes report in their heartbeats beyond last_seen_at.
ALTER TABLE nodes ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN started_at TIMESTAMP;
ALTER TABLE nodes ADD COLUMN sources TEXT NOT NULL DEFAULT '';
