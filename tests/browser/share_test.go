package browser_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"govshare/internal/calendar"
	"govshare/internal/demo"
)

const (
	shResource = "户籍登记信息"   // conditional, provided by 市公安局
	shConsumer = "mzj.user" // consumer of 市民政局
	shReviewer = "gaj.reviewer"
	shProvider = "gaj.admin"
	shAdmin    = "admin"
	shReject   = "申请的信息项超出低保审核所需，请说明必要性"
	shRuling   = "经协调，低保审核确需核验出生日期，裁定共享"
)

// TestApplicationToRulingInTheBrowser walks the sharing workflow: a
// consumer applies for two items of a conditional resource; the provider's
// reviewer sees the to-do with its deadline and approves one item; the
// consumer sees the grant with that item; a second application is
// rejected with a reason and escalated; the platform administrator rules
// to share; the provider's new to-do has a five-working-day deadline.
func TestApplicationToRulingInTheBrowser(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, b, mzj := setup(t, dsn)
		mzj.name = shConsumer
		mzj.logIn(shConsumer, demo.Password, "")
		entryPath := mzj.entryPath(shResource)

		// ----- The consumer applies for two items.
		mzj.open(entryPath)
		mzj.present("#apply-link", "a conditional resource's page has no apply button for a consumer of another department")
		mzj.submit("#apply-link")
		mzj.present("#apply-form", "the apply link leads to no application form")
		mzj.check(`#apply-items input[value="citizen_id"]`, true)
		mzj.check(`#apply-items input[value="name"]`, true)
		mzj.check(`#apply-methods input[value="verify"]`, false)
		mzj.check(`#apply-methods input[value="exchange"]`, false)
		mzj.check(`#apply-methods input[value="api"]`, true)
		mzj.fillTextarea("#apply-purpose", "最低生活保障申请人身份核验")
		// Without a legal basis the form is refused and the field marked.
		mzj.setProperty("#apply-until", "value", time.Now().AddDate(0, 6, 0).Format("2006-01-02"))
		mzj.submit("#apply-submit")
		if errs := mzj.fieldErrors(); len(errs) == 0 || mzj.count(`label.invalid textarea[name="basis"]`) != 1 {
			mzj.fail("an application without a legal basis was not refused on its field: %q", errs)
		}
		mzj.fillTextarea("#apply-basis", "《社会救助暂行办法》第十一条")
		mzj.submit("#apply-submit")
		first := mzj.applicationPath()
		if got := mzj.attr("#app-state", "data-state"); got != "submitted" {
			mzj.fail("new application in state %q, want submitted", got)
		}
		deadline := mzj.text("#answer-deadline")

		// ----- The provider's reviewer sees the to-do and approves one item.
		gaj := b.freshTab(shReviewer, p.URL)
		gaj.logIn(shReviewer, demo.Password, "")
		gaj.open("/todos")
		row := gaj.todoRow(first)
		if !strings.Contains(row, deadline[:10]) {
			gaj.fail("the to-do for %s shows %q, want its deadline %s", first, row, deadline)
		}
		gaj.open(first)
		gaj.submit("#do-accept")
		gaj.check(`#approve-items input[value="citizen_id"]`, false)
		gaj.fill("#approve-note", "身份号码请通过比对核验方式使用")
		gaj.submit("#do-approve")
		if got := gaj.attr("#app-state", "data-state"); got != "approved" {
			gaj.fail("after approving: state %q", got)
		}

		// ----- The consumer sees exactly what changed and the grant with one item.
		mzj.open(first)
		if mzj.count(`#changes tr[data-field="items"]`) != 1 {
			mzj.fail("the applicant does not see that the items were changed")
		}
		mzj.submit("#grant-link")
		if got := mzj.text("#grant-items"); got != "姓名" {
			mzj.fail("the grant covers %q, want only 姓名", got)
		}
		mzj.open("/grants")
		active := evaluate[int](mzj, fmt.Sprintf(`[...document.querySelectorAll('#grant-table tr[data-state="active"]')].filter(tr => tr.textContent.includes(%s)).length`, jsString(shResource)))
		if active != 1 {
			mzj.fail("my grants page lists %d active grants for %s, want 1", active, shResource)
		}

		// ----- A second application is rejected with a reason and escalated.
		mzj.open(entryPath)
		mzj.submit("#apply-link")
		mzj.check(`#apply-items input[value="birth_date"]`, true)
		mzj.check(`#apply-methods input[value="verify"]`, false)
		mzj.check(`#apply-methods input[value="exchange"]`, false)
		mzj.fillTextarea("#apply-purpose", "低保对象年龄核查")
		mzj.fillTextarea("#apply-basis", "《社会救助暂行办法》第十一条")
		mzj.setProperty("#apply-until", "value", time.Now().AddDate(0, 3, 0).Format("2006-01-02"))
		mzj.submit("#apply-submit")
		second := mzj.applicationPath()

		gaj.open(second)
		gaj.submit("#do-reject") // no reason: refused
		if gaj.attr("#app-state", "data-state") != "submitted" || len(gaj.fieldErrors()) == 0 {
			gaj.fail("a rejection without a reason was accepted")
		}
		gaj.fill("#reject-reason", shReject)
		gaj.submit("#do-reject")
		if got := gaj.attr("#app-state", "data-state"); got != "rejected" {
			gaj.fail("after rejecting: state %q", got)
		}
		mzj.open(second)
		if got := mzj.text("#reject-reason-shown"); !strings.Contains(got, shReject) {
			mzj.fail("the applicant sees %q, want the reason %q", got, shReject)
		}
		mzj.fill("#escalate-reason", "出生日期为低保年龄审核所必需")
		mzj.submit("#do-escalate")
		if got := mzj.attr("#app-state", "data-state"); got != "escalated" {
			mzj.fail("after escalating: state %q", got)
		}

		// ----- The platform administrator rules to share.
		adm := b.freshTab(shAdmin, p.URL)
		adm.logIn(shAdmin, demo.Password, p.totpSecret(t, shAdmin))
		adm.open("/todos")
		adm.todoRow(second)
		adm.open(second)
		adm.pick("#rule-outcome", "share")
		adm.fill("#rule-note", shRuling)
		adm.submit("#do-rule")
		if got := adm.attr("#app-state", "data-state"); got != "ruled_share" {
			adm.fail("after the ruling: state %q", got)
		}

		// ----- The provider's new to-do: provide within five working days.
		want, err := calendar.Weekdays{}.AddWorkingDays(time.Now(), 5) // the demo loads weekend-only years
		if err != nil {
			t.Fatal(err)
		}
		prov := b.freshTab(shProvider, p.URL)
		prov.logIn(shProvider, demo.Password, "")
		prov.open("/todos")
		row = prov.todoRow(second)
		if !strings.Contains(row, want.In(calendar.CST).Format("2006-01-02")) || !strings.Contains(row, "按协调结果提供") {
			prov.fail("the provider's to-do is %q, want 按协调结果提供 due %s", row, want.In(calendar.CST).Format("2006-01-02"))
		}
		prov.open(second)
		if got := prov.text("#provide-deadline"); !strings.HasPrefix(got, want.In(calendar.CST).Format("2006-01-02")) {
			prov.fail("provide deadline %q, want %s", got, want.In(calendar.CST).Format("2006-01-02"))
		}
		// The timeline shows every step.
		steps := evaluate[[]string](prov, `[...document.querySelectorAll('#timeline li')].map(li => li.dataset.action)`)
		if strings.Join(steps, ",") != "submit,reject,escalate,rule" {
			prov.fail("timeline %v", steps)
		}
	})
}

// entryPath finds a published entry's page on the catalog list.
func (tb *tab) entryPath(name string) string {
	tb.t.Helper()
	tb.open("/catalog")
	href := evaluate[string](tb, fmt.Sprintf(`(() => { const a = [...document.querySelectorAll('#entry-table a')].find(a => a.textContent.trim() === %s);
		return a ? a.getAttribute('href') : ""; })()`, jsString(name)))
	if href == "" {
		tb.fail("the catalog does not list %s", name)
	}
	return href
}

var applicationPathRE = regexp.MustCompile(`^(/applications/[0-9]+)\?ok=`)

// applicationPath is the application page the tab landed on after
// submitting.
func (tb *tab) applicationPath() string {
	tb.t.Helper()
	m := applicationPathRE.FindStringSubmatch(tb.location())
	if m == nil {
		tb.fail("after submitting: at %s, want an application page; errors: %q", tb.location(), tb.fieldErrors())
	}
	return m[1]
}

// todoRow is the text of the to-do row linking to href.
func (tb *tab) todoRow(href string) string {
	tb.t.Helper()
	row := evaluate[string](tb, fmt.Sprintf(`(() => { const a = document.querySelector(%s);
		return a ? a.closest('tr').textContent.replace(/\s+/g, ' ').trim() : ""; })()`, jsString(`#todo-table a[href="`+href+`"]`)))
	if row == "" {
		tb.fail("no to-do for %s", href)
	}
	return row
}
