package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"govshare/internal/audit"
)

// ServerTLS returns the TLS configuration of the center's endpoint for
// nodes: TLS 1.3, the server certificate for hosts (renewed as it ages),
// and a client certificate required from every peer, issued by the
// platform CA and neither revoked nor unknown to the database. Refusals of
// certificates the CA signed are audited; any other certificate is turned
// away by crypto/tls before this code sees it and shows only in the
// server's error log. Handlers then call NodeIdentity on each request, so
// a connection opened before a revocation gets no further answers.
//
// The configuration is chosen per connection (GetConfigForClient), so it
// works as it is with http.Server, tls.Listen and httptest alike. It offers
// no ALPN protocol, so HTTP runs as HTTP/1.1.
func (s *Service) ServerTLS(ctx context.Context, hosts []string) (*tls.Config, error) {
	a, err := s.authority(ctx)
	if err != nil {
		return nil, err
	}
	// Fail now, not at the first handshake, if hosts are unusable.
	if _, err := s.ServerCertificate(ctx, hosts); err != nil {
		return nil, err
	}
	hosts = slices.Clone(hosts)
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  a.pool,
	}
	cfg := base.Clone()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := s.ServerCertificate(hello.Context(), hosts)
		if err != nil {
			return nil, err
		}
		hctx := hello.Context()
		if audit.RequestFrom(hctx).ClientAddr == "" && hello.Conn != nil {
			host, _, _ := net.SplitHostPort(hello.Conn.RemoteAddr().String())
			hctx = audit.WithRequest(hctx, audit.Request{ClientAddr: host})
		}
		c := base.Clone()
		c.Certificates = []tls.Certificate{cert}
		// VerifyConnection runs on resumed sessions too, unlike
		// VerifyPeerCertificate: a revoked node cannot resume its way in.
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			_, _, err := s.NodeIdentity(hctx, cs)
			return err
		}
		return c, nil
	}
	return cfg, nil
}

// NodeIdentity names the node at the other end of a connection: the node
// and department its certificate was issued to. The certificate must chain
// to the platform CA and still be honoured: a revoked node is refused at
// once on the server that revoked it and within two seconds on the others.
// Handlers call it on every request (state is *http.Request.TLS), because
// a connection opened before a revocation may still be alive.
func (s *Service) NodeIdentity(ctx context.Context, state tls.ConnectionState) (nodeID, deptID int64, err error) {
	if len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return 0, 0, ErrNoCertificate
	}
	a, err := s.authority(ctx)
	if err != nil {
		return 0, 0, err
	}
	chain := state.VerifiedChains[0]
	if !chain[len(chain)-1].Equal(a.cert) {
		return 0, 0, ErrNoCertificate // verified, but against another root
	}
	leaf := chain[0]
	serial := serialText(leaf.SerialNumber)
	nodeID, deptID, named := subjectIDs(leaf)
	st, err := s.certStatus(ctx, serial)
	if err != nil {
		return 0, 0, err
	}
	if !st.good || !named || st.nodeID != nodeID || st.deptID != deptID {
		if s.status.shouldAudit(serial) {
			reason := "revoked"
			switch {
			case !st.known:
				reason = "unknown_serial"
			case st.good:
				reason = "subject_mismatch"
			}
			_ = s.audit.Append(ctx, audit.Event{ActorType: audit.ActorNode, ActorID: leaf.Subject.CommonName, ActorName: leaf.Subject.CommonName,
				DeptID: deptID, Action: "node.auth_failed", ObjectType: "node", ObjectID: leaf.Subject.CommonName, Result: audit.ResultDenied,
				Details: audit.Details(map[string]any{"serial": serial, "reason": reason})})
		}
		return 0, 0, ErrNodeRefused
	}
	return nodeID, deptID, nil
}

// subjectIDs reads the node id (CN) and department id (O) that Enrol
// wrote into a node certificate.
func subjectIDs(c *x509.Certificate) (nodeID, deptID int64, ok bool) {
	if len(c.Subject.Organization) != 1 {
		return 0, 0, false
	}
	n, err1 := strconv.ParseInt(c.Subject.CommonName, 10, 64)
	d, err2 := strconv.ParseInt(c.Subject.Organization[0], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return n, d, true
}

// certStatus says whether the database honours a certificate serial, from
// the cache when it can.
func (s *Service) certStatus(ctx context.Context, serial string) (certStatus, error) {
	if st, ok := s.status.get(serial); ok {
		return st, nil
	}
	gen := s.status.generation()
	var st certStatus
	var state NodeState
	var revoked sql.NullTime
	err := s.db.QueryRow(ctx, `SELECT c.node_id, n.dept_id, n.state, c.revoked_at FROM node_certs c JOIN nodes n ON n.id = c.node_id
		WHERE c.serial = ?`, serial).Scan(&st.nodeID, &st.deptID, &state, &revoked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return certStatus{}, err
	default:
		st.known = true
		st.good = state == NodeActive && !revoked.Valid
	}
	s.status.put(serial, st, gen)
	return st, nil
}

// certStatus is what the database says of a serial.
type certStatus struct {
	nodeID, deptID int64
	known          bool // issued by this platform
	good           bool // known, and neither it nor its node revoked
}

// statusCache keeps certificate serials' status briefly, so a handshake
// or a request costs no query. A refusal is final (revocation is for good,
// and a serial unknown now was never issued), so refusals are kept until
// the cache is full; an honoured serial is asked again after ttl. Revoking
// on this server drops the cache at once.
type statusCache struct {
	mu      sync.Mutex
	ttl     time.Duration
	gen     uint64 // counts drops, so a lookup begun before one is not cached after it
	entries map[string]cachedStatus
	audited map[string]time.Time // serial → last refusal written to the audit log
}

type cachedStatus struct {
	certStatus
	loaded time.Time
}

// maxStatusEntries bounds the cache; when full it starts again.
const maxStatusEntries = 10000

// refusalAuditEvery keeps a node that retries in a loop from filling the
// audit log: one refusal per serial per server per minute is written.
const refusalAuditEvery = time.Minute

func newStatusCache(ttl time.Duration) *statusCache {
	return &statusCache{ttl: ttl, entries: map[string]cachedStatus{}, audited: map[string]time.Time{}}
}

func (c *statusCache) get(serial string) (certStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[serial]
	if !ok || (e.good && time.Since(e.loaded) >= c.ttl) {
		return certStatus{}, false
	}
	return e.certStatus, true
}

func (c *statusCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *statusCache) put(serial string, st certStatus, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // a revocation happened while the status was read
	}
	if len(c.entries) >= maxStatusEntries {
		clear(c.entries)
	}
	c.entries[serial] = cachedStatus{certStatus: st, loaded: time.Now()}
}

// drop forgets every honoured serial; refusals stay, being final.
func (c *statusCache) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for k, e := range c.entries {
		if e.good {
			delete(c.entries, k)
		}
	}
}

func (c *statusCache) shouldAudit(serial string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if last, ok := c.audited[serial]; ok && time.Since(last) < refusalAuditEvery {
		return false
	}
	if len(c.audited) >= maxStatusEntries {
		clear(c.audited)
	}
	c.audited[serial] = time.Now()
	return true
}

// ClientTLS is the node's side: it presents the node's certificate and
// trusts only the platform CA for the center's certificate.
func ClientTLS(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("client TLS: no CA certificate in the given PEM")
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}
