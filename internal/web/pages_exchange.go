package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/identity"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/share"
)

// The exchange pages (桥接监控、桥接管理): nodes and their enrolment, jobs,
// subscriptions, runs and alarms. They call the services exactly as the
// JSON API does (api_exchange.go); the services decide who may do what,
// and the pages only leave out what the user could not do.

func (s *Server) exchangeRoutes() {
	m := s.mux
	ready := func(h pageHandler) http.HandlerFunc { return s.withSession(identity.StageReady, h) }
	m.HandleFunc("GET /exchange", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/exchange/jobs", http.StatusSeeOther)
	})
	m.HandleFunc("GET /exchange/nodes", ready(s.nodesPage))
	m.HandleFunc("POST /exchange/nodes", ready(s.nodeCreate))
	m.HandleFunc("GET /exchange/nodes/{id}", ready(s.nodePage))
	m.HandleFunc("POST /exchange/nodes/{id}/code", ready(s.nodeReissue))
	m.HandleFunc("POST /exchange/nodes/{id}/revoke", ready(s.nodeRevoke))
	m.HandleFunc("GET /exchange/jobs", ready(s.jobsPage))
	m.HandleFunc("POST /exchange/jobs", ready(s.jobCreate))
	m.HandleFunc("GET /exchange/jobs/{id}", ready(s.jobPage))
	m.HandleFunc("POST /exchange/jobs/{id}", ready(s.jobUpdate))
	m.HandleFunc("POST /exchange/jobs/{id}/{action}", ready(s.jobControl))
	m.HandleFunc("POST /exchange/jobs/{id}/check", ready(s.checkRequest("job")))
	m.HandleFunc("GET /exchange/subscriptions", ready(s.subsPage))
	m.HandleFunc("POST /exchange/subscriptions", ready(s.subCreate))
	m.HandleFunc("GET /exchange/subscriptions/{id}", ready(s.subPage))
	m.HandleFunc("POST /exchange/subscriptions/{id}/{action}", ready(s.subControl))
	m.HandleFunc("POST /exchange/subscriptions/{id}/check", ready(s.checkRequest("subscription")))
	m.HandleFunc("POST /exchange/checks/{id}/cancel", ready(s.checkCancel))
	m.HandleFunc("GET /exchange/runs", ready(s.runsPage))
	m.HandleFunc("GET /exchange/alarms", ready(s.alarmsPage))
	m.HandleFunc("POST /exchange/alarms/{id}/close", ready(s.alarmClose))
}

// exchangeNav is the navigation group of the exchange, for those who may
// watch it.
func exchangeNav(a policy.Actor) []navGroup {
	if !policy.Any(a, policy.ExchangeView) {
		return nil
	}
	return []navGroup{{Title: "nav.group.exchange", Items: []navItem{
		{Key: "nav.ex.nodes", Href: "/exchange/nodes"},
		{Key: "nav.ex.jobs", Href: "/exchange/jobs"},
		{Key: "nav.ex.subscriptions", Href: "/exchange/subscriptions"},
		{Key: "nav.ex.runs", Href: "/exchange/runs"},
		{Key: "nav.ex.alarms", Href: "/exchange/alarms"},
	}}}
}

// queryID reads an optional id from the query string.
func queryID(r *http.Request, key string) int64 {
	id, _ := strconv.ParseInt(r.URL.Query().Get(key), 10, 64)
	return id
}

// manageScope is the department whose exchange the actor may manage: 0
// for those who manage every department's.
func manageScope(a policy.Actor, act policy.Action) int64 {
	if policy.Allowed(a, act, policy.Target{}) {
		return 0
	}
	return a.DeptID
}

// certWarning is how long before a node's certificate expires the pages
// point at it.
const certWarning = 30 * 24 * time.Hour

// ----- nodes (前置机) -----

type nodeView struct {
	exchange.NodeInfo
	CanManage bool // may reissue the code or revoke
	CertSoon  bool // the certificate expires within certWarning
}

func viewNode(a policy.Actor, n exchange.NodeInfo, now time.Time) nodeView {
	return nodeView{NodeInfo: n, CanManage: n.State != pki.NodeRevoked && policy.Allowed(a, policy.NodeManage, policy.Target{DeptID: n.DeptID}),
		CertSoon: n.State == pki.NodeActive && !n.CertNotAfter.IsZero() && n.CertNotAfter.Sub(now) < certWarning}
}

// nodeShownState is online or offline for an enrolled node, else its
// state.
func nodeShownState(n exchange.NodeInfo) string {
	switch {
	case n.State != pki.NodeActive:
		return string(n.State)
	case n.Online:
		return "online"
	}
	return "offline"
}

type nodesData struct {
	Nodes []nodeView
	// Created is a node just registered, or given a new code: the code
	// and the command are shown this once and never stored.
	Created   *NodeCreated
	CanCreate bool
	AnyDept   bool // may register nodes for every department
	Depts     []identity.Department
	ErrNode   int64 // the node a refused action concerned
}

func (s *Server) nodesPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderNodes(w, r, c, http.StatusOK, nil, 0, nil)
}

func (s *Server) renderNodes(w http.ResponseWriter, r *http.Request, c *current, status int, created *NodeCreated, errNode int64, ae *apperr.Error) {
	a := c.user.Actor()
	nodes, err := s.Exchange.Nodes(r.Context(), a, deptScope(a, queryID(r, "dept_id")))
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := nodesData{Created: created, ErrNode: errNode, CanCreate: policy.Any(a, policy.NodeManage), AnyDept: policy.Allowed(a, policy.NodeManage, policy.Target{})}
	now := time.Now()
	for _, n := range nodes {
		d.Nodes = append(d.Nodes, viewNode(a, n, now))
	}
	if d.AnyDept {
		d.Depts, _ = s.Identity.Departments(r.Context())
	}
	form := r.PostForm
	if ae == nil {
		form = url.Values{"dept_id": {itoa(a.DeptID)}}
	}
	s.render(w, r, status, "exchange_nodes", &page{Title: T(langOf(r), "ex.nodes.title"), User: &c.user, Active: "/exchange/nodes",
		DeptMap: s.deptMap(r), Data: d, Err: ae, Form: form})
}

func (s *Server) nodeCreate(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	dept, _ := strconv.ParseInt(r.PostFormValue("dept_id"), 10, 64)
	if dept == 0 {
		dept = a.DeptID
	}
	e, code, err := s.PKI.CreateEnrolment(r.Context(), a, dept, r.PostFormValue("name"))
	if err != nil {
		if ae, ok := fixable(err); ok {
			s.renderNodes(w, r, c, ae.Status, nil, 0, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	// Rendered directly, never redirected: the code must not end up in a
	// URL or a browser's history.
	created := s.nodeCreated(e, code, requestBase(r.Context())).Body
	s.renderNodes(w, r, c, http.StatusCreated, &created, 0, nil)
}

func (s *Server) nodeReissue(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	var e pki.Enrolment
	var code string
	if err == nil {
		e, code, err = s.PKI.ReissueCode(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderNodes(w, r, c, ae.Status, nil, id, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	created := s.nodeCreated(e, code, requestBase(r.Context())).Body
	s.renderNodes(w, r, c, http.StatusOK, &created, 0, nil)
}

func (s *Server) nodeRevoke(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.PKI.Revoke(r.Context(), c.user.Actor(), id, r.PostFormValue("reason"))
	}
	fromNode := r.PostFormValue("from") == "node"
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			if fromNode {
				s.renderNode(w, r, c, ae.Status, ae)
			} else {
				s.renderNodes(w, r, c, ae.Status, nil, id, ae)
			}
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	if fromNode {
		http.Redirect(w, r, "/exchange/nodes/"+itoa(id)+"?ok=ex.node.revoked", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/exchange/nodes?ok=ex.node.revoked", http.StatusSeeOther)
}

type nodeData struct {
	Node      nodeView
	Jobs      []exchange.Job
	Subs      []exchange.Subscription
	CanDefine bool // may define jobs on the node
}

func (s *Server) nodePage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderNode(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderNode(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error) {
	ctx, a := r.Context(), c.user.Actor()
	id, err := pathID(r)
	var n exchange.NodeInfo
	if err == nil {
		n, err = s.Exchange.NodeInfo(ctx, a, id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := nodeData{Node: viewNode(a, n, time.Now()),
		CanDefine: n.State != pki.NodeRevoked && policy.Allowed(a, policy.ExchangeManage, policy.Target{DeptID: n.DeptID})}
	if jobs, err := s.Exchange.Jobs(ctx, a, n.DeptID); err == nil {
		d.Jobs = slices.DeleteFunc(jobs, func(j exchange.Job) bool { return j.NodeID != n.ID })
	}
	if subs, err := s.Exchange.Subscriptions(ctx, a, n.DeptID); err == nil {
		d.Subs = slices.DeleteFunc(subs, func(x exchange.Subscription) bool { return x.NodeID != n.ID })
	}
	s.render(w, r, status, "exchange_node", &page{Title: n.Name, User: &c.user, Active: "/exchange/nodes", DeptMap: s.deptMap(r),
		Data: d, Err: ae, Form: r.PostForm})
}

// ----- jobs (交换任务) -----

// jobsData serves the job list (Job nil) and one job's page; both carry
// the one job form.
type jobsData struct {
	Jobs []exchange.Job
	// NodeState is each node's state as the list shows it: online,
	// offline (enrolled but silent), pending or revoked.
	NodeState map[int64]string
	Job       *exchange.Job
	Runs      []runView
	CanManage bool
	checksData
	// The form's choices: the nodes a job may be defined for (new jobs
	// only), the mounted resources it may fill, and the data sources the
	// nodes reported.
	Nodes     []exchange.NodeInfo
	Resources []resource.Resource
	Sources   []string
}

// jobChoices fills the form's choices for the department dept (0: all).
func (s *Server) jobChoices(r *http.Request, a policy.Actor, dept int64, d *jobsData) {
	nodes, _ := s.Exchange.Nodes(r.Context(), a, dept)
	for _, n := range nodes {
		if n.State == pki.NodeRevoked {
			continue
		}
		d.Nodes = append(d.Nodes, n)
		for _, src := range n.Sources {
			if !slices.Contains(d.Sources, src.Name) {
				d.Sources = append(d.Sources, src.Name)
			}
		}
	}
	d.Resources, _ = s.Resources.List(r.Context(), dept)
}

func (s *Server) jobsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderJobs(w, r, c, http.StatusOK, nil, s.jobPrefill(r, c))
}

// jobPrefill starts the new job form from a table a node reported (the
// node page links here): every column on a line of its own, to be given
// its item or left out.
func (s *Server) jobPrefill(r *http.Request, c *current) url.Values {
	q := r.URL.Query()
	f := url.Values{"mode": {wire.ModeFull}, "schedule": {wire.ScheduleOnce}}
	nodeID := queryID(r, "node_id")
	if nodeID == 0 {
		return f
	}
	f.Set("node_id", itoa(nodeID))
	f.Set("source", q.Get("source"))
	f.Set("table", q.Get("table"))
	n, err := s.Exchange.NodeInfo(r.Context(), c.user.Actor(), nodeID)
	if err != nil {
		return f
	}
	for _, src := range n.Sources {
		if src.Name != q.Get("source") {
			continue
		}
		for _, t := range src.Tables {
			if t.Name != q.Get("table") {
				continue
			}
			var b strings.Builder
			for _, col := range t.Columns {
				b.WriteString(col.Name + "=\n")
			}
			f.Set("mapping", b.String())
		}
	}
	return f
}

func (s *Server) renderJobs(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	ctx, a := r.Context(), c.user.Actor()
	dept := deptScope(a, queryID(r, "dept_id"))
	jobs, err := s.Exchange.Jobs(ctx, a, dept)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := jobsData{Jobs: jobs, NodeState: map[int64]string{}, CanManage: policy.Any(a, policy.ExchangeManage)}
	if nodes, err := s.Exchange.Nodes(ctx, a, dept); err == nil {
		for _, n := range nodes {
			d.NodeState[n.ID] = nodeShownState(n)
		}
	}
	if d.CanManage {
		s.jobChoices(r, a, manageScope(a, policy.ExchangeManage), &d)
	}
	s.render(w, r, status, "exchange_jobs", &page{Title: T(langOf(r), "ex.jobs.title"), User: &c.user, Active: "/exchange/jobs",
		DeptMap: s.deptMap(r), Data: d, Err: ae, Form: form})
}

func (s *Server) jobCreate(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Any(a, policy.ExchangeManage) {
		s.denied(w, r, c, policy.ExchangeManage, "exchange_job")
		return
	}
	nodeID, _ := strconv.ParseInt(r.PostFormValue("node_id"), 10, 64)
	spec, lines, err := jobSpecFromForm(r.PostForm)
	spec.Running = r.PostFormValue("running") == "on"
	var j exchange.Job
	if err == nil {
		j, err = s.Exchange.CreateJob(r.Context(), a, nodeID, spec)
	}
	if err != nil {
		if ae, ok := fixable(err); ok {
			s.renderJobs(w, r, c, ae.Status, mappingError(ae, lines), r.PostForm)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/exchange/jobs/"+itoa(j.ID)+"?ok=ex.job.created", http.StatusSeeOther)
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderJob(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderJob(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	ctx, a := r.Context(), c.user.Actor()
	id, err := pathID(r)
	var j exchange.Job
	if err == nil {
		j, err = s.Exchange.Job(ctx, a, id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := jobsData{Job: &j, CanManage: policy.Allowed(a, policy.ExchangeManage, policy.Target{DeptID: j.DeptID})}
	runs, err := s.Exchange.Runs(ctx, a, exchange.RunFilter{JobID: j.ID, Limit: 20})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d.Runs = s.viewRuns(r, a, runs)
	if d.checksData, err = s.checksOf(r, a, "job", j.ID, j.DeptID); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if d.CanManage {
		s.jobChoices(r, a, j.DeptID, &d)
	}
	if form == nil {
		form = jobForm(j.JobSpec)
	}
	s.render(w, r, status, "exchange_jobs", &page{Title: j.Name, User: &c.user, Active: "/exchange/jobs", DeptMap: s.deptMap(r),
		Data: d, Err: ae, Form: form})
}

func (s *Server) jobUpdate(w http.ResponseWriter, r *http.Request, c *current) {
	ctx, a := r.Context(), c.user.Actor()
	id, err := pathID(r)
	var j exchange.Job
	if err == nil {
		j, err = s.Exchange.Job(ctx, a, id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	spec, lines, err := jobSpecFromForm(r.PostForm)
	// The form changes what the job does; starting and stopping are the
	// buttons' business.
	spec.Running = j.Running
	if err == nil {
		_, err = s.Exchange.UpdateJob(ctx, a, id, spec)
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderJob(w, r, c, ae.Status, mappingError(ae, lines), r.PostForm)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/exchange/jobs/"+itoa(id)+"?ok=ex.job.saved", http.StatusSeeOther)
}

// jobDone are the messages after a job's buttons.
var jobDone = map[exchange.JobAction]string{
	exchange.JobStart: "?ok=ex.job.started",
	exchange.JobStop:  "?ok=ex.job.stopped",
	exchange.JobRun:   "?ok=ex.job.run_asked",
}

func (s *Server) jobControl(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	act := exchange.JobAction(r.PathValue("action"))
	next := "/exchange/jobs/" + itoa(id) + jobDone[act]
	if act == exchange.JobDelete {
		next = "/exchange/jobs?ok=ex.job.deleted"
	} else if _, known := jobDone[act]; !known {
		err = apperr.ErrNotFound
	}
	if err == nil {
		_, err = s.Exchange.ControlJob(r.Context(), c.user.Actor(), id, act)
	}
	s.answerButton(w, r, c, err, func(status int, ae *apperr.Error) { s.renderJob(w, r, c, status, ae, nil) }, next)
}

// answerButton answers a button of a job's or subscription's page: a
// mistake the user can fix shows the page again with it, anything else
// the error page; done, it goes on to next.
func (s *Server) answerButton(w http.ResponseWriter, r *http.Request, c *current, err error, again func(int, *apperr.Error), next string) {
	if err != nil {
		ae, ok := fixable(err)
		if errors.Is(err, exchange.ErrNoExchange) {
			ae, ok = apperr.As(err) // the grant no longer allows it: explain on the page
		}
		if ok && ae.Status != http.StatusNotFound {
			again(ae.Status, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// numberFields are the job form's whole-number fields, in the form's order
// so the first mistake is the one reported.
var numberFields = []string{"lag_seconds", "interval_seconds", "key_check_seconds", "rate_limit", "batch_rows", "max_errors"}

func numberField(f url.Values, field string) (int, error) {
	v := strings.TrimSpace(f.Get(field))
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, apperr.Invalid("exchange.number_invalid", field, "请填写整数", "enter a whole number")
	}
	return n, nil
}

// jobSpecFromForm reads the job form. lines[i] is the textarea line of
// the i-th mapping, for pointing at it when the service refuses one.
func jobSpecFromForm(f url.Values) (spec wire.JobSpec, lines []int, err error) {
	spec = wire.JobSpec{Name: f.Get("name"), Resource: f.Get("resource"), Source: strings.TrimSpace(f.Get("source")),
		Table: strings.TrimSpace(f.Get("table")), SQL: strings.TrimSpace(f.Get("sql")), Mode: f.Get("mode"),
		IncColumn: strings.TrimSpace(f.Get("inc_column")), Schedule: f.Get("schedule"), Cron: strings.TrimSpace(f.Get("cron"))}
	spec.Key = strings.FieldsFunc(f.Get("key"), func(r rune) bool { return r == ',' || r == '，' || unicode.IsSpace(r) })
	if spec.Mapping, lines, err = parseMapping(f.Get("mapping")); err != nil {
		return spec, nil, err
	}
	dst := []*int{&spec.LagSeconds, &spec.IntervalSeconds, &spec.KeyCheckSeconds, &spec.RateLimit, &spec.BatchRows, &spec.MaxErrors}
	for i, field := range numberFields {
		if *dst[i], err = numberField(f, field); err != nil {
			return spec, lines, err
		}
	}
	return spec, lines, nil
}

// parseMapping reads "column=item" lines. Blank lines and lines starting
// with # are skipped, and so is a column given no item: the prefilled
// form lists every column, and those left empty are not exchanged.
func parseMapping(text string) ([]wire.ColumnMapping, []int, error) {
	var out []wire.ColumnMapping
	var lines []int
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		col, item, ok := strings.Cut(strings.ReplaceAll(line, "＝", "="), "=")
		col, item = strings.TrimSpace(col), strings.TrimSpace(item)
		if !ok || col == "" {
			return nil, nil, apperr.Invalid("exchange.mapping_invalid", "mapping", fmt.Sprintf("第 %d 行应写作“源字段=信息项”", i+1),
				fmt.Sprintf("line %d: write source_column=item", i+1)).OnRow(i + 1)
		}
		if item == "" {
			continue
		}
		out = append(out, wire.ColumnMapping{Column: col, Item: item})
		lines = append(lines, i+1)
	}
	return out, lines, nil
}

// mappingError points a refusal of mapping[i] at its line of the
// textarea.
func mappingError(ae *apperr.Error, lines []int) *apperr.Error {
	rest, ok := strings.CutPrefix(ae.Field, "mapping[")
	if !ok {
		return ae
	}
	n, _, _ := strings.Cut(rest, "]")
	i, err := strconv.Atoi(n)
	if err != nil || i < 0 || i >= len(lines) {
		return ae.OnField("mapping")
	}
	return ae.OnField("mapping").OnRow(lines[i]).With(fmt.Sprintf("第 %d 行：%s", lines[i], ae.ZH), fmt.Sprintf("line %d: %s", lines[i], ae.EN))
}

// jobForm is a job as its form shows it.
func jobForm(j wire.JobSpec) url.Values {
	var mapping strings.Builder
	for _, m := range j.Mapping {
		mapping.WriteString(m.Column + "=" + m.Item + "\n")
	}
	num := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	return url.Values{"name": {j.Name}, "resource": {j.Resource}, "source": {j.Source}, "table": {j.Table}, "sql": {j.SQL},
		"key": {strings.Join(j.Key, ",")}, "mapping": {mapping.String()}, "mode": {j.Mode}, "inc_column": {j.IncColumn},
		"lag_seconds": {num(j.LagSeconds)}, "schedule": {j.Schedule}, "interval_seconds": {num(j.IntervalSeconds)}, "cron": {j.Cron},
		"key_check_seconds": {num(j.KeyCheckSeconds)}, "rate_limit": {num(j.RateLimit)}, "batch_rows": {num(j.BatchRows)},
		"max_errors": {num(j.MaxErrors)}}
}

// ----- subscriptions (交换桥接) -----

type subsData struct {
	Subs      []exchange.Subscription
	Sub       *exchange.Subscription
	Runs      []runView
	CanBridge bool
	checksData
	// The form's choices: the department's active grants that allow
	// exchange with the items each may deliver, and its nodes.
	Grants     []share.Grant
	GrantItems map[int64]itemChoice
	Nodes      []exchange.NodeInfo
}

// itemChoice is what the subscription form offers of one grant: its
// items, under the field that carries the chosen ones.
type itemChoice struct {
	Field string
	Items []subItem
}

// subItem is a granted item as the subscription form offers it.
type subItem struct {
	MachineName string
	Name        string
	Key         bool // the resource's key: always delivered
}

// itemsField is the form field holding the items chosen for a grant. The
// form offers every grant's items, so each grant has its own field and
// the handler reads only the chosen grant's.
func itemsField(grantID int64) string { return "items_" + itoa(grantID) }

// grantItems are a grant's items in the grant's order, named and marked
// as the mounted resource has them (it decides which items are the key),
// or as the published entry has them before the resource is mounted.
func (s *Server) grantItems(ctx context.Context, g share.Grant) []subItem {
	known := map[string]subItem{}
	if res, err := s.Resources.ByCode(ctx, g.EntryCode); err == nil {
		for _, c := range res.Columns {
			known[c.MachineName] = subItem{MachineName: c.MachineName, Name: c.Name, Key: c.Key}
		}
	} else if _, content, err := s.Catalog.Published(ctx, g.EntryID); err == nil {
		for _, it := range content.Items {
			known[it.MachineName] = subItem{MachineName: it.MachineName, Name: it.Name, Key: it.Key}
		}
	}
	out := make([]subItem, 0, len(g.Items))
	for _, m := range g.Items {
		it, ok := known[m]
		if !ok {
			it = subItem{MachineName: m}
		}
		out = append(out, it)
	}
	return out
}

func (s *Server) subsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderSubs(w, r, c, http.StatusOK, nil, url.Values{"delivery": {"realtime"}, "create": {"on"}})
}

func (s *Server) renderSubs(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	ctx, a := r.Context(), c.user.Actor()
	subs, err := s.Exchange.Subscriptions(ctx, a, deptScope(a, queryID(r, "dept_id")))
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := subsData{Subs: subs, CanBridge: policy.Allowed(a, policy.ExchangeBridge, policy.Target{DeptID: a.DeptID})}
	if d.CanBridge {
		grants, _ := s.Share.Grants(ctx, a, share.GrantFilter{Side: "mine", State: "active", Limit: 500})
		d.GrantItems = map[int64]itemChoice{}
		for _, g := range grants {
			if slices.Contains(g.Methods, catalog.MethodExchange) {
				d.Grants = append(d.Grants, g)
				d.GrantItems[g.ID] = itemChoice{Field: itemsField(g.ID), Items: s.grantItems(ctx, g)}
				// A fresh form delivers every item; a refused one keeps
				// what was chosen.
				if r.Method != http.MethodPost {
					form[itemsField(g.ID)] = g.Items
				}
			}
		}
		nodes, _ := s.Exchange.Nodes(ctx, a, a.DeptID)
		d.Nodes = slices.DeleteFunc(nodes, func(n exchange.NodeInfo) bool { return n.State == pki.NodeRevoked })
	}
	s.render(w, r, status, "exchange_subscriptions", &page{Title: T(langOf(r), "ex.subs.title"), User: &c.user, Active: "/exchange/subscriptions",
		DeptMap: s.deptMap(r), Data: d, Err: ae, Form: form})
}

func (s *Server) subCreate(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Allowed(a, policy.ExchangeBridge, policy.Target{DeptID: a.DeptID}) {
		s.denied(w, r, c, policy.ExchangeBridge, "exchange_subscription")
		return
	}
	f := r.PostForm
	req := exchange.SubscriptionRequest{Target: strings.TrimSpace(f.Get("target")), Table: strings.TrimSpace(f.Get("table")),
		Create: f.Get("create") == "on", Realtime: f.Get("delivery") == "realtime"}
	req.GrantID, _ = strconv.ParseInt(f.Get("grant_id"), 10, 64)
	req.NodeID, _ = strconv.ParseInt(f.Get("node_id"), 10, 64)
	// Key items come as hidden fields, so they are always among the
	// chosen. Every item checked is sent as the full list, not as the
	// empty list the service reads as "all granted": both store the
	// grant's items as they are today, and the list says what was chosen.
	if req.GrantID != 0 {
		req.Items = f[itemsField(req.GrantID)]
	}
	var err error
	switch {
	case req.GrantID == 0:
		err = apperr.Invalid("exchange.grant_missing", "grant_id", "请选择授权", "choose a grant")
	case req.NodeID == 0:
		err = apperr.Invalid("exchange.node_missing", "node_id", "请选择前置机", "choose a node")
	case !req.Realtime:
		req.Interval, err = numberField(f, "interval_seconds")
	}
	var x exchange.Subscription
	if err == nil {
		x, err = s.Exchange.CreateSubscription(r.Context(), a, req)
	}
	if errors.Is(err, exchange.ErrNoExchange) {
		// Not a refusal of the user but of the grant they chose: say so
		// beside it.
		ae := exchange.ErrNoExchange.OnField("grant_id")
		s.renderSubs(w, r, c, ae.Status, ae, f)
		return
	}
	if err != nil {
		if ae, ok := fixable(err); ok {
			s.renderSubs(w, r, c, ae.Status, ae, f)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/exchange/subscriptions/"+itoa(x.ID)+"?ok=ex.sub.created", http.StatusSeeOther)
}

func (s *Server) subPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderSub(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderSub(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error) {
	ctx, a := r.Context(), c.user.Actor()
	id, err := pathID(r)
	var x exchange.Subscription
	if err == nil {
		x, err = s.Exchange.Subscription(ctx, a, id)
	}
	var runs []exchange.Run
	if err == nil {
		runs, err = s.Exchange.Runs(ctx, a, exchange.RunFilter{SubscriptionID: id, Limit: 20})
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := subsData{Sub: &x, Runs: s.viewRuns(r, a, runs), CanBridge: policy.Allowed(a, policy.ExchangeBridge, policy.Target{DeptID: x.DeptID})}
	if d.checksData, err = s.checksOf(r, a, "subscription", x.ID, x.DeptID); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "exchange_subscription", &page{Title: x.ResourceName, User: &c.user, Active: "/exchange/subscriptions",
		DeptMap: s.deptMap(r), Data: d, Err: ae})
}

var subDone = map[exchange.SubscriptionAction]string{
	exchange.SubStop:   "?ok=ex.sub.stopped",
	exchange.SubStart:  "?ok=ex.sub.started",
	exchange.SubResync: "?ok=ex.sub.resynced",
}

func (s *Server) subControl(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	act := exchange.SubscriptionAction(r.PathValue("action"))
	next := "/exchange/subscriptions/" + itoa(id) + subDone[act]
	if act == exchange.SubDelete {
		next = "/exchange/subscriptions?ok=ex.sub.deleted"
	} else if _, known := subDone[act]; !known {
		err = apperr.ErrNotFound
	}
	if err == nil {
		_, err = s.Exchange.ControlSubscription(r.Context(), c.user.Actor(), id, act)
	}
	s.answerButton(w, r, c, err, func(status int, ae *apperr.Error) { s.renderSub(w, r, c, status, ae) }, next)
}

// ----- runs (桥接核对) -----

// runView is a run with what the tables show beside it.
type runView struct {
	exchange.Run
	Took string // duration, rounded
	What string // the job's name, or the subscription's resource
	Href string
	Rows bool // the two sides' record counts differ
}

func roundDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// viewRuns names each run's job or subscription, as far as the actor may
// see them.
func (s *Server) viewRuns(r *http.Request, a policy.Actor, runs []exchange.Run) []runView {
	jobs, subs := map[int64]string{}, map[int64]string{}
	if len(runs) > 0 {
		dept := deptScope(a, 0)
		if js, err := s.Exchange.Jobs(r.Context(), a, dept); err == nil {
			for _, j := range js {
				jobs[j.ID] = j.Name
			}
		}
		if xs, err := s.Exchange.Subscriptions(r.Context(), a, dept); err == nil {
			for _, x := range xs {
				subs[x.ID] = x.ResourceName
			}
		}
	}
	out := make([]runView, len(runs))
	for i, x := range runs {
		v := runView{Run: x, Took: roundDuration(x.Duration()), Rows: x.BatchesSent > 0 && x.Sent.Rows != x.Received.Rows}
		if x.Direction == "in" {
			v.What, v.Href = jobs[x.JobID], "/exchange/jobs/"+itoa(x.JobID)
			if v.What == "" {
				v.What = "#" + itoa(x.JobID)
			}
		} else {
			v.What, v.Href = subs[x.SubscriptionID], "/exchange/subscriptions/"+itoa(x.SubscriptionID)
			if v.What == "" {
				v.What = "#" + itoa(x.SubscriptionID)
			}
		}
		out[i] = v
	}
	return out
}

type runsData struct {
	Runs         []runView
	State        string
	JobID, SubID int64
	States       []string
}

func (s *Server) runsPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	d := runsData{State: r.URL.Query().Get("state"), JobID: queryID(r, "job_id"), SubID: queryID(r, "subscription_id"),
		States: []string{"running", "complete", "mismatch"}}
	if d.State != "" && !slices.Contains(d.States, d.State) {
		d.State = ""
	}
	runs, err := s.Exchange.Runs(r.Context(), a, exchange.RunFilter{JobID: d.JobID, SubscriptionID: d.SubID, State: d.State, Limit: 200})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d.Runs = s.viewRuns(r, a, runs)
	s.render(w, r, http.StatusOK, "exchange_runs", &page{Title: T(langOf(r), "ex.runs.title"), User: &c.user, Active: "/exchange/runs", Data: d})
}

// ----- alarms (告警) -----

type alarmView struct {
	exchange.Alarm
	CanClose bool
}

type alarmsData struct {
	Alarms   []alarmView
	All      bool
	ErrAlarm int64 // the alarm a refused close concerned
}

func (s *Server) alarmsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderAlarms(w, r, c, http.StatusOK, nil, 0)
}

func (s *Server) renderAlarms(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, errAlarm int64) {
	a := c.user.Actor()
	d := alarmsData{All: r.URL.Query().Get("all") == "1", ErrAlarm: errAlarm}
	list, err := s.Exchange.Alarms(r.Context(), a, d.All)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	for _, x := range list {
		v := alarmView{Alarm: x, CanClose: x.State == "open" && policy.Allowed(a, policy.AlarmClose, policy.Target{})}
		for _, dept := range x.DeptIDs {
			v.CanClose = v.CanClose || x.State == "open" && policy.Allowed(a, policy.AlarmClose, policy.Target{DeptID: dept})
		}
		d.Alarms = append(d.Alarms, v)
	}
	s.render(w, r, status, "exchange_alarms", &page{Title: T(langOf(r), "ex.alarms.title"), User: &c.user, Active: "/exchange/alarms",
		DeptMap: s.deptMap(r), Data: d, Err: ae, Form: r.PostForm})
}

func (s *Server) alarmClose(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.Exchange.CloseAlarm(r.Context(), c.user.Actor(), id, r.PostFormValue("note"))
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderAlarms(w, r, c, ae.Status, ae, id)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/exchange/alarms?ok=ex.alarm.closed", http.StatusSeeOther)
}

// ----- full checks (全量核对) -----

// checksData is a job's or subscription's full checks on its page.
type checksData struct {
	CheckKind   string // job or subscription
	CheckAction string
	CanCheck    bool
	Checks      []exchange.Check
}

// checksOf reads the latest full checks of a job or subscription of
// department dept (the consumer's, for a subscription).
func (s *Server) checksOf(r *http.Request, a policy.Actor, kind string, id, dept int64) (checksData, error) {
	d := checksData{CheckKind: kind, CheckAction: "/exchange/" + kind + "s/" + itoa(id) + "/check",
		CanCheck: policy.Allowed(a, policy.ExchangeManage, policy.Target{DeptID: dept})}
	checks, err := s.Exchange.Checks(r.Context(), a, kind, id)
	if len(checks) > 10 {
		checks = checks[:10]
	}
	d.Checks = checks
	return d, err
}

// checkRequest asks the node of a job or subscription for a full check.
func (s *Server) checkRequest(kind string) func(w http.ResponseWriter, r *http.Request, c *current) {
	return func(w http.ResponseWriter, r *http.Request, c *current) {
		id, err := pathID(r)
		if err == nil {
			_, err = s.Exchange.RequestCheck(r.Context(), c.user.Actor(), kind, id)
		}
		again := func(status int, ae *apperr.Error) { s.renderSub(w, r, c, status, ae) }
		if kind == "job" {
			again = func(status int, ae *apperr.Error) { s.renderJob(w, r, c, status, ae, nil) }
		}
		s.answerButton(w, r, c, err, again, "/exchange/"+kind+"s/"+itoa(id)+"?ok=ex.check.requested#checks")
	}
}

// checkCancel cancels a waiting or running check and goes back to the
// page of its job or subscription.
func (s *Server) checkCancel(w http.ResponseWriter, r *http.Request, c *current) {
	ctx, a := r.Context(), c.user.Actor()
	id, err := pathID(r)
	var ch exchange.Check
	if err == nil {
		ch, err = s.Exchange.Check(ctx, a, id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	_, err = s.Exchange.CancelCheck(ctx, a, id)
	owner, again := ch.JobID, func(status int, ae *apperr.Error) { s.renderJob(w, r, c, status, ae, nil) }
	if ch.Kind == "subscription" {
		owner, again = ch.SubID, func(status int, ae *apperr.Error) { s.renderSub(w, r, c, status, ae) }
	}
	// A refusal (the check ended meanwhile) is shown on the page of the
	// job or subscription, which reads its id from the path.
	r.SetPathValue("id", itoa(owner))
	s.answerButton(w, r, c, err, again, "/exchange/"+ch.Kind+"s/"+itoa(owner)+"?ok=ex.check.cancelled#checks")
}
