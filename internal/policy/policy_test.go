package policy_test

import (
	"testing"

	"govshare/internal/policy"
)

// TestRoleActionTable is the policy written out in full: for every role and
// action, whether it is allowed on the actor's own department, on another
// department, and on an administrator user of the own department.
func TestRoleActionTable(t *testing.T) {
	const own, other = 10, 20
	type want struct{ own, other, ownAdmin bool }
	A := want{true, true, true}   // everywhere
	O := want{true, false, false} // own department, non-admin objects only
	N := want{}                   // never
	table := map[policy.Action]map[policy.Role]want{
		policy.DeptView:             {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: A, policy.DeptAdmin: A, policy.DeptReviewer: A, policy.Consumer: A},
		policy.DeptCreate:           {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.DeptUpdate:           {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserView:             {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserCreate:           {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserUpdate:           {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserAssignAdmin:      {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserResetPassword:    {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserUnlock:           {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserResetTOTP:        {policy.PlatformAdmin: N, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.UserRevokeSessions:   {policy.PlatformAdmin: N, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.TokenManageOwn:       {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: A, policy.DeptAdmin: A, policy.DeptReviewer: A, policy.Consumer: A},
		policy.TokenRevokeAny:       {policy.PlatformAdmin: N, policy.SecurityAdmin: A, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.AuditRead:            {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: A, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.AuditExport:          {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: A, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.AuditVerify:          {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: A, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.CatalogEdit:          {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.CatalogViewDraft:     {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: O, policy.Consumer: N},
		policy.CatalogReview:        {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.ClassificationManage: {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.CalendarManage:       {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.AppManage:            {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.WebhookManage:        {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.RefDataManage:        {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.NodeManage:           {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.ShareApply:           {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: O},
		policy.ShareView:            {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: O, policy.Consumer: O},
		policy.ShareDecide:          {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: O, policy.Consumer: N},
		policy.ShareCoordinate:      {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: N, policy.DeptReviewer: N, policy.Consumer: N},
		policy.GrantRevoke:          {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.CatalogRate:          {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: A, policy.DeptAdmin: A, policy.DeptReviewer: A, policy.Consumer: A},
		policy.DemandPost:           {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: A, policy.DeptAdmin: A, policy.DeptReviewer: A, policy.Consumer: A},
		policy.ResourceMount:        {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.DataSubmit:           {policy.PlatformAdmin: N, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: N, policy.Consumer: N},
		policy.DataView:             {policy.PlatformAdmin: A, policy.SecurityAdmin: N, policy.Auditor: N, policy.DeptAdmin: O, policy.DeptReviewer: O, policy.Consumer: N},
		policy.DataPreview:          {policy.PlatformAdmin: A, policy.SecurityAdmin: A, policy.Auditor: A, policy.DeptAdmin: A, policy.DeptReviewer: A, policy.Consumer: A},
	}
	for act, byRole := range table {
		for _, role := range policy.AllRoles {
			w, ok := byRole[role]
			if !ok {
				t.Fatalf("table misses %s × %s", act, role)
			}
			a := policy.Actor{UserID: 1, DeptID: own, Roles: []policy.Role{role}}
			got := want{
				own:      policy.Allowed(a, act, policy.Target{DeptID: own}),
				other:    policy.Allowed(a, act, policy.Target{DeptID: other}),
				ownAdmin: policy.Allowed(a, act, policy.Target{DeptID: own, AdminUser: true}),
			}
			if got != w {
				t.Errorf("%s × %s: got %+v, want %+v", role, act, got, w)
			}
		}
	}
}

func TestNoRolesMeansNothing(t *testing.T) {
	a := policy.Actor{UserID: 1, DeptID: 1}
	for _, act := range []policy.Action{policy.DeptView, policy.TokenManageOwn, policy.AuditRead} {
		if policy.Allowed(a, act, policy.Target{DeptID: 1}) {
			t.Errorf("actor without roles may %s", act)
		}
	}
}

func TestDeptScopeNeedsADepartment(t *testing.T) {
	// A department administrator's own-department rights never reach
	// platform-wide objects (DeptID 0), even if their DeptID were 0.
	a := policy.Actor{UserID: 1, DeptID: 0, Roles: []policy.Role{policy.DeptAdmin}}
	if policy.Allowed(a, policy.UserCreate, policy.Target{}) {
		t.Fatal("dept admin allowed platform-wide")
	}
}

// TestAppsAreNotPeople: an app acts for its department as a consumer, but
// never for a person: no tokens, ratings or demands.
func TestAppsAreNotPeople(t *testing.T) {
	app := policy.Actor{DeptID: 10, Roles: []policy.Role{policy.Consumer}, App: "app_x"}
	user := app
	user.App = ""
	for _, act := range []policy.Action{policy.TokenManageOwn, policy.CatalogRate, policy.DemandPost} {
		if policy.Allowed(app, act, policy.Target{DeptID: 10}) || !policy.Allowed(user, act, policy.Target{DeptID: 10}) {
			t.Errorf("%s: app %v, user %v", act, policy.Allowed(app, act, policy.Target{DeptID: 10}), policy.Allowed(user, act, policy.Target{DeptID: 10}))
		}
	}
	if !policy.Allowed(app, policy.ShareApply, policy.Target{DeptID: 10}) {
		t.Error("an app cannot act as its department's consumer")
	}
	// An app of the provider department pushes its data; no other app does.
	pusher := app
	pusher.Roles = append(pusher.Roles, policy.AppClient)
	if !policy.Allowed(pusher, policy.DataSubmit, policy.Target{DeptID: 10}) || policy.Allowed(pusher, policy.DataSubmit, policy.Target{DeptID: 20}) {
		t.Error("data.submit for apps: own department only")
	}
	if policy.Allowed(pusher, policy.DataPreview, policy.Target{DeptID: 10}) {
		t.Error("an app previews data")
	}
}
