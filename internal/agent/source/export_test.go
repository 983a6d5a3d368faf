package source

// OpenCSVDirForTest opens a CSV folder whose sort spills runs of runBytes
// to tmp, so that tests reach the external merge with small files.
func OpenCSVDirForTest(dir string, runBytes int, tmp string) Source {
	return &source{e: &csvEngine{dir: dir, runBytes: runBytes, tmp: tmp, infer: map[string]inferred{}}}
}

// OpenPostgresDatabaseSQLForTest opens a PostgreSQL source that reads rows
// through database/sql, as it did before pgxRows: the reference the pgx
// reader must match value for value.
func OpenPostgresDatabaseSQLForTest(dsn string) (Source, error) {
	e, err := openPostgres(dsn)
	if err != nil {
		return nil, err
	}
	e.(*sqlEngine).rows = nil
	return &source{e: e}, nil
}
