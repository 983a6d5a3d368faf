package dataservicebench

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"govshare/internal/benchstat"
)

// String is the run's report for the terminal.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "data services: %s, resource %s of %d people, %d concurrent clients, warm-up %s, %s per side\n",
		r.Database, r.Resource, r.Rows, r.Clients, r.Warmup, r.Duration)
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "side\trequests\terrors\telapsed\trequests/s\tp50\tp99\tmax\tCPU s: server\tPostgreSQL\tloadgen\tmachine busy\t")
	for _, rd := range r.Rounds {
		for _, s := range []Side{rd.Full, rd.Baseline} {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t%.1f\t%.0f%%\t\n", s.Name, s.Requests, s.Errors, benchstat.Round(s.Elapsed), s.PerSec,
				benchstat.Round(s.P50), benchstat.Round(s.P99), benchstat.Round(s.Max), s.ServerCPU.Seconds(), s.PostgresCPU.Seconds(), s.CPU.Seconds(), 100*s.MachineBusy)
		}
	}
	tw.Flush()
	for _, rd := range r.Rounds {
		for _, s := range []Side{rd.Full, rd.Baseline} {
			if s.Errors > 0 {
				fmt.Fprintf(&b, "%s: %d errors, first: %s\n", s.Name, s.Errors, s.FirstError)
			}
		}
	}
	fmt.Fprintf(&b, "full path %.0f requests/s (target ≥ %d: %s); baseline %.0f/s; ratio %.2f (target ≥ %.1f: %s)\n",
		r.FullPerSec, TargetPerSec, met(r.FullPerSec >= TargetPerSec), r.BaselinePerSec, r.Ratio, TargetRatio, met(r.Ratio >= TargetRatio))
	fmt.Fprintf(&b, "audit: %d data.query events for %d answered lookups (warm-up included): %s\n", r.Audited, r.FullOK, met(r.Audited == r.FullOK))
	if d := r.Download; d != nil {
		fmt.Fprintf(&b, "download: %d rows (%s), %.1f MB of CSV in %s: %.0f rows/s, first byte after %s; server process peak RSS %.0f MB (%.0f MB before), Go heap peak %.0f MB, CPU s: server %.1f, PostgreSQL %.1f\n",
			d.Rows, d.Filter, float64(d.Bytes)/1e6, benchstat.Round(d.Elapsed), d.PerSec, benchstat.Round(d.TTFB),
			float64(d.Memory.PeakRSS)/1e6, float64(d.Memory.Before)/1e6, float64(d.Memory.PeakHeap)/1e6, d.ServerCPU.Seconds(), d.PostgresCPU.Seconds())
	}
	if v := r.Verify; v != nil {
		fmt.Fprintf(&b, "comparison of %d records (%s): job %s end to end, %.0f records/s (accepted after %s, done after %s, answers %.1f MB); server process peak RSS %.0f MB, Go heap peak %.0f MB; CPU s: server %.1f, PostgreSQL %.1f\n",
			v.Records, strings.Join(v.Items, ", "), benchstat.Round(v.Job.Elapsed), v.Job.PerSec, benchstat.Round(v.Job.Upload), benchstat.Round(v.Job.Compared),
			float64(v.Job.Bytes)/1e6, float64(v.Memory.PeakRSS)/1e6, float64(v.Memory.PeakHeap)/1e6, v.ServerCPU.Seconds(), v.PostgresCPU.Seconds())
		for i, p := range v.Plain {
			when := "before"
			if i > 0 {
				when = "after"
			}
			fmt.Fprintf(&b, "  plain join %s the job: %s, %.0f records/s (COPY in %s, join and COPY out %s)\n", when, benchstat.Round(p.Elapsed), p.PerSec,
				benchstat.Round(p.Load), benchstat.Round(p.Join))
		}
		fmt.Fprintf(&b, "  answers: %d match, %d mismatch, %d not found on both sides; ratio %.2f (target ≥ %.1f: %s)\n",
			v.Matched, v.Mismatched, v.NotFound, v.Ratio, TargetVerifyRatio, met(v.Ratio >= TargetVerifyRatio))
	}
	if r.VerifyMissing {
		fmt.Fprintln(&b, "comparison: not measured, the comparison job API (POST /api/v1/verify/{resource}/jobs) is not in this build")
	}
	return b.String()
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
