package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

const nodeCols = "id, dept_id, name, state, code_expires_at, cert_serial, cert_not_after, enrolled_at, last_seen_at, created_by, created_at, revoked_at, revoke_reason"

func scanNode(row store.Row) (Node, error) {
	var n Node
	var notAfter, enrolled, seen, revoked sql.NullTime
	err := row.Scan(&n.ID, &n.DeptID, &n.Name, &n.State, &n.CodeExpiresAt, &n.CertSerial, &notAfter, &enrolled, &seen,
		&n.CreatedBy, &n.CreatedAt, &revoked, &n.RevokeReason)
	n.CertNotAfter, n.EnrolledAt, n.LastSeenAt, n.RevokedAt = notAfter.Time, enrolled.Time, seen.Time, revoked.Time
	return n, err
}

// NodeColumns are the columns ScanNode reads, for packages that list nodes
// with their own conditions (and their own authorization).
const NodeColumns = nodeCols

// ScanNode reads a row of NodeColumns.
func ScanNode(row store.Row) (Node, error) { return scanNode(row) }

// Load reads one node without asking the policy; callers authorize.
func (s *Service) Load(ctx context.Context, id int64) (Node, error) { return s.load(ctx, "id = ?", id) }

// load reads one node without asking the policy; callers authorize.
func (s *Service) load(ctx context.Context, where string, arg any) (Node, error) {
	n, err := scanNode(s.db.QueryRow(ctx, "SELECT "+nodeCols+" FROM nodes WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return n, apperr.ErrNotFound
	}
	return n, err
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func (s *Service) record(ctx context.Context, actor policy.Actor, action string, n Node, details map[string]any) error {
	return s.audit.Append(ctx, audit.By(actor, action, "node", itoa(n.ID), audit.ResultOK, details))
}

// nodeEvent is an event the node itself caused.
func nodeEvent(n Node, action, result string, details map[string]any) audit.Event {
	return audit.Event{ActorType: audit.ActorNode, ActorID: itoa(n.ID), ActorName: n.Name, DeptID: n.DeptID,
		Action: action, ObjectType: "node", ObjectID: itoa(n.ID), Result: result, Details: audit.Details(details)}
}

// codeEncoding writes enrolment codes in the letters and digits that
// survive being read aloud or typed from a screen.
var codeEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newCode returns a one-time enrolment code: 120 random bits as six groups
// of four characters, "K7QX-3M2P-…".
func newCode() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	c := codeEncoding.EncodeToString(b)
	var out strings.Builder
	for i := 0; i < len(c); i += 4 {
		if i > 0 {
			out.WriteByte('-')
		}
		out.WriteString(c[i : i+4])
	}
	return out.String()
}

// codeHash is what the database keeps of a code. The code has 120 random
// bits, so a plain hash cannot be reversed by guessing. Case, spaces and
// dashes do not matter.
func codeHash(code string) string {
	norm := strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
	h := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(h[:])
}

// CreateEnrolment registers a node of the department and returns it with
// its one-time enrolment code, which is shown this once, stored only
// hashed and valid for 24 hours.
func (s *Service) CreateEnrolment(ctx context.Context, actor policy.Actor, deptID int64, name string) (Enrolment, string, error) {
	if err := s.authorize(ctx, actor, deptID, ""); err != nil {
		return Enrolment{}, "", err
	}
	name = strings.TrimSpace(name)
	if name == "" || utf8.RuneCountInString(name) > 64 {
		return Enrolment{}, "", ErrNodeName
	}
	var one int
	if err := s.db.QueryRow(ctx, "SELECT 1 FROM departments WHERE id = ?", deptID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return Enrolment{}, "", ErrDept
	} else if err != nil {
		return Enrolment{}, "", err
	}
	code := newCode()
	now := s.now()
	var id int64
	err := s.db.QueryRow(ctx, `INSERT INTO nodes (dept_id, name, state, code_hash, code_expires_at, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, deptID, name, NodePending, codeHash(code), now.Add(CodeValidity), actor.UserID, now).Scan(&id)
	if store.IsUniqueViolation(err) {
		return Enrolment{}, "", ErrNodeNameTaken
	} else if err != nil {
		return Enrolment{}, "", fmt.Errorf("create node: %w", err)
	}
	n, err := s.load(ctx, "id = ?", id)
	if err != nil {
		return Enrolment{}, "", err
	}
	return Enrolment{Node: n, ExpiresAt: n.CodeExpiresAt}, code, s.record(ctx, actor, "node.enrolment.create", n,
		map[string]any{"name": n.Name, "dept_id": n.DeptID, "code_expires_at": n.CodeExpiresAt})
}

// ReissueCode gives a node that has not enrolled yet a new code (shown
// once, valid for 24 hours); the old code stops working.
func (s *Service) ReissueCode(ctx context.Context, actor policy.Actor, nodeID int64) (Enrolment, string, error) {
	n, err := s.load(ctx, "id = ?", nodeID)
	if err != nil {
		return Enrolment{}, "", err
	}
	if err := s.authorize(ctx, actor, n.DeptID, itoa(n.ID)); err != nil {
		return Enrolment{}, "", err
	}
	code := newCode()
	res, err := s.db.Exec(ctx, "UPDATE nodes SET code_hash = ?, code_expires_at = ? WHERE id = ? AND state = ?",
		codeHash(code), s.now().Add(CodeValidity), n.ID, NodePending)
	if err != nil {
		return Enrolment{}, "", fmt.Errorf("reissue code of node %d: %w", n.ID, err)
	}
	if k, _ := res.RowsAffected(); k != 1 {
		return Enrolment{}, "", ErrNodeState
	}
	if n, err = s.load(ctx, "id = ?", n.ID); err != nil {
		return Enrolment{}, "", err
	}
	return Enrolment{Node: n, ExpiresAt: n.CodeExpiresAt}, code, s.record(ctx, actor, "node.enrolment.reissue", n,
		map[string]any{"code_expires_at": n.CodeExpiresAt})
}

// Enrol is the agent's first call: it trades a one-time code and a
// certificate request for the node's client certificate and the CA
// certificate to trust the center by, both PEM. The certificate names the
// code's node (CN, the node id) and department (O, the department id)
// whatever the request says; the request only contributes its key. A bad
// request leaves the code unused; every refusal is audited.
func (s *Service) Enrol(ctx context.Context, code string, csrPEM []byte) (certPEM, caPEM []byte, err error) {
	n, leaf, err := s.enrol(ctx, code, csrPEM)
	if err != nil {
		e := audit.Event{ActorType: audit.ActorAnon, Action: "node.enrol", ObjectType: "node", Result: audit.ResultError,
			Details: audit.Details(map[string]any{"reason": err.Error()})}
		if ae, ok := apperr.As(err); ok {
			e.Result, e.Details = audit.ResultDenied, audit.Details(map[string]any{"reason": ae.Code})
		}
		if n.ID != 0 {
			e.ObjectID, e.DeptID = itoa(n.ID), n.DeptID
		}
		_ = s.audit.Append(ctx, e)
		return nil, nil, err
	}
	a, err := s.authority(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := s.audit.Append(ctx, nodeEvent(n, "node.enrol", audit.ResultOK,
		map[string]any{"serial": n.CertSerial, "not_after": n.CertNotAfter})); err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", leaf.Raw), a.pem, nil
}

func (s *Service) enrol(ctx context.Context, code string, csrPEM []byte) (Node, *x509.Certificate, error) {
	hash := codeHash(code)
	n, err := s.load(ctx, "code_hash = ?", hash)
	if errors.Is(err, apperr.ErrNotFound) {
		return Node{}, nil, ErrCodeInvalid
	} else if err != nil {
		return Node{}, nil, err
	}
	if err := s.codeUsable(n); err != nil {
		return n, nil, err
	}
	pub, err := parseCSR(csrPEM)
	if err != nil {
		return n, nil, err
	}
	leaf, err := s.issueNode(ctx, n, pub)
	if err != nil {
		return n, nil, err
	}
	serial, now := serialText(leaf.SerialNumber), s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		// The state and code in the condition make the code single-use
		// even when two enrolments race, here or on another server.
		res, err := tx.Exec(ctx, `UPDATE nodes SET state = ?, enrolled_at = ?, cert_serial = ?, cert_not_after = ?
			WHERE id = ? AND state = ? AND code_hash = ? AND code_expires_at > ?`,
			NodeActive, now, serial, leaf.NotAfter.UTC(), n.ID, NodePending, hash, now)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return errLostRace
		}
		return insertCert(ctx, tx, n.ID, leaf, now)
	})
	if errors.Is(err, errLostRace) {
		// Tell the caller why, from the node as it is now: enrolled by a
		// racing request, revoked, expired, or given a new code.
		if n, err = s.load(ctx, "id = ?", n.ID); err == nil {
			if err = s.codeUsable(n); err == nil {
				err = ErrCodeInvalid
			}
		}
		return n, nil, err
	}
	if err != nil {
		return n, nil, fmt.Errorf("enrol node %d: %w", n.ID, err)
	}
	n, err = s.load(ctx, "id = ?", n.ID)
	return n, leaf, err
}

// errLostRace ends a transaction whose conditional update found the row
// changed by someone else.
var errLostRace = errors.New("the row changed meanwhile")

// codeUsable says why a node's code cannot enrol it, if it cannot.
func (s *Service) codeUsable(n Node) error {
	switch {
	case n.State == NodeActive:
		return ErrCodeUsed
	case n.State != NodePending: // the enrolment was cancelled
		return ErrCodeInvalid
	case !s.now().Before(n.CodeExpiresAt):
		return ErrCodeExpired
	}
	return nil
}

// issueNode signs a node's client certificate for pub.
func (s *Service) issueNode(ctx context.Context, n Node, pub crypto.PublicKey) (*x509.Certificate, error) {
	a, err := s.authority(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	return a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: itoa(n.ID), Organization: []string{itoa(n.DeptID)}},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(NodeValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, pub)
}

func insertCert(ctx context.Context, tx *store.Tx, nodeID int64, leaf *x509.Certificate, now time.Time) error {
	_, err := tx.Exec(ctx, "INSERT INTO node_certs (serial, node_id, cert, not_after, issued_at) VALUES (?, ?, ?, ?, ?)",
		serialText(leaf.SerialNumber), nodeID, leaf.Raw, leaf.NotAfter.UTC(), now)
	return err
}

// parseCSR checks a PEM certificate request and returns its public key.
func parseCSR(csrPEM []byte) (crypto.PublicKey, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || (b.Type != "CERTIFICATE REQUEST" && b.Type != "NEW CERTIFICATE REQUEST") {
		return nil, ErrCSR
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, ErrCSR
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, ErrCSR
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return k, nil
		}
	case ed25519.PublicKey:
		return k, nil
	case *rsa.PublicKey:
		if k.N.BitLen() >= 2048 {
			return k, nil
		}
	}
	return nil, ErrCSRKey
}

// Renew issues a new client certificate to an active node, for the key in
// csrPEM. The caller has authenticated the node by its current certificate
// (NodeIdentity); the old certificate stays valid until it expires, so a
// node that loses the answer can try again.
func (s *Service) Renew(ctx context.Context, nodeID int64, csrPEM []byte) (certPEM []byte, err error) {
	n, err := s.load(ctx, "id = ?", nodeID)
	if err != nil {
		return nil, err
	}
	if n.State != NodeActive {
		return nil, ErrNodeState
	}
	pub, err := parseCSR(csrPEM)
	if err != nil {
		ae, _ := apperr.As(err)
		_ = s.audit.Append(ctx, nodeEvent(n, "node.renew", audit.ResultDenied, map[string]any{"reason": ae.Code}))
		return nil, err
	}
	leaf, err := s.issueNode(ctx, n, pub)
	if err != nil {
		return nil, err
	}
	serial, now := serialText(leaf.SerialNumber), s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, "UPDATE nodes SET cert_serial = ?, cert_not_after = ? WHERE id = ? AND state = ?",
			serial, leaf.NotAfter.UTC(), n.ID, NodeActive)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return ErrNodeState
		}
		return insertCert(ctx, tx, n.ID, leaf, now)
	})
	if err != nil {
		return nil, fmt.Errorf("renew node %d: %w", n.ID, err)
	}
	if err := s.audit.Append(ctx, nodeEvent(n, "node.renew", audit.ResultOK,
		map[string]any{"serial": serial, "previous_serial": n.CertSerial, "not_after": leaf.NotAfter.UTC()})); err != nil {
		return nil, err
	}
	return pemBlock("CERTIFICATE", leaf.Raw), nil
}

// Revoke ends a node for good: its certificates are refused at once on
// this server and within seconds on the others; a pending node's code
// stops working.
func (s *Service) Revoke(ctx context.Context, actor policy.Actor, nodeID int64, reason string) (Node, error) {
	n, err := s.load(ctx, "id = ?", nodeID)
	if err != nil {
		return Node{}, err
	}
	if err := s.authorize(ctx, actor, n.DeptID, itoa(n.ID)); err != nil {
		return Node{}, err
	}
	if reason = strings.TrimSpace(reason); reason == "" {
		return Node{}, ErrReason
	}
	now := s.now()
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, "UPDATE nodes SET state = ?, revoked_by = ?, revoked_at = ?, revoke_reason = ? WHERE id = ? AND state <> ?",
			NodeRevoked, actor.UserID, now, reason, n.ID, NodeRevoked)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k != 1 {
			return ErrNodeState
		}
		_, err = tx.Exec(ctx, "UPDATE node_certs SET revoked_at = ? WHERE node_id = ? AND revoked_at IS NULL", now, n.ID)
		return err
	})
	if err != nil {
		return Node{}, err
	}
	s.status.drop()
	if n, err = s.load(ctx, "id = ?", n.ID); err != nil {
		return Node{}, err
	}
	return n, s.record(ctx, actor, "node.revoke", n, map[string]any{"reason": reason, "serial": n.CertSerial})
}

// Nodes lists a department's nodes; deptID 0 lists every department's,
// which only a platform administrator may.
func (s *Service) Nodes(ctx context.Context, actor policy.Actor, deptID int64) ([]Node, error) {
	if err := s.authorize(ctx, actor, deptID, ""); err != nil {
		return nil, err
	}
	if deptID == 0 {
		return store.All(ctx, s.db, scanNode, "SELECT "+nodeCols+" FROM nodes ORDER BY id DESC")
	}
	return store.All(ctx, s.db, scanNode, "SELECT "+nodeCols+" FROM nodes WHERE dept_id = ? ORDER BY id DESC", deptID)
}

// Node returns one node.
func (s *Service) Node(ctx context.Context, actor policy.Actor, id int64) (Node, error) {
	n, err := s.load(ctx, "id = ?", id)
	if err != nil {
		return Node{}, err
	}
	if err := s.authorize(ctx, actor, n.DeptID, itoa(n.ID)); err != nil {
		return Node{}, err
	}
	return n, nil
}

// Seen records that an authenticated node was heard from (a heartbeat).
func (s *Service) Seen(ctx context.Context, nodeID int64) error {
	_, err := s.db.Exec(ctx, "UPDATE nodes SET last_seen_at = ? WHERE id = ? AND state = ?", s.now(), nodeID, NodeActive)
	return err
}
