package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/apperr"
	"govshare/internal/identity"
	"govshare/internal/notify"
	"govshare/internal/policy"
)

// ----- pages -----

func (s *Server) notifyRoutes() {
	if s.Notify == nil {
		return
	}
	m := s.mux
	m.HandleFunc("GET /notifications", s.withSession(identity.StageReady, s.notificationsPage))
	m.HandleFunc("POST /notifications/read-all", s.withSession(identity.StageReady, s.notificationsReadAll))
	m.HandleFunc("POST /notifications/{id}/read", s.withSession(identity.StageReady, s.notificationRead))
	m.HandleFunc("GET /webhooks", s.withSession(identity.StageReady, s.webhooksPage))
	m.HandleFunc("POST /webhooks", s.withSession(identity.StageReady, s.webhookRegister))
	m.HandleFunc("GET /webhooks/{id}", s.withSession(identity.StageReady, s.webhookPage))
	m.HandleFunc("POST /webhooks/{id}/{op}", s.withSession(identity.StageReady, s.webhookOp))
	m.HandleFunc("POST /webhook-deliveries/{id}/redeliver", s.withSession(identity.StageReady, s.deliveryRedeliver))
}

// notifyNav adds the notifications, with the unread count, beside the
// to-dos, and the webhooks to the integration group for those who manage
// them.
func (s *Server) notifyNav(r *http.Request, u *identity.User, groups []navGroup) {
	if s.Notify == nil || len(groups) == 0 {
		return
	}
	a := u.Actor()
	n, err := s.Notify.UnreadCount(r.Context(), a)
	if err != nil {
		s.Log.Warn("unread notifications", "request_id", requestID(r.Context()), "err", err)
	}
	groups[0].Items = append(groups[0].Items, navItem{Key: "nav.notifications", Href: "/notifications", Count: n, CountID: "notify-count"})
	if !policy.Allowed(a, policy.WebhookManage, policy.Target{DeptID: a.DeptID}) {
		return
	}
	for i, g := range groups {
		if g.Title != "nav.group.dev" {
			continue
		}
		at := len(g.Items)
		if len(g.Items) > 0 && g.Items[at-1].Href == "/api/docs" {
			at-- // the reference stays last
		}
		groups[i].Items = append(g.Items[:at:at], append([]navItem{{Key: "nav.webhooks", Href: "/webhooks"}}, g.Items[at:]...)...)
	}
}

type notificationsData struct {
	Items      []notify.Notification
	UnreadOnly bool
	Unread     int
}

func (s *Server) notificationsPage(w http.ResponseWriter, r *http.Request, c *current) {
	a := c.user.Actor()
	d := notificationsData{UnreadOnly: r.URL.Query().Get("unread") == "1"}
	var err error
	if d.Items, err = s.Notify.List(r.Context(), a, d.UnreadOnly, 100); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	if d.Unread, err = s.Notify.UnreadCount(r.Context(), a); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "notifications", &page{Title: T(langOf(r), "notify.title"), User: &c.user, Active: "/notifications", Data: d})
}

// notificationRead marks one notification read, then opens the page it
// points to (next) or returns to the list.
func (s *Server) notificationRead(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err == nil {
		err = s.Notify.MarkRead(r.Context(), c.user.Actor(), id)
	}
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	next := "/notifications"
	if n := r.PostFormValue("next"); n != "" {
		next = safeNext(n)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) notificationsReadAll(w http.ResponseWriter, r *http.Request, c *current) {
	if err := s.Notify.MarkAllRead(r.Context(), c.user.Actor()); err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/notifications?ok=notify.all_read", http.StatusSeeOther)
}

type webhooksData struct {
	DeptID int64
	// Departments are the choices of an actor who manages the webhooks
	// of more than their own department (the platform administrator).
	Departments []identity.Department
	Webhooks    []notify.Webhook
	Secret      string // shown once after registering or rotating
	SecretFor   int64
}

// webhookDept is the department a webhooks page is about: the one asked
// for, or the actor's own.
func webhookDept(r *http.Request, a policy.Actor) int64 {
	v := r.URL.Query().Get("dept")
	if r.Method == http.MethodPost {
		v = r.PostFormValue("dept_id")
	}
	if id, err := strconv.ParseInt(v, 10, 64); err == nil && id > 0 {
		return id
	}
	return a.DeptID
}

func (s *Server) webhooksPage(w http.ResponseWriter, r *http.Request, c *current) {
	s.renderWebhooks(w, r, c, http.StatusOK, webhooksData{DeptID: webhookDept(r, c.user.Actor())}, nil)
}

func (s *Server) renderWebhooks(w http.ResponseWriter, r *http.Request, c *current, status int, d webhooksData, ae *apperr.Error) {
	a := c.user.Actor()
	hooks, err := s.Notify.Webhooks(r.Context(), a, d.DeptID)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d.Webhooks = hooks
	if policy.Allowed(a, policy.WebhookManage, policy.Target{DeptID: -1}) {
		if ds, err := s.Identity.Departments(r.Context()); err == nil {
			d.Departments = ds
		}
	}
	form := r.PostForm
	if d.Secret != "" {
		form = nil
	}
	s.render(w, r, status, "webhooks", &page{Title: T(langOf(r), "webhook.title"), User: &c.user, Active: "/webhooks", Data: d, Err: ae, Form: form,
		DeptMap: s.deptMap(r)})
}

// formEvents splits the event filter as typed: commas, spaces or lines.
func formEvents(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '，' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
}

func (s *Server) webhookRegister(w http.ResponseWriter, r *http.Request, c *current) {
	dept := webhookDept(r, c.user.Actor())
	hook, sec, err := s.Notify.RegisterWebhook(r.Context(), c.user.Actor(), notify.WebhookInput{DeptID: dept, URL: r.PostFormValue("url"),
		Events: formEvents(r.PostFormValue("events"))})
	if err != nil {
		ae, ok := fixable(err)
		if !ok {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderWebhooks(w, r, c, ae.Status, webhooksData{DeptID: dept}, ae)
		return
	}
	// Rendered, not redirected, so the secret never sits in a URL.
	s.renderWebhooks(w, r, c, http.StatusCreated, webhooksData{DeptID: hook.DeptID, Secret: sec, SecretFor: hook.ID}, nil)
}

type webhookData struct {
	Webhook    notify.Webhook
	Deliveries []notify.Delivery
	Secret     string // shown once after rotating
}

func (s *Server) webhookPage(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.renderWebhook(w, r, c, id, "")
}

func (s *Server) renderWebhook(w http.ResponseWriter, r *http.Request, c *current, id int64, secret string) {
	a := c.user.Actor()
	hook, err := s.Notify.Webhook(r.Context(), a, id)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	ds, err := s.Notify.Deliveries(r.Context(), a, id, 100)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "webhook", &page{Title: T(langOf(r), "webhook.log"), User: &c.user, Active: "/webhooks",
		Data: webhookData{Webhook: hook, Deliveries: ds, Secret: secret}, DeptMap: s.deptMap(r)})
}

func (s *Server) webhookOp(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	switch r.PathValue("op") {
	case "rotate":
		_, sec, err := s.Notify.RotateWebhookSecret(r.Context(), c.user.Actor(), id)
		if err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		s.renderWebhook(w, r, c, id, sec)
	case "disable":
		if err := s.Notify.DisableWebhook(r.Context(), c.user.Actor(), id); err != nil {
			s.errorPage(w, r, &c.user, err)
			return
		}
		http.Redirect(w, r, "/webhooks/"+itoa(id)+"?ok=webhook.disabled", http.StatusSeeOther)
	default:
		s.errorPage(w, r, &c.user, apperr.ErrNotFound)
	}
}

func (s *Server) deliveryRedeliver(w http.ResponseWriter, r *http.Request, c *current) {
	id, err := pathID(r)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	d, err := s.Notify.Redeliver(r.Context(), c.user.Actor(), id)
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	http.Redirect(w, r, "/webhooks/"+itoa(d.WebhookID)+"?ok=webhook.requeued", http.StatusSeeOther)
}

// ----- API -----

type secretWebhook struct {
	Body struct {
		Secret  string         `json:"secret" doc:"签名密钥，仅此一次显示 / the signing secret, shown only this once"`
		Webhook notify.Webhook `json:"webhook"`
	}
}

func withSecret(w notify.Webhook, sec string) *secretWebhook {
	out := &secretWebhook{}
	out.Body.Secret, out.Body.Webhook = sec, w
	return out
}

func (s *Server) notifyAPI(api huma.API) {
	if s.Notify == nil {
		return
	}
	const tagN, tagW = "通知 Notifications", "Webhook"

	huma.Register(api, op("list-notifications", http.MethodGet, "/api/v1/notifications", tagN, "我的通知，未读在前 / my notifications, unread first"),
		func(ctx context.Context, in *struct {
			Unread bool `query:"unread" doc:"只看未读 / unread only"`
			Limit  int  `query:"limit" minimum:"0" maximum:"200" doc:"条数(默认50) / how many (default 50)"`
		}) (*struct{ Body []notify.Notification }, error) {
			ns, err := s.Notify.List(ctx, principalFrom(ctx).actor(), in.Unread, in.Limit)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if ns == nil {
				ns = []notify.Notification{}
			}
			return &struct{ Body []notify.Notification }{Body: ns}, nil
		})

	read := op("read-notification", http.MethodPost, "/api/v1/notifications/{id}/read", tagN, "标为已读 / mark one read")
	read.DefaultStatus = http.StatusNoContent
	huma.Register(api, read, func(ctx context.Context, in *IDPath) (*struct{}, error) {
		return nil, s.failOrNil(ctx, s.Notify.MarkRead(ctx, principalFrom(ctx).actor(), in.ID))
	})

	readAll := op("read-all-notifications", http.MethodPost, "/api/v1/notifications/read-all", tagN, "全部标为已读 / mark all read")
	readAll.DefaultStatus = http.StatusNoContent
	huma.Register(api, readAll, func(ctx context.Context, _ *struct{}) (*struct{}, error) {
		return nil, s.failOrNil(ctx, s.Notify.MarkAllRead(ctx, principalFrom(ctx).actor()))
	})

	huma.Register(api, op("list-webhooks", http.MethodGet, "/api/v1/webhooks", tagW, "部门的Webhook / a department's webhooks"),
		func(ctx context.Context, in *struct {
			DeptID int64 `query:"dept_id" doc:"部门ID，缺省为本部门 / department id, default your own"`
		}) (*struct{ Body []notify.Webhook }, error) {
			a := principalFrom(ctx).actor()
			if in.DeptID == 0 {
				in.DeptID = a.DeptID
			}
			hooks, err := s.Notify.Webhooks(ctx, a, in.DeptID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if hooks == nil {
				hooks = []notify.Webhook{}
			}
			return &struct{ Body []notify.Webhook }{Body: hooks}, nil
		})

	reg := op("register-webhook", http.MethodPost, "/api/v1/webhooks", tagW, "注册Webhook(返回签名密钥，仅一次) / register a webhook (returns its secret, once)")
	reg.DefaultStatus = http.StatusCreated
	huma.Register(api, reg, func(ctx context.Context, in *struct{ Body notify.WebhookInput }) (*secretWebhook, error) {
		w, sec, err := s.Notify.RegisterWebhook(ctx, principalFrom(ctx).actor(), in.Body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return withSecret(w, sec), nil
	})

	dis := op("disable-webhook", http.MethodPost, "/api/v1/webhooks/{id}/disable", tagW, "停用Webhook / disable a webhook")
	dis.DefaultStatus = http.StatusNoContent
	huma.Register(api, dis, func(ctx context.Context, in *IDPath) (*struct{}, error) {
		return nil, s.failOrNil(ctx, s.Notify.DisableWebhook(ctx, principalFrom(ctx).actor(), in.ID))
	})

	huma.Register(api, op("rotate-webhook-secret", http.MethodPost, "/api/v1/webhooks/{id}/rotate", tagW, "轮换签名密钥(仅一次显示) / rotate the signing secret (shown once)"),
		func(ctx context.Context, in *IDPath) (*secretWebhook, error) {
			w, sec, err := s.Notify.RotateWebhookSecret(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return withSecret(w, sec), nil
		})

	huma.Register(api, op("list-webhook-deliveries", http.MethodGet, "/api/v1/webhooks/{id}/deliveries", tagW, "投递记录，新的在前 / the delivery log, newest first"),
		func(ctx context.Context, in *struct {
			IDPath
			Limit int `query:"limit" minimum:"0" maximum:"200" doc:"条数(默认50) / how many (default 50)"`
		}) (*struct{ Body []notify.Delivery }, error) {
			ds, err := s.Notify.Deliveries(ctx, principalFrom(ctx).actor(), in.ID, in.Limit)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if ds == nil {
				ds = []notify.Delivery{}
			}
			return &struct{ Body []notify.Delivery }{Body: ds}, nil
		})

	huma.Register(api, op("redeliver-webhook-delivery", http.MethodPost, "/api/v1/webhook-deliveries/{id}/redeliver", tagW, "重新投递 / send a delivery again"),
		func(ctx context.Context, in *IDPath) (*struct{ Body notify.Delivery }, error) {
			d, err := s.Notify.Redeliver(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body notify.Delivery }{Body: d}, nil
		})
}
