package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRefdataCommandsLoadRegionsAndCodeTables(t *testing.T) {
	for name, flags := range backendArgs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, content string) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			bad := write("bad.csv", "code,name,status\n350102,鼓楼区,current\n350102,鼓楼区,current\n")
			if _, _, err := cli(t, "", append([]string{"refdata", "regions", "import", bad}, flags...)...); err == nil || !strings.Contains(err.Error(), "第3行") {
				t.Fatalf("duplicate code: %v", err)
			}
			good := write("regions.csv", "code,name,status,valid_from,valid_to\n350102,鼓楼区,current,,\n350182,长乐市,retired,1994-02-18,2017-06-30\n")
			out, _, err := cli(t, "", append([]string{"refdata", "regions", "import", good}, flags...)...)
			if err != nil || !strings.Contains(out, "loaded 2 region codes (1 current, 1 retired)") {
				t.Fatalf("regions: %q %v", out, err)
			}
			codes := write("marital.json", `[{"code":"10","label":"未婚"},{"code":"20","label":"已婚"}]`)
			out, _, err = cli(t, "", append([]string{"refdata", "codes", "import", "GB/T 2261.2", codes, "--title", "婚姻状况代码"}, flags...)...)
			if err != nil || !strings.Contains(out, "code:GB/T 2261.2") || !strings.Contains(out, "2 codes") {
				t.Fatalf("codes: %q %v", out, err)
			}
			if _, _, err := cli(t, "", "refdata", "regions"); err == nil || !strings.Contains(err.Error(), "usage") {
				t.Fatalf("usage: %v", err)
			}
		})
	}
}
