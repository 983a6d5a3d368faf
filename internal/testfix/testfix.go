// Package testfix is the start most service tests share: a real database
// (from storetest), the audit log on it, the identity service, and
// departments and users of the synthetic city the tests play in. It is
// for tests only; nothing in the product imports it.
package testfix

import (
	"context"
	"testing"

	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
)

// Password is every seeded user's password.
const Password = "Test@Pass2026"

// City is the audit log, keys and identity service of a test's database.
type City struct {
	t        testing.TB
	DB       *store.DB
	Keys     *secret.Keys
	Audit    *audit.Log
	Identity *identity.Service
}

// New opens the audit log on db (closed when the test ends) and the
// identity service.
func New(t testing.TB, db *store.DB) *City {
	t.Helper()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return &City{t: t, DB: db, Keys: keys, Audit: log, Identity: identity.NewService(db, log, keys, identity.DefaultConfig())}
}

// Dept seeds a department of the city (region 350100) whose credit code
// is the n-th synthetic one, and returns its id.
func (c *City) Dept(name string, n int) int64 {
	c.t.Helper()
	d, err := c.Identity.SeedDepartment(context.Background(), identity.DepartmentInput{Name: name,
		CreditCode: identity.SyntheticCreditCode("350100", n), RegionCode: "350100"})
	if err != nil {
		c.t.Fatal(err)
	}
	return d.ID
}

// User seeds a user holding role r in department dept and returns them
// as an actor.
func (c *City) User(login string, dept int64, r policy.Role) policy.Actor {
	c.t.Helper()
	u, err := c.Identity.SeedUser(context.Background(), identity.UserInput{Login: login, Name: "测试", DeptID: dept,
		Roles: []policy.Role{r}, Password: Password}, false, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return u.Actor()
}
