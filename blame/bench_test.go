package blame

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
)

// The benchmark repository: 3,000 commits over 200 small files and one
// 3,000-line file that 1,500 of the commits change, with a side branch
// merged back every 100 commits. Built once with git fast-import.
const (
	benchCommits  = 3000
	benchFiles    = 200
	benchBigLines = 3000
	benchBigFile  = "internal/engine/engine.go"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

func benchRepo(b *testing.B) string {
	b.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("git is not installed: the benchmarks compare with it")
	}
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "flawless-blame-bench-")
		if benchErr == nil {
			benchErr = buildBenchRepo(benchDir)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func buildBenchRepo(dir string) error {
	rng := rand.New(rand.NewPCG(42, 42))
	small := make([][]string, benchFiles)
	for i := range small {
		small[i] = randomText(rng, 40)
	}
	big := randomText(rng, benchBigLines)
	var s bytes.Buffer
	mark := 0
	when := 1_600_000_000
	emit := func(ref, from, merge string, files map[string][]string) string {
		mark++
		when += 600
		author := authors[rng.IntN(len(authors))]
		fmt.Fprintf(&s, "commit %s\nmark :%d\nauthor %s <%s> %d +0000\ncommitter C <c@example.com> %d +0000\ndata 6\nchange\n",
			ref, mark, strings.Split(author, "@")[0], author, when, when)
		if from != "" {
			fmt.Fprintf(&s, "from %s\n", from)
		}
		if merge != "" {
			fmt.Fprintf(&s, "merge %s\n", merge)
		}
		names := make([]string, 0, len(files))
		for n := range files {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			content := strings.Join(files[n], "\n") + "\n"
			fmt.Fprintf(&s, "M 100644 inline %s\ndata %d\n%s\n", n, len(content), content)
		}
		return ":" + strconv.Itoa(mark)
	}
	smallName := func(i int) string { return fmt.Sprintf("pkg%d/file%d.go", i%20, i) }
	initial := map[string][]string{benchBigFile: big}
	for i := range small {
		initial[smallName(i)] = small[i]
	}
	tip := emit("refs/heads/main", "", "", initial)
	for n := 1; n < benchCommits; {
		if n%100 == 50 {
			// A side branch of 5 commits on small files, merged back.
			side := tip
			changed := map[string][]string{}
			for range 5 {
				i := rng.IntN(benchFiles)
				small[i] = mutate(rng, small[i])
				changed[smallName(i)] = small[i]
				side = emit("refs/heads/side", side, "", map[string][]string{smallName(i): small[i]})
				n++
			}
			big = mutate(rng, big)
			tip = emit("refs/heads/main", tip, "", map[string][]string{benchBigFile: big})
			changed[benchBigFile] = big
			tip = emit("refs/heads/main", tip, side, changed)
			n += 2
			continue
		}
		files := map[string][]string{}
		if n%2 == 0 {
			big = mutate(rng, big)
			files[benchBigFile] = big
		} else {
			i := rng.IntN(benchFiles)
			small[i] = mutate(rng, small[i])
			files[smallName(i)] = small[i]
		}
		tip = emit("refs/heads/main", tip, "", files)
		n++
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"config", "gc.auto", "0"}} {
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
	}
	cmd := exec.Command("git", "-C", dir, "fast-import", "--quiet")
	cmd.Stdin = &s
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("fast-import: %v\n%s", err, out)
	}
	if out, err := exec.Command("git", "-C", dir, "reset", "-q", "--hard", "main").CombinedOutput(); err != nil {
		return fmt.Errorf("checkout: %v\n%s", err, out)
	}
	return nil
}

// gitBlameProcess runs one git blame -L n,n --porcelain and returns its
// time, peak memory (KiB) and the commit it names.
func gitBlameProcess(b *testing.B, dir, rev string, line int) (time.Duration, int64, string) {
	start := time.Now()
	cmd := exec.Command("git", "-C", dir, "blame", "-L", fmt.Sprintf("%d,%d", line, line), "--porcelain", rev, "--", benchBigFile)
	out, err := cmd.Output()
	d := time.Since(start)
	if err != nil {
		b.Fatalf("git blame: %v", err)
	}
	return d, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss, string(out[:40])
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func headOf(b *testing.B, dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		b.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// BenchmarkBlameWarmVsGitProcess: in a long-lived process (the repository
// open, caches filling as queries come), blame 50 random lines of the big
// file once each; against one git blame process per line, in the same run.
// Reports the ratio of the medians and of the 90th percentiles.
func BenchmarkBlameWarmVsGitProcess(b *testing.B) {
	dir := benchRepo(b)
	rev := headOf(b, dir)
	rng := rand.New(rand.NewPCG(1, 1))
	lines := make([]int, 50)
	for i := range lines {
		lines[i] = 1 + rng.IntN(benchBigLines)
	}
	var ours, theirs []time.Duration
	for b.Loop() {
		g, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		g.Blame(context.Background(), flawless.Location{Path: "pkg1/file1.go", Revision: rev}, 1) // open and warm up
		for _, l := range lines {
			start := time.Now()
			a, err := g.Blame(context.Background(), flawless.Location{Path: benchBigFile, Revision: rev}, l)
			ours = append(ours, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			d, _, commit := gitBlameProcess(b, dir, rev, l)
			theirs = append(theirs, d)
			if commit != a.Commit {
				b.Fatalf("line %d: blamed %s, git says %s", l, a.Commit, commit)
			}
		}
		g.Close()
	}
	b.ReportMetric(float64(percentile(ours, 0.5))/float64(percentile(theirs, 0.5)), "p50-ratio")
	b.ReportMetric(float64(percentile(ours, 0.9))/float64(percentile(theirs, 0.9)), "p90-ratio")
	b.ReportMetric(float64(percentile(ours, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(theirs, 0.5).Microseconds())/1000, "git-p50-ms")
}

// BenchmarkBlameRepeatInSameFile: after one line of the big file has been
// blamed, each other line of it.
func BenchmarkBlameRepeatInSameFile(b *testing.B) {
	dir := benchRepo(b)
	rev := headOf(b, dir)
	g, err := Open(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	ctx := context.Background()
	if _, err := g.Blame(ctx, flawless.Location{Path: benchBigFile, Revision: rev}, benchBigLines/2); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 2))
	var ds []time.Duration
	for b.Loop() {
		l := 1 + rng.IntN(benchBigLines)
		start := time.Now()
		if _, err := g.Blame(ctx, flawless.Location{Path: benchBigFile, Revision: rev}, l); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.9).Microseconds())/1000, "p90-ms")
}

// BenchmarkBlameColdVsGitProcess: open the repository and blame one line,
// against one git blame process, for the same lines, in the same run.
func BenchmarkBlameColdVsGitProcess(b *testing.B) {
	dir := benchRepo(b)
	rev := headOf(b, dir)
	rng := rand.New(rand.NewPCG(3, 3))
	var ours, theirs []time.Duration
	for b.Loop() {
		l := 1 + rng.IntN(benchBigLines)
		start := time.Now()
		g, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.Blame(context.Background(), flawless.Location{Path: benchBigFile, Revision: rev}, l); err != nil {
			b.Fatal(err)
		}
		g.Close()
		ours = append(ours, time.Since(start))
		d, _, _ := gitBlameProcess(b, dir, rev, l)
		theirs = append(theirs, d)
	}
	b.ReportMetric(float64(percentile(ours, 0.5))/float64(percentile(theirs, 0.5)), "p50-ratio")
	b.ReportMetric(float64(percentile(ours, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(theirs, 0.5).Microseconds())/1000, "git-p50-ms")
}

// BenchmarkBlameColdPeakMemory runs one cold blame in a child process (this
// test binary) and one git blame process, each under GNU time, and compares
// their peak resident memory. (The rusage of a child started directly from
// this process would include this process's own peak, which Linux carries
// across the exec.)
func BenchmarkBlameColdPeakMemory(b *testing.B) {
	dir := benchRepo(b)
	rev := headOf(b, dir)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := exec.LookPath("/usr/bin/time"); err != nil {
		b.Skip("GNU time is not installed (Debian package time): it measures the peak memory")
	}
	peak := func(env []string, name string, args ...string) int64 {
		cmd := exec.Command("/usr/bin/time", append([]string{"-f", "maxrss=%M", name}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("%s: %v\n%s", name, err, out)
		}
		i := strings.LastIndex(string(out), "maxrss=")
		n, err := strconv.ParseInt(strings.TrimSpace(string(out[i+len("maxrss="):])), 10, 64)
		if i < 0 || err != nil {
			b.Fatalf("no peak memory in %q", out)
		}
		return n
	}
	var ours, theirs int64
	for b.Loop() {
		ours = max(ours, peak([]string{"FLAWLESS_COLD_BLAME=" + dir + "|" + rev + "|1500"}, self, "-test.run=^TestColdBlameChild$"))
		theirs = max(theirs, peak(nil, "git", "-C", dir, "blame", "-L", "1500,1500", "--porcelain", rev, "--", benchBigFile))
	}
	b.ReportMetric(float64(ours)/float64(theirs), "rss-ratio")
	b.ReportMetric(float64(ours)/1024, "rss-MiB")
	b.ReportMetric(float64(theirs)/1024, "git-rss-MiB")
}

// TestColdBlameChild is the child of BenchmarkBlameColdPeakMemory; it does
// nothing unless that benchmark starts it.
func TestColdBlameChild(t *testing.T) {
	spec := os.Getenv("FLAWLESS_COLD_BLAME")
	if spec == "" {
		return
	}
	parts := strings.Split(spec, "|")
	line, _ := strconv.Atoi(parts[2])
	g, err := Open(parts[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Blame(context.Background(), flawless.Location{Path: benchBigFile, Revision: parts[1]}, line); err != nil {
		t.Fatal(err)
	}
}
