package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"govshare/internal/agent"
)

const agentUsage = `usage:
  govshare agent run --config node.toml     run the exchange node (前置机): the center's jobs and subscriptions, until stopped

node.toml:
  center = "https://center.example:8443"   # the center's node endpoint (serve --node-addr)
  data   = "node-data"                     # key, certificates, the node's own store (前置库)
  metrics = "127.0.0.1:9464"               # optional: Prometheus metrics
  [[sources]]                              # databases jobs read from
  name = "hjk"  kind = "postgres"  dsn = "postgres://reader@db/hj"
  [[targets]]                              # databases subscriptions write into
  name = "yw"   kind = "mysql"     dsn = "writer:pw@tcp(db:3306)/yw"`

// agentCmd runs an exchange node.
func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		return errors.New(agentUsage)
	}
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "node.toml", "node configuration file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return err
	}
	var l slog.Level
	_ = l.UnmarshalText([]byte(*level))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: l}))
	a, err := agent.Open(ctx, cfg, agent.Options{Version: version, Log: log})
	if err != nil {
		return err
	}
	defer a.Close()
	fmt.Fprintf(stdout, "govshare agent %s: node store %s, center %s\n", version, cfg.Data, cfg.Center)
	return a.Run(ctx)
}
