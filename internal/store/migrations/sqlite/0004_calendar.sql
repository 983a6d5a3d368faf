-- Working-day calendar (工作日历): statutory holidays and adjusted working days (调休) per year.
CREATE TABLE calendar_years (
    year       INTEGER PRIMARY KEY,
    loaded_at  TIMESTAMP NOT NULL,
    source     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE calendar_days (
    day        TEXT PRIMARY KEY,
    year       INTEGER NOT NULL REFERENCES calendar_years(year),
    off_day    BOOLEAN NOT NULL,
    name       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX calendar_days_year ON calendar_days(year);
