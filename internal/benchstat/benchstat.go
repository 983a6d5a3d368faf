// Package benchstat holds the small statistics the benchmark commands
// share: percentiles of latencies, durations rounded for a terminal, peak
// memory, and signed GETs.
package benchstat

import (
	"math"
	"time"
)

// Percentile reads the p-th percentile (nearest rank) from sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Round keeps three or so significant digits of a duration for display.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
