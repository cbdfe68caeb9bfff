package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Row is one measured figure, the unit of results.csv: which scenario,
// which subject (a daemon and a method: "sesame knock", "knockd"), what
// was measured, its value and unit.
type Row struct {
	Scenario, Subject, Metric string
	Value                     float64
	Unit                      string
}

// Table is one Markdown table of results.md: a title, a header and rows of
// cells, with an optional note under it.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Note   string
}

// Results is everything one run measured: the long-format rows for the CSV,
// the tables for the Markdown report, and the series the plots are drawn
// from. The zero value is ready to use; it is not safe for concurrent use.
type Results struct {
	// Machine describes where the run happened (header of results.md).
	Machine []string
	// Goals is the summary table (one row per goal of issue 6).
	Goals  Table
	Tables []Table
	Rows   []Row

	// Latency holds the samples (µs) per subject, for the CDF plot.
	Latency map[string][]float64
	// Flood holds the legitimate successes per subject during the flood.
	Flood []FloodPoint
	// Grants holds connection setup time against the number of live grants.
	Grants []GrantPoint
	// Memory holds resident memory against distinct sources, per subject.
	Memory map[string][]MemPoint
}

// FloodPoint is one subject's outcome under the flood.
type FloodPoint struct {
	Subject   string
	OK, Tries int
}

// GrantPoint is the connection setup time with Grants live grants in a
// firewall backend.
type GrantPoint struct {
	Backend  string
	Grants   int
	P50, P99 float64 // µs
}

// MemPoint is a daemon's resident memory after Sources distinct sources.
type MemPoint struct {
	Sources int
	RSSKiB  float64
}

// Add records one row.
func (r *Results) Add(scenario, subject, metric string, v float64, unit string) {
	r.Rows = append(r.Rows, Row{scenario, subject, metric, v, unit})
}

// AddLatency records latency samples (µs) of subject.
func (r *Results) AddLatency(subject string, us []float64) {
	if r.Latency == nil {
		r.Latency = make(map[string][]float64)
	}
	r.Latency[subject] = us
}

// AddMemory records one memory point of subject.
func (r *Results) AddMemory(subject string, p MemPoint) {
	if r.Memory == nil {
		r.Memory = make(map[string][]MemPoint)
	}
	r.Memory[subject] = append(r.Memory[subject], p)
}

// WriteCSV writes the rows as CSV with a header line:
// scenario,subject,metric,value,unit.
func (r *Results) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"scenario", "subject", "metric", "value", "unit"})
	for _, row := range r.Rows {
		cw.Write([]string{row.Scenario, row.Subject, row.Metric, formatValue(row.Value), row.Unit})
	}
	cw.Flush()
	return cw.Error()
}

// formatValue prints v without exponent and without useless decimals.
func formatValue(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// WriteMarkdown writes the machine description, the goals summary and every
// table, each followed by its note.
func (r *Results) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Sesame benchmark results\n\n")
	for _, m := range r.Machine {
		b.WriteString("- " + m + "\n")
	}
	if len(r.Machine) > 0 {
		b.WriteString("\n")
	}
	for _, t := range append([]Table{r.Goals}, r.Tables...) {
		if len(t.Header) == 0 {
			continue
		}
		writeTable(&b, t)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeTable(b *strings.Builder, t Table) {
	if t.Title != "" {
		b.WriteString("## " + t.Title + "\n\n")
	}
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	b.WriteString("|")
	for _, h := range t.Header {
		b.WriteString(" " + cell(h) + " |")
	}
	b.WriteString("\n|")
	for range t.Header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, row := range t.Rows {
		b.WriteString("|")
		for i := range t.Header {
			c := ""
			if i < len(row) {
				c = row[i]
			}
			b.WriteString(" " + cell(c) + " |")
		}
		b.WriteString("\n")
	}
	if t.Note != "" {
		b.WriteString("\n" + t.Note + "\n")
	}
	b.WriteString("\n")
}

// percentile returns the p-quantile (0..1) of sorted samples by the
// nearest-rank method, NaN when there are none.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// summary is the usual set of quantiles of samples (unsorted in, not
// modified).
type summary struct {
	N                       int
	P50, P90, P99, Min, Max float64
}

func summarize(samples []float64) summary {
	s := slices.Clone(samples)
	slices.Sort(s)
	if len(s) == 0 {
		nan := math.NaN()
		return summary{P50: nan, P90: nan, P99: nan, Min: nan, Max: nan}
	}
	return summary{N: len(s), P50: percentile(s, 0.5), P90: percentile(s, 0.9), P99: percentile(s, 0.99), Min: s[0], Max: s[len(s)-1]}
}

// ms formats microseconds as milliseconds with 2 decimals ("-" for NaN).
func ms(us float64) string {
	if math.IsNaN(us) {
		return "-"
	}
	return strconv.FormatFloat(us/1000, 'f', 2, 64)
}

// num formats v with the given decimals ("-" for NaN), with thousands
// separators for large integers.
func num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	neg := strings.HasPrefix(intPart, "-")
	intPart = strings.TrimPrefix(intPart, "-")
	var out []byte
	for i, c := range []byte(intPart) {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	res := string(out)
	if neg {
		res = "-" + res
	}
	if frac != "" {
		res += "." + frac
	}
	return res
}

// verdict is "yes" or "no" for a goal check, "-" when not measured.
func verdict(measured bool, ok bool) string {
	switch {
	case !measured:
		return "not measured"
	case ok:
		return "yes"
	default:
		return "no"
	}
}

// pct formats a ratio as a percentage.
func pct(part, whole int) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", part, whole)
}
