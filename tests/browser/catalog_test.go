package browser_test

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"govshare/internal/demo"
)

// The entry the data administrator of 市公安局 registers. Its name and
// keywords hold a 2-character word (殡葬) that no demo entry contains, so
// the search must find this entry and only it.
const (
	lcName       = "殡葬服务登记信息"
	lcQuery      = "殡葬"
	lcAbstract   = "殡葬服务机构办理的遗体火化登记信息。"
	lcFixed      = "殡葬服务机构办理的遗体火化登记信息，由殡仪馆每日采集，经民政部门核准后提供。"
	lcCondition  = "用于履行法定职责，须说明用途并经提供部门审核"
	lcReason     = "摘要未说明数据来源和采集方式，请补充"
	lcComment    = "字段清晰，满足婚姻登记核验需要"
	lcAddedItem  = "cremated_on"
	lcShareType  = "conditional"
	lcProvider   = "gaj.admin" // data administrator of 市公安局
	lcConsumer   = "mzj.user"  // consumer of 市民政局
	lcPlatformAd = "admin"     // platform administrator, with TOTP
)

// lcItem is one data item row of the entry form.
type lcItem struct {
	Name, Machine, Type, Length string
	Key                         bool
}

// entryForm is what the data administrator types into #entry-form.
type entryForm struct {
	Name, Class, Abstract, FormatClass, FormatType, Keywords, Cycle string
	Items                                                           []lcItem
	ShareType, ShareCondition, OpenType                             string
	ShareMethods                                                    []string
}

func TestCatalogEntryLifecycleInTheBrowser(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, b, gaj := setup(t, dsn)
		gaj.name = lcProvider

		// ----- The data administrator registers the entry and submits it.
		gaj.logIn(lcProvider, demo.Password, "")
		if got := gaj.location(); got != "/home" {
			gaj.fail("%s after login: at %s, want /home", lcProvider, got)
		}
		gaj.open("/catalog/manage")
		gaj.present("#new-entry", "the data administrator's catalog page has no link to register an entry")
		gaj.submit("#new-entry")
		if got := gaj.location(); got != "/catalog/new" {
			gaj.fail("new entry link: at %s, want /catalog/new", got)
		}
		form := entryForm{
			Name: lcName, Class: "101", Abstract: lcAbstract, FormatClass: "database", FormatType: "postgresql",
			Keywords: "殡葬，火化", Cycle: "daily",
			Items: []lcItem{
				{Name: "火化证明编号", Machine: "certificate_no", Type: "C", Length: "30", Key: true},
				{Name: "逝者姓名", Machine: "deceased_name", Type: "C", Length: "50"},
			},
			ShareType: lcShareType, ShareCondition: lcCondition, ShareMethods: []string{"api", "verify"}, OpenType: "closed",
		}
		gaj.fillEntryForm(form)
		resp := gaj.submit("#entry-save")
		m := regexp.MustCompile(`^/catalog/([0-9]+)\?ok=common\.saved$`).FindStringSubmatch(gaj.location())
		if resp.Status != http.StatusOK || m == nil {
			gaj.fail("save the new entry: status %d at %s, want the entry's page with ?ok=common.saved; form errors: %q",
				resp.Status, gaj.location(), gaj.fieldErrors())
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		entryPath := fmt.Sprintf("/catalog/%d", id)
		gaj.expectState("draft")
		gaj.present(".flash", "no message that the entry was saved")
		if got := gaj.text("h1.page-title"); got != lcName {
			gaj.fail("entry page title = %q, want %q", got, lcName)
		}
		items := gaj.text("#entry-items")
		for _, it := range form.Items {
			if !strings.Contains(items, it.Name) || !strings.Contains(items, it.Machine) {
				gaj.fail("data items of the new entry = %q, want item %s (%s)", items, it.Name, it.Machine)
			}
		}

		gaj.step("submit", entryPath, "submitted")
		if n := gaj.count("#step-submit, #step-edit"); n != 0 {
			gaj.fail("a submitted entry still offers %d submit/edit buttons to its provider", n)
		}

		// ----- The platform administrator finds it in the review queue and
		// returns it with a reason.
		adm := b.freshTab(lcPlatformAd, p.URL)
		adm.logIn(lcPlatformAd, demo.Password, p.totpSecret(t, lcPlatformAd))
		if got := adm.location(); got != "/home" {
			adm.fail("%s after the one-time code: at %s, want /home", lcPlatformAd, got)
		}
		adm.open("/catalog/manage")
		link := fmt.Sprintf(`#entry-table a[href="%s"]`, entryPath)
		adm.present(link, "the review queue /catalog/manage does not list the submitted entry "+lcName)
		if got := adm.text(link); got != lcName {
			adm.fail("review queue links the entry as %q, want %q", got, lcName)
		}
		adm.submit(link)
		if got := adm.location(); got != entryPath {
			adm.fail("open the entry from the queue: at %s, want %s", got, entryPath)
		}
		adm.expectState("submitted")
		adm.present("#return-form", "the reviewer has no return form")
		adm.fill("#return-form input[name=field]", "abstract")
		adm.fill("#return-reason", lcReason)
		adm.step("return", entryPath, "returned")

		// ----- The data administrator reads the reason, fixes the abstract
		// and resubmits.
		gaj.open(entryPath)
		gaj.expectState("returned")
		gaj.present("#return-reasons", "the returned entry does not show why it was returned")
		if got := gaj.text("#return-reasons"); !strings.Contains(got, lcReason) || !strings.Contains(got, "abstract") {
			gaj.fail("return reasons = %q, want the field abstract and %q", got, lcReason)
		}
		gaj.present("#step-edit", "the returned entry offers no edit link")
		gaj.submit("#step-edit")
		if got := gaj.location(); got != entryPath+"/edit" {
			gaj.fail("edit link: at %s, want %s/edit", got, entryPath)
		}
		if got := gaj.value("#e-name"); got != lcName {
			gaj.fail("edit form holds name %q, want %q", got, lcName)
		}
		if got := gaj.value(`input[name="items.1.machine_name"]`); got != "deceased_name" {
			gaj.fail("edit form holds data item 1 %q, want deceased_name", got)
		}
		gaj.fillTextarea("#e-abstract", lcFixed)
		gaj.saveEntry(entryPath)
		gaj.expectState("returned")
		if got := gaj.text("#entry-abstract"); got != lcFixed {
			gaj.fail("abstract after the fix = %q, want %q", got, lcFixed)
		}
		gaj.step("submit", entryPath, "submitted")
		if n := gaj.count("#return-reasons"); n != 0 {
			gaj.fail("the resubmitted entry still shows the return reasons")
		}

		// ----- The platform administrator approves and publishes version 1.
		adm.open(entryPath)
		adm.expectState("submitted")
		if got := adm.text("#entry-abstract"); got != lcFixed {
			adm.fail("reviewer sees abstract %q, want the fixed %q", got, lcFixed)
		}
		adm.step("approve", entryPath, "approved")
		adm.step("publish", entryPath, "published")
		adm.expectVersion(1)

		// ----- A consumer of another department finds it by a 2-character
		// query and by a facet, opens it and rates it.
		mzj := b.freshTab(lcConsumer, p.URL)
		mzj.logIn(lcConsumer, demo.Password, "")
		if got := mzj.location(); got != "/home" {
			mzj.fail("%s after login: at %s, want /home", lcConsumer, got)
		}
		mzj.findEntry(entryPath)
		mzj.expectState("published")
		mzj.expectVersion(1)
		if got := mzj.text("h1.page-title"); got != lcName {
			mzj.fail("consumer sees title %q, want %q", got, lcName)
		}
		mzj.present("#rate-form", "a consumer of another department cannot rate the published entry")
		mzj.pick("#rate-stars", "4")
		mzj.fill("#rate-comment", lcComment)
		resp = mzj.submit("#rate-submit")
		if resp.Status != http.StatusOK || mzj.location() != entryPath+"?ok=cat.done.rate" {
			mzj.fail("rate: status %d at %s, want %s?ok=cat.done.rate", resp.Status, mzj.location(), entryPath)
		}
		ratings := mzj.text("#entry-ratings")
		if !strings.Contains(ratings, "★★★★☆") || !strings.Contains(ratings, lcComment) || !strings.Contains(ratings, "共 1 条评价") {
			mzj.fail("ratings = %q, want one rating of 4 stars with comment %q", ratings, lcComment)
		}

		// ----- A change request: the provider changes the update cycle
		// and adds a data item; publishing makes version 2.
		gaj.open(entryPath)
		gaj.expectState("published")
		gaj.present("#change-form", "the published entry offers its provider no change request")
		gaj.pick("#change-reason", "functions")
		gaj.step("change", entryPath, "draft")
		gaj.submit("#step-edit")
		if got := gaj.value("#e-abstract"); got != lcFixed {
			gaj.fail("change form holds abstract %q, want the published %q", got, lcFixed)
		}
		gaj.pick("#e-cycle", "weekly")
		gaj.fillItem(2, lcItem{Name: "火化日期", Machine: lcAddedItem, Type: "D", Length: "8"})
		gaj.saveEntry(entryPath)
		gaj.expectState("draft")
		gaj.step("submit", entryPath, "submitted")

		adm.open(entryPath)
		adm.step("approve", entryPath, "approved")
		adm.step("publish", entryPath, "published")
		adm.expectVersion(2)

		// ----- The consumer reads version 2 and compares it with version 1.
		mzj.open(entryPath)
		mzj.expectVersion(2)
		if got := mzj.text("#entry-items"); !strings.Contains(got, lcAddedItem) {
			mzj.fail("consumer's data items = %q, want the added %s", got, lcAddedItem)
		}
		mzj.present("#diff-form", "the entry with two versions offers no version comparison")
		mzj.pick(`#diff-form select[name=from]`, "1")
		mzj.pick(`#diff-form select[name=to]`, "2")
		mzj.submit("#compare")
		loc, err := url.Parse(mzj.location())
		if err != nil || loc.Path != entryPath+"/diff" || loc.Query().Get("from") != "1" || loc.Query().Get("to") != "2" {
			mzj.fail("compare: at %s, want %s/diff?from=1&to=2", mzj.location(), entryPath)
		}
		mzj.visible("#diff-table")
		changed := evaluate[[][3]string](mzj, `[...document.querySelectorAll('#diff-table tbody tr.changed')]
			.map(tr => [tr.dataset.field, tr.querySelector('.old').textContent.trim(), tr.querySelector('.new').textContent.trim()])`)
		want := map[string]bool{"update_cycle": false, "items." + lcAddedItem: false}
		for _, row := range changed {
			field, old, nw := row[0], row[1], row[2]
			seen, ok := want[field]
			if !ok || seen {
				mzj.fail("diff v1→v2 marks %q as changed (%q → %q); want only %v", field, old, nw, slices.Sorted(maps.Keys(want)))
			}
			want[field] = true
			switch field {
			case "update_cycle":
				if old != "daily" || nw != "weekly" {
					mzj.fail("diff of update_cycle: %q → %q, want daily → weekly", old, nw)
				}
			case "items." + lcAddedItem:
				if old != "" || !strings.Contains(nw, "火化日期") {
					mzj.fail("diff of the added item: %q → %q, want nothing → 火化日期 …", old, nw)
				}
			}
		}
		for field, seen := range want {
			if !seen {
				mzj.fail("diff v1→v2 does not mark %s as changed; changed rows: %q", field, changed)
			}
		}
		for _, field := range []string{"name", "abstract", "share_type", "items.certificate_no"} {
			if n := mzj.count(fmt.Sprintf(`#diff-table tr[data-field=%q]:not(.changed)`, field)); n != 1 {
				mzj.fail("diff v1→v2: want one unchanged row for %s, found %d", field, n)
			}
		}
	})
}

// findEntry is the consumer's search: the 2-character query, then the
// share type facet, then a click on the hit opens entryPath.
func (tb *tab) findEntry(entryPath string) {
	tb.t.Helper()
	tb.present(`aside.sidebar a[href="/catalog"]`, "the consumer's sidebar has no link to the catalog")
	tb.submit(`aside.sidebar a[href="/catalog"]`)
	tb.present("form#catalog-search input#q", "/catalog has no search box form#catalog-search input#q")
	tb.fill("#q", lcQuery)
	tb.present("#search-submit", "/catalog has no search button #search-submit")
	tb.submit("#search-submit")
	loc, err := url.Parse(tb.location())
	if err != nil || loc.Path != "/catalog" || loc.Query().Get("q") != lcQuery {
		tb.fail("search %s: at %s, want /catalog?q=%s", lcQuery, tb.location(), lcQuery)
	}
	hits := tb.hits()
	if len(hits) != 1 || hits[0] != entryPath {
		tb.fail("search %s lists %v in #entry-table, want only %s (%s): no demo entry contains %s", lcQuery, hits, entryPath, lcName, lcQuery)
	}
	link := fmt.Sprintf(`#entry-table a[href="%s"]`, entryPath)
	if got := tb.text(link); got != lcName {
		tb.fail("search hit links %q, want %q", got, lcName)
	}
	before := tb.resultCount()

	facet := fmt.Sprintf(`nav.facets a.facet[data-facet="share_type"][data-value=%q]`, lcShareType)
	tb.present(facet, "the search results have no share_type facet "+lcShareType)
	tb.submit(facet)
	loc, err = url.Parse(tb.location())
	if err != nil || loc.Path != "/catalog" || loc.Query().Get("share_type") != lcShareType {
		tb.fail("facet share_type=%s: at %s, want /catalog with share_type=%s", lcShareType, tb.location(), lcShareType)
	}
	if hits := tb.hits(); !slices.Contains(hits, entryPath) {
		tb.fail("facet share_type=%s lists %v, want %s among them", lcShareType, hits, entryPath)
	}
	if after := tb.resultCount(); after > before {
		tb.fail("facet share_type=%s raised the result count from %d to %d", lcShareType, before, after)
	}

	tb.submit(link)
	if got := tb.location(); got != entryPath {
		tb.fail("open the hit: at %s, want %s", got, entryPath)
	}
}

// hits are the entry paths linked from the rows of #entry-table, one per
// row that links an entry.
func (tb *tab) hits() []string {
	tb.t.Helper()
	tb.present("#entry-table", "no results table #entry-table")
	return evaluate[[]string](tb, `[...document.querySelectorAll('#entry-table tbody tr')]
		.map(tr => tr.querySelector('a[href^="/catalog/"]'))
		.filter(a => a)
		.map(a => a.getAttribute('href'))`)
}

// resultCount is the number shown in #result-count.
func (tb *tab) resultCount() int {
	tb.t.Helper()
	tb.present("#result-count", "the search results show no count #result-count")
	s := tb.text("#result-count")
	m := regexp.MustCompile(`[0-9]+`).FindString(s)
	n, err := strconv.Atoi(m)
	if err != nil {
		tb.fail("#result-count = %q, want it to contain a number", s)
	}
	return n
}

// fillEntryForm types an entry into #entry-form.
func (tb *tab) fillEntryForm(f entryForm) {
	tb.t.Helper()
	tb.visible("#entry-form")
	tb.fill("#e-name", f.Name)
	tb.pick("#e-class", f.Class)
	tb.fillTextarea("#e-abstract", f.Abstract)
	tb.pick("#e-format-class", f.FormatClass)
	tb.fill("#e-format-type", f.FormatType)
	tb.fill("#e-keywords", f.Keywords)
	tb.pick("#e-cycle", f.Cycle)
	for i, it := range f.Items {
		tb.fillItem(i, it)
	}
	tb.pick("#e-share-type", f.ShareType)
	for _, m := range f.ShareMethods {
		tb.check(fmt.Sprintf(`input[name=share_methods][value=%q]`, m), true)
	}
	tb.fill("#e-share-condition", f.ShareCondition)
	tb.pick("#e-open-type", f.OpenType)
}

// fillItem types data item row i of #items-table.
func (tb *tab) fillItem(i int, it lcItem) {
	tb.t.Helper()
	name := func(field string) string { return fmt.Sprintf(`#items-table [name="items.%d.%s"]`, i, field) }
	tb.present(name("name"), fmt.Sprintf("the entry form has no data item row %d", i))
	tb.fill(name("name"), it.Name)
	tb.fill(name("machine_name"), it.Machine)
	tb.pick(name("data_type"), it.Type)
	tb.fill(name("length"), it.Length)
	tb.check(name("key"), it.Key)
}

// saveEntry presses #entry-save and checks the platform lands on the
// entry's page with the saved message.
func (tb *tab) saveEntry(entryPath string) {
	tb.t.Helper()
	resp := tb.submit("#entry-save")
	if resp.Status != http.StatusOK || tb.location() != entryPath+"?ok=common.saved" {
		tb.fail("save the entry: status %d at %s, want %s?ok=common.saved; form errors: %q",
			resp.Status, tb.location(), entryPath, tb.fieldErrors())
	}
	tb.present(".flash", "no message that the entry was saved")
}

// step presses the workflow button #step-<name> on the entry's page and
// checks the entry lands in state want.
func (tb *tab) step(name, entryPath, want string) {
	tb.t.Helper()
	btn := "#step-" + name
	tb.present(btn, fmt.Sprintf("the entry in state %s offers no %s button", tb.state(), btn))
	resp := tb.submit(btn)
	if resp.Status != http.StatusOK || tb.location() != entryPath+"?ok=cat.done."+name {
		alert := ""
		if tb.count(".alert") > 0 {
			alert = tb.text(".alert")
		}
		tb.fail("%s: status %d at %s, want %s?ok=cat.done.%s (%s)", btn, resp.Status, tb.location(), entryPath, name, alert)
	}
	tb.expectState(want)
}

// state is the entry page's state badge.
func (tb *tab) state() string {
	tb.t.Helper()
	if tb.count("#entry-state") == 0 {
		return "(no #entry-state)"
	}
	return tb.attr("#entry-state", "data-state")
}

func (tb *tab) expectState(want string) {
	tb.t.Helper()
	tb.visible("#entry-state")
	if got := tb.state(); got != want {
		tb.fail("entry state = %q, want %q", got, want)
	}
}

// expectVersion checks the entry page's published version badge.
func (tb *tab) expectVersion(v int) {
	tb.t.Helper()
	badges := evaluate[[]string](tb, `[...document.querySelectorAll('.entry-meta .badge')].map(b => b.textContent.trim())`)
	if !slices.Contains(badges, fmt.Sprintf("v%d", v)) {
		tb.fail("entry badges %q, want published version v%d", badges, v)
	}
}

// present fails at once, with why, when nothing matches sel: a page that
// has loaded will not grow the element by waiting.
func (tb *tab) present(sel, why string) {
	tb.t.Helper()
	if tb.count(sel) == 0 {
		tb.fail("%s (no element %s)", why, sel)
	}
	tb.visible(sel)
}

// pick sets a select to the option with this value, failing when there is
// no such option.
func (tb *tab) pick(sel, value string) {
	tb.t.Helper()
	ok := evaluate[bool](tb, fmt.Sprintf(`(() => { const s = document.querySelector(%s);
		return !!s && [...s.options].some(o => o.value === %s); })()`, jsString(sel), jsString(value)))
	if !ok {
		tb.fail("select %s has no option with value %q", sel, value)
	}
	tb.setProperty(sel, "value", value)
}

// check ticks or clears a checkbox.
func (tb *tab) check(sel string, on bool) {
	tb.t.Helper()
	if tb.count(sel) == 0 {
		tb.fail("no checkbox %s", sel)
	}
	if evaluate[bool](tb, fmt.Sprintf(`document.querySelector(%s).checked`, jsString(sel))) != on {
		tb.click(sel)
	}
}

func (tb *tab) setProperty(sel, prop, value string) {
	tb.t.Helper()
	evaluate[bool](tb, fmt.Sprintf(`(() => { const e = document.querySelector(%s); e[%s] = %s;
		e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, jsString(sel), jsString(prop), jsString(value)))
}

// fillTextarea types into a textarea, replacing what it held. The
// harness's fill cannot clear an empty textarea (chromedp.Clear wants a
// text node in it), so the old text is removed by script first.
func (tb *tab) fillTextarea(sel, value string) {
	tb.t.Helper()
	if tb.count(sel) == 0 {
		tb.fail("no textarea %s", sel)
	}
	tb.setProperty(sel, "value", "")
	if err := chromedp.Do(tb.ctx, chromedp.Focus(chromedp.CSS(sel)), chromedp.KeyEvent(value)); err != nil {
		tb.fail("type into %s: %v", sel, err)
	}
}

// value is the current value of a form control.
func (tb *tab) value(sel string) string {
	tb.t.Helper()
	if tb.count(sel) == 0 {
		tb.fail("no form control %s", sel)
	}
	return evaluate[string](tb, fmt.Sprintf(`document.querySelector(%s).value`, jsString(sel)))
}

// attr is an attribute of the first element matching sel.
func (tb *tab) attr(sel, name string) string {
	tb.t.Helper()
	return evaluate[string](tb, fmt.Sprintf(`(document.querySelector(%s) || {getAttribute: () => ""}).getAttribute(%s) || ""`,
		jsString(sel), jsString(name)))
}

// fieldErrors are the messages shown beside a form's fields.
func (tb *tab) fieldErrors() []string {
	tb.t.Helper()
	return evaluate[[]string](tb, `[...document.querySelectorAll('.field-error, .alert')].map(e => e.textContent.trim())`)
}
