package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/dataservice"
	"govshare/internal/identity"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/search"
	"govshare/internal/share"
)

func (s *Server) catalogRoutes() {
	m := s.mux
	m.HandleFunc("GET /catalog", s.withSession(identity.StageReady, s.catalogPage))
	m.HandleFunc("GET /catalog/manage", s.withSession(identity.StageReady, s.catalogManagePage))
	m.HandleFunc("GET /catalog/new", s.withSession(identity.StageReady, s.entryNewPage))
	m.HandleFunc("POST /catalog", s.withSession(identity.StageReady, s.entryCreate))
	m.HandleFunc("GET /catalog/{id}", s.withSession(identity.StageReady, s.entryPage))
	m.HandleFunc("GET /catalog/{id}/edit", s.withSession(identity.StageReady, s.entryEditPage))
	m.HandleFunc("POST /catalog/{id}/edit", s.withSession(identity.StageReady, s.entryUpdate))
	m.HandleFunc("POST /catalog/{id}/{step}", s.withSession(identity.StageReady, s.entryStepPost))
	m.HandleFunc("GET /catalog/{id}/diff", s.withSession(identity.StageReady, s.entryDiffPage))
	m.HandleFunc("GET /demands", s.withSession(identity.StageReady, s.demandsPage))
	m.HandleFunc("POST /demands", s.withSession(identity.StageReady, s.demandPost))
	m.HandleFunc("POST /demands/{id}/{op}", s.withSession(identity.StageReady, s.demandOp))
	m.HandleFunc("GET /classifications", s.withSession(identity.StageReady, s.classificationsPage))
	m.HandleFunc("POST /classifications", s.withSession(identity.StageReady, s.classificationSave))
	m.HandleFunc("POST /classifications/import", s.withSession(identity.StageReady, s.classificationImport))
}

// Labels for catalog enumerations, in both languages.
var catalogLabels = map[string][2]string{
	"state.draft": {"草稿", "Draft"}, "state.submitted": {"待审核", "Submitted"}, "state.returned": {"已退回", "Returned"},
	"state.approved": {"待发布", "Approved"}, "state.published": {"已发布", "Published"}, "state.retired": {"已撤销", "Retired"},
	"share.unconditional": {"无条件共享", "Unconditional"}, "share.conditional": {"有条件共享", "Conditional"}, "share.none": {"不予共享", "Not shared"},
	"method.api": {"接口", "API"}, "method.file": {"文件下载", "File download"}, "method.exchange": {"数据库交换", "Database exchange"}, "method.verify": {"比对核验", "Verification"},
	"open.open": {"无条件开放", "Open"}, "open.on_request": {"依申请开放", "Open on request"}, "open.closed": {"不予开放", "Not open"},
	"cycle.realtime": {"实时", "Real-time"}, "cycle.daily": {"每日", "Daily"}, "cycle.weekly": {"每周", "Weekly"}, "cycle.monthly": {"每月", "Monthly"},
	"cycle.quarterly": {"每季度", "Quarterly"}, "cycle.half_yearly": {"每半年", "Half-yearly"}, "cycle.yearly": {"每年", "Yearly"}, "cycle.other": {"其他", "Other"},
	"format.file": {"电子文件", "Electronic file"}, "format.spreadsheet": {"电子表格", "Spreadsheet"}, "format.database": {"数据库", "Database"},
	"format.image": {"图形图像", "Image"}, "format.streaming": {"流媒体", "Streaming media"}, "format.api": {"接口", "Interface"},
	"format.self_describing": {"自描述格式", "Self-describing"}, "format.other": {"其他", "Other"},
	"sens.public": {"公开", "Public"}, "sens.internal": {"内部", "Internal"}, "sens.sensitive": {"敏感", "Sensitive"}, "sens.secret": {"涉密", "Secret"},
	"change.law": {"法律法规变化", "Change of law"}, "change.functions": {"职能调整", "Change of functions"}, "change.other": {"其他", "Other"},
}

type catalogListData struct {
	Entries []catalog.Entry
	Manage  bool
	CanNew  bool
	States  []catalog.State
	Next    int64
}

// facetParams maps URL parameters to the index's facet names.
var facetParams = []struct{ param, facet string }{
	{"kind", search.FacetKind}, {"class", search.FacetClass}, {"dept", search.FacetDept}, {"share_type", search.FacetShareType},
	{"share_method", search.FacetShareMethod}, {"open_type", search.FacetOpenType}, {"update_cycle", search.FacetUpdateCycle},
	{"format", search.FacetFormatClass}, {"tag", search.FacetTag},
}

type facetLink struct {
	Param, Value, Label, Href string
	Count                     int
	Active                    bool
}

type facetGroup struct {
	Param, Title string
	Links        []facetLink
}

type searchData struct {
	Result catalog.SearchResult
	Facets []facetGroup
	Next   string
	Prev   string
	From   int
	Sort   string
	Query  url.Values
}

func searchQuery(v url.Values) search.Query {
	q := search.Query{Text: v.Get("q"), ClassPrefix: v.Get("class"), Kind: v.Get("kind"), ShareType: v.Get("share_type"),
		ShareMethod: v.Get("share_method"), OpenType: v.Get("open_type"), UpdateCycle: v.Get("update_cycle"), Tag: v.Get("tag"),
		FormatClass: v.Get("format"), Sort: v.Get("sort"), Size: 20}
	q.DeptID, _ = strconv.ParseInt(v.Get("dept"), 10, 64)
	q.From, _ = strconv.Atoi(v.Get("from"))
	if q.Sort != search.SortDate && q.Sort != search.SortPopularity {
		q.Sort = search.SortRelevance
	}
	return q
}

func (s *Server) facetLabel(lang Lang, param, value string, depts map[int64]string, classes map[string]string) string {
	switch param {
	case "kind":
		return T(lang, "kind."+value)
	case "class":
		return value + " " + classes[value]
	case "dept":
		id, _ := strconv.ParseInt(value, 10, 64)
		return depts[id]
	case "share_type":
		return T(lang, "cat.share."+value)
	case "share_method":
		return T(lang, "cat.method."+value)
	case "open_type":
		return T(lang, "cat.open."+value)
	case "update_cycle":
		return T(lang, "cat.cycle."+value)
	case "format":
		return T(lang, "cat.format."+value)
	}
	return value
}

func (s *Server) catalogPage(w http.ResponseWriter, r *http.Request, c *current) {
	v := r.URL.Query()
	q := searchQuery(v)
	res, err := s.Catalog.Search(r.Context(), c.user.Actor(), q)
	if err != nil {
		s.errorPage(w, r, &c.user, apperr.Invalid("catalog.search_invalid", "q", "查询条件无效", "the search is not valid"))
		s.Log.Warn("catalog search", "err", err)
		return
	}
	lang := langOf(r)
	depts := s.deptMap(r)
	classes := map[string]string{}
	if cs, err := s.Catalog.Classifications(r.Context()); err == nil {
		for _, cl := range cs {
			classes[cl.Code] = cl.Name
		}
	}
	d := searchData{Result: res, From: q.From, Sort: q.Sort, Query: v}
	for _, fp := range facetParams {
		g := facetGroup{Param: fp.param, Title: T(lang, "facet."+fp.param)}
		active := v.Get(fp.param)
		for _, fv := range res.Facets[fp.facet] {
			link := facetLink{Param: fp.param, Value: fv.Value, Count: fv.Count, Label: s.facetLabel(lang, fp.param, fv.Value, depts, classes), Active: active == fv.Value}
			nv := cloneValues(v)
			nv.Del("from")
			if link.Active {
				nv.Del(fp.param)
			} else {
				nv.Set(fp.param, fv.Value)
			}
			link.Href = "/catalog?" + nv.Encode()
			g.Links = append(g.Links, link)
		}
		if len(g.Links) > 0 {
			d.Facets = append(d.Facets, g)
		}
	}
	if q.From+len(res.Entries) < res.Total && q.From+20 < search.MaxWindow {
		nv := cloneValues(v)
		nv.Set("from", strconv.Itoa(q.From+20))
		d.Next = "/catalog?" + nv.Encode()
	}
	if q.From > 0 {
		nv := cloneValues(v)
		nv.Set("from", strconv.Itoa(max(0, q.From-20)))
		d.Prev = "/catalog?" + nv.Encode()
	}
	s.render(w, r, http.StatusOK, "catalog_search", &page{Title: T(lang, "nav.catalog"), User: &c.user, Active: "/catalog",
		DeptMap: depts, Form: v, Data: d})
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

func (s *Server) catalogManagePage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Any(a, policy.CatalogViewDraft) {
		s.denied(w, r, c, policy.CatalogViewDraft, "catalog_entry")
		return
	}
	f := catalog.Filter{State: catalog.State(r.URL.Query().Get("state")), Limit: 200, Overdue: r.URL.Query().Get("overdue") != ""}
	if !policy.Allowed(a, policy.CatalogViewDraft, policy.Target{DeptID: -1}) {
		f.DeptID = a.DeptID
	} else if f.State == "" && r.URL.Query().Get("all") == "" && !f.Overdue {
		f.State = catalog.Submitted // the reviewer's queue
	}
	es, err := s.Catalog.Entries(r.Context(), a, f)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d := catalogListData{Entries: es, Manage: true, CanNew: policy.Allowed(a, policy.CatalogEdit, policy.Target{DeptID: a.DeptID}),
		States: []catalog.State{catalog.Draft, catalog.Submitted, catalog.Returned, catalog.Approved, catalog.Published, catalog.Retired}}
	form := r.URL.Query()
	if form.Get("state") == "" {
		form.Set("state", string(f.State))
	}
	s.render(w, r, http.StatusOK, "catalog", &page{Title: T(langOf(r), "nav.catalog.manage"), User: &c.user, Active: "/catalog/manage",
		DeptMap: s.deptMap(r), Form: form, Data: d})
}

type entryFormData struct {
	Entry    *catalog.Entry
	Content  catalog.Content
	Classes  []catalog.Classification
	Formats  map[string][]string
	Items    []catalog.DataItem
	Action   string
	DataType string
}

// blankItems pads the data item rows so the form always offers empty rows.
func blankItems(items []catalog.DataItem) []catalog.DataItem {
	out := append([]catalog.DataItem(nil), items...)
	for len(out) < len(items)+3 {
		out = append(out, catalog.DataItem{})
	}
	return out
}

func (s *Server) renderEntryForm(w http.ResponseWriter, r *http.Request, c *current, status int, e *catalog.Entry, content catalog.Content, ae *apperr.Error) {
	classes, _ := s.Catalog.Classifications(r.Context())
	action := "/catalog"
	title := T(langOf(r), "cat.new")
	if e != nil {
		action = fmt.Sprintf("/catalog/%d/edit", e.ID)
		title = T(langOf(r), "cat.edit")
	}
	s.render(w, r, status, "entry_form", &page{Title: title, User: &c.user, Active: "/catalog/manage", Err: ae,
		Data: entryFormData{Entry: e, Content: content, Classes: classes, Formats: catalog.FormatTypes, Items: blankItems(content.Items),
			Action: action, DataType: catalog.DataTypes}})
}

func (s *Server) entryNewPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	if !policy.Allowed(a, policy.CatalogEdit, policy.Target{DeptID: a.DeptID}) {
		s.denied(w, r, c, policy.CatalogEdit, "catalog_entry")
		return
	}
	s.renderEntryForm(w, r, c, http.StatusOK, nil, catalog.Content{ShareType: catalog.ShareConditional, OpenType: catalog.OpenClosed,
		UpdateCycle: "monthly", FormatClass: "database"}, nil)
}

// contentFromForm reads the entry form. Data item rows are items.N.field;
// rows left wholly empty are ignored.
func contentFromForm(r *http.Request) catalog.Content {
	f := r.PostForm
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '，' || r == ';' || r == '；' || r == '\n' })
	}
	c := catalog.Content{
		Name: f.Get("name"), ClassCode: f.Get("class_code"), Abstract: f.Get("abstract"), FormatClass: f.Get("format_class"),
		FormatType: f.Get("format_type"), Keywords: split(f.Get("keywords")), ShareType: catalog.ShareType(f.Get("share_type")),
		ShareCondition: f.Get("share_condition"), ShareBasis: f.Get("share_basis"), OpenType: catalog.OpenType(f.Get("open_type")),
		OpenCondition: f.Get("open_condition"), UpdateCycle: f.Get("update_cycle"), RelatedCodes: split(f.Get("related_codes")),
		Classified: f.Get("classified") == "on",
	}
	for _, m := range f["share_methods"] {
		c.ShareMethods = append(c.ShareMethods, catalog.ShareMethod(m))
	}
	for i := 0; i < 500; i++ {
		p := fmt.Sprintf("items.%d.", i)
		if _, ok := f[p+"name"]; !ok {
			break
		}
		it := catalog.DataItem{Name: f.Get(p + "name"), MachineName: f.Get(p + "machine_name"), DataType: f.Get(p + "data_type"),
			Description: f.Get(p + "description"), Sensitivity: f.Get(p + "sensitivity"), MaskRule: f.Get(p + "mask_rule"),
			QualityRule: f.Get(p + "quality_rule"), Key: f.Get(p+"key") == "on"}
		it.Length, _ = strconv.Atoi(strings.TrimSpace(f.Get(p + "length")))
		if strings.TrimSpace(it.Name+it.MachineName+f.Get(p+"length")+it.Description+it.MaskRule+it.QualityRule) == "" {
			continue
		}
		c.Items = append(c.Items, it)
	}
	return c
}

func (s *Server) entryCreate(w http.ResponseWriter, r *http.Request, c *current) {
	content := contentFromForm(r)
	e, err := s.Catalog.CreateEntry(r.Context(), c.user.Actor(), content)
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderEntryForm(w, r, c, ae.Status, nil, content, ae)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/catalog/%d?ok=common.saved", e.ID), http.StatusSeeOther)
}

func (s *Server) loadEntry(w http.ResponseWriter, r *http.Request, c *current) (catalog.Entry, bool) {
	id, err := pathID(r)
	var e catalog.Entry
	if err == nil {
		e, err = s.Catalog.Entry(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return e, false
	}
	return e, true
}

func (s *Server) entryEditPage(w http.ResponseWriter, r *http.Request, c *current) {
	e, ok := s.loadEntry(w, r, c)
	if !ok {
		return
	}
	if !policy.Allowed(c.user.Actor(), policy.CatalogEdit, policy.Target{DeptID: e.DeptID}) {
		s.denied(w, r, c, policy.CatalogEdit, "catalog_entry")
		return
	}
	s.renderEntryForm(w, r, c, http.StatusOK, &e, e.Draft, nil)
}

func (s *Server) entryUpdate(w http.ResponseWriter, r *http.Request, c *current) {
	e, ok := s.loadEntry(w, r, c)
	if !ok {
		return
	}
	content := contentFromForm(r)
	if _, err := s.Catalog.UpdateDraft(r.Context(), c.user.Actor(), e.ID, content); err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderEntryForm(w, r, c, ae.Status, &e, content, ae)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/catalog/%d?ok=common.saved", e.ID), http.StatusSeeOther)
}

type entryPageData struct {
	Entry     catalog.Entry
	Shown     catalog.Content // the published version for most readers, the working copy for the provider
	Versions  []catalog.Version
	Dept      identity.Department
	Class     string
	CanEdit   bool
	CanReview bool
	Steps     []string
	Changes   []catalog.Change // working copy vs last published version
	Contacts  []identity.Contact
	Ratings   catalog.RatingSummary
	CanRate   bool
	Related   []catalog.Entry
	// ShareAction is how the user's department may ask for the resource:
	// subscription, application or negotiation; empty when it may not.
	ShareAction string
	// The data behind the entry, when it is mounted.
	Resource   *resource.Resource
	Report     *resource.Batch
	Timeliness resource.Timeliness
	Preview    *resource.Preview
	Bars       []volumeBar
	VolumeW    int
	Usage      []dataservice.UsageRow // use by the data services per day
	CanMount   bool
	CanManage  bool
}

func (s *Server) entryPage(w http.ResponseWriter, r *http.Request, c *current) {
	if e, ok := s.loadEntry(w, r, c); ok {
		s.renderEntry(w, r, c, http.StatusOK, e, nil)
	}
}

func (s *Server) renderEntry(w http.ResponseWriter, r *http.Request, c *current, status int, e catalog.Entry, ae *apperr.Error) {
	a := c.user.Actor()
	d := entryPageData{Entry: e, Shown: e.Draft,
		CanEdit:   policy.Allowed(a, policy.CatalogEdit, policy.Target{DeptID: e.DeptID}),
		CanReview: policy.Allowed(a, policy.CatalogReview, policy.Target{DeptID: e.DeptID})}
	d.Versions, _ = s.Catalog.Versions(r.Context(), a, e.ID)
	d.Dept, _ = s.Identity.Department(r.Context(), e.DeptID)
	if len(d.Versions) > 0 {
		latest := d.Versions[0].Content
		if !d.CanEdit && !d.CanReview {
			d.Shown = latest // others read what was published
		} else if e.State != catalog.Published && e.State != catalog.Retired {
			d.Changes = catalog.DiffFields(latest, e.Draft)
		}
	}
	d.Contacts, _ = s.Identity.DataAdministrators(r.Context(), e.DeptID)
	d.Ratings, _ = s.Catalog.Ratings(r.Context(), e.ID)
	d.CanRate = e.PublishedVersion > 0 && e.State != catalog.Retired && e.DeptID != c.user.DeptID
	d.Related, _ = s.Catalog.Related(r.Context(), e, 6)
	if s.Resources != nil && e.PublishedVersion > 0 {
		if res, err := s.Resources.ByEntry(r.Context(), e.ID); err == nil {
			d.Resource, d.Timeliness = &res, res.Timeliness(time.Now())
			d.CanManage = policy.Allowed(a, policy.DataView, policy.Target{DeptID: res.DeptID})
			if b, err := s.Resources.LatestReport(r.Context(), res.Code); err == nil {
				d.Report = &b
			}
			if vol, err := s.Resources.Volume(r.Context(), res.Code, 14); err == nil {
				d.Bars, d.VolumeW = volumeBars(vol)
			}
			if s.Data != nil {
				d.Usage, _ = s.Data.ResourceUsage(r.Context(), res.Code, 14)
			}
			if policy.Allowed(a, policy.DataPreview, policy.Target{DeptID: res.DeptID}) && res.RecordCount > 0 {
				if p, err := s.Resources.Preview(r.Context(), a, res.Code, 10, s.Masker); err == nil {
					d.Preview = &p
				}
			}
		} else if e.State != catalog.Retired {
			d.CanMount = policy.Allowed(a, policy.ResourceMount, policy.Target{DeptID: e.DeptID})
		}
	}
	classes, _ := s.Catalog.Classifications(r.Context())
	for _, cl := range classes {
		if cl.Code == d.Shown.ClassCode {
			d.Class = cl.Name
		}
	}
	if e.PublishedVersion > 0 && e.State != catalog.Retired && e.DeptID != a.DeptID && len(d.Versions) > 0 &&
		policy.Allowed(a, policy.ShareApply, policy.Target{DeptID: a.DeptID}) {
		d.ShareAction = string(share.KindApplication)
		switch d.Versions[0].Content.ShareType {
		case catalog.ShareUnconditional:
			d.ShareAction = string(share.KindSubscription)
		case catalog.ShareNone:
			d.ShareAction = string(share.KindNegotiation)
		}
	}
	switch e.State {
	case catalog.Draft, catalog.Returned:
		if d.CanEdit {
			d.Steps = []string{"edit", "submit"}
		}
	case catalog.Submitted:
		if d.CanReview {
			d.Steps = []string{"approve", "return"}
		}
	case catalog.Approved:
		if d.CanReview {
			d.Steps = []string{"publish"}
		}
	case catalog.Published:
		if d.CanEdit {
			d.Steps = append(d.Steps, "change")
		}
		if d.CanReview {
			d.Steps = append(d.Steps, "retire")
		}
	}
	s.render(w, r, status, "entry", &page{Title: d.Shown.Name, User: &c.user, Active: "/catalog", Data: d, Err: ae})
}

func (s *Server) entryStepPost(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	a := c.user.Actor()
	ctx := r.Context()
	step := r.PathValue("step")
	switch step {
	case "submit":
		_, err = s.Catalog.Submit(ctx, a, id)
	case "approve":
		_, err = s.Catalog.Approve(ctx, a, id)
	case "publish":
		_, err = s.Catalog.Publish(ctx, a, id)
	case "return":
		reasons := []catalog.Reason{{Field: r.PostFormValue("field"), Text: r.PostFormValue("reason")}}
		_, err = s.Catalog.Return(ctx, a, id, reasons)
	case "change":
		_, err = s.Catalog.OpenChange(ctx, a, id, r.PostFormValue("reason"), r.PostFormValue("note"))
	case "retire":
		_, err = s.Catalog.Retire(ctx, a, id, r.PostFormValue("note"))
	case "rate":
		stars, _ := strconv.Atoi(r.PostFormValue("stars"))
		err = s.Catalog.Rate(ctx, a, id, stars, r.PostFormValue("comment"))
	default:
		err = apperr.ErrNotFound
	}
	if err != nil {
		ae, ok := apperr.As(err)
		e, lerr := s.Catalog.Entry(ctx, a, id)
		if !ok || ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound || lerr != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderEntry(w, r, c, ae.Status, e, ae)
		return
	}
	http.Redirect(w, r, fmt.Sprintf("/catalog/%d?ok=cat.done.%s", id, step), http.StatusSeeOther)
}

type diffData struct {
	Entry    catalog.Entry
	From, To int
	Versions []catalog.Version
	Rows     []diffRow
}

type diffRow struct {
	Field    string
	Old, New string
	Changed  bool
}

func (s *Server) entryDiffPage(w http.ResponseWriter, r *http.Request, c *current) {
	e, ok := s.loadEntry(w, r, c)
	if !ok {
		return
	}
	a := c.user.Actor()
	vs, _ := s.Catalog.Versions(r.Context(), a, e.ID)
	from, _ := strconv.Atoi(r.URL.Query().Get("from"))
	to, _ := strconv.Atoi(r.URL.Query().Get("to"))
	if from == 0 && to == 0 && len(vs) >= 2 {
		from, to = vs[1].Version, vs[0].Version
	}
	old, nw, err := s.versionPair(r.Context(), a, e.ID, from, to)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	// Side by side: every field of both versions, changed ones marked.
	var rows []diffRow
	add := func(field, o, n string) {
		rows = append(rows, diffRow{Field: field, Old: o, New: n, Changed: o != n})
	}
	of, nf := contentFields(old), contentFields(nw)
	for i := range of {
		add(of[i][0], of[i][1], nf[i][1])
	}
	items := map[string]bool{}
	for _, it := range old.Items {
		items[it.MachineName] = true
	}
	for _, it := range nw.Items {
		items[it.MachineName] = true
	}
	byName := func(cs catalog.Content, m string) string {
		for _, it := range cs.Items {
			if it.MachineName == m {
				return fmt.Sprintf("%s %s(%d)%s %s %s", it.Name, it.DataType, it.Length, map[bool]string{true: " 主键", false: ""}[it.Key], it.MaskRule, it.QualityRule)
			}
		}
		return ""
	}
	for _, it := range append(append([]catalog.DataItem{}, old.Items...), nw.Items...) {
		if !items[it.MachineName] {
			continue
		}
		items[it.MachineName] = false
		add("items."+it.MachineName, byName(old, it.MachineName), byName(nw, it.MachineName))
	}
	s.render(w, r, http.StatusOK, "entry_diff", &page{Title: T(langOf(r), "cat.diff"), User: &c.user, Active: "/catalog",
		Data: diffData{Entry: e, From: from, To: to, Versions: vs, Rows: rows}})
}

func contentFields(c catalog.Content) [][2]string {
	j := func(xs []string) string { return strings.Join(xs, "、") }
	methods := make([]string, len(c.ShareMethods))
	for i, m := range c.ShareMethods {
		methods[i] = string(m)
	}
	return [][2]string{
		{"name", c.Name}, {"class_code", c.ClassCode}, {"abstract", c.Abstract}, {"format", c.FormatClass + "/" + c.FormatType},
		{"keywords", j(c.Keywords)}, {"share_type", string(c.ShareType)}, {"share_condition", c.ShareCondition}, {"share_basis", c.ShareBasis},
		{"share_methods", j(methods)}, {"open_type", string(c.OpenType)}, {"open_condition", c.OpenCondition},
		{"update_cycle", c.UpdateCycle}, {"related_codes", j(c.RelatedCodes)}, {"classified", strconv.FormatBool(c.Classified)},
	}
}

type classData struct {
	Classes   []catalog.Classification
	CanManage bool
}

func (s *Server) classificationsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderClasses(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderClasses(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	cs, err := s.Catalog.Classifications(r.Context())
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, status, "classifications", &page{Title: T(langOf(r), "nav.classes"), User: &c.user, Active: "/classifications",
		Data: classData{Classes: cs, CanManage: policy.Allowed(c.user.Actor(), policy.ClassificationManage, policy.Target{})}, Err: ae, Form: form})
}

func (s *Server) classificationSave(w http.ResponseWriter, r *http.Request, c *current) {
	_, err := s.Catalog.SaveClassification(r.Context(), c.user.Actor(), catalog.Classification{Code: r.PostFormValue("code"), Name: r.PostFormValue("name")})
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderClasses(w, r, c, ae.Status, ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/classifications?ok=common.saved", http.StatusSeeOther)
}

type demandsData struct {
	Demands   []catalog.Demand
	CanRoute  bool
	MyEntries []catalog.Entry
	MyDept    int64
	Depts     []identity.Department
}

func (s *Server) demandsPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderDemands(w, r, c, http.StatusOK, nil, nil)
}

func (s *Server) renderDemands(w http.ResponseWriter, r *http.Request, c *current, status int, ae *apperr.Error, form url.Values) {
	q := r.URL.Query()
	ds, err := s.Catalog.Demands(r.Context(), catalog.DemandFilter{Query: q.Get("q"), State: q.Get("state")})
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	a := c.user.Actor()
	d := demandsData{Demands: ds, CanRoute: policy.Allowed(a, policy.CatalogReview, policy.Target{}), MyDept: a.DeptID}
	if policy.Allowed(a, policy.CatalogEdit, policy.Target{DeptID: a.DeptID}) {
		d.MyEntries, _ = s.Catalog.Entries(r.Context(), a, catalog.Filter{DeptID: a.DeptID, Limit: 500})
	}
	d.Depts, _ = s.Identity.Departments(r.Context())
	if form == nil {
		form = q
	}
	s.render(w, r, status, "demands", &page{Title: T(langOf(r), "nav.demands"), User: &c.user, Active: "/demands", DeptMap: s.deptMap(r),
		Data: d, Err: ae, Form: form})
}

func (s *Server) demandPost(w http.ResponseWriter, r *http.Request, c *current) {
	dept, _ := strconv.ParseInt(r.PostFormValue("suggested_dept_id"), 10, 64)
	_, err := s.Catalog.PostDemand(r.Context(), c.user.Actor(), catalog.DemandInput{Title: r.PostFormValue("title"),
		Description: r.PostFormValue("description"), Purpose: r.PostFormValue("purpose"), SuggestedDeptID: dept})
	s.afterDemand(w, r, c, err)
}

func (s *Server) demandOp(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		switch r.PathValue("op") {
		case "route":
			dept, _ := strconv.ParseInt(r.PostFormValue("dept_id"), 10, 64)
			_, err = s.Catalog.RouteDemand(r.Context(), c.user.Actor(), id, dept)
		case "answer":
			entry, _ := strconv.ParseInt(r.PostFormValue("entry_id"), 10, 64)
			_, err = s.Catalog.AnswerDemand(r.Context(), c.user.Actor(), id, entry, r.PostFormValue("answer"))
		default:
			err = apperr.ErrNotFound
		}
	}
	s.afterDemand(w, r, c, err)
}

func (s *Server) afterDemand(w http.ResponseWriter, r *http.Request, c *current, err error) {
	if err != nil {
		ae, ok := apperr.As(err)
		if !ok || ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderDemands(w, r, c, ae.Status, ae, r.PostForm)
		return
	}
	http.Redirect(w, r, "/demands?ok=common.saved", http.StatusSeeOther)
}

func (s *Server) classificationImport(w http.ResponseWriter, r *http.Request, c *current) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<20)
	var err error
	f, _, ferr := r.FormFile("file")
	if ferr != nil {
		err = apperr.Invalid("catalog.class_csv_missing", "file", "请选择CSV文件", "choose a CSV file")
	} else {
		defer f.Close()
		var rows []catalog.Classification
		if rows, err = catalog.ParseClassificationCSV(f); err == nil {
			_, err = s.Catalog.ImportClassifications(r.Context(), c.user.Actor(), rows)
		}
	}
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderClasses(w, r, c, ae.Status, ae, nil)
		return
	}
	http.Redirect(w, r, "/classifications?ok=common.saved", http.StatusSeeOther)
}
