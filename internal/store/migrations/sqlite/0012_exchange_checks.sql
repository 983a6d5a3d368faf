-- Full checks (全量核对): a job's source against its resource, or a
-- subscription's delivered view against the consumer's target table,
-- compared chunk by chunk by the node that holds the other side. kind is
-- 'job' or 'subscription'; spec is the check as the node gets it
-- (wire.CheckRequest), fixed when it is requested; diff_keys holds the
-- first differing keys as JSON ([{"key": …, "kind": "changed" | "missing"
-- | "extra"}]).
CREATE TABLE exchange_checks (
    id              INTEGER PRIMARY KEY,
    kind            TEXT NOT NULL,
    job_id          INTEGER NOT NULL DEFAULT 0,
    subscription_id INTEGER NOT NULL DEFAULT 0,
    node_id         INTEGER NOT NULL REFERENCES nodes(id),
    state           TEXT NOT NULL DEFAULT 'requested',
    spec            TEXT NOT NULL,
    requested_by    INTEGER NOT NULL,
    requested_at    TIMESTAMP NOT NULL,
    started_at      TIMESTAMP,
    finished_at     TIMESTAMP,
    rows_compared   INTEGER NOT NULL DEFAULT 0,
    chunks          INTEGER NOT NULL DEFAULT 0,
    differ          INTEGER NOT NULL DEFAULT 0,
    diff_keys       TEXT NOT NULL DEFAULT '[]',
    error           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX exchange_checks_job ON exchange_checks(job_id, id) WHERE job_id <> 0;
CREATE INDEX exchange_checks_subscription ON exchange_checks(subscription_id, id) WHERE subscription_id <> 0;
CREATE INDEX exchange_checks_pending ON exchange_checks(node_id, state);
-- One check at a time of a job or subscription.
CREATE UNIQUE INDEX exchange_checks_open ON exchange_checks(kind, job_id, subscription_id) WHERE state IN ('requested', 'running');
