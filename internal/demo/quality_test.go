package demo

import (
	"context"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/quality"
	"govshare/internal/refdata"
	"govshare/internal/storetest"
)

// TestDemoQualityRulesCompile: every demo entry's quality rules compile
// against the reference data a new platform starts with, so the demo's
// uploads are checked from the first start.
func TestDemoQualityRulesCompile(t *testing.T) {
	db := storetest.OpenSQLite(t)
	log, err := audit.Open(db, audit.Options{Key: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	rd := refdata.New(db, log)
	if err := rd.EnsureDefaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	ref, err := rd.Reference(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range demoCatalog {
		var items []quality.Item
		for _, it := range d.content().Items {
			items = append(items, quality.Item{Name: it.Name, MachineName: it.MachineName, DataType: it.DataType, Length: it.Length, Key: it.Key, Rule: it.QualityRule})
		}
		if _, err := quality.Compile(items, ref); err != nil {
			t.Errorf("%s: %v", d.name, err)
		}
	}
}
