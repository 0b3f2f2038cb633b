package flawless_test

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/rules"
)

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// blameCall is one call of the fake blamer.
type blameCall struct {
	Path string
	Line int
}

// fakeBlamer answers every line with the same author and records the
// calls; a path listed in fail fails.
type fakeBlamer struct {
	mu     sync.Mutex
	author flawless.Author
	fail   map[string]error
	calls  []blameCall
}

func (b *fakeBlamer) Blame(_ context.Context, loc flawless.Location, line int) (flawless.Author, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, blameCall{loc.Path, line})
	if err := b.fail[loc.Path]; err != nil {
		return flawless.Author{}, err
	}
	return b.author, nil
}

func (b *fakeBlamer) Calls() []blameCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

// recorder is a Notifier that records what it is given, failing with the
// queued errors first.
type recorder struct {
	mu      sync.Mutex
	notices []*flawless.Notice
	errs    []error
	calls   int
}

func (r *recorder) Notify(_ context.Context, n *flawless.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if len(r.errs) > 0 {
		err := r.errs[0]
		r.errs = r.errs[1:]
		return err
	}
	r.notices = append(r.notices, n)
	return nil
}

func (r *recorder) Notices(kind flawless.NoticeKind) []*flawless.Notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*flawless.Notice
	for _, n := range r.notices {
		if n.Kind == kind {
			out = append(out, n)
		}
	}
	return out
}

func (r *recorder) Calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

const module = "github.com/acme/shop"

// frame makes a frame of the repository at path, the way the runtime of a
// build of module in /home/ci/shop would name it.
func frame(path string, line int, fn, text string) report.Frame {
	dir := ""
	if i := lastSlash(path); i >= 0 {
		dir = "/" + path[:i]
	}
	return report.Frame{Function: module + dir + "." + fn, File: "/home/ci/shop/" + path, Line: line, Text: text}
}

func lastSlash(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '/' {
			return i
		}
	}
	return -1
}

// moduleFrame is a frame of a third-party module in the module cache.
func moduleFrame(mod, version, file string, line int, fn string) report.Frame {
	return report.Frame{Function: mod + "." + fn, File: "/root/go/pkg/mod/" + mod + "@" + version + "/" + file, Line: line}
}

func newReport(host, msg string, frames ...report.Frame) *report.Report {
	return &report.Report{Hostname: host, Type: "*errors.errorString", Message: msg, Frames: frames, Build: report.Build{Path: module, Revision: "abc123"}}
}

// mustRules parses rule files given as name → content.
func mustRules(t testing.TB, opts rules.Options, files map[string]string) *rules.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	s, err := rules.Load(fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var errNoSuchLine = errors.New("no such line")

func mustCompile(patterns ...string) []*regexp.Regexp {
	var out []*regexp.Regexp
	for _, p := range patterns {
		out = append(out, regexp.MustCompile(p))
	}
	return out
}

// settle waits for the engine's background work.
func settle(t testing.TB, e *flawless.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("background work did not finish: %v", err)
	}
}

func closeEngine(t testing.TB, e *flawless.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}
