//go:build race

package search

// raceDetector is true when the tests run under -race, which slows the
// pure-Go SQLite and Bleve several times over.
const raceDetector = true
