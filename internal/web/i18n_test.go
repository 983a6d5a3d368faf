package web

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEveryUIStringHasBothLanguages finds every literal key the templates
// and handlers look up and checks it has a Chinese and an English text.
func TestEveryUIStringHasBothLanguages(t *testing.T) {
	keyRE := regexp.MustCompile(`(?:\{\{\s*t|\(t|tf|T\([a-zA-Z.()]+,)\s*"([a-z_]+\.[a-zA-Z0-9_.]+)"`)
	okRE := regexp.MustCompile(`\?ok=([a-z_]+\.[a-z_.]+)`)
	check := func(name, text string) {
		for _, re := range []*regexp.Regexp{keyRE, okRE} {
			for _, m := range re.FindAllStringSubmatch(text, -1) {
				key := m[1]
				if strings.HasSuffix(key, ".") {
					continue
				}
				zh, en := T(ZH, key), T(EN, key)
				if zh == key || en == key || zh == "" || en == "" {
					t.Errorf("%s: UI string %q has no text", name, key)
				}
			}
		}
	}
	_ = fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(templateFS, p)
			check(p, string(b))
		}
		return nil
	})
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		check(f, string(b))
	}
}
