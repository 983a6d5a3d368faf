-- Sharing (共享): applications for catalog resources, their timeline and
-- attachments, and the grants approvals create.
CREATE TABLE share_applications (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    entry_id         INTEGER NOT NULL REFERENCES entries(id),
    entry_version    INTEGER NOT NULL,
    provider_dept_id INTEGER NOT NULL REFERENCES departments(id),
    consumer_dept_id INTEGER NOT NULL REFERENCES departments(id),
    applicant_id     INTEGER NOT NULL DEFAULT 0,
    applicant_app    TEXT NOT NULL DEFAULT '',
    requested        TEXT NOT NULL,
    decided          TEXT NOT NULL DEFAULT '',
    answer_deadline  TIMESTAMP,
    provide_deadline TIMESTAMP,
    reason           TEXT NOT NULL DEFAULT '',
    escalation       TEXT NOT NULL DEFAULT '',
    outcome          TEXT NOT NULL DEFAULT '',
    grant_id         INTEGER,
    created_at       TIMESTAMP NOT NULL,
    updated_at       TIMESTAMP NOT NULL
);
CREATE INDEX share_applications_provider ON share_applications(provider_dept_id, state);
CREATE INDEX share_applications_consumer ON share_applications(consumer_dept_id, state);
CREATE INDEX share_applications_state ON share_applications(state);

CREATE TABLE share_application_events (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES share_applications(id),
    action         TEXT NOT NULL,
    actor_id       INTEGER NOT NULL DEFAULT 0,
    actor_login    TEXT NOT NULL DEFAULT '',
    actor_dept_id  INTEGER NOT NULL DEFAULT 0,
    note           TEXT NOT NULL DEFAULT '',
    details        TEXT NOT NULL DEFAULT '',
    at             TIMESTAMP NOT NULL
);
CREATE INDEX share_application_events_app ON share_application_events(application_id, id);

CREATE TABLE share_attachments (
    id             INTEGER PRIMARY KEY,
    application_id INTEGER NOT NULL REFERENCES share_applications(id),
    name           TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size           INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    data           BLOB NOT NULL,
    uploaded_by    INTEGER NOT NULL,
    uploaded_at    TIMESTAMP NOT NULL
);
CREATE INDEX share_attachments_app ON share_attachments(application_id);

CREATE TABLE share_grants (
    id               INTEGER PRIMARY KEY,
    application_id   INTEGER NOT NULL REFERENCES share_applications(id),
    entry_id         INTEGER NOT NULL REFERENCES entries(id),
    entry_code       TEXT NOT NULL,
    provider_dept_id INTEGER NOT NULL REFERENCES departments(id),
    consumer_dept_id INTEGER NOT NULL REFERENCES departments(id),
    app_ids          TEXT NOT NULL DEFAULT '',
    items            TEXT NOT NULL,
    methods          TEXT NOT NULL,
    row_scope        TEXT NOT NULL DEFAULT '',
    purpose          TEXT NOT NULL,
    valid_from       TIMESTAMP NOT NULL,
    valid_until      TIMESTAMP,
    rate_limit       INTEGER NOT NULL DEFAULT 0,
    daily_quota      INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL,
    revoked_at       TIMESTAMP,
    revoked_by       INTEGER,
    revoke_reason    TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL
);
CREATE INDEX share_grants_use ON share_grants(consumer_dept_id, entry_code, state);
CREATE INDEX share_grants_provider ON share_grants(provider_dept_id, state);
