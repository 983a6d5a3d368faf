package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startEmbedded runs a NATS server with JetStream inside this process and
// waits until it takes connections. SyncAlways makes every write reach the
// disk before it is acknowledged: an exchange receipt must survive a power
// cut, and govshare's volumes are small enough to pay for it.
func startEmbedded(cfg Config, log *slog.Logger) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("embedded NATS needs a store folder (StoreDir), e.g. <data>/nats")
	}
	opts := &server.Options{
		ServerName: cfg.Name,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		SyncAlways: true,
		DontListen: cfg.Listen == "",
		NoSigs:     true, // signals belong to govshare, not to the library
	}
	if cfg.Listen != "" {
		host, port, err := splitListen(cfg.Listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configure embedded NATS: %w", err)
	}
	sl := &serverLog{log: log.With("from", "nats-server")}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	// The server reports start failures (store folder, port in use) only
	// through its logger, so wait for ready while watching for them.
	deadline := time.Now().Add(readyTimeout)
	for !srv.ReadyForConnections(100 * time.Millisecond) {
		if msg := sl.fatal(); msg != "" || time.Now().After(deadline) {
			srv.Shutdown()
			srv.WaitForShutdown()
			if msg == "" {
				msg = "not ready after " + readyTimeout.String()
			}
			advice := "check that the store folder is writable"
			if cfg.Listen != "" {
				advice += " and that " + cfg.Listen + " is free"
			}
			return nil, fmt.Errorf("start embedded NATS (store %s): %s — %s", cfg.StoreDir, msg, advice)
		}
	}
	if !srv.JetStreamEnabled() {
		msg := sl.fatal()
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded NATS JetStream (store %s): %s — check that the store folder is writable", cfg.StoreDir, msg)
	}
	return srv, nil
}

// splitListen turns "host:port" into server options. Port 0 asks for a free
// port, as in net.Listen; the server itself would read 0 as its default 4222.
func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, fmt.Errorf("embedded NATS listen address %q: %w — use host:port, e.g. 127.0.0.1:4222", listen, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("embedded NATS listen address %q: bad port — use host:port, e.g. 127.0.0.1:4222", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// serverLog sends the embedded server's log to slog. Notices go to debug:
// the server's start banner would otherwise drown govshare's own start
// lines. Fatal errors are kept, since with a library logger they do not
// stop the process and are the only report of a failed start.
type serverLog struct {
	log *slog.Logger

	mu        sync.Mutex
	fatalText string
}

func (l *serverLog) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalText
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *serverLog) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }

func (l *serverLog) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.log.Error(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fatalText == "" {
		l.fatalText = msg
	}
}
