package secret_test

import (
	"os"
	"path/filepath"
	"testing"

	"govshare/internal/secret"
)

func TestSealOpensOnlyWithTheSameKeyAndPurpose(t *testing.T) {
	k1, _ := secret.New(make([]byte, 32))
	other := make([]byte, 32)
	other[0] = 1
	k2, _ := secret.New(other)
	sealed := k1.Sealer("totp").Seal([]byte("JBSWY3DPEHPK3PXP"))
	if got, err := k1.Sealer("totp").Open(sealed); err != nil || string(got) != "JBSWY3DPEHPK3PXP" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := k2.Sealer("totp").Open(sealed); err == nil {
		t.Fatal("opened with another key")
	}
	if _, err := k1.Sealer("app").Open(sealed); err == nil {
		t.Fatal("opened with another purpose")
	}
	if sealed == k1.Sealer("totp").Seal([]byte("JBSWY3DPEHPK3PXP")) {
		t.Fatal("sealing is deterministic")
	}
}

func TestKeyFileIsCreatedOnceWithPrivateMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "secret.key")
	a, err := secret.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := secret.LoadOrCreate(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.Derive("x")) != string(b.Derive("x")) {
		t.Fatal("key changed on second load")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode().Perm())
	}
	os.WriteFile(path, []byte("not base64!"), 0o600)
	if _, err := secret.LoadOrCreate(path); err == nil {
		t.Fatal("damaged key accepted")
	}
}
