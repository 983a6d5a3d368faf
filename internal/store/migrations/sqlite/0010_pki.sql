-- The platform's own certificate authority and the exchange nodes (前置机)
-- it certifies. One row per authority, its private key sealed with the
-- master key; the primary key makes concurrent first starts agree on one.
CREATE TABLE pki_authorities (
    name        TEXT PRIMARY KEY,
    cert        BLOB NOT NULL,
    key_sealed  TEXT NOT NULL,
    not_after   TIMESTAMP NOT NULL,
    created_at  TIMESTAMP NOT NULL
);

-- Nodes enrol with a one-time code (only its SHA-256 is kept) and are then
-- known by the serial of their current certificate.
CREATE TABLE nodes (
    id              INTEGER PRIMARY KEY,
    dept_id         INTEGER NOT NULL REFERENCES departments(id),
    name            TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending',
    code_hash       TEXT NOT NULL UNIQUE,
    code_expires_at TIMESTAMP NOT NULL,
    cert_serial     TEXT NOT NULL DEFAULT '',
    cert_not_after  TIMESTAMP,
    enrolled_at     TIMESTAMP,
    last_seen_at    TIMESTAMP,
    created_by      INTEGER NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    revoked_by      INTEGER,
    revoked_at      TIMESTAMP,
    revoke_reason   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX nodes_dept ON nodes(dept_id);
-- A department's nodes that are not revoked have distinct names.
CREATE UNIQUE INDEX nodes_dept_name ON nodes(dept_id, name) WHERE state <> 'revoked';

-- Every certificate issued to a node, by serial (hex), so the center can
-- refuse revoked and unknown ones.
CREATE TABLE node_certs (
    serial      TEXT PRIMARY KEY,
    node_id     INTEGER NOT NULL REFERENCES nodes(id),
    cert        BLOB NOT NULL,
    not_after   TIMESTAMP NOT NULL,
    issued_at   TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP
);
CREATE INDEX node_certs_node ON node_certs(node_id);
