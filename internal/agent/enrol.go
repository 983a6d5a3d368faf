package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
)

// Enrol trades a one-time enrolment code for the node's certificate. The
// key is made here and never leaves the data folder. api is the center's
// web address (where the code was issued). It returns the node endpoint
// the center names, if it has one.
func Enrol(ctx context.Context, api, code, dataDir, name string) (nodeURL string, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	keyFile := Config{Data: dataDir}.keyFile()
	if _, err := os.Stat(Config{Data: dataDir}.certFile()); err == nil {
		return "", fmt.Errorf("%s already holds a node certificate; use another data folder, or revoke this node in the center and delete the folder", dataDir)
	}
	key, err := os.ReadFile(keyFile)
	if errors.Is(err, os.ErrNotExist) {
		if key, err = pki.NewNodeKey(); err != nil {
			return "", err
		}
		if err := writeFile(keyFile, key, 0o600); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", err
	}
	csr, err := pki.CSR(key, name)
	if err != nil {
		return "", err
	}
	body, _ := json.Marshal(wire.Enrolment{Code: strings.TrimSpace(code), CSR: string(csr)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(api, "/")+wire.PathEnrol, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("enrol at %s: %w (is the address right and the center running?)", api, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Code      string `json:"code"`
			MessageZH string `json:"message_zh"`
			MessageEN string `json:"message_en"`
		}
		if json.Unmarshal(raw, &p) == nil && p.Code != "" {
			return "", fmt.Errorf("enrol at %s refused (%s): %s / %s", api, p.Code, p.MessageZH, p.MessageEN)
		}
		return "", fmt.Errorf("enrol at %s: %s: %s", api, resp.Status, strings.TrimSpace(string(raw)))
	}
	var got wire.Enrolled
	if err := json.Unmarshal(raw, &got); err != nil {
		return "", fmt.Errorf("enrol at %s: unexpected answer: %w", api, err)
	}
	return got.NodeURL, WriteIdentity(dataDir, key, []byte(got.Certificate), []byte(got.CA))
}

// WriteIdentity stores a node's key, certificate and the CA in its data
// folder, the key readable by the node's user only.
func WriteIdentity(dataDir string, keyPEM, certPEM, caPEM []byte) error {
	c := Config{Data: dataDir}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := writeFile(c.keyFile(), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(c.caFile(), caPEM, 0o644); err != nil {
		return err
	}
	return writeFile(c.certFile(), certPEM, 0o644)
}
