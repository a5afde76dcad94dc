package bench

// The results every benchmark records, and the summary TestMain prints from
// them after the run: one markdown table per benchmark, with each round and
// the mean over rounds, and the ratios the team's targets are written in.

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A sample is what the timed part of one sub-benchmark run measured.
type sample struct {
	n       int           // calls (requests, Loads) made
	elapsed time.Duration // wall time they took
	allocs  uint64        // heap allocations in this process meanwhile
	busy    time.Duration // CPU time of the whole machine meanwhile (0: unknown)
}

func (s sample) perSec() float64      { return float64(s.n) / s.elapsed.Seconds() }
func (s sample) nsPerOp() float64     { return float64(s.elapsed.Nanoseconds()) / float64(s.n) }
func (s sample) allocsPerOp() float64 { return float64(s.allocs) / float64(s.n) }

// cpuPerOp is the machine's CPU time per call, in microseconds.
func (s sample) cpuPerOp() float64 { return float64(s.busy.Microseconds()) / float64(s.n) }

// resultKey names one sub-benchmark: <bench>/round=<round>/<variant>/c=<c>.
type resultKey struct {
	bench   string // "Counter" or "Transport"
	variant string // the variant's sub-benchmark name
	round   int
	c       int
}

var (
	resultsMu sync.Mutex
	results   = map[resultKey]sample{}
)

// record keeps s as the result of k, replacing the sample of an earlier
// (shorter) run of the same sub-benchmark.
func record(k resultKey, s sample) {
	resultsMu.Lock()
	results[k] = s
	resultsMu.Unlock()
}

// stat returns metric for one variant at c in every round (NaN where the
// round did not run) and the mean over the rounds that ran (NaN if none).
// Callers hold resultsMu.
func stat(bench, variant string, c int, metric func(sample) float64) (rounds []float64, mean float64) {
	sum, n := 0.0, 0
	for r := 1; r <= benchRounds; r++ {
		s, ok := results[resultKey{bench, variant, r, c}]
		if !ok {
			rounds = append(rounds, math.NaN())
			continue
		}
		v := metric(s)
		rounds = append(rounds, v)
		sum += v
		n++
	}
	if n == 0 {
		return rounds, math.NaN()
	}
	return rounds, sum / float64(n)
}

// meanOf is stat's mean.
func meanOf(bench, variant string, c int, metric func(sample) float64) float64 {
	_, m := stat(bench, variant, c, metric)
	return m
}

// has reports whether any result of bench was recorded. Callers hold resultsMu.
func has(bench string) bool {
	for k := range results {
		if k.bench == bench {
			return true
		}
	}
	return false
}

// A row is one line of a per-round table: a variant and its label.
type row struct{ variant, label string }

// printSummary writes the summary of everything recorded to w.
func printSummary(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if has("Counter") {
		counterSummary(w)
	}
	if has("Transport") {
		transportSummary(w)
	}
	if has("Concurrent-keys") || has("Concurrent-incr") {
		concurrentSummary(w)
	}
}

func counterSummary(w io.Writer) {
	const bench = "Counter"
	rows := make([]row, len(counterVariants))
	label := map[string]string{} // id -> row label
	name := map[string]string{}  // id -> variant name
	for i, v := range counterVariants {
		rows[i] = row{v.name, "(" + v.id + ") " + v.desc}
		label[v.id], name[v.id] = rows[i].label, v.name
	}
	fmt.Fprintf(w, "\n## HTTP counter workload: requests/s (%d interleaved %s; allocs/req: the whole benchmark process, mean of the rounds)\n\n",
		benchRounds, plural(benchRounds, "round"))
	roundsTable(w, bench, "variant", rows, sample.perSec, "%.0f", "allocs/req")

	rps := func(id string, c int) float64 { return meanOf(bench, name[id], c, sample.perSec) }
	fmt.Fprintf(w, "\n### Ratios of mean requests/s (above 1: the first is faster)\n\n")
	var ratios [][]string
	for _, r := range []struct{ num, den, what string }{
		{"a", "b", "plugin vs in-process"},
		{"b", "c", "in-process vs scs+redisstore"},
		{"a", "c", "plugin vs scs+redisstore"},
		{"a", "h", "fast vs gRPC transport"},
		{"d", "e", "file plugin vs built-in"},
	} {
		line := []string{fmt.Sprintf("(%s)/(%s) %s", r.num, r.den, r.what)}
		for _, c := range concurrencies {
			line = append(line, format("%.2fx", rps(r.num, c)/rps(r.den, c)))
		}
		ratios = append(ratios, line)
	}
	table(w, append([]string{"ratio"}, cHeaders("")...), ratios)

	if cpu := func(id string, c int) float64 { return meanOf(bench, name[id], c, sample.cpuPerOp) }; cpu("a", 1) > 0 {
		fmt.Fprintf(w, "\n### CPU of the whole machine per request, µs (benchmark process, plugin and redis-server; mean of the rounds)\n\n")
		var lines [][]string
		for _, v := range counterVariants {
			line := []string{label[v.id]}
			for _, c := range concurrencies {
				line = append(line, format("%.0f", cpu(v.id, c)))
			}
			lines = append(lines, line)
		}
		table(w, append([]string{"variant"}, cHeaders("")...), lines)
	}

	fmt.Fprintf(w, "\n### Mean requests/s as a fraction of %s\n\n", label["f"])
	var fractions [][]string
	for _, v := range counterVariants {
		line := []string{label[v.id]}
		for _, c := range concurrencies {
			line = append(line, format("%.2f", rps(v.id, c)/rps("f", c)))
		}
		fractions = append(fractions, line)
	}
	table(w, append([]string{"variant"}, cHeaders("")...), fractions)
}

func transportSummary(w io.Writer) {
	const bench = "Transport"
	rows := make([]row, len(transportPaths))
	for i, p := range transportPaths {
		rows[i] = row{p.name, p.name + ": " + p.desc}
	}
	fmt.Fprintf(w, "\n## Transport: one Load of a %d-byte record, ns/op (%d interleaved %s; at c=64, wall time / calls; allocs: this process only)\n\n",
		echoSize, benchRounds, plural(benchRounds, "round"))
	roundsTable(w, bench, "path", rows, sample.nsPerOp, "%.0f", "allocs/op")

	ns := func(path string, c int) float64 { return meanOf(bench, path, c, sample.nsPerOp) }
	fmt.Fprintf(w, "\n### Ratios of mean ns/op (above 1: slower)\n\n")
	var ratios [][]string
	for _, r := range [][2]string{{"fast", "raw_unix"}, {"grpc", "raw_unix"}, {"fast_client", "raw_unix"}, {"grpc", "fast"}} {
		line := []string{r[0] + "/" + r[1]}
		for _, c := range concurrencies {
			line = append(line, format("%.2fx", ns(r[0], c)/ns(r[1], c)))
		}
		ratios = append(ratios, line)
	}
	table(w, append([]string{"ratio"}, cHeaders("")...), ratios)

	var allocs []string
	for _, c := range concurrencies {
		allocs = append(allocs, format("%.1f", meanOf(bench, "fast", c, sample.allocsPerOp))+" at c="+strconv.Itoa(c))
	}
	fmt.Fprintf(w, "\nFast path (loader.Handler.Load, fast transport) allocs/op in this process: %s.\n", strings.Join(allocs, ", "))
}

// roundsTable writes one table of metric: a line per row (the first column
// headed first), and for every concurrency a column per round and one for
// the mean, then the mean allocations per op at every concurrency (headed
// allocsHeader).
func roundsTable(w io.Writer, bench, first string, rows []row, metric func(sample) float64, valueFormat, allocsHeader string) {
	header := []string{first}
	for _, c := range concurrencies {
		for r := 1; r <= benchRounds; r++ {
			header = append(header, fmt.Sprintf("c=%d r%d", c, r))
		}
		header = append(header, fmt.Sprintf("c=%d mean", c))
	}
	header = append(header, cHeaders(allocsHeader+" ")...)
	var lines [][]string
	for _, rw := range rows {
		line := []string{rw.label}
		for _, c := range concurrencies {
			rounds, mean := stat(bench, rw.variant, c, metric)
			for _, v := range rounds {
				line = append(line, format(valueFormat, v))
			}
			line = append(line, format(valueFormat, mean))
		}
		for _, c := range concurrencies {
			line = append(line, format("%.1f", meanOf(bench, rw.variant, c, sample.allocsPerOp)))
		}
		lines = append(lines, line)
	}
	table(w, header, lines)
}

// cHeaders is a column header per concurrency: prefix + "c=N".
func cHeaders(prefix string) []string {
	var h []string
	for _, c := range concurrencies {
		h = append(h, prefix+"c="+strconv.Itoa(c))
	}
	return h
}

// format is fmt.Sprintf of one number, or "–" for a number that could not
// be measured (its sub-benchmark did not run or failed).
func format(f string, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	return fmt.Sprintf(f, v)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// table writes a markdown table whose columns are padded so that it reads
// as plain text too: the first column left-aligned, the others
// right-aligned.
func table(w io.Writer, header []string, lines [][]string) {
	width := make([]int, len(header))
	for i := range width {
		width[i] = 3 // the least a markdown rule takes
	}
	for _, l := range append([][]string{header}, lines...) {
		for i, cell := range l {
			width[i] = max(width[i], len([]rune(cell)))
		}
	}
	pad := func(i int, s string) string {
		fill := strings.Repeat(" ", width[i]-len([]rune(s)))
		if i == 0 {
			return s + fill
		}
		return fill + s
	}
	writeLine := func(cells []string) {
		for i, cell := range cells {
			cells[i] = pad(i, cell)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	writeLine(append([]string(nil), header...))
	rule := make([]string, len(header))
	for i := range rule {
		rule[i] = strings.Repeat("-", width[i]-1) + ":"
		if i == 0 {
			rule[i] = ":" + strings.Repeat("-", width[i]-1)
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(rule, " | "))
	for _, l := range lines {
		writeLine(l)
	}
}
