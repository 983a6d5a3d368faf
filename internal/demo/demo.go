// Package demo loads a made-up city government so the platform can be
// tried at once: ten departments under the city government, users in
// every role, two-factor secrets for the administrators. Every name and
// code is synthetic (valid check characters, no real organisation).
package demo

import (
	"time"

	"context"
	"errors"
	"fmt"
	"govshare/internal/calendar"
	"os"
	"path/filepath"
	"strings"

	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/server"
)

// Password is every demo account's password.
const Password = "Demo@2026"

// Region is the demo city's region code.
const Region = "350100"

type dept struct {
	key, name string
}

// Departments of the demo city, with the short key used in logins.
var departments = []dept{
	{"zwb", "市政务信息办"},
	{"gaj", "市公安局"},
	{"mzj", "市民政局"},
	{"rsj", "市人力资源和社会保障局"},
	{"wjw", "市卫生健康委员会"},
	{"scj", "市市场监督管理局"},
	{"swj", "市税务局"},
	{"jyj", "市教育局"},
	{"cl", "市残疾人联合会"},
	{"zrj", "市自然资源和规划局"},
}

var surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高")
var given = []string{"建国", "秀英", "志强", "丽华", "海燕", "文杰", "晓明", "春梅", "立新", "雪梅", "振华", "桂兰", "国庆", "玉兰", "永刚"}

func personName(i int) string {
	return string(surnames[i%len(surnames)]) + given[(i*7)%len(given)]
}

// Account is one demo login.
type Account struct {
	Login, Name, Dept string
	Roles             []policy.Role
	TOTPSecret        string
}

// Seed loads the demo city on first start (when no department exists)
// and prints the accounts on every start.
func Seed(ctx context.Context, p *server.Platform) error {
	n, err := p.Identity.DepartmentCount(ctx)
	if err != nil {
		return err
	}
	file := filepath.Join(p.Config.Data, "demo-accounts.txt")
	if n == 0 {
		accounts, err := load(ctx, p.Identity)
		if err != nil {
			return err
		}
		if err := loadCalendar(ctx, p); err != nil {
			return err
		}
		entries, err := loadCatalog(ctx, p.Identity, p.Catalog)
		if err != nil {
			return err
		}
		p.Log.Info("demo catalog loaded", "entries", len(entries))
		if err := loadData(ctx, p, entries); err != nil {
			return err
		}
		apps, err := loadSharing(ctx, p, entries)
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, []byte(format(accounts)+apps), 0o600); err != nil {
			return err
		}
		p.Log.Info("demo city loaded", "departments", len(departments)+1, "users", len(accounts))
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(p.Out, "演示账号列表不在数据目录中 / the demo account list is not in the data folder")
		return nil
	} else if err != nil {
		return err
	}
	_, err = p.Out.Write(b)
	return err
}

func load(ctx context.Context, ids *identity.Service) ([]Account, error) {
	city, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "示范市人民政府", CreditCode: identity.SyntheticCreditCode(Region, 1), RegionCode: Region})
	if err != nil {
		return nil, err
	}
	var accounts []Account
	person := 0
	add := func(d identity.Department, login string, roles []policy.Role, totp bool) error {
		person++
		secret := ""
		if totp {
			secret = identity.NewTOTPSecret()
		}
		u, err := ids.SeedUser(ctx, identity.UserInput{Login: login, Name: personName(person), DeptID: d.ID, Roles: roles, Password: Password}, false, secret)
		if err != nil {
			return fmt.Errorf("demo user %s: %w", login, err)
		}
		accounts = append(accounts, Account{Login: u.Login, Name: u.Name, Dept: d.Name, Roles: u.Roles, TOTPSecret: secret})
		return nil
	}
	for i, dd := range departments {
		d, err := ids.SeedDepartment(ctx, identity.DepartmentInput{ParentID: city.ID, Name: dd.name,
			CreditCode: identity.SyntheticCreditCode(Region, 100+i), RegionCode: Region})
		if err != nil {
			return nil, err
		}
		if dd.key == "zwb" {
			// The three administrator duties, each held by its own person.
			for _, r := range []struct {
				login string
				role  policy.Role
			}{{"admin", policy.PlatformAdmin}, {"secadmin", policy.SecurityAdmin}, {"auditor", policy.Auditor}} {
				if err := add(d, r.login, []policy.Role{r.role}, true); err != nil {
					return nil, err
				}
			}
		}
		for _, r := range []struct {
			suffix string
			role   policy.Role
		}{{"admin", policy.DeptAdmin}, {"reviewer", policy.DeptReviewer}, {"user", policy.Consumer}} {
			if err := add(d, dd.key+"."+r.suffix, []policy.Role{r.role}, false); err != nil {
				return nil, err
			}
		}
	}
	return accounts, nil
}

func format(accounts []Account) string {
	var b strings.Builder
	b.WriteString("\n演示账号 / demo accounts (password 密码: " + Password + ")\n")
	b.WriteString("管理员需双因素认证：把密钥加入身份验证器，或运行 `go run ./cmd/govshare totp <密钥>` 得到当前验证码。\n")
	b.WriteString("Administrators need a one-time code: add the secret to an authenticator app, or run `go run ./cmd/govshare totp <secret>`.\n\n")
	for _, a := range accounts {
		roles := make([]string, len(a.Roles))
		for i, r := range a.Roles {
			roles[i] = string(r)
		}
		fmt.Fprintf(&b, "  %-14s %-6s %-16s %s", a.Login, a.Name, strings.Join(roles, ","), a.Dept)
		if a.TOTPSecret != "" {
			fmt.Fprintf(&b, "  TOTP %s", a.TOTPSecret)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// loadCalendar gives the demo a working-day calendar for this year and the
// next, so deadlines can be computed. It holds no holidays: a real
// deployment imports the State Council's schedule each year.
func loadCalendar(ctx context.Context, p *server.Platform) error {
	admin := policy.Actor{Login: "demo", Roles: []policy.Role{policy.PlatformAdmin}}
	now := time.Now().In(calendar.CST)
	for y := now.Year(); y <= now.Year()+1; y++ {
		if err := p.Calendar.ImportYear(ctx, admin, calendar.Year{Year: y}, "demo: weekends only, no holidays"); err != nil {
			return err
		}
	}
	return nil
}
