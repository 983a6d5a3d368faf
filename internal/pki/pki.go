// Package pki is the platform's own certificate authority and the registry
// of the exchange nodes (前置机) it certifies. A department administrator
// creates a node and gets a one-time enrolment code; the node sends the code
// with a certificate request and receives its client certificate; from then
// on the node and the center talk mutually authenticated TLS, and revoking
// the node refuses its certificate at once.
//
// The CA lives in the database (its key sealed with the master key), so
// every server sharing the database issues and verifies with the same CA.
// The web pages, the CLI and the agent build on this package; it knows
// nothing of HTTP beyond crypto/tls.
package pki

import (
	"context"
	"net/http"
	"sync"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
)

// NodeState is where a node is in its life.
type NodeState string

// Node states: pending until it enrols with its code, active while its
// certificate is honoured, revoked for good.
const (
	NodePending NodeState = "pending"
	NodeActive  NodeState = "active"
	NodeRevoked NodeState = "revoked"
)

// Node is a department's front-end exchange node (前置机).
type Node struct {
	ID            int64     `json:"id"`
	DeptID        int64     `json:"dept_id"`
	Name          string    `json:"name" doc:"前置机名称 / node name"`
	State         NodeState `json:"state" doc:"pending / active / revoked"`
	CodeExpiresAt time.Time `json:"code_expires_at" doc:"注册码有效期 / when the enrolment code expires"`
	CertSerial    string    `json:"cert_serial,omitempty" doc:"当前证书序列号(十六进制) / serial of the current certificate (hex)"`
	CertNotAfter  time.Time `json:"cert_not_after,omitzero" doc:"当前证书到期时间 / when the current certificate expires"`
	EnrolledAt    time.Time `json:"enrolled_at,omitzero"`
	LastSeenAt    time.Time `json:"last_seen_at,omitzero" doc:"最近心跳 / last heartbeat"`
	CreatedBy     int64     `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	RevokedAt     time.Time `json:"revoked_at,omitzero"`
	RevokeReason  string    `json:"revoke_reason,omitempty"`
}

// Enrolment is a node waiting for its agent, as its one-time code was
// issued. The code itself is returned beside it, once, and never stored.
type Enrolment struct {
	Node      Node      `json:"node"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Validity periods. Server certificates live in memory only and are
// renewed when a third of their life is left.
const (
	CAValidity     = 10 * 365 * 24 * time.Hour
	NodeValidity   = 365 * 24 * time.Hour
	ServerValidity = 90 * 24 * time.Hour
	CodeValidity   = 24 * time.Hour
)

// Errors of nodes and enrolment. A wrong code and a code of a cancelled
// enrolment share one code, so guessing learns nothing.
var (
	ErrNodeName      = apperr.Invalid("pki.node_name_invalid", "name", "前置机名称不能为空，且不超过64个字符", "the node name is required, at most 64 characters")
	ErrNodeNameTaken = apperr.New(http.StatusConflict, "pki.node_name_taken", "本部门已有同名前置机", "the department already has a node of this name").OnField("name")
	ErrDept          = apperr.Invalid("pki.dept_unknown", "dept_id", "部门不存在", "no such department")
	ErrReason        = apperr.Invalid("pki.reason_required", "reason", "请说明吊销理由", "give a reason for the revocation")
	ErrNodeState     = apperr.New(http.StatusConflict, "pki.node_state_conflict", "前置机当前状态下不能执行此操作", "this cannot be done in the node's current state")
	ErrCodeInvalid   = apperr.New(http.StatusUnauthorized, "pki.enrolment_code_invalid", "注册码无效", "the enrolment code is not valid")
	ErrCodeUsed      = apperr.New(http.StatusConflict, "pki.enrolment_code_used", "注册码已使用过，请在平台上为前置机重新生成", "the enrolment code was already used; create a new one on the platform")
	ErrCodeExpired   = apperr.New(http.StatusUnauthorized, "pki.enrolment_code_expired", "注册码已过期(有效期24小时)，请在平台上重新生成", "the enrolment code expired (it is valid for 24 hours); create a new one on the platform")
	ErrCSR           = apperr.Invalid("pki.csr_invalid", "csr", "证书请求无效：应为PEM格式的PKCS#10请求且签名正确", "the certificate request is not valid: send a PEM PKCS#10 request with a correct signature")
	ErrCSRKey        = apperr.Invalid("pki.csr_key_unsupported", "csr", "证书请求的密钥类型不受支持：请使用ECDSA P-256/P-384、Ed25519或至少2048位的RSA", "the request's key is not supported: use ECDSA P-256/P-384, Ed25519 or RSA of at least 2048 bits")
	ErrNoCertificate = apperr.New(http.StatusUnauthorized, "pki.node_certificate_required", "需要平台签发的前置机证书", "a node certificate issued by the platform is required")
	ErrNodeRefused   = apperr.New(http.StatusUnauthorized, "pki.node_refused", "前置机证书未知或已吊销", "the node's certificate is unknown or revoked")
)

// Auditor is the part of the audit log the PKI needs.
type Auditor interface {
	Append(ctx context.Context, e audit.Event) error
}

// Service is the platform CA and the node registry.
type Service struct {
	db    *store.DB
	audit Auditor
	seal  *secret.Sealer
	now   func() time.Time

	mu sync.Mutex // guards ca while it is loaded or created
	ca *authority

	srvMu   sync.Mutex // guards servers; held while one is issued
	servers map[string]*serverCert

	status *statusCache
}

// NewService builds the service. The CA is loaded (or created) on first use
// or by EnsureCA; its key is sealed with keys.
func NewService(db *store.DB, a Auditor, keys *secret.Keys) *Service {
	return &Service{db: db, audit: a, seal: keys.Sealer("pki"), now: store.Now,
		servers: map[string]*serverCert{}, status: newStatusCache(2 * time.Second)}
}

// SetClock replaces the clock for tests.
func (s *Service) SetClock(now func() time.Time) { s.now = now }

func (s *Service) authorize(ctx context.Context, actor policy.Actor, deptID int64, obj string) error {
	if err := policy.Check(actor, policy.NodeManage, policy.Target{DeptID: deptID}); err != nil {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.NodeManage), "node", obj, audit.ResultDenied, map[string]any{"dept_id": deptID}))
		return err
	}
	return nil
}
