package identity_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

type fixture struct {
	svc   *identity.Service
	log   *audit.Log
	db    *store.DB
	root  identity.Department
	other identity.Department
	admin policy.Actor
	clock *time.Time
}

const goodPW = "Passw0rd!x"

func setup(t *testing.T, db *store.DB) *fixture {
	t.Helper()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	svc := identity.NewService(db, log, keys, identity.DefaultConfig())
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	f := &fixture{svc: svc, log: log, db: db, clock: &now}
	svc.SetClock(func() time.Time { return *f.clock })
	ctx := context.Background()
	u, err := svc.Bootstrap(ctx, identity.BootstrapInput{
		User:       identity.UserInput{Login: "sysadmin", Name: "系统管理员", Roles: []policy.Role{policy.PlatformAdmin}, Password: goodPW},
		Department: identity.DepartmentInput{Name: "市政务信息办", CreditCode: identity.SyntheticCreditCode("350100", 1), RegionCode: "350100"},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.admin = u.Actor()
	f.root, _ = svc.Department(ctx, u.DeptID)
	f.other, err = svc.CreateDepartment(ctx, f.admin, identity.DepartmentInput{ParentID: f.root.ID, Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) user(t *testing.T, login string, dept int64, roles ...policy.Role) identity.User {
	t.Helper()
	u, err := f.svc.CreateUser(context.Background(), f.admin, identity.UserInput{Login: login, Name: "测试" + login, DeptID: dept, Roles: roles, Password: goodPW})
	if err != nil {
		t.Fatalf("create %s: %v", login, err)
	}
	return u
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	ae, ok := apperr.As(err)
	if !ok || ae.Code != code {
		t.Fatalf("want error %s, got %v", code, err)
	}
}

func TestCreditCodeCheckCharacter(t *testing.T) {
	for _, c := range []string{"91350100M000100Y43", "91440300708461136T", identity.SyntheticCreditCode("350100", 42)} {
		if !identity.ValidCreditCode(c) {
			t.Errorf("%s should be valid", c)
		}
	}
	for _, c := range []string{"91350100M000100Y44", "91350100M000100Y4", "9135010OM000100Y43", "91350100I000100Y43", ""} {
		if identity.ValidCreditCode(c) {
			t.Errorf("%s should be invalid", c)
		}
	}
}

func TestDepartmentValidationNamesTheField(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		cases := []struct {
			in    identity.DepartmentInput
			field string
		}{
			{identity.DepartmentInput{Name: "民政局", CreditCode: "91350100M000100Y44", RegionCode: "350100"}, "credit_code"},
			{identity.DepartmentInput{Name: "民政局", CreditCode: identity.SyntheticCreditCode("350100", 9), RegionCode: "35010"}, "region_code"},
			{identity.DepartmentInput{Name: " ", CreditCode: identity.SyntheticCreditCode("350100", 9), RegionCode: "350100"}, "name"},
			{identity.DepartmentInput{Name: "民政局", CreditCode: f.other.CreditCode, RegionCode: "350100"}, "credit_code"},
			{identity.DepartmentInput{Name: "民政局", CreditCode: identity.SyntheticCreditCode("350100", 9), RegionCode: "350100", ParentID: 999}, "parent_id"},
		}
		for _, c := range cases {
			_, err := f.svc.CreateDepartment(ctx, f.admin, c.in)
			ae, ok := apperr.As(err)
			if !ok || ae.Field != c.field || ae.ZH == "" || ae.EN == "" {
				t.Errorf("%+v: want error on %s, got %v", c.in, c.field, err)
			}
		}
		if n, _ := f.svc.DepartmentCount(ctx); n != 2 {
			t.Fatalf("bad input changed the store: %d departments", n)
		}
		// A department cannot become its own ancestor.
		_, err := f.svc.UpdateDepartment(ctx, f.admin, f.root.ID, identity.DepartmentInput{ParentID: f.other.ID, Name: f.root.Name, CreditCode: f.root.CreditCode, RegionCode: "350100"})
		wantCode(t, err, "identity.dept_parent_invalid")
		tree, _ := f.svc.Departments(ctx)
		if len(tree) != 2 || tree[0].ID != f.root.ID || tree[1].Depth != 1 {
			t.Fatalf("tree: %+v", tree)
		}
	})
}

func TestAdminRolesAreSeparated(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		for _, roles := range [][]policy.Role{
			{policy.PlatformAdmin, policy.Auditor},
			{policy.PlatformAdmin, policy.SecurityAdmin},
			{policy.SecurityAdmin, policy.Auditor, policy.Consumer},
		} {
			_, err := f.svc.CreateUser(ctx, f.admin, identity.UserInput{Login: "xyz1", Name: "某人", DeptID: f.root.ID, Roles: roles, Password: goodPW})
			wantCode(t, err, "identity.admin_roles_separated")
		}
		// Nor can an existing auditor be given a second administrator role.
		aud := f.user(t, "auditor1", f.root.ID, policy.Auditor)
		_, err := f.svc.UpdateUser(ctx, f.admin, aud.ID, identity.UserUpdate{Name: aud.Name, DeptID: aud.DeptID, Roles: []policy.Role{policy.Auditor, policy.SecurityAdmin}})
		wantCode(t, err, "identity.admin_roles_separated")
		// An administrator role with department roles is fine.
		f.user(t, "secadm", f.root.ID, policy.SecurityAdmin, policy.Consumer)
		if _, err := f.svc.UserByLogin(ctx, "xyz1"); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatal("refused user was stored")
		}
	})
}

func TestDeptAdminManagesOnlyOwnDepartment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		da := f.user(t, "police.admin", f.other.ID, policy.DeptAdmin).Actor()
		if _, err := f.svc.CreateUser(ctx, da, identity.UserInput{Login: "police.user", Name: "民警", DeptID: f.other.ID, Roles: []policy.Role{policy.Consumer}, Password: goodPW}); err != nil {
			t.Fatalf("own department: %v", err)
		}
		_, err := f.svc.CreateUser(ctx, da, identity.UserInput{Login: "info.user", Name: "他人", DeptID: f.root.ID, Roles: []policy.Role{policy.Consumer}, Password: goodPW})
		wantCode(t, err, "auth.denied")
		_, err = f.svc.CreateUser(ctx, da, identity.UserInput{Login: "police.aud", Name: "审计", DeptID: f.other.ID, Roles: []policy.Role{policy.Auditor}, Password: goodPW})
		wantCode(t, err, "auth.denied")
		users, err := f.svc.Users(ctx, da, identity.UserFilter{})
		if err != nil || len(users) != 2 {
			t.Fatalf("dept admin sees %d users, %v", len(users), err)
		}
		for _, u := range users {
			if u.DeptID != f.other.ID {
				t.Fatalf("dept admin sees user of department %d", u.DeptID)
			}
		}
		// The denial is in the audit log.
		evs, _ := f.log.List(ctx, audit.Filter{Result: audit.ResultDenied})
		if len(evs) < 2 {
			t.Fatalf("denials not audited: %+v", evs)
		}
	})
}

func TestLockoutAfterFiveFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		f.user(t, "zhang.san", f.other.ID, policy.Consumer)
		for i := 0; i < 4; i++ {
			_, _, _, err := f.svc.Login(ctx, "zhang.san", "wrong", identity.Client{})
			wantCode(t, err, "identity.bad_credentials")
		}
		_, _, _, err := f.svc.Login(ctx, "zhang.san", "wrong", identity.Client{})
		wantCode(t, err, "identity.locked")
		// Locked: even the right password is refused.
		_, _, _, err = f.svc.Login(ctx, "zhang.san", goodPW, identity.Client{})
		wantCode(t, err, "identity.locked")
		*f.clock = f.clock.Add(14 * time.Minute)
		_, _, _, err = f.svc.Login(ctx, "zhang.san", goodPW, identity.Client{})
		wantCode(t, err, "identity.locked")
		*f.clock = f.clock.Add(2 * time.Minute)
		if _, _, _, err := f.svc.Login(ctx, "zhang.san", goodPW, identity.Client{}); err != nil {
			t.Fatalf("after 15 minutes: %v", err)
		}
		evs, _ := f.log.List(ctx, audit.Filter{Action: "login.locked"})
		if len(evs) != 1 {
			t.Fatalf("lockout audited %d times", len(evs))
		}
	})
}

func TestPasswordPolicy(t *testing.T) {
	for pw, ok := range map[string]bool{"short1A": false, "alllowercase1": false, "Lower1234": true, "abc!defg1": true, "ABCDEFGH!": false, "密码很长但是只有汉字": false} {
		err := identity.CheckPasswordPolicy(pw, "someone")
		if (err == nil) != ok {
			t.Errorf("%q: ok=%v err=%v", pw, ok, err)
		}
	}
	if identity.CheckPasswordPolicy("Zhangsan1!", "zhangsan") == nil {
		t.Error("password containing the login accepted")
	}
}

func TestFirstLoginForcesPasswordChangeAndAdminsNeedTOTP(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		tok, sess, u, err := f.svc.Login(ctx, "sysadmin", goodPW, identity.Client{Addr: "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		if st := sess.Stage(u); st != identity.StageEnrol {
			t.Fatalf("admin without TOTP: stage %v", st)
		}
		secret, uri, err := f.svc.BeginTOTP(ctx, u.ID)
		if err != nil || uri == "" {
			t.Fatal(err)
		}
		code, _ := identity.TOTPCode(secret, *f.clock)
		if err := f.svc.ConfirmTOTP(ctx, u.ID, tok, "000000"); !errors.Is(err, identity.ErrBadTOTP) && code != "000000" {
			t.Fatalf("wrong code accepted: %v", err)
		}
		if err := f.svc.ConfirmTOTP(ctx, u.ID, tok, code); err != nil {
			t.Fatal(err)
		}
		sess, u, _ = f.svc.Authenticate(ctx, tok)
		if st := sess.Stage(u); st != identity.StagePassword {
			t.Fatalf("after enrolment: stage %v", st)
		}
		err = f.svc.ChangePassword(ctx, u.ID, tok, goodPW, "weak")
		wantCode(t, err, "identity.password_weak")
		if err := f.svc.ChangePassword(ctx, u.ID, tok, goodPW, "N3w-Passw0rd"); err != nil {
			t.Fatal(err)
		}
		sess, u, _ = f.svc.Authenticate(ctx, tok)
		if st := sess.Stage(u); st != identity.StageReady {
			t.Fatalf("after change: stage %v", st)
		}
		// Next login needs the code; the same code cannot be replayed.
		*f.clock = f.clock.Add(10 * time.Second)
		tok2, sess2, u2, err := f.svc.Login(ctx, "sysadmin", "N3w-Passw0rd", identity.Client{})
		if err != nil || sess2.Stage(u2) != identity.StageTOTP {
			t.Fatalf("second login: %v stage %v", err, sess2.Stage(u2))
		}
		if _, err := f.svc.VerifyLoginTOTP(ctx, tok2, code); !errors.Is(err, identity.ErrBadTOTP) {
			t.Fatalf("replayed code: %v", err)
		}
		*f.clock = f.clock.Add(30 * time.Second)
		code2, _ := identity.TOTPCode(secret, *f.clock)
		if _, err := f.svc.VerifyLoginTOTP(ctx, tok2, code2); err != nil {
			t.Fatal(err)
		}
		sess2, u2, _ = f.svc.Authenticate(ctx, tok2)
		if sess2.Stage(u2) != identity.StageReady {
			t.Fatal("not ready after code")
		}
		// Administrators cannot switch two-factor off.
		if err := f.svc.DisableTOTP(ctx, u.ID, code2); !errors.Is(err, identity.ErrTOTPMandatory) {
			t.Fatalf("disable: %v", err)
		}
	})
}

func TestSessionTimeouts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		f.user(t, "li.si", f.other.ID, policy.Consumer)
		tok, _, _, err := f.svc.Login(ctx, "li.si", goodPW, identity.Client{})
		if err != nil {
			t.Fatal(err)
		}
		// Active use keeps the session past 30 minutes…
		for i := 0; i < 5; i++ {
			*f.clock = f.clock.Add(20 * time.Minute)
			if _, _, err := f.svc.Authenticate(ctx, tok); err != nil {
				t.Fatalf("active session ended at step %d: %v", i, err)
			}
		}
		// …but 31 idle minutes end it.
		*f.clock = f.clock.Add(31 * time.Minute)
		if _, _, err := f.svc.Authenticate(ctx, tok); !errors.Is(err, identity.ErrSessionEnded) {
			t.Fatalf("idle session: %v", err)
		}
		// Absolute: 12 hours even when active.
		tok, _, _, _ = f.svc.Login(ctx, "li.si", goodPW, identity.Client{})
		for i := 0; i < 37; i++ {
			*f.clock = f.clock.Add(20 * time.Minute)
			_, _, err = f.svc.Authenticate(ctx, tok)
		}
		if !errors.Is(err, identity.ErrSessionEnded) {
			t.Fatalf("12h session: %v", err)
		}
		// Logout revokes.
		tok, _, _, _ = f.svc.Login(ctx, "li.si", goodPW, identity.Client{})
		_ = f.svc.Logout(ctx, tok)
		if _, _, err := f.svc.Authenticate(ctx, tok); !errors.Is(err, identity.ErrSessionEnded) {
			t.Fatalf("after logout: %v", err)
		}
	})
}

func TestAPITokens(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db)
		ctx := context.Background()
		u := f.user(t, "wang.wu", f.other.ID, policy.Consumer)
		plain, tok, err := f.svc.CreateToken(ctx, u.Actor(), "业务系统", 30)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := f.svc.AuthenticateToken(ctx, plain)
		if err != nil || got.ID != u.ID {
			t.Fatalf("authenticate: %v", err)
		}
		var stored int
		_ = db.QueryRow(ctx, "SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?", plain).Scan(&stored)
		if stored != 0 {
			t.Fatal("token stored in plain text")
		}
		other := f.user(t, "zhao.liu", f.other.ID, policy.Consumer)
		wantCode(t, f.svc.RevokeToken(ctx, other.Actor(), tok.ID), "auth.denied")
		if err := f.svc.RevokeToken(ctx, u.Actor(), tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.svc.AuthenticateToken(ctx, plain); !errors.Is(err, identity.ErrBadToken) {
			t.Fatalf("revoked token: %v", err)
		}
		plain, _, _ = f.svc.CreateToken(ctx, u.Actor(), "短期", 1)
		*f.clock = f.clock.Add(25 * time.Hour)
		if _, _, err := f.svc.AuthenticateToken(ctx, plain); !errors.Is(err, identity.ErrBadToken) {
			t.Fatalf("expired token: %v", err)
		}
	})
}

func TestTOTPMatchesRFC6238Vector(t *testing.T) {
	// RFC 6238 appendix B, SHA1, secret "12345678901234567890", T=59s → 94287082 (8 digits); last 6: 287082.
	secret := "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	code, err := identity.TOTPCode(secret, time.Unix(59, 0))
	if err != nil || code != "287082" {
		t.Fatalf("code = %s, %v", code, err)
	}
}
