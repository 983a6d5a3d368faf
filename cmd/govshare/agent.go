package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"govshare/internal/agent"
	"govshare/internal/server"
)

const agentUsage = `usage:
  govshare agent enrol --api URL --code CODE --name NAME [--data node-data] [--config node.toml]
                                            enrol the node with the one-time code from the platform's 前置机 page:
                                            makes its key, gets its certificate, writes node.toml if missing
  govshare agent run --config node.toml     run the exchange node (前置机): the center's jobs and subscriptions, until stopped
  govshare agent run JOB --once --config node.toml
                                            run one job now and exit, with progress, once the center has counted it

node.toml:
  center = "https://center.example:8443"   # the center's node endpoint (serve --node-addr)
  data   = "node-data"                     # key, certificates, the node's own store (前置库)
  metrics = "127.0.0.1:9464"               # optional: Prometheus metrics
  [[sources]]                              # databases jobs read from
  name = "hjk"  kind = "postgres"  dsn = "postgres://reader@db/hj"
  [[targets]]                              # databases subscriptions write into
  name = "yw"   kind = "mysql"     dsn = "writer:pw@tcp(db:3306)/yw"`

// The collector's settings of a node when the operator sets none (GOGC,
// GOMEMLIMIT). A node's live heap is some 25 MB, but a center delivering
// or a table read in full makes garbage fast, and with Go's defaults a
// provider node peaked at 117–133 MB resident: the soft limit makes the
// collector run harder near it rather than let the heap grow (a node may
// be a small machine beside the department's database). Below the limit
// the heap grows by 200 % of the live heap between collections: in the
// exchange bench that took 10–18 % off the nodes' CPU; with the limit at
// 80 MB their peaks stayed at 120–122 MB (96 MB: up to 138 MB).
const (
	agentGCPercent   = 200
	agentMemoryLimit = 80 << 20
)

// agentCmd runs an exchange node.
func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "enrol" {
		return agentEnrol(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "run" {
		return errors.New(agentUsage)
	}
	fs := flag.NewFlagSet("agent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "node.toml", "node configuration file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	once := fs.Bool("once", false, "run the job named before the flags once, now, with progress, and exit (the node's daemon must be stopped)")
	rest := args[1:]
	job := ""
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		job, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if (job != "") != *once {
		return errors.New("run one job with: govshare agent run JOB --once --config node.toml (JOB is the job's name or id)\n" + agentUsage)
	}
	cfg, err := agent.LoadConfig(*path)
	if err != nil {
		return err
	}
	server.TuneGC(agentGCPercent, agentMemoryLimit)
	var l slog.Level
	_ = l.UnmarshalText([]byte(*level))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: l}))
	if *once {
		l = max(l, slog.LevelWarn) // the progress line is the output
		log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: l}))
	}
	a, err := agent.Open(ctx, cfg, agent.Options{Version: version, Log: log})
	if err != nil {
		return err
	}
	defer a.Close()
	if *once {
		return agentOnce(ctx, a, job, stdout, stderr)
	}
	fmt.Fprintf(stdout, "govshare agent %s: node store %s, center %s\n", version, cfg.Data, cfg.Center)
	return a.Run(ctx)
}

// agentEnrol enrols a node and leaves a configuration to fill in.
func agentEnrol(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent enrol", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "", "the platform's web address, e.g. https://govshare.example (where the code was issued)")
	code := fs.String("code", "", "the one-time enrolment code (or GOVSHARE_ENROL_CODE)")
	name := fs.String("name", "", "the node's name, as registered on the platform")
	data := fs.String("data", "node-data", "the node's data folder: key, certificates, its store")
	cfgPath := fs.String("config", "node.toml", "configuration file to write if missing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *code == "" {
		*code = os.Getenv("GOVSHARE_ENROL_CODE")
	}
	if *api == "" || *code == "" || *name == "" {
		return errors.New("agent enrol needs --api, --code and --name (the 前置机 page shows the whole command)\n" + agentUsage)
	}
	nodeURL, err := agent.Enrol(ctx, *api, *code, *data, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "前置机已注册 / node enrolled: key and certificate in %s\n", *data)
	if _, err := os.Stat(*cfgPath); err == nil {
		fmt.Fprintf(stdout, "%s exists and was left as it is; its center should be %s\n", *cfgPath, nodeURL)
		return nil
	}
	if nodeURL == "" {
		nodeURL = "https://CENTER:8443"
	}
	dataRel := *data
	if abs, err := filepath.Abs(*data); err == nil {
		if dir, err := filepath.Abs(filepath.Dir(*cfgPath)); err == nil {
			if rel, err := filepath.Rel(dir, abs); err == nil {
				dataRel = rel
			}
		}
	}
	cfg := fmt.Sprintf(nodeTemplate, nodeURL, dataRel)
	if err := os.WriteFile(*cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: add the node's [[sources]] and [[targets]], then run: govshare agent run --config %s\n", *cfgPath, *cfgPath)
	return nil
}

const nodeTemplate = `# govshare 前置机配置 / exchange node configuration
center = %q   # 中心的前置机接口 / the center's node endpoint
data = %q     # 密钥、证书和前置库 / key, certificates and the node's store
# metrics = "127.0.0.1:9464"

# 数据源：交换任务从这里读取 / data sources jobs read from
# [[sources]]
# name = "hjk"
# kind = "postgres"          # postgres, mysql, sqlite, csvdir
# dsn = "postgres://reader@127.0.0.1/hj"

# 目标库：订阅写入这里 / target databases subscriptions write into
# [[targets]]
# name = "yw"
# kind = "mysql"
# dsn = "writer:secret@tcp(127.0.0.1:3306)/yw"
`

// agentOnce runs one job once and shows its progress on one line.
func agentOnce(ctx context.Context, a *agent.Agent, job string, stdout, stderr io.Writer) error {
	start := time.Now()
	var most int64
	runs, err := a.RunOnce(ctx, job, func(p agent.OnceProgress) {
		most = max(most, p.Queued)
		rate := float64(p.Extracted) / max(time.Since(start).Seconds(), 0.001)
		switch p.Phase {
		case "extracting":
			fmt.Fprintf(stderr, "\r\033[K抽取 extracting  %s %d 行 rows (%.0f rows/s), 前置库待发送 %d 批 batches queued",
				spinner(time.Since(start)), p.Extracted, rate, p.Queued)
		case "forwarding":
			fmt.Fprintf(stderr, "\r\033[K发送 forwarding   %s %d/%d 批 batches", bar(most-p.Queued, most, 30), most-p.Queued, most)
		default:
			fmt.Fprintf(stderr, "\r\033[K核对 reconciling  %s 等待中心计数 waiting for the center's counts", spinner(time.Since(start)))
		}
	})
	fmt.Fprintln(stderr)
	for _, r := range runs {
		c := r.Received
		fmt.Fprintf(stdout, "run %d %s: %d rows received by the center, %d inserted, %d updated, %d unchanged, %d deleted, %d rejected\n",
			r.Run, r.State, c.Rows, c.Inserted, c.Updated, c.Unchanged, c.Deleted, c.Rejected)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// bar draws done of total as a bar of width characters.
func bar(done, total int64, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("=", width) + "]"
	}
	n := int(done * int64(width) / total)
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// spinner turns while there is no total to draw a bar of.
func spinner(d time.Duration) string {
	return string(`|/-\`[int(d/(250*time.Millisecond))%4])
}
