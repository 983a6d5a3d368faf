// Package bus is govshare's message bus: NATS with JetStream, either embedded
// in the govshare process (the default, store under the data folder) or an
// external server or cluster. The data exchange is built on top of it; this
// package only starts the bus, stops it cleanly and says whether it is healthy,
// so the rest of govshare never cares which of the two it is talking to.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says which bus to use. The zero URL means embedded, so a fresh
// install needs no NATS of its own.
type Config struct {
	URL      string // "" = embedded server; "nats://host:port[,nats://…]" = external
	StoreDir string // embedded: JetStream store folder (e.g. <data>/nats)
	Listen   string // embedded: optional "host:port" for clients/leaf nodes to connect; "" = in-process only (DontListen)
	Name     string // client/server name, e.g. "govshare"
}

const (
	// dialTimeout bounds each TCP dial at Open, so a wrong URL fails in
	// seconds instead of hanging the start of the server.
	dialTimeout = 2 * time.Second
	// readyTimeout bounds the embedded server start and the first JetStream
	// answer; a healthy bus needs far less, a sick one will not get better.
	readyTimeout = 10 * time.Second
	// drainTimeout bounds Close: in-flight messages get this long to finish.
	drainTimeout = 10 * time.Second
)

// Bus is an open connection to the bus, plus the embedded server when there
// is one. It is safe for concurrent use.
type Bus struct {
	nc        *nats.Conn
	js        jetstream.JetStream
	srv       *server.Server // nil when the bus is external
	clientURL string
	log       *slog.Logger

	closed    chan struct{} // closed by nats once the connection is closed
	closeOnce sync.Once
	closeErr  error
}

// Open starts the embedded server or connects to the external one, then asks
// JetStream for the account info: a bus that cannot store messages is no bus
// for the exchange, so Open fails rather than letting the first exchange fail
// later. Errors say what to check next.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Bus, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = "govshare"
	}
	b := &Bus{log: log.With("component", "bus"), closed: make(chan struct{})}

	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(dialTimeout),
		nats.DrainTimeout(drainTimeout),
		// Once connected, never give up: an external NATS that restarts must
		// not leave govshare running without a bus.
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				b.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				b.log.Error("NATS error", "subject", sub.Subject, "err", err)
				return
			}
			b.log.Error("NATS error", "err", err)
		}),
	}

	where := ""
	if cfg.URL == "" {
		srv, err := startEmbedded(cfg, b.log)
		if err != nil {
			return nil, err
		}
		b.srv = srv
		if cfg.Listen != "" {
			b.clientURL = srv.ClientURL()
		}
		where = "embedded NATS"
		// In-process even when listening: our own traffic needs no TCP.
		b.nc, err = nats.Connect("", append(opts, nats.InProcessServer(srv))...)
		if err != nil {
			b.shutdownServer()
			return nil, fmt.Errorf("connect to embedded NATS: %w", err)
		}
	} else {
		redacted, err := redactURLs(cfg.URL)
		if err != nil {
			return nil, err
		}
		b.clientURL = redacted
		where = "NATS at " + redacted
		b.nc, err = nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w — is the server running and reachable, with JetStream enabled (nats-server -js)?", where, err)
		}
	}

	b.js, _ = jetstream.New(b.nc) // fails only for a nil connection
	checkCtx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if _, err := b.js.AccountInfo(checkCtx); err != nil {
		_ = b.Close()
		return nil, jetStreamError(where, err)
	}
	if b.srv != nil {
		b.log.Info("embedded NATS started", "store", cfg.StoreDir, "client_url", b.clientURL)
	} else {
		b.log.Info("connected to NATS", "url", b.nc.ConnectedUrlRedacted())
	}
	return b, nil
}

// jetStreamError turns a failed JetStream request into advice: the usual
// causes are a server started without -js, an account without JetStream, or
// a cluster that has lost its meta leader.
func jetStreamError(where string, err error) error {
	switch {
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%s answers but JetStream is off: %w — start the server with JetStream (nats-server -js)", where, err)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%s answers but JetStream is off for this account: %w — enable JetStream for the account govshare connects as", where, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s did not answer a JetStream request: %w — is JetStream enabled (nats-server -js) and, in a cluster, is a meta leader elected?", where, err)
	default:
		return fmt.Errorf("%s: JetStream account info: %w", where, err)
	}
}

// Conn is the core NATS connection, for plain publish/subscribe.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream is the persistent side of the bus: streams, consumers, KV.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Embedded reports whether the NATS server runs inside this process, so the
// caller knows that stopping govshare stops the bus too.
func (b *Bus) Embedded() bool { return b.srv != nil }

// ClientURL is where others (agents, leaf nodes, the nats CLI) reach this
// bus: the listen URL of the embedded server, or the external URL with its
// credentials redacted so it can be shown and logged. It is "" for an
// embedded server that does not listen.
func (b *Bus) ClientURL() string { return b.clientURL }

// Check is the readiness probe: the connection is up and JetStream answers
// within ctx. A connection that is merely reconnecting is reported as not
// ready, since publishes would block or fail.
func (b *Bus) Check(ctx context.Context) error {
	if status := b.nc.Status(); status != nats.CONNECTED {
		return fmt.Errorf("bus not ready: NATS connection is %s", status)
	}
	if _, err := b.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("bus not ready: JetStream account info: %w", err)
	}
	return nil
}

// Close drains the connection, so subscriptions finish the messages they
// hold and pending publishes are flushed, then shuts down the embedded
// server and waits for it, so its store is flushed before the process exits.
// Calling it again returns the first result.
func (b *Bus) Close() error {
	b.closeOnce.Do(func() {
		err := b.nc.Drain()
		if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) {
			err = nil // nothing left to drain; Drain closed it if needed
		}
		if err != nil {
			b.nc.Close()
			b.closeErr = fmt.Errorf("drain NATS connection: %w", err)
		}
		select {
		case <-b.closed:
		case <-time.After(drainTimeout + time.Second):
			b.nc.Close()
		}
		b.shutdownServer()
	})
	return b.closeErr
}

func (b *Bus) shutdownServer() {
	if b.srv == nil {
		return
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
}

// redactURLs checks a comma-separated server list and returns it with the
// credentials replaced, ready for logs and error messages. It never returns
// the raw text in an error, since that may hold a password or token.
func redactURLs(list string) (string, error) {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if !strings.Contains(p, "://") {
			p = "nats://" + p // as nats.go does
		}
		u, err := url.Parse(p)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("NATS URL %d of %d is not a valid nats://host:port URL", i+1, len(parts))
		}
		if u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			} else {
				u.User = url.User("xxxxx") // a lone user part is a token
			}
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ","), nil
}
