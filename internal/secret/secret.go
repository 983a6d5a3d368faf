// Package secret holds the server's master key and what is derived from it:
// the audit log's sealing key and the cipher that keeps secrets (TOTP seeds,
// later app secrets) encrypted at rest. Every server of one deployment must
// share the master key; the embedded default keeps it in the data folder.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the master key's length in bytes.
const KeySize = 32

// Keys is a loaded master key.
type Keys struct {
	master []byte
}

// New wraps a master key.
func New(master []byte) (*Keys, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", KeySize, len(master))
	}
	return &Keys{master: append([]byte(nil), master...)}, nil
}

// Parse reads a base64 master key, as kept in a key file or GOVSHARE_SECRET_KEY.
func Parse(s string) (*Keys, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("master key is not base64: %w", err)
	}
	return New(b)
}

// LoadOrCreate reads the master key file at path, creating it with a new
// random key (mode 0600) when it does not exist.
func LoadOrCreate(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := Parse(string(b))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read key file: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadOrCreate(path)
		}
		return nil, fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return New(key)
}

// Derive returns a 32-byte subkey for one purpose, so that no two uses
// share a key.
func (k *Keys) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, k.master)
	m.Write([]byte("govshare/" + purpose))
	return m.Sum(nil)
}

// Sealer encrypts small secrets with AES-256-GCM under a derived key.
type Sealer struct {
	aead cipher.AEAD
}

// Sealer returns the cipher for one purpose.
func (k *Keys) Sealer(purpose string) *Sealer {
	block, err := aes.NewCipher(k.Derive("seal/" + purpose))
	if err != nil {
		panic(err) // key length is fixed; cannot happen
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &Sealer{aead: aead}
}

// Seal encrypts plaintext; the result is base64 text safe to store.
func (s *Sealer) Seal(plaintext []byte) string {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return "v1:" + base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, nil))
}

// Open decrypts what Seal produced.
func (s *Sealer) Open(sealed string) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, "v1:")
	if !ok {
		return nil, errors.New("sealed value has an unknown format")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("sealed value is damaged")
	}
	n := s.aead.NonceSize()
	out, err := s.aead.Open(nil, b[:n], b[n:], nil)
	if err != nil {
		return nil, errors.New("sealed value does not open with this server's key")
	}
	return out, nil
}
