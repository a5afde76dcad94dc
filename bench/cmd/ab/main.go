// Command ab compares the benchmarks of bench/ between two commits on this
// machine: it builds the benchmark binary of each, runs them in alternated
// pairs (the order flips every pair, so drift and the position in a pair hit
// both alike) and prints, for every benchmark, the medians of each side, the
// median of the per-pair ratios and how many pairs the new side won.
//
// On a shared VM a single run can move by 20-40%; compare many pairs, and run
// the same commit against itself (an A/A run) to see how far the machine
// alone moves the numbers.
//
//	cd bench
//	go run ./cmd/ab -old fd5649c -bench 'Counter/round=1/(a_|b_|c_)' -n 3000 -pairs 8
//	go run ./cmd/ab -old HEAD -new HEAD -bench 'Counter/round=1/d_'   # A/A
//
// -new defaults to the work tree as it is (uncommitted changes included);
// a commit is checked out into a temporary worktree, as -old always is.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func main() {
	oldRev := flag.String("old", "", "commit to compare against (required)")
	newRev := flag.String("new", "", "commit to compare (default: the work tree as it is)")
	pattern := flag.String("bench", "Counter/round=1/", "benchmarks to run (-test.bench)")
	n := flag.Int("n", 3000, "requests (iterations) per benchmark run (-test.benchtime Nx)")
	pairs := flag.Int("pairs", 6, "alternated pairs of runs")
	flag.Parse()
	if *oldRev == "" || *pairs < 1 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	log.SetFlags(0)
	log.SetPrefix("ab: ")

	top := strings.TrimSpace(run("", "git", "rev-parse", "--show-toplevel"))
	tmp, err := os.MkdirTemp("", "tina4-ab-")
	if err != nil {
		log.Fatal(err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(tmp) })
	defer cleanup()

	sides := []*side{{name: "old", rev: *oldRev}, {name: "new", rev: *newRev}}
	for _, s := range sides {
		s.tree = top
		if s.rev != "" {
			s.tree = filepath.Join(tmp, s.name)
			run(top, "git", "worktree", "add", "--detach", "--force", s.tree, s.rev)
			tree := s.tree
			cleanups = append(cleanups, func() {
				exec.Command("git", "-C", top, "worktree", "remove", "--force", tree).Run()
			})
		}
		s.bin = filepath.Join(tmp, "bench-"+s.name)
		log.Printf("building %s (%s)", s.name, describe(top, s.rev))
		run(filepath.Join(s.tree, "bench"), "go", "test", "-c", "-o", s.bin, ".")
	}

	results := map[string]map[string][]float64{} // benchmark -> side -> req/s by pair
	var names []string
	for p := range *pairs {
		order := sides
		if p%2 == 1 {
			order = []*side{sides[1], sides[0]}
		}
		for _, s := range order {
			out := runEnv(filepath.Join(s.tree, "bench"), []string{"BENCH_ROUNDS=1"}, s.bin,
				"-test.run", "^$", "-test.bench", *pattern, "-test.benchtime", strconv.Itoa(*n)+"x")
			for name, v := range parse(out) {
				if results[name] == nil {
					results[name] = map[string][]float64{}
					names = append(names, name)
				}
				for len(results[name][s.name]) < p {
					results[name][s.name] = append(results[name][s.name], 0) // missed in a pair
				}
				results[name][s.name] = append(results[name][s.name], v)
			}
		}
		log.Printf("pair %d of %d done", p+1, *pairs)
	}

	fmt.Printf("old %s, new %s; %d alternated pairs of %d requests; req/s\n\n", describe(top, *oldRev), describe(top, *newRev), *pairs, *n)
	fmt.Println("| benchmark | old (median) | new (median) | change of medians | median pair ratio | pairs won by new |")
	fmt.Println("|---|---:|---:|---:|---:|---:|")
	for _, name := range names {
		o, nw := results[name]["old"], results[name]["new"]
		var ratios, olds, news []float64
		for i := 0; i < len(o) && i < len(nw); i++ {
			if o[i] > 0 && nw[i] > 0 {
				ratios = append(ratios, nw[i]/o[i])
				olds = append(olds, o[i])
				news = append(news, nw[i])
			}
		}
		if len(ratios) == 0 {
			continue
		}
		won := 0
		for _, r := range ratios {
			if r > 1 {
				won++
			}
		}
		mo, mn := median(olds), median(news)
		fmt.Printf("| %s | %.0f | %.0f | %+.1f%% | %+.1f%% | %d/%d |\n",
			name, mo, mn, 100*(mn/mo-1), 100*(median(ratios)-1), won, len(ratios))
	}
}

type side struct{ name, rev, tree, bin string }

// cleanups remove the temporary worktrees and files, in reverse order; every
// way out of the program runs them.
var cleanups []func()

func cleanup() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

// benchLine matches a benchmark result line and captures its name.
var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(-\d+)?\s+\d+\s`)

// parse returns the req/s of every benchmark line in out.
func parse(out string) map[string]float64 {
	res := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			if f[i] == "req/s" {
				if v, err := strconv.ParseFloat(f[i-1], 64); err == nil {
					res[m[1]] = v
				}
			}
		}
	}
	return res
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func describe(top, rev string) string {
	if rev == "" {
		return "the work tree"
	}
	return strings.TrimSpace(run(top, "git", "rev-parse", "--short", rev))
}

func run(dir, name string, args ...string) string { return runEnv(dir, nil, name, args...) }

// runEnv runs a command and returns its output; it stops the program when
// the command fails.
func runEnv(dir string, env []string, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		cleanup()
		log.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
