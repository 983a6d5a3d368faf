// Package proxy is the platform's side of service resources (服务资源): a
// department registers an API it already runs for a published entry that
// may be shared by interface, and consumers holding a grant call it
// through the platform, which checks the grant, adds the provider's
// credentials, forwards the call and records it — time, parties,
// operation, sizes, status, duration — as X-Road's operational monitoring
// does. A timeout, a circuit breaker and a response size cap per service
// keep a failing provider from taking the platform down with it.
package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/catalog"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/share"
	"govshare/internal/store"
)

// Operation is one operation a service offers: a method and a path
// pattern under the service's base URL, whose {name} parts each match
// within one path segment.
type Operation struct {
	Method  string `json:"method" doc:"HTTP方法 / HTTP method" example:"GET"`
	Path    string `json:"path" doc:"路径模式，{name} 匹配一段路径 / path pattern; {name} matches within one segment" example:"/persons/{id}"`
	Summary string `json:"summary,omitempty" doc:"说明 / summary"`
}

// String is how the call log names the operation: "GET /persons/{id}".
func (o Operation) String() string { return o.Method + " " + o.Path }

// Service states.
const (
	Active   = "active"
	Disabled = "disabled"
)

// Service is a registered service resource.
type Service struct {
	ID      int64  `json:"id"`
	EntryID int64  `json:"entry_id" doc:"目录条目 / catalog entry"`
	Code    string `json:"code" doc:"信息资源代码；调用地址为 /api/v1/services/{code}/…，代码中的“/”写作 %2F / resource code; call /api/v1/services/{code}/… with “/” in the code written %2F"`
	Name    string `json:"name" doc:"信息资源名称 / resource name"`
	DeptID  int64  `json:"dept_id" doc:"提供方部门 / provider department"`
	// BaseURL and CredentialHeader are shown only to those who may read
	// the service's call log (its provider, platform administrators,
	// auditors); the credential itself never leaves the server.
	BaseURL          string      `json:"base_url,omitempty" doc:"提供方接口地址(仅提供方、平台管理员、审计员可见) / the provider's base URL (shown to the provider, platform administrators and auditors)"`
	Operations       []Operation `json:"operations"`
	HasOpenAPI       bool        `json:"has_openapi" doc:"操作由 OpenAPI 文档生成 / operations derived from an OpenAPI document"`
	CredentialHeader string      `json:"credential_header,omitempty" doc:"平台转发时附加凭据的请求头 / header the platform adds the provider's credential in"`
	HasCredential    bool        `json:"has_credential" doc:"已设置凭据(凭据值从不显示) / a credential is set (its value is never shown)"`
	TimeoutSeconds   int         `json:"timeout_seconds" doc:"超时秒数 / timeout in seconds"`
	MaxResponseBytes int64       `json:"max_response_bytes" doc:"响应大小上限(字节) / largest response in bytes"`
	State            string      `json:"state" doc:"active / disabled"`
	// Circuit is the circuit breaker's state on the server that answers.
	Circuit   string    `json:"circuit" doc:"本服务器上的熔断状态 closed/open/half_open / circuit breaker state on this server"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Settings are what a provider's data administrator sets for a service.
type Settings struct {
	BaseURL    string      `json:"base_url" doc:"提供方接口地址 http(s)://… / the provider's base URL" example:"https://api.mz.example.gov.cn/v1"`
	Operations []Operation `json:"operations,omitempty" doc:"开放的操作；给出 OpenAPI 文档时由其 paths 生成，不必填写 / operations offered; derived from the OpenAPI document when one is given"`
	OpenAPI    string      `json:"openapi,omitempty" doc:"OpenAPI 文档(JSON 或 YAML)，可选；paths 相对于接口地址 / OpenAPI document (JSON or YAML), optional; its paths are relative to the base URL"`
	// CredentialHeader and CredentialValue are what the platform adds to
	// every forwarded call. An empty value on a change keeps the current
	// one; an empty header removes the credential.
	CredentialHeader string `json:"credential_header,omitempty" doc:"附加凭据的请求头，如 X-Api-Key；空为不附加 / header for the credential, e.g. X-Api-Key; empty: none"`
	CredentialValue  string `json:"credential_value,omitempty" doc:"凭据值：加密保存，从不返回；修改时留空保留原值 / the credential: stored sealed, never returned; leave empty on a change to keep it"`
	TimeoutSeconds   int    `json:"timeout_seconds,omitempty" doc:"超时秒数(1–60，默认10)，含传完应答 / timeout in seconds (1–60, default 10) for the whole call, answer included"`
	MaxResponseBytes int64  `json:"max_response_bytes,omitempty" doc:"响应大小上限字节数(默认10 MiB，最多1 GiB) / largest response in bytes (default 10 MiB, at most 1 GiB)"`
}

// Registration registers a service for a published entry.
type Registration struct {
	EntryID int64 `json:"entry_id" doc:"本部门已发布、共享方式含接口(api)的目录条目 / a published entry of your department shared by interface (api)"`
	Settings
}

// Limits of a service's settings.
const (
	DefaultTimeout     = 10 * time.Second
	MaxTimeout         = 60 * time.Second
	DefaultMaxResponse = 10 << 20
	MaxMaxResponse     = 1 << 30
	maxOperations      = 200
	maxOpenAPI         = 2 << 20
)

// Errors of registration and of calls.
var (
	ErrEntry       = apperr.Invalid("service.entry_invalid", "entry_id", "请选择本部门已发布的目录条目", "choose a published entry of your department")
	ErrEntryNotAPI = apperr.Invalid("service.entry_not_api", "entry_id", "该目录条目的共享方式不含接口(api)，不能登记为服务资源", "the entry is not shared by interface (api); it cannot be a service resource")
	ErrExists      = apperr.New(http.StatusConflict, "service.exists", "该目录条目已登记服务资源，请修改原有服务", "the entry already has a service resource; change that one").OnField("entry_id")
	ErrBaseURL     = apperr.Invalid("service.base_url_invalid", "base_url", "接口地址应为 http:// 或 https:// 开头的完整地址，不含用户名密码、查询串和#片段",
		"the base URL is a full http:// or https:// URL without user name, password, query or fragment")
	ErrOperationsNone  = apperr.Invalid("service.operations_required", "operations", "请至少登记一个操作(如 GET /persons/{id})，或提供 OpenAPI 文档", "register at least one operation (e.g. GET /persons/{id}) or give an OpenAPI document")
	ErrOperationsTwice = apperr.Invalid("service.operations_twice", "operations", "给出了 OpenAPI 文档时操作由其生成，请不要另外填写操作", "operations come from the OpenAPI document when one is given; do not list them as well")
	ErrOperationsMany  = apperr.Invalid("service.operations_too_many", "operations", "操作最多200个", "at most 200 operations")
	ErrOperation       = apperr.Invalid("service.operation_invalid", "operations", "操作应为“方法 路径”，方法为 GET/POST/PUT/PATCH/DELETE/HEAD/OPTIONS，路径以“/”开头，参数写作 {name}",
		"an operation is “METHOD /path”: GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS, a path starting with “/”, parameters written {name}")
	ErrOperationDup = apperr.Invalid("service.operation_duplicate", "operations", "操作重复", "the same operation is listed twice")
	ErrOpenAPI      = apperr.Invalid("service.openapi_invalid", "openapi", "OpenAPI 文档无法读取：应为 JSON 或 YAML，含 openapi(或 swagger)和 paths", "the OpenAPI document cannot be read: JSON or YAML with openapi (or swagger) and paths")
	ErrCredHeader   = apperr.Invalid("service.credential_header_invalid", "credential_header", "凭据请求头名称无效，或与平台使用的请求头冲突", "the credential header is not a valid name or clashes with a header the platform sets")
	ErrCredRequired = apperr.Invalid("service.credential_required", "credential_value", "请填写凭据值", "give the credential's value")
	ErrTimeout      = apperr.Invalid("service.timeout_invalid", "timeout_seconds", "超时应为1到60秒", "the timeout is 1 to 60 seconds")
	ErrMaxResponse  = apperr.Invalid("service.max_response_invalid", "max_response_bytes", "响应大小上限应为1字节到1 GiB", "the response limit is 1 byte to 1 GiB")
	ErrState        = apperr.New(http.StatusConflict, "service.state_conflict", "服务已处于该状态", "the service is already in that state")

	ErrUnknown          = apperr.New(http.StatusNotFound, "service.unknown", "服务不存在：请核对资源代码，代码中的“/”写作 %2F", "no such service: check the resource code and write “/” in it as %2F")
	ErrDisabled         = apperr.New(http.StatusServiceUnavailable, "service.disabled", "提供部门已停用该服务", "the provider has disabled this service")
	ErrOperationUnknown = apperr.New(http.StatusNotFound, "service.operation_unknown", "服务没有登记此操作(方法和路径)", "the service has no such operation (method and path) registered")
	ErrUnavailable      = apperr.New(http.StatusServiceUnavailable, "service.unavailable", "提供部门的接口连续失败，平台暂停转发(熔断)，请稍后重试", "the provider's API failed repeatedly; the platform stopped forwarding for now (circuit open); retry later")
	ErrProviderDown     = apperr.New(http.StatusBadGateway, "service.provider_down", "无法连接提供部门的接口", "the provider's API cannot be reached")
	ErrProviderTimeout  = apperr.New(http.StatusGatewayTimeout, "service.timeout", "提供部门的接口未在规定时间内应答", "the provider's API did not answer in time")
	ErrTooLarge         = apperr.New(http.StatusBadGateway, "service.response_too_large", "提供部门接口的应答超过登记的大小上限", "the provider's answer exceeds the registered size limit")
	// ErrClientGone marks a call whose consumer went away before the
	// answer was complete; nobody is left to read it.
	ErrClientGone = apperr.New(499, "service.client_gone", "调用方已断开", "the consumer closed the connection")
)

// Auditor writes audit events; Append returns once the event is durable.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Grants decides uses (share.Service.Permit).
type Grants interface {
	Permit(ctx context.Context, u share.Use) (share.Permit, error)
}

// Catalog finds published entries (catalog.Service.Published).
type Catalog interface {
	Published(ctx context.Context, id int64) (catalog.Entry, catalog.Content, error)
}

// Config tunes the forwarding.
type Config struct {
	// FailureThreshold consecutive failures or timeouts open a service's
	// circuit (default 5); it stays open OpenFor (default 30 s), then
	// lets one probe through.
	FailureThreshold int
	OpenFor          time.Duration
	// Transport carries the forwarded calls; nil for the default.
	Transport http.RoundTripper
	Log       *slog.Logger
}

// Deps are what the proxy needs.
type Deps struct {
	DB      *store.DB
	Audit   Auditor
	Grants  Grants
	Catalog Catalog
	Keys    *secret.Keys
	Config  Config
}

// Proxy registers service resources and forwards consumers' calls.
type Proxy struct {
	db       *store.DB
	audit    Auditor
	grants   Grants
	catalog  Catalog
	seal     *secret.Sealer
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time
	cfg      Config
	services *ttlCache[string, *target]
	depts    *ttlCache[int64, string]
	calls    *callLog

	mu       sync.Mutex
	breakers map[int64]*breaker
}

// New builds the proxy.
func New(d Deps) *Proxy {
	cfg := d.Config
	if cfg.FailureThreshold <= 0 {
		cfg.FailureThreshold = 5
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = 30 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			// Departments' APIs are reached directly, never through a
			// proxy picked up from the environment.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 5 * time.Second,
			// Bodies pass through as the provider encoded them.
			DisableCompression: true,
		}
	}
	return &Proxy{db: d.DB, audit: d.Audit, grants: d.Grants, catalog: d.Catalog, seal: d.Keys.Sealer("service/credential"),
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		log:    cfg.Log, now: store.Now, cfg: cfg, breakers: map[int64]*breaker{},
		services: newTTLCache[string, *target](time.Second), depts: newTTLCache[int64, string](time.Minute), calls: &callLog{db: d.DB}}
}

// SetClock replaces the clock of the call log for tests.
func (p *Proxy) SetClock(now func() time.Time) { p.now = now }

func (p *Proxy) authorize(ctx context.Context, actor policy.Actor, act policy.Action, dept int64, obj string) error {
	if err := policy.Check(actor, act, policy.Target{DeptID: dept}); err != nil {
		_ = p.audit.Append(ctx, audit.By(actor, string(act), "service", obj, audit.ResultDenied, nil))
		return err
	}
	return nil
}

// ttlCache keeps values a short time, so that every call need not read
// the database and changes made on other servers still arrive soon.
type ttlCache[K comparable, V any] struct {
	mu      sync.Mutex
	ttl     time.Duration
	entries map[K]ttlEntry[V]
}

type ttlEntry[V any] struct {
	v      V
	loaded time.Time
}

func newTTLCache[K comparable, V any](ttl time.Duration) *ttlCache[K, V] {
	return &ttlCache[K, V]{ttl: ttl, entries: map[K]ttlEntry[V]{}}
}

func (c *ttlCache[K, V]) get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || time.Since(e.loaded) > c.ttl {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[K, V]) put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) > 10000 {
		clear(c.entries)
	}
	c.entries[k] = ttlEntry[V]{v: v, loaded: time.Now()}
}

func (c *ttlCache[K, V]) drop() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
