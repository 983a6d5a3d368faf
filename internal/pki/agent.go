package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
)

// The agent's side of enrolment: make a key (kept on the node, never sent),
// make a certificate request with it, send the request with the enrolment
// code to Enrol, and connect with ClientTLS.

// NewNodeKey makes a node's private key (ECDSA P-256) as PKCS#8 PEM, for
// the agent to keep in a file only it can read.
func NewNodeKey() (keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

// CSR makes a PEM certificate request for the key in keyPEM. The node's
// name goes in for people reading the request; the platform names the
// certificate after the node the enrolment code belongs to.
func CSR(keyPEM []byte, nodeName string) ([]byte, error) {
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: nodeName}}, key)
	if err != nil {
		return nil, err
	}
	return pemBlock("CERTIFICATE REQUEST", der), nil
}

// parseKey reads a PKCS#8 private key from PEM.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("node key: expected a PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("node key: not a PKCS#8 private key")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("node key: cannot sign")
	}
	return signer, nil
}
