package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"govshare/internal/config"
	"govshare/internal/notify"
	"govshare/internal/policy"
)

// alarmNotifier tells the data administrators of the departments an
// exchange alarm concerns, and the platform administrators.
type alarmNotifier struct{ n *notify.Service }

func (a alarmNotifier) Alarm(ctx context.Context, deptIDs []int64, zh, en, href string) {
	for _, d := range deptIDs {
		_ = a.n.Send(ctx, notify.Notice{Kind: "exchange.alarm", DeptID: d, Roles: []policy.Role{policy.DeptAdmin}, TitleZH: zh, TitleEN: en, Href: href,
			ObjectType: "exchange_alarm"})
	}
	_ = a.n.Send(ctx, notify.Notice{Kind: "exchange.alarm", Roles: []policy.Role{policy.PlatformAdmin}, TitleZH: zh, TitleEN: en, Href: href,
		ObjectType: "exchange_alarm"})
}

// startExchange starts the exchange center's workers and, when an address
// is configured, the node endpoint (mutual TLS with the platform CA).
func (p *Platform) startExchange(ctx context.Context, cfg *config.Config, workers *sync.WaitGroup, log *slog.Logger) error {
	done, err := p.Exchange.Start(ctx)
	if err != nil {
		return err
	}
	workers.Go(func() { <-done })
	if cfg.NodeAddr == "" {
		return nil
	}
	var hosts []string
	for _, h := range strings.Split(cfg.NodeHosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, h)
		}
	}
	tlsCfg, err := p.PKI.ServerTLS(ctx, hosts)
	if err != nil {
		return fmt.Errorf("node endpoint certificate: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.NodeAddr)
	if err != nil {
		return fmt.Errorf("node endpoint: listen on %s: %w (choose another with --node-addr, or empty to turn it off)", cfg.NodeAddr, err)
	}
	srv := &http.Server{Handler: p.Exchange.NodeHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	workers.Go(func() { _ = srv.Serve(tls.NewListener(ln, tlsCfg)) })
	workers.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	url := "https://" + ln.Addr().String()
	p.nodeURL.Store(&url)
	log.Info("node endpoint serving", "url", url)
	if p.Out != nil {
		fmt.Fprintf(p.Out, "  前置机接口 node endpoint: %s\n", url)
	}
	return nil
}
