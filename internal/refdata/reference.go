package refdata

import (
	"context"
	"fmt"
	"time"

	"govshare/internal/checkdigit"
)

// Snapshot is the reference data in memory, for checking a million
// values without asking the database: it implements quality.Reference.
// It never changes once loaded; an import makes a new one.
type Snapshot struct {
	regions map[string]bool              // code → retired
	codes   map[string]map[string]string // table → code → label
	loaded  time.Time
}

// RegionKnown reports whether code is in the region table, current or
// retired (old records and citizen IDs keep retired codes). Until an
// administrator loads the region table, every well-formed code is known:
// the platform cannot tell, and refusing every record would stop
// collection on a new deployment.
func (sn *Snapshot) RegionKnown(code string) bool {
	if len(sn.regions) == 0 {
		return checkdigit.RegionCode(code) == nil
	}
	_, ok := sn.regions[code]
	return ok
}

// RegionRetired reports whether code is a retired region code.
func (sn *Snapshot) RegionRetired(code string) bool { return sn.regions[code] }

// RegionsLoaded reports whether the region table has any codes.
func (sn *Snapshot) RegionsLoaded() bool { return len(sn.regions) > 0 }

// CodeKnown reports whether code is a code of the table.
func (sn *Snapshot) CodeKnown(table, code string) bool {
	_, ok := sn.codes[table][code]
	return ok
}

// HasTable reports whether there is a code table of that name.
func (sn *Snapshot) HasTable(table string) bool {
	_, ok := sn.codes[table]
	return ok
}

// Label returns a code's label.
func (sn *Snapshot) Label(table, code string) (string, bool) {
	l, ok := sn.codes[table][code]
	return l, ok
}

// Reference returns the snapshot of the reference data, loading it when
// there is none yet or it is older than MaxAge.
func (s *Service) Reference(ctx context.Context) (*Snapshot, error) {
	if sn := s.snap.Load(); sn != nil && (s.MaxAge <= 0 || time.Since(sn.loaded) < s.MaxAge) {
		return sn, nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if sn := s.snap.Load(); sn != nil && (s.MaxAge <= 0 || time.Since(sn.loaded) < s.MaxAge) {
		return sn, nil // another caller loaded it meanwhile
	}
	gen := s.gen.Load()
	sn, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load reference data: %w", err)
	}
	// An import that committed while we read may be missing from sn: keep
	// it for this caller only.
	if s.gen.Load() == gen {
		s.snap.Store(sn)
	}
	return sn, nil
}

// invalidate drops the snapshot after an import, so the next check sees it.
func (s *Service) invalidate() {
	s.gen.Add(1)
	s.snap.Store(nil)
}

func (s *Service) load(ctx context.Context) (*Snapshot, error) {
	sn := &Snapshot{regions: map[string]bool{}, codes: map[string]map[string]string{}, loaded: time.Now()}
	rows, err := s.db.Query(ctx, "SELECT code, status FROM regions")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var code, status string
		if err := rows.Scan(&code, &status); err != nil {
			rows.Close()
			return nil, err
		}
		sn.regions[code] = status == StatusRetired
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	tables, err := s.CodeTables(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range tables {
		sn.codes[t.Name] = make(map[string]string, t.Codes)
	}
	rows, err = s.db.Query(ctx, "SELECT table_name, code, label FROM code_table_codes")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var table, code, label string
		if err := rows.Scan(&table, &code, &label); err != nil {
			return nil, err
		}
		if m := sn.codes[table]; m != nil {
			m[code] = label
		}
	}
	return sn, rows.Err()
}
