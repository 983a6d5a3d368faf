-- Data services (数据服务): the limits of grants and apps, and usage per
-- day. A grant's rate_limit is requests per second and its daily_quota
-- records per day (returned by queries and downloads); verify_quota is
-- records compared per day. An app has the same three limits over all
-- its grants (0: no limit).
ALTER TABLE share_grants ADD COLUMN verify_quota BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN rate_limit BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN daily_records BIGINT NOT NULL DEFAULT 0;
ALTER TABLE apps ADD COLUMN daily_verify BIGINT NOT NULL DEFAULT 0;

-- Usage of the data services per day (China Standard Time), grant, app
-- and method (query / verify / download / service): calls, records
-- returned or compared, errors, calls refused by a limit, and the sum
-- and maximum of the latency. Servers add their counts every second.
CREATE TABLE data_usage (
    day              TEXT NOT NULL,
    grant_id         BIGINT NOT NULL,
    app_id           BIGINT NOT NULL,
    method           TEXT NOT NULL,
    resource_code    TEXT NOT NULL,
    provider_dept_id BIGINT NOT NULL,
    consumer_dept_id BIGINT NOT NULL,
    calls            BIGINT NOT NULL DEFAULT 0,
    records          BIGINT NOT NULL DEFAULT 0,
    errors           BIGINT NOT NULL DEFAULT 0,
    refused          BIGINT NOT NULL DEFAULT 0,
    latency_us       BIGINT NOT NULL DEFAULT 0,
    latency_max_us   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, grant_id, app_id, method)
);
CREATE INDEX data_usage_resource ON data_usage(resource_code, day);
CREATE INDEX data_usage_provider ON data_usage(provider_dept_id, day);
CREATE INDEX data_usage_consumer ON data_usage(consumer_dept_id, day);
