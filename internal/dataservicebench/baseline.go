package dataservicebench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"govshare/internal/resource"
)

// baseline is the least a lookup can be: a net/http handler that reads
// the person by key with pgx from a pool and writes the same items as
// JSON, with no signature, grant, masking, audit or usage. It runs in the
// bench's process, beside the server, against the same table.
type baseline struct {
	pool *pgxpool.Pool
	srv  *http.Server
	done chan error
	url  string // …/lookup?id=
}

// baselineConns bounds the baseline's pool as the platform's store
// bounds its own (store.Open: 32 connections to PostgreSQL).
const baselineConns = 32

func startBaseline(ctx context.Context, dsn string, r resource.Resource) (*baseline, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = baselineConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	its := items()
	names := make([]string, len(its))
	sel := make([]string, len(its))
	for i, it := range its {
		names[i] = it.MachineName
		sel[i] = pgx.Identifier{it.MachineName}.Sanitize() + "::text"
	}
	q := fmt.Sprintf(`SELECT %s FROM %s WHERE %s = $1 AND "_deleted_at" IS NULL`, strings.Join(sel, ", "),
		pgx.Identifier{r.Table}.Sanitize(), pgx.Identifier{keyItem}.Sanitize())
	type page struct {
		Resource string               `json:"resource"`
		Items    []string             `json:"items"`
		Records  []map[string]*string `json:"records"`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /lookup", func(w http.ResponseWriter, req *http.Request) {
		vals := make([]*string, len(names))
		dest := make([]any, len(names))
		for i := range vals {
			dest[i] = &vals[i]
		}
		p := page{Resource: r.Code, Items: names, Records: []map[string]*string{}}
		err := pool.QueryRow(req.Context(), q, req.URL.Query().Get("id")).Scan(dest...)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err == nil {
			rec := make(map[string]*string, len(names))
			for i, n := range names {
				rec[n] = vals[i]
			}
			p.Records = append(p.Records, rec)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(p)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		pool.Close()
		return nil, err
	}
	b := &baseline{pool: pool, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, done: make(chan error, 1),
		url: "http://" + ln.Addr().String() + "/lookup?id="}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *baseline) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	<-b.done
	b.pool.Close()
}
