package proxy

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// settled is a service's settings once checked: what is stored.
type settled struct {
	baseURL    string
	operations []Operation
	openAPI    string
	header     string
	sealed     string // the credential, sealed; "" for none
	timeout    time.Duration
	maxResp    int64
}

// reservedHeaders are set by the platform or by HTTP itself; a provider's
// credential may not take their place.
var reservedHeaders = []string{"Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Cookie", "X-Request-Id",
	"X-App-Key", "X-Timestamp", "X-Nonce", "X-Signature", "X-Sign-Method", "X-Purpose"}

// settle checks settings. sealed is the stored credential of the service
// being changed, kept when no new value is given.
func (p *Proxy) settle(in Settings, sealed string) (settled, error) {
	st := settled{openAPI: strings.TrimSpace(in.OpenAPI)}
	u, err := url.Parse(strings.TrimSpace(in.BaseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		strings.HasSuffix(u.Host, ":") || len(in.BaseURL) > 500 {
		return st, ErrBaseURL
	}
	st.baseURL = strings.TrimSuffix(u.String(), "/")
	switch {
	case st.openAPI != "" && len(in.Operations) > 0:
		return st, ErrOperationsTwice
	case len(st.openAPI) > maxOpenAPI:
		return st, ErrOpenAPI.With("OpenAPI 文档不能超过2 MiB", "the OpenAPI document is at most 2 MiB")
	case st.openAPI != "":
		ops, err := operationsFromOpenAPI(st.openAPI)
		if err != nil {
			return st, err
		}
		if st.operations, err = normalizeOperations(ops); err != nil {
			ae, _ := apperr.As(err)
			return st, ErrOpenAPI.With("OpenAPI 文档中的操作无效："+ae.ZH, "an operation of the OpenAPI document is not valid: "+ae.EN)
		}
	default:
		if st.operations, err = normalizeOperations(in.Operations); err != nil {
			return st, err
		}
	}
	st.header = http.CanonicalHeaderKey(strings.TrimSpace(in.CredentialHeader))
	switch {
	case st.header == "":
		// no credential
	case !validHeaderName(st.header) || slices.Contains(reservedHeaders, st.header) || strings.HasPrefix(st.header, "X-Govshare-") ||
		isHopByHop(st.header):
		return st, ErrCredHeader
	case in.CredentialValue != "":
		if !validHeaderValue(in.CredentialValue) || len(in.CredentialValue) > 4096 {
			return st, ErrCredRequired.With("凭据值含有不能放在请求头里的字符", "the credential holds characters a header cannot carry")
		}
		st.sealed = p.seal.Seal([]byte(in.CredentialValue))
	case sealed != "":
		st.sealed = sealed
	default:
		return st, ErrCredRequired
	}
	switch t := in.TimeoutSeconds; {
	case t == 0:
		st.timeout = DefaultTimeout
	case t < 0 || time.Duration(t)*time.Second > MaxTimeout:
		return st, ErrTimeout
	default:
		st.timeout = time.Duration(t) * time.Second
	}
	switch m := in.MaxResponseBytes; {
	case m == 0:
		st.maxResp = DefaultMaxResponse
	case m < 0 || m > MaxMaxResponse:
		return st, ErrMaxResponse
	default:
		st.maxResp = m
	}
	return st, nil
}

// validHeaderName accepts an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r)) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters, which could split a header.
func validHeaderValue(s string) bool {
	for _, r := range s {
		if r < ' ' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return true
}

// Register registers a service resource for a published entry of the
// actor's department whose share methods include api.
func (p *Proxy) Register(ctx context.Context, actor policy.Actor, in Registration) (Service, error) {
	e, c, err := p.catalog.Published(ctx, in.EntryID)
	if errors.Is(err, apperr.ErrNotFound) {
		if err := p.authorize(ctx, actor, policy.ServiceManage, actor.DeptID, ""); err != nil {
			return Service{}, err
		}
		return Service{}, ErrEntry
	} else if err != nil {
		return Service{}, fmt.Errorf("register service for entry %d: %w", in.EntryID, err)
	}
	if err := p.authorize(ctx, actor, policy.ServiceManage, e.DeptID, e.Code); err != nil {
		return Service{}, err
	}
	if !slices.Contains(c.ShareMethods, catalog.MethodAPI) {
		return Service{}, ErrEntryNotAPI
	}
	st, err := p.settle(in.Settings, "")
	if err != nil {
		return Service{}, err
	}
	ops, _ := json.Marshal(st.operations)
	now := p.now()
	var id int64
	err = p.db.QueryRow(ctx, `INSERT INTO service_resources (entry_id, dept_id, base_url, operations, openapi, credential_header, credential,
		timeout_ms, max_response_bytes, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.ID, e.DeptID, st.baseURL, string(ops), st.openAPI, st.header, st.sealed, st.timeout.Milliseconds(), st.maxResp, actor.UserID, now, now).Scan(&id)
	if store.IsUniqueViolation(err) {
		return Service{}, ErrExists
	} else if err != nil {
		return Service{}, fmt.Errorf("register service for entry %d: %w", in.EntryID, err)
	}
	if err := p.audit.Append(ctx, audit.By(actor, "service.register", "service", e.Code, audit.ResultOK, st.details(id))); err != nil {
		return Service{}, err
	}
	return p.Service(ctx, actor, id)
}

// details are what the audit log keeps of settings: never the credential.
func (st settled) details(id int64) map[string]any {
	ops := make([]string, len(st.operations))
	for i, o := range st.operations {
		ops[i] = o.String()
	}
	return map[string]any{"service_id": id, "base_url": st.baseURL, "operations": ops, "credential_header": st.header,
		"timeout_seconds": int(st.timeout / time.Second), "max_response_bytes": st.maxResp}
}

// Update changes a service's settings. An empty credential value keeps
// the stored credential; an empty credential header removes it.
func (p *Proxy) Update(ctx context.Context, actor policy.Actor, id int64, in Settings) (Service, error) {
	t, err := p.load(ctx, "s.id = ?", id)
	if err != nil {
		return Service{}, err
	}
	if err := p.authorize(ctx, actor, policy.ServiceManage, t.svc.DeptID, t.svc.Code); err != nil {
		return Service{}, err
	}
	st, err := p.settle(in, t.sealed)
	if err != nil {
		return Service{}, err
	}
	ops, _ := json.Marshal(st.operations)
	if _, err := p.db.Exec(ctx, `UPDATE service_resources SET base_url = ?, operations = ?, openapi = ?, credential_header = ?, credential = ?,
		timeout_ms = ?, max_response_bytes = ?, updated_at = ? WHERE id = ?`,
		st.baseURL, string(ops), st.openAPI, st.header, st.sealed, st.timeout.Milliseconds(), st.maxResp, p.now(), id); err != nil {
		return Service{}, fmt.Errorf("update service %d: %w", id, err)
	}
	p.changed(id)
	d := st.details(id)
	d["credential_changed"] = in.CredentialValue != ""
	if err := p.audit.Append(ctx, audit.By(actor, "service.update", "service", t.svc.Code, audit.ResultOK, d)); err != nil {
		return Service{}, err
	}
	return p.Service(ctx, actor, id)
}

// SetState disables a service (calls are refused with service.disabled)
// or enables it again.
func (p *Proxy) SetState(ctx context.Context, actor policy.Actor, id int64, state string) (Service, error) {
	t, err := p.load(ctx, "s.id = ?", id)
	if err != nil {
		return Service{}, err
	}
	if err := p.authorize(ctx, actor, policy.ServiceManage, t.svc.DeptID, t.svc.Code); err != nil {
		return Service{}, err
	}
	if state != Active && state != Disabled {
		return Service{}, apperr.Invalid("service.state_invalid", "state", "状态应为 active 或 disabled", "the state is active or disabled")
	}
	res, err := p.db.Exec(ctx, "UPDATE service_resources SET state = ?, updated_at = ? WHERE id = ? AND state <> ?", state, p.now(), id, state)
	if err != nil {
		return Service{}, fmt.Errorf("set service %d %s: %w", id, state, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return Service{}, ErrState
	}
	p.changed(id)
	action := "service.enable"
	if state == Disabled {
		action = "service.disable"
	}
	if err := p.audit.Append(ctx, audit.By(actor, action, "service", t.svc.Code, audit.ResultOK, map[string]any{"service_id": id})); err != nil {
		return Service{}, err
	}
	return p.Service(ctx, actor, id)
}

// changed forgets what this server holds of a changed service: the next
// call reads the new settings and meets a fresh circuit breaker.
func (p *Proxy) changed(id int64) {
	p.services.drop()
	p.mu.Lock()
	delete(p.breakers, id)
	p.mu.Unlock()
}

// Service returns one service as the actor may see it.
func (p *Proxy) Service(ctx context.Context, actor policy.Actor, id int64) (Service, error) {
	t, err := p.load(ctx, "s.id = ?", id)
	if err != nil {
		return Service{}, err
	}
	return p.view(actor, t.svc), nil
}

// ServiceFilter selects services.
type ServiceFilter struct {
	DeptID int64  // the provider; 0 for all
	State  string // active / disabled; "" for both
}

// List returns services, newest first. Everyone may see which services
// exist and their operations; the provider's address only those who may
// read the call log.
func (p *Proxy) List(ctx context.Context, actor policy.Actor, f ServiceFilter) ([]Service, error) {
	var conds []string
	var args []any
	if f.DeptID != 0 {
		conds, args = append(conds, "s.dept_id = ?"), append(args, f.DeptID)
	}
	if f.State != "" {
		conds, args = append(conds, "s.state = ?"), append(args, f.State)
	}
	q := "SELECT " + serviceCols + serviceFrom
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	ts, err := store.All(ctx, p.db, scanTarget, q+" ORDER BY s.id DESC LIMIT 1000", args...)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := make([]Service, len(ts))
	for i, t := range ts {
		out[i] = p.view(actor, t.svc)
	}
	return out, nil
}

// Candidate is a published entry that may become a service resource.
type Candidate struct {
	EntryID int64
	Code    string
	Name    string // as published
}

// Candidates are a department's published entries shared by interface
// that have no service yet, for the registration form.
func (p *Proxy) Candidates(ctx context.Context, deptID int64) ([]Candidate, error) {
	ids, err := store.All(ctx, p.db, func(row store.Row) (int64, error) {
		var id int64
		return id, row.Scan(&id)
	}, `SELECT e.id FROM entries e WHERE e.dept_id = ? AND e.published_version > 0 AND e.state <> 'retired'
		AND NOT EXISTS (SELECT 1 FROM service_resources s WHERE s.entry_id = e.id) ORDER BY e.id`, deptID)
	if err != nil {
		return nil, fmt.Errorf("entries of department %d: %w", deptID, err)
	}
	var out []Candidate
	for _, id := range ids {
		e, c, err := p.catalog.Published(ctx, id)
		if errors.Is(err, apperr.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if slices.Contains(c.ShareMethods, catalog.MethodAPI) {
			out = append(out, Candidate{EntryID: e.ID, Code: e.Code, Name: c.Name})
		}
	}
	return out, nil
}

// view is a service as the actor may see it.
func (p *Proxy) view(actor policy.Actor, s Service) Service {
	if !policy.Allowed(actor, policy.ServiceCalls, policy.Target{DeptID: s.DeptID}) {
		s.BaseURL, s.CredentialHeader = "", ""
	}
	s.Circuit = p.circuit(s.ID)
	return s
}

// target is a service as calls need it.
type target struct {
	svc    Service
	sealed string
	routes []route
}

const serviceCols = `s.id, s.entry_id, COALESCE(e.code, ''), e.name, s.dept_id, s.base_url, s.operations,
	CASE WHEN s.openapi <> '' THEN 1 ELSE 0 END, s.credential_header, s.credential, s.timeout_ms, s.max_response_bytes, s.state, s.created_at, s.updated_at`

const serviceFrom = ` FROM service_resources s JOIN entries e ON e.id = s.entry_id`

func scanTarget(row store.Row) (*target, error) {
	t := &target{}
	s := &t.svc
	var ops string
	var timeoutMS int64
	err := row.Scan(&s.ID, &s.EntryID, &s.Code, &s.Name, &s.DeptID, &s.BaseURL, &ops, &s.HasOpenAPI, &s.CredentialHeader, &t.sealed,
		&timeoutMS, &s.MaxResponseBytes, &s.State, &s.CreatedAt, &s.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(ops), &s.Operations); err != nil {
		return nil, fmt.Errorf("service %d: operations: %w", s.ID, err)
	}
	s.HasCredential = t.sealed != ""
	s.TimeoutSeconds = int(timeoutMS / 1000)
	t.routes = compileRoutes(s.Operations)
	return t, nil
}

func (p *Proxy) load(ctx context.Context, where string, arg any) (*target, error) {
	t, err := scanTarget(p.db.QueryRow(ctx, "SELECT "+serviceCols+serviceFrom+" WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.ErrNotFound
	}
	return t, err
}

// byCode is the service a call names, read at most a second ago.
func (p *Proxy) byCode(ctx context.Context, code string) (*target, error) {
	if t, ok := p.services.get(code); ok {
		return t, nil
	}
	t, err := p.load(ctx, "e.code = ?", code)
	if errors.Is(err, apperr.ErrNotFound) {
		return nil, ErrUnknown
	} else if err != nil {
		return nil, err
	}
	p.services.put(code, t)
	return t, nil
}
