package dataservice

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"govshare/internal/mask"
	"govshare/internal/resource"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
)

// fuzzResource is a resource with a key, a unique item, masked and
// plain items; the grant leaves secret_note out and limits rows by
// region.
var fuzzResource = resource.Resource{ID: 1, Code: "101/000001", Table: "res_1", EntryVersion: 1, Columns: []resource.Column{
	{Name: "公民身份号码", MachineName: "id_number", DataType: "C", Length: 18, Key: true, MaskRule: "keep(6,4)"},
	{Name: "户号", MachineName: "household_no", DataType: "C", Length: 12, QualityRule: "unique"},
	{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, QualityRule: "unique"},
	{Name: "人数", MachineName: "members", DataType: "I", Length: 4, QualityRule: "unique"},
	{Name: "行政区划", MachineName: "region_code", DataType: "C", Length: 6},
	{Name: "备注", MachineName: "secret_note", DataType: "C", Length: 200, QualityRule: "unique"},
	{Name: "旧项", MachineName: "old_item", DataType: "C", Length: 10, Hidden: true, QualityRule: "unique"},
}}

func fuzzUse() *use {
	p := share.Permit{GrantID: 7, Resource: fuzzResource.Code, RowScope: &share.RowScope{Item: "region_code", Op: "prefix", Values: []string{"3501"}},
		Items: []share.PermitItem{{MachineName: "id_number", MaskRule: "keep(6,4)"}, {MachineName: "household_no"}, {MachineName: "birth_date"},
			{MachineName: "members"}, {MachineName: "region_code"}}}
	return &use{r: fuzzResource, permit: p}
}

var quotedIdent = regexp.MustCompile(`"((?:[^"]|"")*)"`)

// FuzzQueryStaysInsideTheWhitelist parses any query string, plans it
// against a grant and builds its SQL on both engines: it never panics,
// never names a column outside the granted items (plus the key and the
// row scope's item the platform adds), never filters or sorts by a
// masked item other than by equality, and never puts request text into
// the statement — every value is a parameter.
func FuzzQueryStaysInsideTheWhitelist(f *testing.F) {
	for _, seed := range []string{
		"filter=id_number:eq:350102199003074514",
		"filter=household_no:in:H1,H2,H3&sort=-household_no&limit=10",
		"filter=birth_date:ge:1990-01-01&filter=birth_date:lt:2000-01-01&fields=birth_date,members",
		"filter=household_no:prefix:H00%25_'--&fields=household_no",
		"filter=secret_note:eq:x",
		"filter=old_item:eq:x",
		"filter=members:gt:1;DROP TABLE res_1",
		"sort=id_number",
		"filter=id_number:prefix:3501",
		"fields=region_code,\"x\"",
		"filter=members:eq:' OR '1'='1",
		"cursor=abc&limit=0",
		"filter=household_no:in:seh", // a value inside a column's name is not in the statement
	} {
		f.Add(seed)
	}
	keys, _ := secret.New(make([]byte, 32))
	s := &Service{cursors: keys.Sealer("data/cursor"), masker: mask.New(make([]byte, 32))}
	allowed := []string{"id_number", "household_no", "birth_date", "members", "region_code", "_deleted_at"}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseRequest(v)
		if err != nil {
			return
		}
		u := fuzzUse()
		p, err := s.plan(u, q, "api")
		if err != nil {
			return
		}
		for _, c := range p.sel.Columns {
			if _, ok := u.granted(c.MachineName); !ok {
				t.Fatalf("returns %s, not granted", c.MachineName)
			}
		}
		for _, c := range p.sel.Where {
			if c.Column.MachineName == "id_number" && c.Op != "eq" && c.Op != "in" {
				t.Fatalf("a masked item filtered with %s", c.Op)
			}
		}
		if p.sel.SortBy != nil && p.sel.SortBy.MachineName == "id_number" {
			t.Fatal("sorted by a masked item")
		}
		if scope := p.sel.Where[len(p.sel.Where)-1]; scope.Column.MachineName != "region_code" || scope.Op != "prefix" {
			t.Fatalf("the row scope is not the last condition: %+v", scope)
		}
		for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
			sql, args, err := resource.SelectSQL(d, u.r, p.sel)
			if err != nil {
				continue
			}
			for _, m := range quotedIdent.FindAllStringSubmatch(sql, -1) {
				if name := m[1]; name != "res_1" && !slices.Contains(allowed, name) && name != "T" {
					t.Fatalf("%s names %q:\n%s", d, name, sql)
				}
			}
			if n := strings.Count(sql, "?"); n != len(args) {
				t.Fatalf("%d placeholders for %d values:\n%s", n, len(args), sql)
			}
			// Request text may only stand in the statement as part of a name
			// the builder quoted from the resource's columns.
			bare := quotedIdent.ReplaceAllString(sql, `""`)
			for _, f := range q.Filters {
				for _, val := range f.Values {
					if len(val) >= 3 && strings.Contains(bare, val) && !slices.Contains(allowed, val) && !strings.Contains(fixedSQL, val) {
						t.Fatalf("request text %q in the statement:\n%s", val, sql)
					}
				}
			}
		}
	})
}

// fixedSQL is text the statement builder writes itself.
const fixedSQL = `SELECT FROM WHERE ORDER BY LIMIT CAST AS TEXT IS NULL NOT AND OR CASE WHEN THEN ELSE END IN LIKE ESCAPE substr ` +
	`to_char regexp_replace AT TIME ZONE 'UTC' 'YYYY-MM-DD"T"HH24:MI:SS.US' '\.?0+$' '' DESC 1 = 0 ::text`

// The columns of a query naming no fields are kept per grant, and follow
// the grant's items when they change: another mask, an item less.
func TestKeptFieldsFollowTheGrant(t *testing.T) {
	keys, _ := secret.New(make([]byte, 32))
	s := &Service{cursors: keys.Sealer("data/cursor"), masker: mask.New(make([]byte, 32))}
	plan := func(u *use) *plan {
		t.Helper()
		p, err := s.plan(u, Request{}, "api")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	u := fuzzUse()
	first := plan(u)
	if again := plan(fuzzUse()); &again.items[0] != &first.items[0] {
		t.Fatal("the same grant's plan was built again")
	}
	if first.masks[0] == nil || first.items[0] != "id_number" {
		t.Fatalf("items %v masks %v", first.items, first.masks)
	}
	u = fuzzUse()
	u.permit.Items = slices.Clone(u.permit.Items)
	u.permit.Items[0].MaskRule = ""
	if p := plan(u); p.masks[0] != nil {
		t.Fatal("a mask the grant no longer has was applied")
	}
	u = fuzzUse()
	u.permit.Items = u.permit.Items[1:]
	if p := plan(u); slices.Contains(p.items, "id_number") {
		t.Fatalf("an item the grant no longer has was returned: %v", p.items)
	}
	u = fuzzUse()
	if _, err := s.plan(u, Request{Fields: []string{"secret_note"}}, "api"); err == nil {
		t.Fatal("an item outside the grant was planned")
	}
}
