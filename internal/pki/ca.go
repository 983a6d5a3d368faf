package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"

	"govshare/internal/audit"
	"govshare/internal/policy"
)

// caName is the authority's row; a second authority (an SM2 one, say)
// would get its own name.
const caName = "platform"

// CACommonName names the platform CA in its certificate.
const CACommonName = "govshare platform CA"

// clockSkew backdates certificates so a node whose clock runs a little
// behind the center's accepts them at once.
const clockSkew = 5 * time.Minute

// authority is the loaded CA: its certificate, its key and the forms the
// TLS code needs.
type authority struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
	pool *x509.CertPool
}

// EnsureCA returns the platform CA, creating it on first use. Servers that
// share the database share the CA: when several start together each makes
// a candidate, the database keeps the first and all of them load that one.
func (s *Service) EnsureCA(ctx context.Context) (*x509.Certificate, error) {
	a, err := s.authority(ctx)
	if err != nil {
		return nil, err
	}
	return a.cert, nil
}

// Fingerprint is the SHA-256 of a certificate, in hex, as pages and the
// audit log show it.
func Fingerprint(c *x509.Certificate) string {
	h := sha256.Sum256(c.Raw)
	return hex.EncodeToString(h[:])
}

func (s *Service) authority(ctx context.Context) (*authority, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ca != nil {
		return s.ca, nil
	}
	a, err := s.loadCA(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		if err = s.createCA(ctx); err == nil {
			a, err = s.loadCA(ctx)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("platform CA: %w", err)
	}
	s.ca = a
	return a, nil
}

func (s *Service) loadCA(ctx context.Context) (*authority, error) {
	var der []byte
	var sealed string
	if err := s.db.QueryRow(ctx, "SELECT cert, key_sealed FROM pki_authorities WHERE name = ?", caName).Scan(&der, &sealed); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse the stored CA certificate: %w", err)
	}
	raw, err := s.seal.Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("open the CA key (every server of a deployment must share the master key): %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(raw)
	clear(raw)
	if err != nil {
		return nil, errors.New("the stored CA key is damaged")
	}
	key, ok := k.(crypto.Signer)
	if !ok || !samePublicKey(key.Public(), cert.PublicKey) {
		return nil, errors.New("the stored CA key does not belong to the CA certificate")
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{cert: cert, key: key, pem: pemBlock("CERTIFICATE", cert.Raw), pool: pool}, nil
}

// createCA makes a candidate CA and offers it to the database; the primary
// key keeps exactly one, and only the server whose row was kept audits it.
func (s *Service) createCA(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               pkix.Name{CommonName: CACommonName, Organization: []string{"govshare"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true, // it signs leaves only
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	raw, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	sealed := s.seal.Seal(raw)
	clear(raw)
	res, err := s.db.Exec(ctx, `INSERT INTO pki_authorities (name, cert, key_sealed, not_after, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, caName, der, sealed, cert.NotAfter.UTC(), now)
	if err != nil {
		return fmt.Errorf("store CA: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return nil // another server's CA was kept: load that one
	}
	return s.audit.Append(ctx, audit.By(policy.Actor{}, "pki.ca.create", "pki_ca", caName, audit.ResultOK,
		map[string]any{"subject": CACommonName, "fingerprint": Fingerprint(cert), "not_after": cert.NotAfter.UTC()}))
}

// issue signs a leaf certificate for pub. The template's serial is set
// here: 128 random bits, so serials never repeat across servers.
func (a *authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	tmpl.SerialNumber = newSerial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

func newSerial() *big.Int {
	b := make([]byte, 16)
	for {
		_, _ = rand.Read(b) // never fails (crypto/rand)
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n
		}
	}
}

// serialText is how serials are stored and shown: lower-case hex.
func serialText(n *big.Int) string { return n.Text(16) }

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// serverCert is an issued server certificate and when to replace it.
type serverCert struct {
	cert    tls.Certificate
	renewAt time.Time
}

// ServerCertificate returns the center's TLS server certificate for hosts
// (DNS names and IP addresses), signed by the platform CA so nodes trust it
// without any other root. Its key never leaves memory: each server issues
// its own, and issues a new one when a third of its 90 days is left.
func (s *Service) ServerCertificate(ctx context.Context, hosts []string) (tls.Certificate, error) {
	names, ips, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	cacheKey := strings.Join(append(slices.Clone(names), ipStrings(ips)...), ",")
	c, fresh, err := s.serverCert(ctx, cacheKey, names, ips)
	if err != nil {
		return tls.Certificate{}, err
	}
	if fresh {
		// Outside the lock: handshakes waiting for a certificate need not
		// wait for the audit log too.
		if err := s.audit.Append(ctx, audit.By(policy.Actor{}, "pki.server_cert.issue", "pki_cert", serialText(c.Leaf.SerialNumber), audit.ResultOK,
			map[string]any{"hosts": cacheKey, "not_after": c.Leaf.NotAfter.UTC()})); err != nil {
			return tls.Certificate{}, err
		}
	}
	return c, nil
}

func (s *Service) serverCert(ctx context.Context, cacheKey string, names []string, ips []net.IP) (tls.Certificate, bool, error) {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	now := s.now()
	if c := s.servers[cacheKey]; c != nil && now.Before(c.renewAt) {
		return c.cert, false, nil
	}
	a, err := s.authority(ctx)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, false, err
	}
	cn := cacheKey
	if len(names) > 0 {
		cn = names[0]
	} else if len(ips) > 0 {
		cn = ips[0].String()
	}
	leaf, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: []string{"govshare"}},
		DNSNames:    names,
		IPAddresses: ips,
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    now.Add(ServerValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, key.Public())
	if err != nil {
		return tls.Certificate{}, false, err
	}
	c := tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	s.servers[cacheKey] = &serverCert{cert: c, renewAt: now.Add(ServerValidity * 2 / 3)}
	return c, true, nil
}

// splitHosts sorts hosts into DNS names and IP addresses, without repeats.
func splitHosts(hosts []string) ([]string, []net.IP, error) {
	var names []string
	var ips []net.IP
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	if len(names) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("server certificate: give at least one host name or IP address")
	}
	slices.Sort(names)
	slices.SortFunc(ips, func(a, b net.IP) int { return strings.Compare(a.String(), b.String()) })
	return names, ips, nil
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
