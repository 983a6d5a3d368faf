// Package agent is the exchange node (前置机): `govshare agent`, the one
// process a department runs next to its business databases. It enrols
// with the center, then runs the jobs the center defines (extracting rows
// from its data sources into the resource store), delivers the resources
// its department subscribed to into target tables, and reports heartbeats,
// job states, lag and throughput.
//
// Everything it extracts goes first into its own JetStream store (the
// 前置库, an embedded NATS server in the node's data folder, synced to
// disk before a batch counts as extracted), and from there to the center
// in order. A node whose link to the center is down keeps extracting;
// what it holds goes out when the link returns. The last batch a job put
// into the store carries the job's checkpoint, so a node killed at any
// point resumes where its store says it stopped.
package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"govshare/internal/agent/source"
)

// Config is the node's configuration file (TOML).
type Config struct {
	// Center is the center's node endpoint, e.g. https://center:8443.
	Center string `toml:"center"`
	// Data is the node's folder: key, certificates, the local store.
	Data string `toml:"data"`
	// Metrics, when set, serves Prometheus metrics at http://<addr>/metrics.
	Metrics string `toml:"metrics"`
	// Sources are the databases jobs read from; Targets those
	// subscriptions write into. Jobs and subscriptions name them.
	Sources []Database `toml:"sources"`
	Targets []Database `toml:"targets"`
}

// Database is one named database of the node.
type Database struct {
	Name string `toml:"name"`
	Kind string `toml:"kind"` // postgres, mysql, sqlite, csvdir (sources only)
	DSN  string `toml:"dsn"`
}

// LoadConfig reads a configuration file.
func LoadConfig(path string) (Config, error) {
	var c Config
	if _, err := toml.DecodeFile(path, &c); err != nil {
		return c, fmt.Errorf("node configuration %s: %w", path, err)
	}
	if c.Data == "" {
		c.Data = filepath.Join(filepath.Dir(path), "node-data")
	} else if !filepath.IsAbs(c.Data) {
		c.Data = filepath.Join(filepath.Dir(path), c.Data)
	}
	return c, c.Check()
}

// Check reports what is wrong with a configuration.
func (c Config) Check() error {
	var errs []string
	if c.Center != "" && !strings.HasPrefix(c.Center, "https://") {
		errs = append(errs, "center must be the https:// address of the center's node endpoint")
	}
	names := map[string]bool{}
	for i, d := range append(append([]Database(nil), c.Sources...), c.Targets...) {
		if d.Name == "" {
			errs = append(errs, fmt.Sprintf("database %d has no name", i+1))
		}
		if names[d.Name] {
			errs = append(errs, "database name "+d.Name+" is used twice")
		}
		names[d.Name] = true
		ok := false
		for _, k := range source.Kinds {
			ok = ok || k == d.Kind
		}
		if !ok {
			errs = append(errs, fmt.Sprintf("database %s: kind %q is not one of %s", d.Name, d.Kind, strings.Join(source.Kinds, ", ")))
		}
	}
	for _, d := range c.Targets {
		if d.Kind == source.CSVDir {
			errs = append(errs, "target "+d.Name+": a CSV folder cannot be a target")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Files of the node's data folder.
func (c Config) keyFile() string  { return filepath.Join(c.Data, "node.key") }
func (c Config) certFile() string { return filepath.Join(c.Data, "node.crt") }
func (c Config) caFile() string   { return filepath.Join(c.Data, "ca.crt") }

func (c Config) source(name string) (Database, bool) {
	for _, d := range c.Sources {
		if d.Name == name {
			return d, true
		}
	}
	return Database{}, false
}

func (c Config) target(name string) (Database, bool) {
	for _, d := range c.Targets {
		if d.Name == name {
			return d, true
		}
	}
	return Database{}, false
}

func writeFile(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
