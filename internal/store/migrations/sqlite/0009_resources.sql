-- Resource store (资源挂接 / 数据归集): a table per mounted catalog entry,
-- with its history and staging tables (created by the service, named after
-- resources.table_name), batches of data in with their quality reports,
-- quarantined records, daily volume and zero reports.
CREATE TABLE resources (
    id              INTEGER PRIMARY KEY,
    entry_id        INTEGER NOT NULL UNIQUE REFERENCES entries(id),
    code            TEXT NOT NULL UNIQUE,
    dept_id         INTEGER NOT NULL REFERENCES departments(id),
    table_name      TEXT NOT NULL UNIQUE,
    entry_version   INTEGER NOT NULL,
    columns         TEXT NOT NULL,
    record_count    INTEGER NOT NULL DEFAULT 0,
    received_count  INTEGER NOT NULL DEFAULT 0,
    passed_count    INTEGER NOT NULL DEFAULT 0,
    last_update_at  TIMESTAMP,
    last_zero_at    TIMESTAMP,
    mounted_by      INTEGER NOT NULL,
    mounted_at      TIMESTAMP NOT NULL,
    evolved_at      TIMESTAMP NOT NULL
);
CREATE INDEX resources_dept ON resources(dept_id);

CREATE TABLE resource_batches (
    id               INTEGER PRIMARY KEY,
    resource_id      INTEGER NOT NULL REFERENCES resources(id),
    client_batch_id  TEXT,
    source           TEXT NOT NULL,
    source_detail    TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL,
    rows_total       INTEGER NOT NULL DEFAULT 0,
    rows_inserted    INTEGER NOT NULL DEFAULT 0,
    rows_updated     INTEGER NOT NULL DEFAULT 0,
    rows_unchanged   INTEGER NOT NULL DEFAULT 0,
    rows_deleted     INTEGER NOT NULL DEFAULT 0,
    rows_quarantined INTEGER NOT NULL DEFAULT 0,
    report           TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    submitted_by     INTEGER NOT NULL DEFAULT 0,
    submitted_app    TEXT NOT NULL DEFAULT '',
    started_at       TIMESTAMP NOT NULL,
    finished_at      TIMESTAMP,
    UNIQUE (resource_id, client_batch_id)
);
CREATE INDEX resource_batches_resource ON resource_batches(resource_id, id);

CREATE TABLE resource_quarantine (
    id            INTEGER PRIMARY KEY,
    resource_id   INTEGER NOT NULL REFERENCES resources(id),
    batch_id      INTEGER NOT NULL REFERENCES resource_batches(id),
    row_no        INTEGER NOT NULL,
    op            TEXT NOT NULL,
    vals          TEXT NOT NULL,
    violations    TEXT NOT NULL,
    state         TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    resolved_by   INTEGER,
    resolved_at   TIMESTAMP,
    resubmitted_batch_id INTEGER,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX resource_quarantine_open ON resource_quarantine(resource_id, state);
CREATE INDEX resource_quarantine_batch ON resource_quarantine(batch_id);

CREATE TABLE resource_daily (
    resource_id INTEGER NOT NULL REFERENCES resources(id),
    day         TEXT NOT NULL,
    records_in  INTEGER NOT NULL,
    PRIMARY KEY (resource_id, day)
);

CREATE TABLE resource_zero_reports (
    id          INTEGER PRIMARY KEY,
    resource_id INTEGER NOT NULL REFERENCES resources(id),
    note        TEXT NOT NULL DEFAULT '',
    reported_by INTEGER NOT NULL DEFAULT 0,
    reported_app TEXT NOT NULL DEFAULT '',
    reported_at TIMESTAMP NOT NULL
);
CREATE INDEX resource_zero_reports_resource ON resource_zero_reports(resource_id, id);
