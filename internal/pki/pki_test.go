package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/identity"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/secret"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

type env struct {
	db                *store.DB
	keys              *secret.Keys
	log               *audit.Log
	pki               *pki.Service
	police, civil     policy.Actor // department administrators
	admin             policy.Actor // platform administrator
	policeID, civilID int64
}

func setup(t *testing.T, db *store.DB) env {
	t.Helper()
	ctx := context.Background()
	keys, _ := secret.New(make([]byte, 32))
	log, err := audit.Open(db, audit.Options{Key: keys.Derive("audit")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	ids := identity.NewService(db, log, keys, identity.DefaultConfig())
	police, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市公安局", CreditCode: identity.SyntheticCreditCode("350100", 2), RegionCode: "350100"})
	if err != nil {
		t.Fatal(err)
	}
	civil, err := ids.SeedDepartment(ctx, identity.DepartmentInput{Name: "市民政局", CreditCode: identity.SyntheticCreditCode("350100", 3), RegionCode: "350100"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := ids.SeedUser(ctx, identity.UserInput{Login: "gaj.admin", Name: "测试", DeptID: police.ID, Roles: []policy.Role{policy.DeptAdmin}, Password: "Test@Pass2026"}, false, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ids.SeedUser(ctx, identity.UserInput{Login: "mzj.admin", Name: "测试", DeptID: civil.ID, Roles: []policy.Role{policy.DeptAdmin}, Password: "Test@Pass2026"}, false, "")
	if err != nil {
		t.Fatal(err)
	}
	return env{db: db, keys: keys, log: log, pki: pki.NewService(db, log, keys),
		police: a.Actor(), civil: b.Actor(), policeID: police.ID, civilID: civil.ID,
		admin: policy.Actor{UserID: 9000, Login: "sysadmin", DeptID: police.ID, Roles: []policy.Role{policy.PlatformAdmin}}}
}

func wantCode(t *testing.T, err error, want string) {
	t.Helper()
	if ae, ok := apperr.As(err); !ok || ae.Code != want {
		t.Fatalf("want %s, got %v", want, err)
	}
}

func csr(t *testing.T, name string) (keyPEM, csrPEM []byte) {
	t.Helper()
	keyPEM, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	csrPEM, err = pki.CSR(keyPEM, name)
	if err != nil {
		t.Fatal(err)
	}
	return keyPEM, csrPEM
}

// node is an enrolled node as its agent holds it.
type node struct {
	id            int64
	key, cert, ca []byte
}

func enrol(t *testing.T, e env, actor policy.Actor, dept int64, name string) node {
	t.Helper()
	en, code, err := e.pki.CreateEnrolment(context.Background(), actor, dept, name)
	if err != nil {
		t.Fatal(err)
	}
	key, req := csr(t, name)
	cert, ca, err := e.pki.Enrol(context.Background(), code, req)
	if err != nil {
		t.Fatal(err)
	}
	return node{id: en.Node.ID, key: key, cert: cert, ca: ca}
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func events(t *testing.T, e env, f audit.Filter) []audit.Event {
	t.Helper()
	f.Limit = 100
	evs, err := e.log.List(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestEnrolmentIssuesANodeCertificate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		start := time.Now()
		en, code, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, " 公安局前置机 ")
		if err != nil {
			t.Fatal(err)
		}
		n := en.Node
		if n.State != pki.NodePending || n.Name != "公安局前置机" || n.DeptID != e.policeID || n.CreatedBy != e.police.UserID {
			t.Fatalf("node %+v", n)
		}
		if d := en.ExpiresAt.Sub(start); d < 23*time.Hour || d > 25*time.Hour {
			t.Fatalf("code valid for %v, want 24h", d)
		}
		var stored string
		if err := db.QueryRow(ctx, "SELECT code_hash FROM nodes WHERE id = ?", n.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if len(code) < 20 || strings.Contains(stored, strings.ReplaceAll(code, "-", "")) || strings.Contains(stored, code) {
			t.Fatalf("code %q stored as %q", code, stored)
		}

		// The code is forgiving about case and dashes; the request's name is not the certificate's.
		key, req := csr(t, "node 999 of another department")
		certPEM, caPEM, err := e.pki.Enrol(ctx, strings.ToLower(strings.ReplaceAll(code, "-", "")), req)
		if err != nil {
			t.Fatal(err)
		}
		cert, ca := parseCert(t, certPEM), parseCert(t, caPEM)
		if cert.Subject.CommonName != strconv.FormatInt(n.ID, 10) || len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != strconv.FormatInt(e.policeID, 10) {
			t.Fatalf("subject %v", cert.Subject)
		}
		if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || cert.IsCA {
			t.Fatalf("usage %v, CA %v", cert.ExtKeyUsage, cert.IsCA)
		}
		if d := cert.NotAfter.Sub(start); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Fatalf("certificate valid for %v, want a year", d)
		}
		if bits := cert.SerialNumber.BitLen(); bits < 64 || bits > 128 {
			t.Fatalf("serial of %d bits", bits)
		}
		if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
			t.Fatalf("key %T", cert.PublicKey)
		}
		if ca.Subject.CommonName != pki.CACommonName || !ca.IsCA || ca.NotAfter.Sub(start) < 9*365*24*time.Hour {
			t.Fatalf("CA %v, until %v", ca.Subject, ca.NotAfter)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatal(err)
		}
		if _, err := pki.ClientTLS(certPEM, key, caPEM); err != nil {
			t.Fatal(err)
		}

		got, err := e.pki.Node(ctx, e.police, n.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != pki.NodeActive || got.CertSerial != cert.SerialNumber.Text(16) || !got.CertNotAfter.Equal(cert.NotAfter) || got.EnrolledAt.IsZero() {
			t.Fatalf("node after enrolment %+v", got)
		}
		if err := e.pki.Seen(ctx, n.ID); err != nil {
			t.Fatal(err)
		}
		list, err := e.pki.Nodes(ctx, e.police, e.policeID)
		if err != nil || len(list) != 1 || list[0].LastSeenAt.IsZero() {
			t.Fatalf("nodes %+v, %v", list, err)
		}

		// A platform administrator enrols nodes for any department.
		if _, _, err := e.pki.CreateEnrolment(ctx, e.admin, e.civilID, "民政局前置机"); err != nil {
			t.Fatal(err)
		}

		for _, action := range []string{"node.enrolment.create", "node.enrol", "pki.ca.create"} {
			if len(events(t, e, audit.Filter{Action: action, Result: audit.ResultOK})) == 0 {
				t.Errorf("no %s event", action)
			}
		}
		for _, ev := range events(t, e, audit.Filter{Action: "node."}) {
			if strings.Contains(ev.Details, code) {
				t.Fatalf("the code is in the audit log: %s", ev.Details)
			}
		}
	})
}

func TestEnrolmentCodeIsSingleUse(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		en, code, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		if err != nil {
			t.Fatal(err)
		}
		// Two agents racing with one code: exactly one gets a certificate.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				_, req := csr(t, "前置机")
				_, _, errs[i] = e.pki.Enrol(ctx, code, req)
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else {
				wantCode(t, err, "pki.enrolment_code_used")
			}
		}
		if won != 1 {
			t.Fatalf("%d enrolments with one code: %v", won, errs)
		}
		before, _ := e.pki.Node(ctx, e.police, en.Node.ID)
		_, req := csr(t, "前置机")
		_, _, err = e.pki.Enrol(ctx, code, req)
		wantCode(t, err, "pki.enrolment_code_used")
		after, _ := e.pki.Node(ctx, e.police, en.Node.ID)
		if after.CertSerial != before.CertSerial {
			t.Fatal("a reused code replaced the certificate")
		}
		if len(events(t, e, audit.Filter{Action: "node.enrol", Result: audit.ResultDenied})) < 4 {
			t.Fatal("refused enrolments are not audited")
		}
		// A node that has enrolled cannot be given a new code.
		_, _, err = e.pki.ReissueCode(ctx, e.police, en.Node.ID)
		wantCode(t, err, "pki.node_state_conflict")
	})
}

func TestEnrolmentCodeExpiresAfter24Hours(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		now := time.Now()
		e.pki.SetClock(func() time.Time { return now })
		en, code, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		if err != nil {
			t.Fatal(err)
		}
		e.pki.SetClock(func() time.Time { return now.Add(24*time.Hour + time.Second) })
		_, req := csr(t, "前置机")
		_, _, err = e.pki.Enrol(ctx, code, req)
		wantCode(t, err, "pki.enrolment_code_expired")
		if n, _ := e.pki.Node(ctx, e.police, en.Node.ID); n.State != pki.NodePending {
			t.Fatalf("state %s", n.State)
		}
		// The administrator issues a new code; the old one stays dead.
		_, code2, err := e.pki.ReissueCode(ctx, e.police, en.Node.ID)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = e.pki.Enrol(ctx, code, req)
		wantCode(t, err, "pki.enrolment_code_invalid")
		if _, _, err := e.pki.Enrol(ctx, code2, req); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOnlyTheCodeOfAPendingNodeEnrols: made-up codes, and the code of an
// enrolment the administrator cancelled, are refused with one answer.
func TestOnlyTheCodeOfAPendingNodeEnrols(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		_, req := csr(t, "前置机")
		for _, code := range []string{"", "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF", "' OR 1=1 --"} {
			_, _, err := e.pki.Enrol(ctx, code, req)
			wantCode(t, err, "pki.enrolment_code_invalid")
		}
		en, code, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.pki.Revoke(ctx, e.police, en.Node.ID, "登记错误"); err != nil {
			t.Fatal(err)
		}
		_, _, err = e.pki.Enrol(ctx, code, req)
		wantCode(t, err, "pki.enrolment_code_invalid")
		evs := events(t, e, audit.Filter{Action: "node.enrol", Result: audit.ResultDenied})
		if len(evs) != 4 || evs[0].ActorType != audit.ActorAnon || !strings.Contains(evs[0].Details, "pki.enrolment_code_invalid") {
			t.Fatalf("denials %+v", evs)
		}
	})
}

func TestBadCertificateRequestKeepsTheCode(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		_, code, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		if err != nil {
			t.Fatal(err)
		}
		_, good := csr(t, "前置机")
		b, _ := pem.Decode(good)
		der := append([]byte(nil), b.Bytes...)
		der[len(der)-1] ^= 0x01 // the signature's last byte
		tampered := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		weak, _ := rsa.GenerateKey(rand.Reader, 1024)
		weakDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, weak)
		for _, c := range []struct {
			name, code string
			csr        []byte
		}{
			{"bad signature", "pki.csr_invalid", tampered},
			{"not PEM", "pki.csr_invalid", b.Bytes},
			{"a certificate", "pki.csr_invalid", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})},
			{"weak key", "pki.csr_key_unsupported", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: weakDER})},
		} {
			_, _, err := e.pki.Enrol(ctx, code, c.csr)
			if ae, ok := apperr.As(err); !ok || ae.Code != c.code {
				t.Fatalf("%s: want %s, got %v", c.name, c.code, err)
			}
		}
		if _, _, err := e.pki.Enrol(ctx, code, good); err != nil {
			t.Fatalf("the code was spent by a bad request: %v", err)
		}
	})
}

func TestDepartmentAdministratorsManageOnlyTheirOwnNodes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		_, _, err := e.pki.CreateEnrolment(ctx, e.civil, e.policeID, "前置机")
		if !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("another department's administrator enrols: %v", err)
		}
		if n, _ := e.pki.Nodes(ctx, e.admin, 0); len(n) != 0 {
			t.Fatal("a denied enrolment left a node")
		}
		en, _, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		if err != nil {
			t.Fatal(err)
		}
		id := en.Node.ID
		denied := []error{}
		_, err = e.pki.Node(ctx, e.civil, id)
		denied = append(denied, err)
		_, err = e.pki.Nodes(ctx, e.civil, e.policeID)
		denied = append(denied, err)
		_, err = e.pki.Nodes(ctx, e.police, 0) // every department: platform administrators only
		denied = append(denied, err)
		_, _, err = e.pki.ReissueCode(ctx, e.civil, id)
		denied = append(denied, err)
		_, err = e.pki.Revoke(ctx, e.civil, id, "不是我们的")
		denied = append(denied, err)
		for i, err := range denied {
			if !errors.Is(err, apperr.ErrDenied) {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		evs := events(t, e, audit.Filter{Actor: "mzj.admin", Action: string(policy.NodeManage), Result: audit.ResultDenied})
		if len(evs) != 5 {
			t.Fatalf("%d denials audited for mzj.admin, want 5", len(evs))
		}
		if n, _ := e.pki.Node(ctx, e.police, id); n.State != pki.NodePending {
			t.Fatalf("a denied revocation changed the node: %s", n.State)
		}

		// Names, reasons and states.
		_, _, err = e.pki.CreateEnrolment(ctx, e.police, e.policeID, "  ")
		wantCode(t, err, "pki.node_name_invalid")
		_, _, err = e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机")
		wantCode(t, err, "pki.node_name_taken")
		_, _, err = e.pki.CreateEnrolment(ctx, e.admin, 987654, "前置机")
		wantCode(t, err, "pki.dept_unknown")
		_, err = e.pki.Revoke(ctx, e.police, id, " ")
		wantCode(t, err, "pki.reason_required")
		all, err := e.pki.Nodes(ctx, e.admin, 0)
		if err != nil || len(all) != 1 {
			t.Fatalf("platform administrator lists %v, %v", all, err)
		}
		if n, err := e.pki.Revoke(ctx, e.admin, id, "设备报废"); err != nil || n.State != pki.NodeRevoked || n.RevokeReason != "设备报废" {
			t.Fatalf("revoke: %+v, %v", n, err)
		}
		_, err = e.pki.Revoke(ctx, e.police, id, "再次吊销")
		wantCode(t, err, "pki.node_state_conflict")
		if _, _, err := e.pki.CreateEnrolment(ctx, e.police, e.policeID, "前置机"); err != nil {
			t.Fatalf("a revoked node's name cannot be used again: %v", err)
		}
		if len(events(t, e, audit.Filter{Action: "node.revoke", Result: audit.ResultOK})) != 1 {
			t.Fatal("revocation not audited")
		}
	})
}

func TestConcurrentFirstStartsMakeOneCA(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		certs := make([]*x509.Certificate, 8)
		errs := make([]error, len(certs))
		var wg sync.WaitGroup
		for i := range certs {
			// Each service stands for a server starting against the shared database.
			s := pki.NewService(db, e.log, e.keys)
			wg.Go(func() { certs[i], errs[i] = s.EnsureCA(ctx) })
		}
		wg.Wait()
		for i := range certs {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if !certs[i].Equal(certs[0]) {
				t.Fatalf("server %d has another CA", i)
			}
		}
		var n int
		if err := db.QueryRow(ctx, "SELECT COUNT(*) FROM pki_authorities").Scan(&n); err != nil || n != 1 {
			t.Fatalf("%d CAs, %v", n, err)
		}
		if evs := events(t, e, audit.Filter{Action: "pki.ca.create"}); len(evs) != 1 {
			t.Fatalf("%d CA creations audited", len(evs))
		}
		// A later start loads the same CA.
		again, err := pki.NewService(db, e.log, e.keys).EnsureCA(ctx)
		if err != nil || !again.Equal(certs[0]) {
			t.Fatalf("restart: %v", err)
		}
	})
}

func TestCAKeyIsSealedAtRest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		ca, err := e.pki.EnsureCA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var sealed string
		if err := db.QueryRow(ctx, "SELECT key_sealed FROM pki_authorities").Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		// It is the CA's key, under the master key …
		raw, err := e.keys.Sealer("pki").Open(sealed)
		if err != nil {
			t.Fatal(err)
		}
		key, err := x509.ParsePKCS8PrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !key.(*ecdsa.PrivateKey).PublicKey.Equal(ca.PublicKey) {
			t.Fatal("the stored key is not the CA's")
		}
		// … and nowhere in plain text.
		d, err := key.(*ecdsa.PrivateKey).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		for _, plain := range []string{"PRIVATE KEY", string(raw), base64.StdEncoding.EncodeToString(raw), hex.EncodeToString(d), base64.RawStdEncoding.EncodeToString(d)} {
			if strings.Contains(sealed, plain) {
				t.Fatalf("the CA key is stored readable (%.20q…)", plain)
			}
		}
		// A server with another master key cannot use it.
		mk := make([]byte, 32)
		mk[0] = 1
		other, _ := secret.New(mk)
		if _, err := pki.NewService(db, e.log, other).EnsureCA(ctx); err == nil || !strings.Contains(err.Error(), "master key") {
			t.Fatalf("another master key: %v", err)
		}
	})
}
