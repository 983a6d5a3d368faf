// Package policy is the platform's authorization: one table of which role
// may do which action, and the department scoping rule that a department's
// administrator manages only their own department's things. Every service
// method asks Check before it acts, so the API and the pages cannot differ.
package policy

import "govshare/internal/apperr"

// Role is a user's role.
type Role string

// The roles of SPEC "Who uses it".
const (
	PlatformAdmin Role = "platform_admin" // 系统管理员 / 平台管理员
	SecurityAdmin Role = "security_admin" // 安全管理员
	Auditor       Role = "auditor"        // 安全审计员
	DeptAdmin     Role = "dept_admin"     // 部门数据管理员
	DeptReviewer  Role = "dept_reviewer"  // 审批人
	Consumer      Role = "consumer"       // 使用部门用户
)

// AppClient is held by a department's app (接入应用) beside Consumer while
// it acts; no user holds it, so it is not among AllRoles.
const AppClient Role = "app"

// NodeClient is held by a department's exchange node (前置机) when it
// delivers a job's batches: it may submit data of its own department and
// nothing else. Like AppClient it is never given to a person.
const NodeClient Role = "node"

// AllRoles lists every role in display order.
var AllRoles = []Role{PlatformAdmin, SecurityAdmin, Auditor, DeptAdmin, DeptReviewer, Consumer}

// AdminRoles are the three duties that must be held by three different
// people (三员分立).
var AdminRoles = []Role{PlatformAdmin, SecurityAdmin, Auditor}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	for _, x := range AllRoles {
		if x == r {
			return true
		}
	}
	return false
}

// Admin reports whether r is one of the three administrator roles.
func (r Role) Admin() bool {
	return r == PlatformAdmin || r == SecurityAdmin || r == Auditor
}

// Actor is who is asking.
type Actor struct {
	UserID int64
	Login  string
	DeptID int64
	Roles  []Role
	// App is the app key when a department's app is acting (接入应用).
	App string
}

// Has reports whether the actor holds r.
func (a Actor) Has(r Role) bool {
	for _, x := range a.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// Action is something an actor may be allowed to do.
type Action string

// Actions of the foundation.
const (
	DeptView           Action = "dept.view"
	DeptCreate         Action = "dept.create"
	DeptUpdate         Action = "dept.update"
	UserView           Action = "user.view"
	UserCreate         Action = "user.create"
	UserUpdate         Action = "user.update"
	UserAssignAdmin    Action = "user.assign_admin_role"
	UserResetPassword  Action = "user.reset_password"
	UserUnlock         Action = "user.unlock"
	UserResetTOTP      Action = "user.reset_totp"
	UserRevokeSessions Action = "user.revoke_sessions"
	TokenManageOwn     Action = "token.manage_own"
	TokenRevokeAny     Action = "token.revoke_any"
	AuditRead          Action = "audit.read"
	AuditExport        Action = "audit.export"
	AuditVerify        Action = "audit.verify"

	CatalogEdit          Action = "catalog.edit"           // register and change the department's entries
	CatalogViewDraft     Action = "catalog.view_draft"     // see entries that are not published
	CatalogReview        Action = "catalog.review"         // return, approve, publish, retire
	ClassificationManage Action = "catalog.classification" // edit the classification tree
	CalendarManage       Action = "calendar.manage"        // maintain the working-day calendar
	AppManage            Action = "app.manage"             // register, rotate and revoke the department\'s apps
	WebhookManage        Action = "webhook.manage"         // register, disable and rotate the department's webhooks; read their delivery log
	RefDataManage        Action = "refdata.manage"         // load the region table and the code tables the quality rules check against
	NodeManage           Action = "node.manage"            // enrol, list and revoke the department's exchange nodes (前置机)

	ShareApply      Action = "share.apply"      // apply, subscribe, withdraw and escalate for the own department
	ShareView       Action = "share.view"       // see the department's applications and grants
	ShareDecide     Action = "share.decide"     // accept, approve or reject applications to the own department; provide after a ruling
	ShareCoordinate Action = "share.coordinate" // coordinate escalated applications and rule; answer negotiations
	GrantRevoke     Action = "grant.revoke"     // revoke a grant the department gave

	ResourceMount Action = "resource.mount" // mount a published entry: create its table in the platform's store
	DataSubmit    Action = "data.submit"    // send data of the department's resources (upload, push), zero reports, fix quarantined records
	DataView      Action = "data.view"      // see a resource's batches, quality reports and quarantine
	DataPreview   Action = "data.preview"   // see the first rows of a resource, masked

	ExchangeView   Action = "exchange.view"   // see the department's nodes, jobs, runs, subscriptions and alarms (桥接监控)
	ExchangeManage Action = "exchange.manage" // create, change, start, stop and delete the department's exchange jobs; full checks (桥接管理)
	ExchangeBridge Action = "exchange.bridge" // subscribe the department's nodes to resources it holds exchange grants for (交换桥接)
	AlarmClose     Action = "exchange.alarm"  // close an exchange alarm with a note

	DataUse   Action = "data.use"   // use the department's grants through the data services: query, comparison, download
	UsageView Action = "usage.view" // see the data services' usage statistics of the department (as provider or consumer)

	ServiceManage Action = "service.manage" // register, change, disable and enable the department's service resources (服务资源)
	ServiceCalls  Action = "service.calls"  // read service resources' call logs and statistics: all calls to the department's services, the department's own calls to others'

	CatalogRate Action = "catalog.rate" // rate a published entry of another department
	DemandPost  Action = "demand.post"  // post a data demand (需求目录)
)

// peopleOnly are actions only a person may take: an app acting for its
// department never creates tokens, rates entries or posts demands.
var peopleOnly = map[Action]bool{TokenManageOwn: true, CatalogRate: true, DemandPost: true, DataPreview: true}

// Target is what the action applies to.
type Target struct {
	DeptID int64 // the department that owns the object; 0 when platform-wide
	// AdminUser is true when the object is a user holding an administrator
	// role: department administrators may never touch those.
	AdminUser bool
}

// scope says how far a role's permission reaches.
type scope int

const (
	none scope = iota
	ownDept
	all
)

// rules is the whole policy: action → role → scope. Anything absent is denied.
var rules = map[Action]map[Role]scope{
	DeptView:           {PlatformAdmin: all, SecurityAdmin: all, Auditor: all, DeptAdmin: all, DeptReviewer: all, Consumer: all},
	DeptCreate:         {PlatformAdmin: all},
	DeptUpdate:         {PlatformAdmin: all},
	UserView:           {PlatformAdmin: all, SecurityAdmin: all, DeptAdmin: ownDept},
	UserCreate:         {PlatformAdmin: all, DeptAdmin: ownDept},
	UserUpdate:         {PlatformAdmin: all, DeptAdmin: ownDept},
	UserAssignAdmin:    {PlatformAdmin: all},
	UserResetPassword:  {PlatformAdmin: all, SecurityAdmin: all, DeptAdmin: ownDept},
	UserUnlock:         {PlatformAdmin: all, SecurityAdmin: all},
	UserResetTOTP:      {SecurityAdmin: all},
	UserRevokeSessions: {SecurityAdmin: all},
	TokenManageOwn:     {PlatformAdmin: all, SecurityAdmin: all, Auditor: all, DeptAdmin: all, DeptReviewer: all, Consumer: all},
	TokenRevokeAny:     {SecurityAdmin: all},
	AuditRead:          {Auditor: all},
	AuditExport:        {Auditor: all},
	AuditVerify:        {Auditor: all},

	CatalogEdit:          {DeptAdmin: ownDept},
	CatalogViewDraft:     {PlatformAdmin: all, DeptAdmin: ownDept, DeptReviewer: ownDept},
	CatalogReview:        {PlatformAdmin: all},
	ClassificationManage: {PlatformAdmin: all},
	CalendarManage:       {PlatformAdmin: all},
	AppManage:            {DeptAdmin: ownDept},
	WebhookManage:        {DeptAdmin: ownDept, PlatformAdmin: all},
	RefDataManage:        {PlatformAdmin: all},
	NodeManage:           {PlatformAdmin: all, DeptAdmin: ownDept},

	ShareApply:      {DeptAdmin: ownDept, Consumer: ownDept},
	ShareView:       {PlatformAdmin: all, DeptAdmin: ownDept, DeptReviewer: ownDept, Consumer: ownDept},
	ShareDecide:     {DeptAdmin: ownDept, DeptReviewer: ownDept},
	ShareCoordinate: {PlatformAdmin: all},
	GrantRevoke:     {PlatformAdmin: all, DeptAdmin: ownDept},

	ResourceMount: {PlatformAdmin: all, DeptAdmin: ownDept},
	DataSubmit:    {DeptAdmin: ownDept, AppClient: ownDept, NodeClient: ownDept},
	DataView:      {PlatformAdmin: all, DeptAdmin: ownDept, DeptReviewer: ownDept, AppClient: ownDept},
	DataPreview:   {PlatformAdmin: all, SecurityAdmin: all, Auditor: all, DeptAdmin: all, DeptReviewer: all, Consumer: all},

	ExchangeView:   {PlatformAdmin: all, Auditor: all, DeptAdmin: ownDept, DeptReviewer: ownDept},
	ExchangeManage: {PlatformAdmin: all, DeptAdmin: ownDept},
	ExchangeBridge: {DeptAdmin: ownDept},
	AlarmClose:     {PlatformAdmin: all, DeptAdmin: ownDept},

	DataUse:   {DeptAdmin: ownDept, Consumer: ownDept},
	UsageView: {PlatformAdmin: all, Auditor: all, DeptAdmin: ownDept, DeptReviewer: ownDept},

	ServiceManage: {DeptAdmin: ownDept},
	ServiceCalls:  {PlatformAdmin: all, Auditor: all, DeptAdmin: ownDept},

	CatalogRate: {PlatformAdmin: all, SecurityAdmin: all, Auditor: all, DeptAdmin: all, DeptReviewer: all, Consumer: all},
	DemandPost:  {PlatformAdmin: all, SecurityAdmin: all, Auditor: all, DeptAdmin: all, DeptReviewer: all, Consumer: all},
}

// Allowed reports whether actor may do act on t.
func Allowed(a Actor, act Action, t Target) bool {
	if a.App != "" && peopleOnly[act] {
		return false
	}
	byRole := rules[act]
	for _, r := range a.Roles {
		switch byRole[r] {
		case all:
			return true
		case ownDept:
			if t.DeptID != 0 && t.DeptID == a.DeptID && !t.AdminUser {
				return true
			}
		}
	}
	return false
}

// Check returns apperr.ErrDenied unless actor may do act on t.
func Check(a Actor, act Action, t Target) error {
	if Allowed(a, act, t) {
		return nil
	}
	return apperr.ErrDenied
}

// Any reports whether the actor may do act on some target, for showing
// navigation: a department administrator "may view users" (their own).
func Any(a Actor, act Action) bool {
	for _, r := range a.Roles {
		if rules[act][r] != none {
			return true
		}
	}
	return false
}
