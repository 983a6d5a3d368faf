-- Records the exchange delivered out of a resource into subscribers'
-- tables per day (交换量), beside the records that came in; and when a
-- node last reported delivering into a resource, which keeps a real-time
-- resource timely (实时资源以前置机正常交付计为按时).
ALTER TABLE resource_daily ADD COLUMN records_out INTEGER NOT NULL DEFAULT 0;
ALTER TABLE resources ADD COLUMN node_seen_at TIMESTAMP;
