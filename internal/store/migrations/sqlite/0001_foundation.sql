-- Foundation: departments, users and roles, sessions, API tokens, audit log.
CREATE TABLE departments (
    id           INTEGER PRIMARY KEY,
    parent_id    INTEGER REFERENCES departments(id),
    name         TEXT NOT NULL,
    credit_code  TEXT NOT NULL UNIQUE,
    region_code  TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'active',
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX departments_parent ON departments(parent_id);

CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    login                TEXT NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    mobile               TEXT NOT NULL DEFAULT '',
    dept_id              INTEGER NOT NULL REFERENCES departments(id),
    password_hash        TEXT NOT NULL,
    must_change_password BOOLEAN NOT NULL DEFAULT TRUE,
    failed_logins        INTEGER NOT NULL DEFAULT 0,
    locked_until         TIMESTAMP,
    totp_secret          TEXT NOT NULL DEFAULT '',
    totp_enabled         BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step       INTEGER NOT NULL DEFAULT 0,
    status               TEXT NOT NULL DEFAULT 'active',
    created_at           TIMESTAMP NOT NULL,
    updated_at           TIMESTAMP NOT NULL
);
CREATE INDEX users_dept ON users(dept_id);

CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users(id),
    role    TEXT NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE sessions (
    token_hash    TEXT PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    created_at    TIMESTAMP NOT NULL,
    last_seen_at  TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    totp_verified BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at    TIMESTAMP,
    client_addr   TEXT NOT NULL DEFAULT '',
    user_agent    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY,
    occurred_at  TIMESTAMP NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    actor_name   TEXT NOT NULL,
    dept_id      INTEGER,
    action       TEXT NOT NULL,
    object_type  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    result       TEXT NOT NULL,
    client_addr  TEXT NOT NULL,
    request_id   TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events(occurred_at);
CREATE INDEX audit_events_action ON audit_events(action, seq);

-- One row: the newest event's seq and hash, sealed with the server's audit key.
CREATE TABLE audit_head (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    mac        TEXT NOT NULL,
    algorithm  TEXT NOT NULL
);

-- Written when retention removes a prefix, so the remaining chain still verifies.
CREATE TABLE audit_checkpoints (
    id           INTEGER PRIMARY KEY,
    seq          INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    cutoff       TIMESTAMP NOT NULL,
    removed      INTEGER NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    mac          TEXT NOT NULL
);
