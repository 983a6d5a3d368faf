package browser_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"govshare/internal/demo"
)

const (
	exNode     = "公安局前置机"
	exJob      = "户籍库同步"
	exResource = "户籍登记信息" // 市公安局's, mounted in the demo
)

// TestExchangeJobInTheBrowser: the data administrator registers a node
// and is shown its enrolment command once, defines an exchange job with
// the form (a mapping that leaves out the key item is refused at the
// field), starts it and finds it running in the list; the platform
// administrator opens the alarms.
func TestExchangeJobInTheBrowser(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, b, gaj := setup(t, dsn)
		gaj.name = "gaj.admin"
		gaj.logIn("gaj.admin", demo.Password, "")
		gaj.present(`a.nav-item[href="/exchange/nodes"]`, "the data administrator's navigation has no exchange group")
		gaj.submit(`a.nav-item[href="/exchange/nodes"]`)

		// Register a node: the code and the command, once.
		gaj.fill("#node-name", exNode)
		gaj.submit("#node-submit")
		gaj.present("#enrolment", "registering a node shows no enrolment code")
		code, command := gaj.text("#enrol-code"), gaj.text("#enrol-command")
		if want := "govshare agent enrol --api " + p.URL + " --code " + code + " --name '" + exNode + "'"; code == "" || !strings.HasPrefix(command, want) {
			gaj.fail("enrolment command %q, want it to start %q", command, want)
		}
		nodeID := gaj.attr("#enrolment", "data-node")
		gaj.open("/exchange/nodes")
		if gaj.count("#enrolment") != 0 || strings.Contains(evaluate[string](gaj, `document.body.textContent`), code) {
			gaj.fail("the enrolment code is shown again")
		}
		if got := gaj.attr(fmt.Sprintf(`#node-table tr[data-id="%s"]`, nodeID), "data-state"); got != "pending" {
			gaj.fail("the new node's state %q, want pending", got)
		}

		// Define a job with the form.
		gaj.open("/exchange/jobs")
		gaj.present("#job-form", "the jobs page has no form for a new job")
		gaj.pick("#job-node", nodeID)
		gaj.fill("#job-name", exJob)
		gaj.pick("#job-resource", gaj.optionValue("#job-resource", exResource))
		gaj.fill("#job-source", "hjk")
		gaj.fill("#job-srctable", "public.people")
		gaj.setLines("#job-mapping", "xm=name", "xb=sex")
		gaj.pick("#job-schedule", "interval")
		gaj.fill("#job-interval", "600")
		gaj.submit("#job-submit")
		gaj.present("#mapping-error", "a mapping without the key item shows no error at the mapping")
		if msg := gaj.text("#mapping-error"); !strings.Contains(msg, "citizen_id") {
			gaj.fail("mapping error %q does not name the key item", msg)
		}
		if got := gaj.value("#job-name"); got != exJob {
			gaj.fail("the refused form lost the name: %q", got)
		}
		gaj.setLines("#job-mapping", "sfzh=citizen_id", "xm=name", "xb=sex")
		gaj.submit("#job-submit")
		if !strings.Contains(gaj.location(), "ok=ex.job.created") {
			gaj.fail("after creating the job: errors %q", gaj.fieldErrors())
		}
		if got := gaj.attr("#job-state", "data-running"); got != "false" {
			gaj.fail("a new job runs: %q", got)
		}

		// Start it; the list shows it running.
		gaj.submit("#job-start")
		if got := gaj.attr("#job-state", "data-running"); got != "true" {
			gaj.fail("after start the job is not running: %q", got)
		}
		gaj.present("#job-stop", "a running job offers no stop button")
		gaj.open("/exchange/jobs")
		row := evaluate[string](gaj, fmt.Sprintf(`(() => { const a = [...document.querySelectorAll('#job-table a')].find(a => a.textContent.trim() === %s);
			const tr = a && a.closest('tr'); return tr ? tr.getAttribute('data-running') + ' ' + tr.textContent.replace(/\s+/g, ' ') : ""; })()`, jsString(exJob)))
		if !strings.HasPrefix(row, "true ") || !strings.Contains(row, exNode) || !strings.Contains(row, exResource) || !strings.Contains(row, "运行中") {
			gaj.fail("the job list row %q does not show the job running", row)
		}

		// The platform administrator watches the alarms.
		pa := b.freshTab("admin", p.URL)
		pa.logIn("admin", demo.Password, p.totpSecret(t, "admin"))
		pa.present(`a.nav-item[href="/exchange/alarms"]`, "the platform administrator's navigation has no alarms")
		resp := pa.open("/exchange/alarms")
		if resp.Status != 200 {
			pa.fail("alarms page: HTTP %d", resp.Status)
		}
		pa.present("#alarm-table", "the alarms page has no alarm table")
		if got := pa.text("h1.page-title"); got != "交换告警" {
			pa.fail("alarms page title %q", got)
		}
		pa.open("/exchange/jobs")
		if pa.count(`#job-table a`) == 0 || !strings.Contains(pa.text("#job-table"), exJob) {
			pa.fail("the platform administrator does not see the department's job")
		}
	})
}

// optionValue is the value of the option of a select whose text contains
// label.
func (tb *tab) optionValue(sel, label string) string {
	tb.t.Helper()
	v := evaluate[string](tb, fmt.Sprintf(`(() => { const o = [...document.querySelector(%s).options].find(o => o.textContent.includes(%s));
		return o ? o.value : ""; })()`, jsString(sel), jsString(label)))
	if v == "" {
		tb.fail("select %s has no option %q", sel, label)
	}
	return v
}

// setLines puts lines of text into a textarea (jsString keeps no line
// breaks, so the text travels as JSON).
func (tb *tab) setLines(sel string, lines ...string) {
	tb.t.Helper()
	text, _ := json.Marshal(strings.Join(lines, "\n"))
	evaluate[bool](tb, fmt.Sprintf(`(() => { document.querySelector(%s).value = %s; return true; })()`, jsString(sel), text))
}
