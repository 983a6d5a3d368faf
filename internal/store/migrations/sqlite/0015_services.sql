-- Service resources (服务资源): APIs departments already run, registered
-- for a published entry that may be shared by interface, which consumers
-- holding a grant call through the platform; and the call log of every
-- call made through it (operational monitoring, as X-Road keeps).

-- One service per entry; its code is the entry's resource code. operations
-- is a JSON list of {method, path, summary}; credential is the provider's
-- secret for credential_header, sealed, never shown.
CREATE TABLE service_resources (
    id                 INTEGER PRIMARY KEY,
    entry_id           INTEGER NOT NULL UNIQUE REFERENCES entries(id),
    dept_id            INTEGER NOT NULL REFERENCES departments(id),
    base_url           TEXT NOT NULL,
    operations         TEXT NOT NULL,
    openapi            TEXT NOT NULL DEFAULT '',
    credential_header  TEXT NOT NULL DEFAULT '',
    credential         TEXT NOT NULL DEFAULT '',
    timeout_ms         INTEGER NOT NULL,
    max_response_bytes INTEGER NOT NULL,
    state              TEXT NOT NULL DEFAULT 'active',
    created_by         INTEGER NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE INDEX service_resources_dept ON service_resources(dept_id);

-- One row per call, refused ones included. day is the call's date in
-- China Standard Time, for the daily statistics; operation is the matched
-- pattern ("GET /persons/{id}"), path what was asked for. result is ok,
-- denied or error, error_code the stable code of a refusal or failure.
CREATE TABLE service_calls (
    id               INTEGER PRIMARY KEY,
    service_id       INTEGER NOT NULL REFERENCES service_resources(id),
    at               TIMESTAMP NOT NULL,
    day              TEXT NOT NULL,
    provider_dept_id INTEGER NOT NULL,
    consumer_dept_id INTEGER NOT NULL,
    app_id           INTEGER NOT NULL,
    app_key          TEXT NOT NULL,
    grant_id         INTEGER NOT NULL DEFAULT 0,
    request_id       TEXT NOT NULL DEFAULT '',
    method           TEXT NOT NULL,
    operation        TEXT NOT NULL DEFAULT '',
    path             TEXT NOT NULL,
    request_bytes    INTEGER NOT NULL,
    response_bytes   INTEGER NOT NULL,
    status           INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    result           TEXT NOT NULL,
    error_code       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX service_calls_service ON service_calls(service_id, id);
CREATE INDEX service_calls_provider ON service_calls(provider_dept_id, id);
CREATE INDEX service_calls_consumer ON service_calls(consumer_dept_id, id);

-- The daily statistics, kept with the log in the same transaction: counts
-- per service, day and consumer department, and a histogram of the
-- latency of the calls the platform did not refuse (bucket: the
-- milliseconds below 100, then steps of 5 %), from which the percentiles
-- are read without scanning the log.
CREATE TABLE service_call_days (
    service_id       INTEGER NOT NULL REFERENCES service_resources(id),
    day              TEXT NOT NULL,
    consumer_dept_id INTEGER NOT NULL,
    calls            INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    denied           INTEGER NOT NULL,
    request_bytes    INTEGER NOT NULL,
    response_bytes   INTEGER NOT NULL,
    PRIMARY KEY (service_id, day, consumer_dept_id)
);

CREATE TABLE service_call_latency (
    service_id       INTEGER NOT NULL REFERENCES service_resources(id),
    day              TEXT NOT NULL,
    consumer_dept_id INTEGER NOT NULL,
    bucket           INTEGER NOT NULL,
    calls            INTEGER NOT NULL,
    PRIMARY KEY (service_id, day, consumer_dept_id, bucket)
);
