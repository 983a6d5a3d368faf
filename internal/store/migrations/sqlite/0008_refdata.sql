-- Reference data (参考数据) the quality rules check against.
-- The region table (行政区划, GB/T 2260): retired codes stay, so old records and citizen IDs still check.
CREATE TABLE regions (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,               -- current / retired
    valid_from TEXT NOT NULL DEFAULT '',    -- YYYY-MM-DD or ''
    valid_to   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX regions_name ON regions(name);

-- When each kind of reference data was last loaded, from where and by whom.
CREATE TABLE refdata_loads (
    kind      TEXT PRIMARY KEY,              -- 'regions'
    loaded_at TIMESTAMP NOT NULL,
    source    TEXT NOT NULL DEFAULT '',
    loaded_by TEXT NOT NULL DEFAULT '',
    row_count INTEGER NOT NULL DEFAULT 0
);

-- Code tables (代码表): named enumerations such as GB/T 2261.1 sex codes.
CREATE TABLE code_tables (
    name       TEXT PRIMARY KEY,
    title      TEXT NOT NULL DEFAULT '',
    source     TEXT NOT NULL DEFAULT '',
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE code_table_codes (
    table_name TEXT NOT NULL REFERENCES code_tables(name),
    code       TEXT NOT NULL,
    label      TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (table_name, code)
);
