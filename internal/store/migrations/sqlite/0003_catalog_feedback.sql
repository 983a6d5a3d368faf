-- Ratings and comments on catalog entries, and the demand catalog (需求目录).
CREATE TABLE entry_ratings (
    entry_id   INTEGER NOT NULL REFERENCES entries(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    dept_id    INTEGER NOT NULL REFERENCES departments(id),
    stars      INTEGER NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (entry_id, user_id)
);

CREATE TABLE demands (
    id                INTEGER PRIMARY KEY,
    title             TEXT NOT NULL,
    description       TEXT NOT NULL,
    purpose           TEXT NOT NULL,
    suggested_dept_id INTEGER REFERENCES departments(id),
    requester_id      INTEGER NOT NULL REFERENCES users(id),
    requester_dept_id INTEGER NOT NULL REFERENCES departments(id),
    state             TEXT NOT NULL,
    routed_dept_id    INTEGER REFERENCES departments(id),
    entry_id          INTEGER REFERENCES entries(id),
    answer            TEXT NOT NULL DEFAULT '',
    created_at        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL
);
CREATE INDEX demands_state ON demands(state, id);
CREATE INDEX demands_routed ON demands(routed_dept_id, state);
