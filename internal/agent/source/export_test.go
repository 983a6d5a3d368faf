package source

// OpenCSVDirForTest opens a CSV folder whose sort spills runs of runBytes
// to tmp, so that tests reach the external merge with small files.
func OpenCSVDirForTest(dir string, runBytes int, tmp string) Source {
	return &source{e: &csvEngine{dir: dir, runBytes: runBytes, tmp: tmp, infer: map[string]inferred{}}}
}
