package exchange

import "context"

// EnsureStreams creates the exchange's streams, for tests that put
// batches on the bus before the intake runs.
func (s *Service) EnsureStreams(ctx context.Context) error { return s.ensureStreams(ctx) }

// SubjectIn is where a node's batches of a job wait for the intake.
var SubjectIn = subjectIn
