// Package browser_test drives the server-rendered UI in headless Chromium
// against a demo city served in-process, the way a person would: typing
// into forms, pressing buttons, reading what the page shows. The tests run
// when GOVSHARE_TEST_CHROMIUM names the browser, and also on PostgreSQL
// when GOVSHARE_TEST_POSTGRES names a server.
package browser_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"govshare/internal/demo"
	"govshare/internal/identity"
)

// cityGov is the demo city's top department.
const cityGov = "示范市人民政府"

// newUser is a user an administrator creates through the UI.
type newUser struct {
	Login, Name, Mobile, Dept, Password string
}

// createUser fills /users/new as an administrator and checks the platform
// lands on the new user's page with the success message.
func createUser(tb *tab, u newUser) {
	tb.t.Helper()
	tb.submit(`aside.sidebar a[href="/users"]`)
	tb.submit("#new-user")
	if got := tb.location(); got != "/users/new" {
		tb.fail("new user link: at %s, want /users/new", got)
	}
	tb.fill("#user-login", u.Login)
	tb.fill("#user-name", u.Name)
	tb.fill("#user-mobile", u.Mobile)
	tb.choose("#user-dept", u.Dept)
	tb.click(`input[name=roles][value=consumer]`)
	tb.fill("#user-password", u.Password)
	resp := tb.submit("#user-submit")
	if resp.Status != http.StatusOK || !regexp.MustCompile(`^/users/[0-9]+\?ok=user\.created$`).MatchString(tb.location()) {
		tb.fail("create user %s: status %d at %s, want the new user's page with ?ok=user.created", u.Login, resp.Status, tb.location())
	}
	tb.visible(".flash")
	if got := tb.text(".flash"); !strings.Contains(got, "用户已创建") {
		tb.fail("flash after creating a user = %q, want it to say 用户已创建", got)
	}
	if got := tb.text("dl.kv.head dd.mono"); got != u.Login {
		tb.fail("new user's page shows login %q, want %q", got, u.Login)
	}
}

func TestAdminCreatesDepartmentAndUserAndAuditorSeesIt(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, _, tb := setup(t, dsn)

		tb.logIn("admin", demo.Password, p.totpSecret(t, "admin"))
		if got := tb.location(); got != "/home" {
			tb.fail("admin after the one-time code: at %s, want /home", got)
		}
		if n := tb.count(`aside.sidebar a[href="/users"]`); n != 1 {
			tb.fail("admin's sidebar has %d links to /users, want 1", n)
		}
		tb.submit(`aside.sidebar a[href="/departments"]`)

		// A credit code with a wrong check character is refused beside
		// its field, and nothing is stored.
		const name = "示范市大数据管理局"
		const badCode = "91350100M000100Y44"
		if identity.ValidCreditCode(badCode) {
			t.Fatalf("test data: %s must have a wrong check character", badCode)
		}
		tb.fill("#dept-name", name)
		tb.fill("#dept-code", badCode)
		tb.fill("#dept-region", demo.Region)
		tb.choose("#dept-parent", cityGov)
		resp := tb.submit("#dept-submit")
		if resp.Status != http.StatusUnprocessableEntity {
			tb.fail("department with a bad credit code: status %d, want 422", resp.Status)
		}
		tb.visible("#err-credit_code")
		if !evaluate[bool](tb, `document.querySelector('#err-credit_code').closest('label').matches('label.invalid')`) ||
			tb.count(`label.invalid #dept-code`) != 1 || tb.count(`label.invalid`) != 1 {
			tb.fail("only the credit code's label should be marked invalid")
		}
		if strings.Contains(tb.text("#dept-table"), name) {
			tb.fail("department %s is listed although its credit code was refused", name)
		}

		// The form kept what was typed: correcting the code is enough.
		goodCode := identity.SyntheticCreditCode(demo.Region, 9001)
		tb.fill("#dept-code", goodCode)
		resp = tb.submit("#dept-submit")
		if resp.Status != http.StatusOK || tb.location() != "/departments?ok=dept.created" {
			tb.fail("department with a valid credit code: status %d at %s, want /departments?ok=dept.created", resp.Status, tb.location())
		}
		tb.visible(".flash")
		row := evaluate[string](tb, `(() => { const tr = [...document.querySelectorAll('#dept-table tbody tr')]
			.find(tr => tr.cells[0].textContent.includes(`+jsString(name)+`)); return tr ? tr.textContent : ""; })()`)
		if !strings.Contains(row, goodCode) {
			tb.fail("department table row for %s = %q, want it with credit code %s", name, row, goodCode)
		}

		const login = "dsj.clerk"
		createUser(tb, newUser{Login: login, Name: "赵晓明", Mobile: "13900001234", Dept: name, Password: "Init@Pass2026"})
		tb.logOut()

		// The auditor finds all of it, and no success for the refusal.
		tb.logIn("auditor", demo.Password, p.totpSecret(t, "auditor"))
		if got := tb.location(); got != "/home" {
			tb.fail("auditor after the one-time code: at %s, want /home", got)
		}
		tb.submit(`aside.sidebar a[href="/audit"]`)
		tb.fill("#f-actor", "admin")
		tb.submit("#audit-search")
		if got := tb.location(); !strings.Contains(got, "actor=admin") {
			tb.fail("audit filter: at %s, want actor=admin in the query", got)
		}
		rows := tb.auditRows()
		if len(rows) == 0 {
			tb.fail("audit table has no rows for actor admin")
		}
		for _, r := range rows {
			if r.Actor != "admin" {
				tb.fail("filter actor=admin shows a row of %q: %s", r.Actor, r)
			}
		}
		for _, want := range []struct{ action, result, detail string }{
			{"login", "ok", ""},
			{"dept.create", "ok", goodCode},
			{"user.create", "ok", login},
		} {
			if !hasRow(rows, want.action, want.result, want.detail) {
				tb.fail("no audit row %s %s mentioning %q; rows:\n%s", want.action, want.result, want.detail, rowsText(rows))
			}
		}
		if hasRow(rows, "dept.create", "ok", badCode) {
			tb.fail("the refused department is logged as created; rows:\n%s", rowsText(rows))
		}
	})
}

func TestConsumerCannotOpenUserManagement(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		_, _, tb := setup(t, dsn)

		tb.logIn("gaj.user", demo.Password, "")
		if got := tb.location(); got != "/home" {
			tb.fail("consumer after login: at %s, want /home", got)
		}
		if n := tb.count(`aside.sidebar a[href="/home"]`); n != 1 {
			tb.fail("consumer's sidebar is missing (%d links to /home)", n)
		}
		for _, link := range []string{`a[href^="/users"]`, `a[href^="/audit"]`, `a[href^="/departments"]`} {
			if n := tb.count(link); n != 0 {
				tb.fail("consumer's page has %d links %s, want none", n, link)
			}
		}

		// Typing the address does not help: the server refuses.
		for _, path := range []string{"/users", "/users/new", "/audit"} {
			resp := tb.open(path)
			if resp.Status != http.StatusForbidden {
				tb.fail("consumer opening %s: HTTP %d, want 403", path, resp.Status)
			}
			tb.visible(`section.error-page[data-status="403"]`)
		}
	})
}

func TestLanguageSwitch(t *testing.T) {
	_, _, tb := setup(t, "")

	tb.open("/login")
	checkLoginLanguage(tb, "zh-CN", "用户登录", "English")
	tb.submit("#lang-switch")
	if got := tb.location(); got != "/login" {
		tb.fail("language switch: at %s, want back on /login", got)
	}
	checkLoginLanguage(tb, "en", "Log in", "中文")
	tb.submit("#lang-switch")
	checkLoginLanguage(tb, "zh-CN", "用户登录", "English")
}

func checkLoginLanguage(tb *tab, lang, title, switchTo string) {
	tb.t.Helper()
	if got := evaluate[string](tb, `document.documentElement.lang`); got != lang {
		tb.fail("page language = %q, want %q", got, lang)
	}
	if got := tb.text(".login-card h1"); got != title {
		tb.fail("login title = %q, want %q", got, title)
	}
	if got := tb.text("#lang-switch"); got != switchTo {
		tb.fail("language switch says %q, want %q", got, switchTo)
	}
}

func TestFirstLoginForcesPasswordChange(t *testing.T) {
	eachDatabase(t, func(t *testing.T, dsn string) {
		p, b, admin := setup(t, dsn)

		admin.logIn("admin", demo.Password, p.totpSecret(t, "admin"))
		u := newUser{Login: "mzj.clerk", Name: "钱文杰", Dept: "市民政局", Password: "Init@Pass2026"}
		createUser(admin, u)

		tb := b.freshTab("new user", p.URL)
		tb.logIn(u.Login, u.Password, "")
		if got := tb.location(); got != "/account/password" {
			tb.fail("first login: at %s, want /account/password", got)
		}
		tb.visible(".notice")
		tb.open("/home")
		if got := tb.location(); got != "/account/password" {
			tb.fail("home before the password change: at %s, want /account/password", got)
		}

		const newPassword = "Fresh@Pass2027"
		tb.fill("#old_password", u.Password)
		tb.fill("#new_password", newPassword)
		tb.fill("#confirm_password", newPassword)
		tb.submit("#password-submit")
		if got := tb.location(); !strings.HasPrefix(got, "/home") {
			tb.fail("after the password change: at %s, want /home", got)
		}
		tb.visible(".flash")

		// The old password is gone; the new one goes straight home.
		tb.logOut()
		resp := tb.logIn(u.Login, u.Password, "")
		if resp.Status != http.StatusUnauthorized || tb.location() != "/login" {
			tb.fail("login with the replaced password: status %d at %s, want 401 on /login", resp.Status, tb.location())
		}
		tb.visible(".login-card .alert")
		tb.logIn(u.Login, newPassword, "")
		if got := tb.location(); got != "/home" {
			tb.fail("login with the new password: at %s, want /home", got)
		}
	})
}

func rowsText(rows []auditRow) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString("  " + r.String() + "\n")
	}
	return b.String()
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
