package audit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"govshare/internal/store"
)

// A Claim is a one-time token a request must use up before it is
// answered: a signed request's nonce. Written with the request's audit
// event, in the same transaction, a claim costs the request no commit of
// its own: the event and the claim are durable together, and an event
// whose claim was already used is not written at all (nothing is chained
// for it) and its Append fails with ErrClaimUsed.
//
// A request carries at most one claim in its context (WithClaim); the
// first event appended with that context takes it. A claim nobody took
// — the request wrote no event, or the log has no Claimer — is settled by
// whoever attached it, before the request is answered (Settled tells).
type Claim struct {
	Scope int64  // whose tokens: an app's id
	At    int64  // the signed time, Unix seconds
	Token string // the nonce

	taken atomic.Bool
	done  chan struct{} // closed once the outcome is known
	once  sync.Once
	fresh bool
	err   error
}

// ErrClaimUsed is returned by Append when the event's claim had been used
// before: the event was not written.
var ErrClaimUsed = errors.New("the request's one-time token was already used")

// NewClaim returns a claim of token for scope at the signed time at.
func NewClaim(scope, at int64, token string) *Claim {
	return &Claim{Scope: scope, At: at, Token: token, done: make(chan struct{})}
}

// Take marks the claim as being settled by the caller; false when
// someone else took it first.
func (c *Claim) Take() bool { return c.taken.CompareAndSwap(false, true) }

// Settle records the outcome of a taken claim: fresh, used before, or an
// error writing it.
func (c *Claim) Settle(fresh bool, err error) {
	c.once.Do(func() {
		c.fresh, c.err = fresh, err
		close(c.done)
	})
}

// Settled reports whether the claim's outcome is known, and then what
// it is.
func (c *Claim) Settled() (settled, fresh bool, err error) {
	select {
	case <-c.done:
		return true, c.fresh, c.err
	default:
		return false, false, nil
	}
}

// A Claimer records claims inside the transaction that writes their
// events and reports, per claim, whether it was fresh (not used before).
// An error aborts the transaction. The log settles the claims once the
// transaction has committed.
type Claimer interface {
	ClaimIn(ctx context.Context, tx *store.Tx, claims []*Claim) ([]bool, error)
}

// A StatementClaimer is a Claimer that also gives its writing as SQL
// for PostgreSQL, for the log to send together with the other statements
// of its transaction.
type StatementClaimer interface {
	Claimer
	ClaimStatement(claims []*Claim) ClaimSQL
}

// ClaimSQL writes a batch's claims on PostgreSQL ('?' placeholders):
// Insert + " " + Rows + OnConflict is ClaimIn as one statement, whose
// rows Fresh reads (and closes) into ClaimIn's answer. Insert + " " +
// Rows alone, with a WHERE clause added to Rows, must fail on a claim
// used before. Distinct says no claim of the batch repeats another.
type ClaimSQL struct {
	Insert     string // INSERT INTO table (columns)
	Rows       string // SELECT of the distinct claims' rows, no WHERE clause
	Args       []any
	OnConflict string
	Distinct   bool
	Fresh      func(pgx.Rows) ([]bool, error)
}

type claimKey struct{}

// WithClaim attaches a request's claim to ctx: the first event appended
// with ctx (or a context derived from it) takes it.
func WithClaim(ctx context.Context, c *Claim) context.Context {
	return context.WithValue(ctx, claimKey{}, c)
}

// ClaimFrom returns the claim attached to ctx, if any.
func ClaimFrom(ctx context.Context) *Claim {
	c, _ := ctx.Value(claimKey{}).(*Claim)
	return c
}

// SetClaimer makes the log write claims with their events. Without one,
// events leave their contexts' claims to be settled by their owners.
func (l *Log) SetClaimer(c Claimer) {
	l.claimerMu.Lock()
	l.claimer = c
	l.claimerMu.Unlock()
}

func (l *Log) claimerOf() Claimer {
	l.claimerMu.RLock()
	defer l.claimerMu.RUnlock()
	return l.claimer
}
