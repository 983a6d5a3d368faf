package web

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/calendar"
	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/share"
)

func (s *Server) shareRoutes() {
	m := s.mux
	m.HandleFunc("GET /applications", s.withSession(identity.StageReady, s.applicationsPage))
	m.HandleFunc("GET /applications/new", s.withSession(identity.StageReady, s.applyPage))
	m.HandleFunc("POST /applications", s.withSession(identity.StageReady, s.applySubmit))
	m.HandleFunc("GET /applications/{id}", s.withSession(identity.StageReady, s.applicationPage))
	m.HandleFunc("POST /applications/{id}/{op}", s.withSession(identity.StageReady, s.applicationOp))
	m.HandleFunc("GET /applications/{id}/attachments/{aid}", s.withSession(identity.StageReady, s.attachmentDownload))
	m.HandleFunc("GET /grants", s.withSession(identity.StageReady, s.grantsPage))
	m.HandleFunc("GET /grants/{id}", s.withSession(identity.StageReady, s.grantPage))
	m.HandleFunc("POST /grants/{id}/revoke", s.withSession(identity.StageReady, s.grantRevoke))
}

// sides lists the list tabs the actor may open: their department's own
// requests, requests to their department, everything.
func shareSides(a policy.Actor, consumer, provider string) []string {
	var out []string
	if policy.Allowed(a, policy.ShareView, policy.Target{DeptID: a.DeptID}) {
		out = append(out, consumer, provider)
	}
	if policy.Allowed(a, policy.ShareCoordinate, policy.Target{}) {
		out = append(out, "all")
	}
	return out
}

type applicationsData struct {
	Side, State  string
	Sides        []string
	States       []share.State
	Applications []share.Application
}

func (s *Server) applicationsPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	d := applicationsData{Side: r.URL.Query().Get("side"), State: r.URL.Query().Get("state"), Sides: shareSides(a, "consumer", "provider"),
		States: []share.State{share.Submitted, share.Accepted, share.Approved, share.Rejected, share.Escalated, share.RuledShare, share.Upheld, share.Answered, share.Withdrawn}}
	if len(d.Sides) == 0 {
		s.errorPage(w, r, &c.user, apperr.ErrDenied)
		return
	}
	if d.Side == "" {
		d.Side = d.Sides[0]
		if len(d.Sides) == 1 || (!policy.Allowed(a, policy.ShareApply, policy.Target{DeptID: a.DeptID}) && policy.Allowed(a, policy.ShareDecide, policy.Target{DeptID: a.DeptID})) {
			d.Side = d.Sides[min(1, len(d.Sides)-1)]
		}
		if policy.Allowed(a, policy.ShareCoordinate, policy.Target{}) {
			d.Side = "all"
		}
	}
	var err error
	d.Applications, err = s.Share.Applications(r.Context(), a, share.ListFilter{Side: d.Side, State: share.State(d.State), Limit: 200})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "applications", &page{Title: T(langOf(r), "share.applications"), User: &c.user, Active: "/applications", Data: d})
}

type applyData struct {
	Entry   catalog.Entry
	Content catalog.Content
	Kind    share.Kind
	Apps    []share.App
	Today   string
}

func (s *Server) applyData(r *http.Request, c *current, entryID int64) (applyData, error) {
	e, content, err := s.Catalog.Published(r.Context(), entryID)
	if err != nil {
		return applyData{}, err
	}
	d := applyData{Entry: e, Content: content, Kind: share.KindApplication, Today: time.Now().In(calendar.CST).Format("2006-01-02")}
	switch content.ShareType {
	case catalog.ShareUnconditional:
		d.Kind = share.KindSubscription
	case catalog.ShareNone:
		d.Kind = share.KindNegotiation
	}
	d.Apps, err = s.Share.ApplicantApps(r.Context(), c.user.Actor())
	return d, err
}

func (s *Server) applyPage(w http.ResponseWriter, r *http.Request, c *current) {
	id, _ := strconv.ParseInt(r.URL.Query().Get("entry"), 10, 64)
	d, err := s.applyData(r, c, id)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	form := url.Values{"valid_from": {d.Today}}
	for _, m := range d.Content.ShareMethods {
		form.Add("methods", string(m))
	}
	s.render(w, r, http.StatusOK, "apply", &page{Title: T(langOf(r), "share.apply."+string(d.Kind)), User: &c.user, Active: "/applications", Data: d, Form: form})
}

// termsFromForm reads the terms fields shared by the application and the
// decision forms.
func termsFromForm(f url.Values) (share.Terms, error) {
	t := share.Terms{Items: f["items"], Purpose: f.Get("purpose"), Basis: f.Get("basis")}
	for _, m := range f["methods"] {
		t.Methods = append(t.Methods, catalog.ShareMethod(m))
	}
	var err error
	if t.ValidFrom, err = formDate(f, "valid_from"); err != nil {
		return t, err
	}
	if t.ValidUntil, err = formDate(f, "valid_until"); err != nil {
		return t, err
	}
	if item := strings.TrimSpace(f.Get("scope_item")); item != "" || strings.TrimSpace(f.Get("scope_values")) != "" {
		t.RowScope = &share.RowScope{Item: item, Op: f.Get("scope_op"), Values: strings.FieldsFunc(f.Get("scope_values"), func(r rune) bool { return r == ',' || r == '，' || r == ' ' })}
	}
	for _, v := range f["app_ids"] {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil {
			t.AppIDs = append(t.AppIDs, id)
		}
	}
	for field, dst := range map[string]*int{"rate_limit": &t.RateLimit, "daily_quota": &t.DailyQuota, "verify_quota": &t.VerifyQuota} {
		if v := strings.TrimSpace(f.Get(field)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return t, apperr.Invalid("share.limits_invalid", field, "请填写整数", "enter a whole number")
			}
			*dst = n
		}
	}
	return t, nil
}

func formDate(f url.Values, field string) (time.Time, error) {
	v := strings.TrimSpace(f.Get(field))
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.ParseInLocation("2006-01-02", v, calendar.CST)
	if err != nil {
		return t, apperr.Invalid("share.date_invalid", field, "日期格式应为 YYYY-MM-DD", "dates are YYYY-MM-DD")
	}
	return t, nil
}

func (s *Server) applySubmit(w http.ResponseWriter, r *http.Request, c *current) {
	r.Body = http.MaxBytesReader(w, r.Body, share.MaxAttachment+1<<20)
	entryID, _ := strconv.ParseInt(r.PostFormValue("entry_id"), 10, 64)
	d, err := s.applyData(r, c, entryID)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	title := T(langOf(r), "share.apply."+string(d.Kind))
	t, err := termsFromForm(r.PostForm)
	var a share.Application
	if err == nil {
		a, err = s.Share.Apply(r.Context(), c.user.Actor(), entryID, t)
	}
	if err != nil {
		s.formError(w, r, &c.user, "apply", title, err, r.PostForm, d)
		return
	}
	if f, h, ferr := r.FormFile("file"); ferr == nil {
		defer f.Close()
		data, _ := io.ReadAll(io.LimitReader(f, share.MaxAttachment+1))
		if _, err := s.Share.Attach(r.Context(), c.user.Actor(), a.ID, h.Filename, "", data); err != nil {
			// The application stands; say what happened to the file.
			http.Redirect(w, r, "/applications/"+itoa(a.ID)+"?ok=share.attachment_refused", http.StatusSeeOther)
			return
		}
	}
	http.Redirect(w, r, "/applications/"+itoa(a.ID)+"?ok=share.submitted", http.StatusSeeOther)
}

type applicationData struct {
	App     share.Application
	Content catalog.Content
}

func (s *Server) applicationPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderApplication(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderApplication(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error) {
	id, err := pathID(r)
	var a share.Application
	if err == nil {
		a, err = s.Share.Application(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := applicationData{App: a}
	_, d.Content, _ = s.Catalog.Published(r.Context(), a.EntryID)
	form := r.PostForm
	if ae == nil {
		form = nil
	}
	s.render(w, r, status, "application", &page{Title: a.EntryName, User: &c.user, Active: "/applications", Data: d, Err: ae, Form: form})
}

func (s *Server) applicationOp(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	ctx, a, f := r.Context(), c.user.Actor(), r.PostForm
	switch op := r.PathValue("op"); op {
	case "accept":
		_, err = s.Share.Accept(ctx, a, id)
	case "approve", "rule":
		var dec *share.Terms
		if f.Get("decide") == "changes" || op == "approve" && len(f["items"]) > 0 {
			t, terr := termsFromForm(f)
			if terr != nil {
				err = terr
				break
			}
			dec = &t
		}
		if op == "approve" {
			_, err = s.Share.Approve(ctx, a, id, dec, f.Get("note"))
		} else {
			_, err = s.Share.Rule(ctx, a, id, f.Get("outcome"), f.Get("note"), dec)
		}
	case "reject":
		_, err = s.Share.Reject(ctx, a, id, f.Get("reason"))
	case "withdraw":
		_, err = s.Share.Withdraw(ctx, a, id)
	case "escalate":
		_, err = s.Share.Escalate(ctx, a, id, f.Get("reason"))
	case "provide":
		_, err = s.Share.Provide(ctx, a, id, f.Get("note"))
	case "answer":
		_, err = s.Share.Answer(ctx, a, id, f.Get("note"))
	case "attach":
		r.Body = http.MaxBytesReader(w, r.Body, share.MaxAttachment+1<<20)
		file, h, ferr := r.FormFile("file")
		if ferr != nil {
			err = share.ErrAttachment
			break
		}
		data, _ := io.ReadAll(io.LimitReader(file, share.MaxAttachment+1))
		file.Close()
		_, err = s.Share.Attach(ctx, a, id, h.Filename, "", data)
	default:
		err = apperr.ErrNotFound
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderApplication(w, r, c, ae.Status, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/applications/"+itoa(id)+"?ok=common.saved", http.StatusSeeOther)
}

func (s *Server) attachmentDownload(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	aid, aerr := strconv.ParseInt(r.PathValue("aid"), 10, 64)
	if err == nil && aerr != nil {
		err = apperr.ErrNotFound
	}
	var at share.Attachment
	var data []byte
	if err == nil {
		at, data, err = s.Share.AttachmentData(r.Context(), c.user.Actor(), id, aid)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	w.Header().Set("Content-Type", at.ContentType)
	w.Header().Set("Content-Disposition", attachmentDisposition(at.Name))
	w.Write(data)
}

type grantsData struct {
	Side, State string
	Sides       []string
	Grants      []share.Grant
}

func (s *Server) grantsPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	d := grantsData{Side: r.URL.Query().Get("side"), State: r.URL.Query().Get("state"), Sides: shareSides(a, "mine", "given")}
	if len(d.Sides) == 0 {
		s.errorPage(w, r, &c.user, apperr.ErrDenied)
		return
	}
	if d.Side == "" {
		d.Side = d.Sides[0]
		if policy.Allowed(a, policy.ShareCoordinate, policy.Target{}) {
			d.Side = "all"
		}
	}
	var err error
	if d.Grants, err = s.Share.Grants(r.Context(), a, share.GrantFilter{Side: d.Side, State: d.State, Limit: 200}); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "grants", &page{Title: T(langOf(r), "share.grants"), User: &c.user, Active: "/grants", Data: d})
}

type grantData struct {
	Grant     share.Grant
	Items     map[string]string
	CanRevoke bool
	// CanDownload: a person of the consumer department may download the
	// granted data here (the grant allows files).
	CanDownload bool
}

func (s *Server) grantPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderGrant(w, r, c, http.StatusOK, nil)
}

func (s *Server) renderGrant(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error) {
	id, err := pathID(r)
	var g share.Grant
	if err == nil {
		g, err = s.Share.Grant(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := grantData{Grant: g, Items: map[string]string{},
		CanRevoke: g.State == "active" && policy.Allowed(c.user.Actor(), policy.GrantRevoke, policy.Target{DeptID: g.ProviderDeptID}),
		CanDownload: g.State == "active" && slices.Contains(g.Methods, catalog.MethodFile) &&
			policy.Allowed(c.user.Actor(), policy.DataUse, policy.Target{DeptID: g.ConsumerDeptID})}
	if _, content, err := s.Catalog.Published(r.Context(), g.EntryID); err == nil {
		for _, it := range content.Items {
			d.Items[it.MachineName] = it.Name
		}
	}
	s.render(w, r, status, "grant", &page{Title: g.EntryName, User: &c.user, Active: "/grants", Data: d, Err: ae, Form: r.PostForm})
}

func (s *Server) grantRevoke(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		_, err = s.Share.RevokeGrant(r.Context(), c.user.Actor(), id, r.PostFormValue("reason"))
	}
	if err != nil {
		if ae, ok := fixable(err); ok && ae.Status != http.StatusNotFound {
			s.renderGrant(w, r, c, ae.Status, ae)
			return
		}
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/grants/"+itoa(id)+"?ok=common.saved", http.StatusSeeOther)
}
