-- Notifications (通知): one row per recipient, read or not.
CREATE TABLE notifications (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL,
    title_zh    TEXT NOT NULL,
    title_en    TEXT NOT NULL,
    href        TEXT NOT NULL DEFAULT '',
    object_type TEXT NOT NULL DEFAULT '',
    object_id   TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMP NOT NULL,
    read_at     TIMESTAMP
);
CREATE INDEX notifications_user ON notifications(user_id, id);
CREATE INDEX notifications_unread ON notifications(user_id) WHERE read_at IS NULL;

-- Webhooks: a department's outbound callbacks, with signing secrets sealed at rest.
-- events is a comma-separated filter of kinds ("application.*" matches a prefix); empty is every kind.
CREATE TABLE webhooks (
    id          INTEGER PRIMARY KEY,
    dept_id     INTEGER NOT NULL REFERENCES departments(id),
    url         TEXT NOT NULL,
    events      TEXT NOT NULL DEFAULT '',
    secret      TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active',
    created_by  INTEGER NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    rotated_at  TIMESTAMP NOT NULL,
    disabled_at TIMESTAMP
);
CREATE INDEX webhooks_dept ON webhooks(dept_id, status);

-- The delivery log: one row per notice and webhook, retried with backoff.
-- locked_until is a lease, so servers sharing the database never send the same attempt twice.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY,
    webhook_id       INTEGER NOT NULL REFERENCES webhooks(id),
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMP NOT NULL,
    locked_until     TIMESTAMP,
    last_status_code INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMP NOT NULL,
    delivered_at     TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries(status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries(webhook_id, id);

-- Reminders already sent: once per deadline, stage (before / overdue) and due time,
-- so a changed due time reminds anew.
CREATE TABLE notify_reminders (
    kind        TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    stage       TEXT NOT NULL,
    due         TIMESTAMP NOT NULL,
    sent_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, object_type, object_id, stage, due)
);
