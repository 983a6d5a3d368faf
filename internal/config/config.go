// Package config is the server's configuration: defaults, then an optional
// TOML file, then GOVSHARE_* environment variables, then command-line
// flags, each overriding the one before. `govshare serve --print-config`
// shows the result and where each value came from.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is everything `serve` and `demo` need.
type Config struct {
	Addr          string `toml:"addr" env:"GOVSHARE_ADDR" help:"HTTP listen address"`
	Data          string `toml:"data" env:"GOVSHARE_DATA" help:"data folder (SQLite file, embedded NATS store, key file)"`
	DB            string `toml:"db" env:"GOVSHARE_DB" help:"database: empty = SQLite in the data folder; postgres://… = PostgreSQL"`
	NATS          string `toml:"nats" env:"GOVSHARE_NATS" help:"bus: empty = embedded NATS JetStream; nats://… = external server or cluster"`
	NodeAddr      string `toml:"node_addr" env:"GOVSHARE_NODE_ADDR" help:"listen address of the node endpoint (mutual TLS for exchange nodes); empty = none"`
	NodeHosts     string `toml:"node_hosts" env:"GOVSHARE_NODE_HOSTS" help:"comma-separated host names and IPs nodes reach the node endpoint by (its certificate names them)"`
	Replicas      string `toml:"exchange_replicas" env:"GOVSHARE_EXCHANGE_REPLICAS" help:"replicas of the exchange streams: 1 on one server, 3 on a three-node NATS cluster"`
	NATSListen    string `toml:"nats_listen" env:"GOVSHARE_NATS_LISTEN" help:"embedded NATS: also listen on host:port for nodes (empty = in-process only)"`
	SecretKeyFile string `toml:"secret_key_file" env:"GOVSHARE_SECRET_KEY_FILE" help:"master key file (default <data>/secret.key); all servers of one deployment share it"`
	AuditHash     string `toml:"audit_hash" env:"GOVSHARE_AUDIT_HASH" help:"audit hash chain algorithm: sm3 or sha256"`
	AuditRetain   string `toml:"audit_retention" env:"GOVSHARE_AUDIT_RETENTION" help:"how long audit events are kept, e.g. 5y, 2y, 18m (months), 400d; at least 6m"`
	TLSCert       string `toml:"tls_cert" env:"GOVSHARE_TLS_CERT" help:"TLS certificate file (serve HTTPS when set with tls_key)"`
	TLSKey        string `toml:"tls_key" env:"GOVSHARE_TLS_KEY" help:"TLS private key file"`
	SecureCookies bool   `toml:"secure_cookies" env:"GOVSHARE_SECURE_COOKIES" help:"mark cookies Secure (set behind a TLS-terminating proxy)"`
	LogLevel      string `toml:"log_level" env:"GOVSHARE_LOG_LEVEL" help:"debug, info, warn or error"`
	NetworkZone   string `toml:"network_zone" env:"GOVSHARE_NETWORK_ZONE" help:"internal (政务内网) or external (互联网/政务外网); classified catalog entries only on internal"`
	CodePrefix    string `toml:"catalog_code_prefix" env:"GOVSHARE_CATALOG_CODE_PREFIX" help:"prefix of resource codes (e.g. a province's own)"`
	CodeSeparator string `toml:"catalog_code_separator" env:"GOVSHARE_CATALOG_CODE_SEPARATOR" help:"separator between classification code and sequence"`
	CodeWidth     string `toml:"catalog_code_width" env:"GOVSHARE_CATALOG_CODE_WIDTH" help:"digits of the resource code sequence"`
	ChangeDays    string `toml:"change_deadline_days" env:"GOVSHARE_CHANGE_DEADLINE_DAYS" help:"working days to reflect a change of law or functions in the catalog"`
	AnswerDays    string `toml:"share_answer_days" env:"GOVSHARE_SHARE_ANSWER_DAYS" help:"working days a provider has to answer a share application"`
	ProvideDays   string `toml:"share_provide_days" env:"GOVSHARE_SHARE_PROVIDE_DAYS" help:"working days a provider has to provide after a ruling to share"`
}

// Defaults returns the embedded-default configuration.
func Defaults() Config {
	return Config{Addr: "127.0.0.1:8080", Data: "./data", AuditHash: "sm3", AuditRetain: "5y", LogLevel: "info",
		NetworkZone: "internal", CodeSeparator: "/", CodeWidth: "6", ChangeDays: "15", AnswerDays: "10", ProvideDays: "5",
		NodeHosts: "127.0.0.1,localhost", Replicas: "1"}
}

// Loaded is a configuration with the source of each value.
type Loaded struct {
	Config
	File    string
	Sources map[string]string // toml key → default | file | env | flag
}

// Load parses args (after the subcommand) with the environment lookup.
// It returns flag.ErrHelp when -h was given.
func Load(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (*Loaded, *flag.FlagSet, error) {
	l := &Loaded{Config: Defaults(), Sources: map[string]string{}}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", getenv("GOVSHARE_CONFIG"), "configuration file (TOML); env GOVSHARE_CONFIG")
	flagVals := map[string]*string{}
	boolFlags := map[string]*bool{}
	forEachField(&l.Config, func(key, env, help string, v reflect.Value) {
		if v.Kind() == reflect.Bool {
			boolFlags[key] = fs.Bool(flagName(key), v.Bool(), help+"; env "+env)
		} else {
			flagVals[key] = fs.String(flagName(key), v.String(), help+"; env "+env)
		}
		l.Sources[key] = "default"
	})
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if *configFile != "" {
		l.File = *configFile
		md, err := toml.DecodeFile(*configFile, &l.Config)
		if err != nil {
			return nil, fs, fmt.Errorf("config file %s: %w", *configFile, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return nil, fs, fmt.Errorf("config file %s: unknown setting %q (see govshare serve -h)", *configFile, und[0].String())
		}
		for _, k := range md.Keys() {
			l.Sources[k.String()] = "file"
		}
	}
	var err error
	forEachField(&l.Config, func(key, env, _ string, v reflect.Value) {
		if s := getenv(env); s != "" {
			if e := setValue(v, s); e != nil && err == nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			l.Sources[key] = "env"
		}
	})
	if err != nil {
		return nil, fs, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	forEachField(&l.Config, func(key, _, _ string, v reflect.Value) {
		if !set[flagName(key)] {
			return
		}
		if b, ok := boolFlags[key]; ok {
			v.SetBool(*b)
		} else {
			v.SetString(*flagVals[key])
		}
		l.Sources[key] = "flag"
	})
	return l, fs, l.Validate()
}

func flagName(key string) string { return strings.ReplaceAll(key, "_", "-") }

func forEachField(c *Config, fn func(key, env, help string, v reflect.Value)) {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		fn(f.Tag.Get("toml"), f.Tag.Get("env"), f.Tag.Get("help"), v.Field(i))
	}
}

func setValue(v reflect.Value, s string) error {
	if v.Kind() == reflect.Bool {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		v.SetBool(b)
		return nil
	}
	v.SetString(s)
	return nil
}

// Validate checks values that can be wrong.
func (c *Config) Validate() error {
	if c.AuditHash != "sm3" && c.AuditHash != "sha256" {
		return fmt.Errorf("audit_hash must be sm3 or sha256, got %q", c.AuditHash)
	}
	d, err := ParseRetention(c.AuditRetain)
	if err != nil {
		return err
	}
	if d < 180*24*time.Hour {
		return fmt.Errorf("audit_retention %s is shorter than the legal minimum of 6 months (6m)", c.AuditRetain)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls_cert and tls_key must be given together")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level must be debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.NetworkZone != "internal" && c.NetworkZone != "external" {
		return fmt.Errorf("network_zone must be internal or external, got %q", c.NetworkZone)
	}
	if w, err := strconv.Atoi(c.CodeWidth); err != nil || w < 1 || w > 12 {
		return fmt.Errorf("catalog_code_width must be a number from 1 to 12, got %q", c.CodeWidth)
	}
	if d, err := strconv.Atoi(c.ChangeDays); err != nil || d < 1 || d > 60 {
		return fmt.Errorf("change_deadline_days must be a number from 1 to 60, got %q", c.ChangeDays)
	}
	for _, d := range []struct{ key, v string }{{"share_answer_days", c.AnswerDays}, {"share_provide_days", c.ProvideDays}} {
		if n, err := strconv.Atoi(d.v); err != nil || n < 1 || n > 60 {
			return fmt.Errorf("%s must be a number from 1 to 60, got %q", d.key, d.v)
		}
	}
	if c.NATS != "" && !strings.HasPrefix(c.NATS, "nats://") && !strings.HasPrefix(c.NATS, "tls://") {
		return fmt.Errorf("nats must be empty (embedded) or a nats:// URL, got %q", c.NATS)
	}
	return nil
}

// ParseRetention reads "5y", "18m" (months), "400d" or a Go duration.
func ParseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err == nil && n > 0 {
			switch s[len(s)-1] {
			case 'y':
				return time.Duration(n) * 365 * 24 * time.Hour, nil
			case 'm':
				return time.Duration(n) * 30 * 24 * time.Hour, nil
			case 'd':
				return time.Duration(n) * 24 * time.Hour, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("audit_retention %q: use e.g. 5y, 18m, 400d", s)
	}
	return d, nil
}

// Retention is the parsed audit retention.
func (c *Config) Retention() time.Duration {
	d, _ := ParseRetention(c.AuditRetain)
	return d
}

// DatabaseDSN is the database to open: the configured one, or the SQLite
// file in the data folder.
func (c *Config) DatabaseDSN() string {
	if c.DB != "" {
		return c.DB
	}
	return filepath.Join(c.Data, "govshare.db")
}

// KeyFile is the master key file.
func (c *Config) KeyFile() string {
	if c.SecretKeyFile != "" {
		return c.SecretKeyFile
	}
	return filepath.Join(c.Data, "secret.key")
}

// Print writes the effective configuration as TOML with each value's source.
func (l *Loaded) Print(w io.Writer) {
	fmt.Fprintln(w, "# govshare effective configuration")
	if l.File != "" {
		fmt.Fprintf(w, "# file: %s\n", l.File)
	}
	type line struct{ key, val, src string }
	var lines []line
	forEachField(&l.Config, func(key, env, _ string, v reflect.Value) {
		val := fmt.Sprint(v.Interface())
		if key == "db" && strings.Contains(val, "@") {
			val = redactURL(val)
		}
		if key == "nats" {
			val = redactURL(val)
		}
		q := strconv.Quote(val)
		if v.Kind() == reflect.Bool {
			q = val
		}
		lines = append(lines, line{key, q, l.Sources[key] + ", " + env})
	})
	width := 0
	for _, x := range lines {
		width = max(width, len(x.key)+len(x.val)+3)
	}
	for _, x := range lines {
		s := x.key + " = " + x.val
		fmt.Fprintf(w, "%-*s  # %s\n", width, s, x.src)
	}
	fmt.Fprintf(w, "# derived: database %s\n", redactURL(l.DatabaseDSN()))
	fmt.Fprintf(w, "# derived: master key file %s\n", l.KeyFile())
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	at := strings.Index(s, "@")
	scheme := strings.Index(s, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return s
	}
	userinfo := s[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return s[:scheme+3] + userinfo[:i] + ":xxxxx" + s[at:]
	}
	return s
}

// Keys lists the configuration keys, for documentation.
func Keys() []string {
	var out []string
	c := Defaults()
	forEachField(&c, func(key, _, _ string, _ reflect.Value) { out = append(out, key) })
	sort.Strings(out)
	return out
}
