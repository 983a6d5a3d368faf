package pki_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/pki"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

// serve starts the center's node endpoint on s, answering with the
// caller's identity as a handler would use it.
func serve(t *testing.T, s *pki.Service) *httptest.Server {
	t.Helper()
	cfg, err := s.ServerTLS(context.Background(), []string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node, dept, err := s.NodeIdentity(r.Context(), *r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "node %d dept %d", node, dept)
	}))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func client(t *testing.T, cfg *tls.Config, keepAlive bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: !keepAlive}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func nodeTLS(t *testing.T, n node) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientTLS(n.cert, n.key, n.ca)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// call returns the answer, or the error of a connection the server refused.
func call(t *testing.T, c *http.Client, url string) (int, string, error) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// refused asserts the server ended the handshake: the client trusted the
// server, the server did not trust the client.
func refused(t *testing.T, c *http.Client, url, what string) {
	t.Helper()
	code, body, err := call(t, c, url)
	if err == nil || !strings.Contains(err.Error(), "remote error: tls:") {
		t.Fatalf("%s: want the handshake refused, got %d %q, %v", what, code, body, err)
	}
}

func clientCert(t *testing.T, tmpl, parent *x509.Certificate, parentKey any) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestOnlyEnrolledNodesConnect(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		n := enrol(t, e, e.police, e.policeID, "前置机")
		srv := serve(t, e.pki)
		// A second server sharing the database: same CA, its own cache.
		srv2 := serve(t, pki.NewService(db, e.log, e.keys))
		want := fmt.Sprintf("node %d dept %d", n.id, e.policeID)

		kept := client(t, nodeTLS(t, n), true)
		for _, url := range []string{srv.URL, srv2.URL, "https://localhost:" + srv.URL[strings.LastIndex(srv.URL, ":")+1:]} {
			if code, body, err := call(t, kept, url); err != nil || code != http.StatusOK || body != want {
				t.Fatalf("%s: %d %q %v", url, code, body, err)
			}
		}

		// Certificates the platform did not issue, or issued to nobody.
		roots := nodeTLS(t, n).RootCAs
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: fmt.Sprint(n.id), Organization: []string{fmt.Sprint(e.policeID)}},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		self := clientCert(t, tmpl, nil, nil)
		refused(t, client(t, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{self}}, false), srv.URL, "self-signed")
		refused(t, client(t, &tls.Config{RootCAs: roots}, false), srv.URL, "no certificate")
		caCert, caKey := openCA(t, e, db)
		forged := clientCert(t, tmpl, caCert, caKey) // the CA's signature, but a serial the database never issued
		refused(t, client(t, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{forged}}, false), srv.URL, "unknown serial")

		if _, err := e.pki.Revoke(ctx, e.police, n.id, "设备丢失"); err != nil {
			t.Fatal(err)
		}
		// This server: new connections are refused at once, and the
		// connection still open gets no further answer.
		refused(t, client(t, nodeTLS(t, n), false), srv.URL, "revoked")
		if code, body, err := call(t, kept, srv.URL); err != nil || code != http.StatusUnauthorized || !strings.Contains(body, "pki.node_refused") {
			t.Fatalf("open connection after revocation: %d %q %v", code, body, err)
		}
		// The other server follows within seconds.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, _, err := call(t, client(t, nodeTLS(t, n), false), srv2.URL)
			if err != nil {
				refused(t, client(t, nodeTLS(t, n), false), srv2.URL, "revoked, other server")
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the other server still accepts the revoked node")
			}
			time.Sleep(100 * time.Millisecond)
		}

		reasons := map[string]bool{}
		for _, ev := range events(t, e, audit.Filter{Action: "node.auth_failed", Result: audit.ResultDenied}) {
			for _, r := range []string{"unknown_serial", "revoked"} {
				if strings.Contains(ev.Details, `"reason":"`+r+`"`) {
					reasons[r] = true
				}
			}
			if ev.ClientAddr != "127.0.0.1" {
				t.Errorf("refusal without the client address: %+v", ev)
			}
		}
		if !reasons["unknown_serial"] || !reasons["revoked"] {
			t.Fatalf("refusals audited: %v", reasons)
		}
	})
}

// openCA reads the CA as a server would, to forge what only the CA can sign.
func openCA(t *testing.T, e env, db *store.DB) (*x509.Certificate, any) {
	t.Helper()
	var der []byte
	var sealed string
	if err := db.QueryRow(context.Background(), "SELECT cert, key_sealed FROM pki_authorities").Scan(&der, &sealed); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.keys.Sealer("pki").Open(sealed)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestRenewalKeepsTheOldCertificateUntilRevocation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		n := enrol(t, e, e.police, e.policeID, "前置机")
		ca, old := parseCert(t, n.ca), parseCert(t, n.cert)
		_, req := csr(t, "前置机")
		renewed, err := e.pki.Renew(ctx, n.id, req)
		if err != nil {
			t.Fatal(err)
		}
		cur := parseCert(t, renewed)
		if cur.SerialNumber.Cmp(old.SerialNumber) == 0 || cur.Subject.String() != old.Subject.String() {
			t.Fatalf("renewed %v %v, old %v %v", cur.SerialNumber, cur.Subject, old.SerialNumber, old.Subject)
		}
		if got, _ := e.pki.Node(ctx, e.police, n.id); got.CertSerial != cur.SerialNumber.Text(16) {
			t.Fatalf("node shows serial %s", got.CertSerial)
		}
		state := func(c *x509.Certificate) tls.ConnectionState {
			return tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{c, ca}}}
		}
		for _, c := range []*x509.Certificate{old, cur} {
			if id, dept, err := e.pki.NodeIdentity(ctx, state(c)); err != nil || id != n.id || dept != e.policeID {
				t.Fatalf("%v: %d %d %v", c.SerialNumber, id, dept, err)
			}
		}
		if _, _, err := e.pki.NodeIdentity(ctx, tls.ConnectionState{}); !errors.Is(err, pki.ErrNoCertificate) {
			t.Fatalf("no certificate: %v", err)
		}
		if _, err := e.pki.Revoke(ctx, e.police, n.id, "更换设备"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*x509.Certificate{old, cur} {
			if _, _, err := e.pki.NodeIdentity(ctx, state(c)); !errors.Is(err, pki.ErrNodeRefused) {
				t.Fatalf("revoked %v: %v", c.SerialNumber, err)
			}
		}
		_, err = e.pki.Renew(ctx, n.id, req)
		wantCode(t, err, "pki.node_state_conflict")
		if _, err := e.pki.Renew(ctx, n.id+100, req); !errors.Is(err, apperr.ErrNotFound) {
			t.Fatalf("unknown node renews: %v", err)
		}
	})
}

func TestServerCertificateIsIssuedAndRenewed(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		e := setup(t, db)
		ctx := context.Background()
		now := time.Now()
		e.pki.SetClock(func() time.Time { return now })
		c1, err := e.pki.ServerCertificate(ctx, []string{"Exchange.Gov.Example", "10.0.0.1", " "})
		if err != nil {
			t.Fatal(err)
		}
		leaf := c1.Leaf
		if !slices.Equal(leaf.DNSNames, []string{"exchange.gov.example"}) || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.1" {
			t.Fatalf("names %v %v", leaf.DNSNames, leaf.IPAddresses)
		}
		ca, err := e.pki.EnsureCA(ctx)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "exchange.gov.example"}); err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
			t.Fatal("the server certificate works as a client certificate")
		}
		c2, _ := e.pki.ServerCertificate(ctx, []string{"10.0.0.1", "exchange.gov.example"})
		if c2.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
			t.Fatal("not cached")
		}
		e.pki.SetClock(func() time.Time { return now.Add(61 * 24 * time.Hour) })
		c3, _ := e.pki.ServerCertificate(ctx, []string{"exchange.gov.example", "10.0.0.1"})
		if c3.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			t.Fatal("not renewed with a third of its life left")
		}
		if _, err := e.pki.ServerCertificate(ctx, []string{" "}); err == nil {
			t.Fatal("a certificate for no host")
		}
		if evs := events(t, e, audit.Filter{Action: "pki.server_cert.issue"}); len(evs) != 2 {
			t.Fatalf("%d server certificates audited, want 2", len(evs))
		}
	})
}
