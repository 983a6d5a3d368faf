-- Apps (接入应用): a department's machine clients, with signing secrets sealed at rest.
CREATE TABLE apps (
    id            INTEGER PRIMARY KEY,
    dept_id       INTEGER NOT NULL REFERENCES departments(id),
    name          TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    contact       TEXT NOT NULL,
    allowed_addrs TEXT NOT NULL DEFAULT '',
    app_key       TEXT NOT NULL UNIQUE,
    secret        TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active',
    created_by    INTEGER NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    rotated_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP
);
CREATE INDEX apps_dept ON apps(dept_id);

-- Nonces seen within the signature window, so a request cannot be replayed.
CREATE TABLE app_nonces (
    app_id  INTEGER NOT NULL REFERENCES apps(id),
    nonce   TEXT NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    PRIMARY KEY (app_id, nonce)
);
CREATE INDEX app_nonces_seen ON app_nonces(seen_at);
