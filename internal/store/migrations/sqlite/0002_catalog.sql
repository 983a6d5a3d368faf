-- Catalog: classification tree, entries, published versions, resource code sequences, review history, ratings.
CREATE TABLE classifications (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_code TEXT REFERENCES classifications(code),
    level       INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);
CREATE INDEX classifications_parent ON classifications(parent_code);

CREATE TABLE entries (
    id                INTEGER PRIMARY KEY,
    dept_id           INTEGER NOT NULL REFERENCES departments(id),
    code              TEXT UNIQUE,
    state             TEXT NOT NULL,
    name              TEXT NOT NULL,
    class_code        TEXT NOT NULL,
    draft             TEXT NOT NULL,
    published_version INTEGER NOT NULL DEFAULT 0,
    change_reason     TEXT NOT NULL DEFAULT '',
    change_deadline   TIMESTAMP,
    return_reasons    TEXT NOT NULL DEFAULT '',
    created_by        INTEGER NOT NULL,
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    first_published_at TIMESTAMP,
    retired_at        TIMESTAMP
);
CREATE INDEX entries_dept ON entries(dept_id, state);
CREATE INDEX entries_state ON entries(state);

CREATE TABLE entry_versions (
    entry_id     INTEGER NOT NULL REFERENCES entries(id),
    version      INTEGER NOT NULL,
    content      TEXT NOT NULL,
    published_at TIMESTAMP NOT NULL,
    published_by INTEGER NOT NULL,
    PRIMARY KEY (entry_id, version)
);

CREATE TABLE code_sequences (
    class_code TEXT PRIMARY KEY,
    last       INTEGER NOT NULL
);

CREATE TABLE entry_events (
    id        INTEGER PRIMARY KEY,
    entry_id  INTEGER NOT NULL REFERENCES entries(id),
    action    TEXT NOT NULL,
    actor_id  INTEGER NOT NULL,
    note      TEXT NOT NULL DEFAULT '',
    at        TIMESTAMP NOT NULL
);
CREATE INDEX entry_events_entry ON entry_events(entry_id, id);
