package browser_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"govshare/internal/checkdigit"
	"govshare/internal/demo"
)

const (
	dtResource = "居住证登记信息" // 市公安局's, not mounted in the demo
	dtDiscard  = "该居住证已在原系统注销，无需入库"
)

// TestUploadQuarantineAndPreviewInTheBrowser: the data administrator
// mounts a resource, gets its template, uploads a filled file with two bad
// rows, reads the quality report, fixes one quarantined row and resubmits
// it, discards the other with a reason; a consumer of another department
// sees the masked preview on the entry page.
func TestUploadQuarantineAndPreviewInTheBrowser(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, b, gaj := setup(t, dsn)
		gaj.name = "gaj.admin"
		gaj.logIn("gaj.admin", demo.Password, "")
		entryPath := gaj.entryPath(dtResource)
		gaj.open(entryPath)
		gaj.present("#mount", "the provider's data administrator sees no mount button on an unmounted entry")
		gaj.submit("#mount")
		if !strings.HasPrefix(gaj.location(), "/resources/") {
			gaj.fail("after mounting: at %s, want the resource's page", gaj.location())
		}
		resPath := strings.SplitN(gaj.location(), "?", 2)[0]

		// The template, as the browser downloads it.
		header := awaitJS[string](gaj, `fetch(document.querySelector('#template-csv').href).then(r => r.text())`)
		header = strings.TrimPrefix(strings.TrimSpace(header), "\ufeff")
		if !strings.HasPrefix(header, "居住证号码(permit_no),姓名(name)") {
			gaj.fail("CSV template header %q", header)
		}
		xlsxType := awaitJS[string](gaj, `fetch(document.querySelector('#template-xlsx').href).then(r => r.headers.get('content-type'))`)
		if !strings.Contains(xlsxType, "spreadsheetml") {
			gaj.fail("xlsx template served as %q", xlsxType)
		}

		// A filled file: two good rows, two bad ones.
		id := func(seq int) string {
			return checkdigit.SyntheticCitizenID("350102", time.Date(1990, 3, seq, 0, 0, 0, 0, time.UTC), seq)
		}
		good1, good2, fixable := id(1), id(2), id(3)
		wrong := fixable[:17] + string("0123456789X"[(strings.IndexByte("0123456789X", fixable[17])+1)%11])
		row := func(permit, name, idNo, region string) string {
			return fmt.Sprintf("%s,%s,01,%s,福建省福州市鼓楼区五四路%s号,鼓楼派出所,2026-01-05 09:30:00,福州市公安局,%s,\n", permit, name, idNo, permit[len(permit)-2:], region)
		}
		csv := header + "\n" + row("JZZ0001", "陈建国", good1, "350102") + row("JZZ0002", "林秀英", good2, "350103") +
			row("JZZ0003", "黄志强", wrong, "350102") + row("JZZ0004", "吴丽华", id(4), "999999")
		file := filepath.Join(t.TempDir(), "居住证.csv")
		if err := os.WriteFile(file, []byte(csv), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(gaj.ctx, chromedp.SetUploadFiles(chromedp.CSS("#upload-file"), []string{file})); err != nil {
			gaj.fail("choose the file: %v", err)
		}
		gaj.submit("#upload-submit")
		if got := gaj.attr("#batch-result", "data-state"); got != "applied" {
			gaj.fail("batch state %q; errors %q", got, gaj.fieldErrors())
		}
		if got := gaj.text("#quarantined-count"); got != "2" {
			gaj.fail("quarantined %s, want 2", got)
		}
		for _, rule := range []string{"id_no/citizen_id", "authority_region/region"} {
			if gaj.count(fmt.Sprintf(`#batch-result tr[data-rule=%q]`, rule)) != 1 {
				gaj.fail("the quality report has no line for %s", rule)
			}
		}
		if got := gaj.text("#record-count"); got != "2" {
			gaj.fail("records %s, want 2", got)
		}

		// Fix the mistyped ID and resubmit; discard the other with a reason.
		gaj.open(resPath)
		fixSel := `.quarantined[data-rule*="id_no/citizen_id"]`
		gaj.present(fixSel, "the quarantined record with the wrong ID is not listed")
		idx := evaluate[int](gaj, fmt.Sprintf(`[...document.querySelectorAll(%s)].findIndex(i => i.value === %s)`,
			jsString(fixSel+" .resubmit-form input:not([type=hidden])"), jsString(wrong)))
		if idx < 0 {
			gaj.fail("the resubmit form does not hold the received values")
		}
		gaj.setProperty(fmt.Sprintf(`%s .resubmit-form input[name="v%d"]`, fixSel, idx), "value", fixable)
		gaj.submit(fixSel + " .resubmit-form button")
		discardSel := `.quarantined[data-rule*="authority_region/region"]`
		gaj.present(discardSel, "the quarantined record with the unknown region is not listed")
		gaj.submit(discardSel + " .discard-form button") // no reason: refused
		if len(gaj.fieldErrors()) == 0 {
			gaj.fail("a discard without a reason was accepted")
		}
		gaj.open(resPath)
		gaj.fill(discardSel+` .discard-form input[name="reason"]`, dtDiscard)
		gaj.submit(discardSel + " .discard-form button")
		if n := gaj.count(".quarantined"); n != 0 {
			gaj.fail("%d records still quarantined", n)
		}
		if got := gaj.text("#record-count"); got != "3" {
			gaj.fail("records after the fix: %s, want 3", got)
		}

		// A consumer of another department sees the masked preview.
		mzj := b.freshTab("mzj.user", p.URL)
		mzj.logIn("mzj.user", demo.Password, "")
		mzj.open(entryPath)
		mzj.present("#preview-table", "the entry page shows no data preview")
		cells := evaluate[string](mzj, `document.querySelector('#preview-table tbody').textContent`)
		for _, plain := range []string{"陈建国", "林秀英", "黄志强", good1, good2, fixable} {
			if strings.Contains(cells, plain) {
				mzj.fail("the preview shows %q unmasked", plain)
			}
		}
		if !strings.Contains(cells, "陈**") || !strings.Contains(cells, good1[:6]+"********"+good1[14:]) {
			mzj.fail("the preview is not masked by the items' rules: %q", cells)
		}
	})
}

// awaitJS evaluates a script that returns a promise and waits for it.
func awaitJS[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail("evaluate %s: %v", js, err)
	}
	return v
}
