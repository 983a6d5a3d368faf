package web

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/client"
	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

type auditData struct {
	Events  []audit.Event
	NextSeq int64
	Query   string // current filter as a query string, for export and paging
	Verify  string
	Broken  bool
}

func auditQueryFrom(v url.Values) auditQuery {
	var q auditQuery
	q.From, q.To, q.Actor = v.Get("from"), v.Get("to"), strings.TrimSpace(v.Get("actor"))
	q.Action, q.ObjectType, q.ObjectID, q.Result = strings.TrimSpace(v.Get("action")), v.Get("object_type"), strings.TrimSpace(v.Get("object_id")), v.Get("result")
	fmt.Sscan(v.Get("dept_id"), &q.DeptID)
	fmt.Sscan(v.Get("before"), &q.Before)
	q.Limit = 50
	return q
}

func (s *Server) auditPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderAudit(w, r, c, http.StatusOK, "", false)
}

func (s *Server) renderAudit(w http.ResponseWriter, r *http.Request, c *current, status int, verify string, broken bool) {
	v := r.URL.Query()
	q := auditQueryFrom(v)
	if err := s.authorizeAudit(r.Context(), c.user.Actor(), policy.AuditRead, nil); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	f, err := q.filter()
	var ae *apperr.Error
	var evs []audit.Event
	if err != nil {
		ae, _ = apperr.As(err)
		status = ae.Status
	} else if evs, err = s.Audit.List(r.Context(), f); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := auditData{Events: evs, Verify: verify, Broken: broken}
	if len(evs) == q.Limit {
		d.NextSeq = evs[len(evs)-1].Seq
	}
	keep := url.Values{}
	for _, k := range []string{"from", "to", "actor", "dept_id", "action", "object_type", "object_id", "result"} {
		if x := v.Get(k); x != "" {
			keep.Set(k, x)
		}
	}
	d.Query = keep.Encode()
	s.render(w, r, status, "audit", &page{Title: T(langOf(r), "audit.title"), User: &c.user, Active: "/audit", DeptMap: s.deptMap(r),
		Form: v, Data: d, Err: ae})
}

func (s *Server) auditExport(w http.ResponseWriter, r *http.Request, c *current) {
	q := auditQueryFrom(r.URL.Query())
	f, err := q.filter()
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if err := s.authorizeAudit(r.Context(), c.user.Actor(), policy.AuditExport, map[string]any{"filter": q}); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	f.Limit = 0
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit-log.csv"`)
	if err := s.writeAuditCSV(r.Context(), w, f); err != nil {
		s.Log.Error("audit export", "request_id", requestID(r.Context()), "err", err)
	}
}

func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request, c *current) {
	if err := s.authorizeAudit(r.Context(), c.user.Actor(), policy.AuditVerify, nil); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	rep, err := s.Audit.Verify(r.Context(), nil)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	lang := langOf(r)
	if rep.OK() {
		msg := fmt.Sprintf(T(lang, "audit.verified"), rep.Checked, rep.FirstSeq, rep.LastSeq, rep.Took.Round(1e6))
		s.renderAudit(w, r, c, http.StatusOK, msg, false)
		return
	}
	s.renderAudit(w, r, c, http.StatusOK, fmt.Sprintf(T(lang, "audit.broken"), rep.Break.Seq, rep.Break.Reason), true)
}

// ----- API reference -----

type docOp struct {
	ID, Method, Path, Summary, Description string
	Params                                 []docField
	Body                                   []docField
	BodyName                               string
	Response                               []docField
	ResponseName                           string
	Status                                 string
}

type docField struct {
	Name, In, Type, Desc string
	Required             bool
}

type docTag struct {
	Name string
	Ops  []docOp
}

type docsData struct {
	Title, Version, Description string
	Tags                        []docTag
	Errors                      []docField
	Signature                   sigExample
}

// apiDocsPage renders the OpenAPI document as a readable reference, with
// no scripts from elsewhere: government networks are often closed.
func (s *Server) apiDocsPage(w http.ResponseWriter, r *http.Request) {
	oapi := s.api.OpenAPI()
	reg := oapi.Components.Schemas
	resolve := func(sc *huma.Schema) (*huma.Schema, string) {
		if sc == nil {
			return nil, ""
		}
		name := ""
		if sc.Ref != "" {
			name = strings.TrimPrefix(sc.Ref, "#/components/schemas/")
			sc = reg.SchemaFromRef(sc.Ref)
		}
		if sc != nil && sc.Type == "array" && sc.Items != nil && sc.Items.Ref != "" {
			name = "[]" + strings.TrimPrefix(sc.Items.Ref, "#/components/schemas/")
			sc = reg.SchemaFromRef(sc.Items.Ref)
		}
		return sc, name
	}
	fields := func(sc *huma.Schema) []docField {
		if sc == nil {
			return nil
		}
		req := map[string]bool{}
		for _, n := range sc.Required {
			req[n] = true
		}
		var out []docField
		for name, p := range sc.Properties {
			typ := p.Type
			if p.Ref != "" {
				typ = strings.TrimPrefix(p.Ref, "#/components/schemas/")
			} else if p.Type == "array" && p.Items != nil {
				it := p.Items.Type
				if p.Items.Ref != "" {
					it = strings.TrimPrefix(p.Items.Ref, "#/components/schemas/")
				}
				typ = "[]" + it
			}
			if p.Format != "" {
				typ += " (" + p.Format + ")"
			}
			desc := p.Description
			if len(p.Enum) > 0 {
				desc += fmt.Sprintf(" %v", p.Enum)
			}
			out = append(out, docField{Name: name, Type: typ, Desc: desc, Required: req[name]})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	byTag := map[string][]docOp{}
	for path, item := range oapi.Paths {
		for method, o := range map[string]*huma.Operation{"GET": item.Get, "POST": item.Post, "PUT": item.Put, "DELETE": item.Delete, "PATCH": item.Patch} {
			if o == nil || o.Hidden {
				continue
			}
			d := docOp{ID: o.OperationID, Method: method, Path: path, Summary: o.Summary, Description: o.Description}
			for _, p := range o.Parameters {
				typ := ""
				if p.Schema != nil {
					typ = p.Schema.Type
				}
				d.Params = append(d.Params, docField{Name: p.Name, In: p.In, Type: typ, Desc: p.Description, Required: p.Required})
			}
			if o.RequestBody != nil {
				if mt := o.RequestBody.Content["application/json"]; mt != nil {
					sc, name := resolve(mt.Schema)
					d.Body, d.BodyName = fields(sc), name
				}
			}
			for code, resp := range o.Responses {
				if !strings.HasPrefix(code, "2") {
					continue
				}
				d.Status = code
				if mt := resp.Content["application/json"]; mt != nil {
					sc, name := resolve(mt.Schema)
					d.Response, d.ResponseName = fields(sc), name
				} else if len(resp.Content) > 0 {
					for ct := range resp.Content {
						d.ResponseName = ct
					}
				}
			}
			tag := "其他 Other"
			if len(o.Tags) > 0 {
				tag = o.Tags[0]
			}
			byTag[tag] = append(byTag[tag], d)
		}
	}
	data := docsData{Title: oapi.Info.Title, Version: oapi.Info.Version, Description: oapi.Info.Description}
	for tag, ops := range byTag {
		sort.Slice(ops, func(i, j int) bool {
			if ops[i].Path != ops[j].Path {
				return ops[i].Path < ops[j].Path
			}
			return ops[i].Method < ops[j].Method
		})
		data.Tags = append(data.Tags, docTag{Name: tag, Ops: ops})
	}
	sort.Slice(data.Tags, func(i, j int) bool { return data.Tags[i].Name < data.Tags[j].Name })
	if sc := reg.Map()["Problem"]; sc != nil {
		data.Errors = fields(sc)
	}
	var u *current
	if sess, usr, err := s.Identity.Authenticate(r.Context(), cookie(r, sessionCookie)); err == nil && sess.Stage(usr) == identity.StageReady {
		u = &current{user: usr, sess: sess}
	}
	data.Signature = signatureExample()
	p := &page{Title: T(langOf(r), "docs.title"), Active: "/api/docs", Data: data}
	if u != nil {
		p.User = &u.user
	}
	s.render(w, r, http.StatusOK, "apidocs", p)
}

// sigExample is a worked signature, computed by the same code the server
// checks with, so the reference can never drift from the implementation.
type sigExample struct {
	Secret, Method, Path, Query, Timestamp, Nonce, Body, Canonical, SHA256, SM3 string
}

func signatureExample() sigExample {
	ex := sigExample{Secret: "example-secret-do-not-use", Method: "POST", Path: "/api/v1/verify/101/000001",
		Query: "dry_run=1&b=2&a=1", Timestamp: "1763700000", Nonce: "5f2c9e0a7b1d4c36", Body: `{"name":"张三","citizen_id":"11010519491231002X"}`}
	q, _ := url.ParseQuery(ex.Query)
	ex.Canonical = client.Canonical(ex.Method, ex.Path, q, ex.Timestamp, ex.Nonce, []byte(ex.Body))
	ex.SHA256, _ = client.Sign(client.HMACSHA256, ex.Secret, ex.Canonical)
	ex.SM3, _ = client.Sign(client.HMACSM3, ex.Secret, ex.Canonical)
	return ex
}
