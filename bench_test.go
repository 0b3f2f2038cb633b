package flawless_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/rules"
)

// deepReport is a report with n frames: n-2 of the team's code over two of
// the standard library, like a panic in a handler several calls deep.
func deepReport(n int) *report.Report {
	frames := []report.Frame{
		{Function: "net/http.(*conn).serve", File: "/usr/local/go/src/net/http/server.go", Line: 2092},
		{Function: "runtime.goexit", File: "/usr/local/go/src/runtime/asm_amd64.s", Line: 1700},
	}
	for i := range n - 2 {
		frames = append([]report.Frame{frame(fmt.Sprintf("internal/svc%d/handler.go", i), 40+i, fmt.Sprintf("(*Handler%d).Serve", i), "")}, frames...)
	}
	return newReport("web-1", "runtime error: index out of range [3] with length 3", frames...)
}

// BenchmarkBaselineMutexMapIncrement is the floor Engine.Report is measured
// against: a counter in a mutex-guarded map.
func BenchmarkBaselineMutexMapIncrement(b *testing.B) {
	var mu sync.Mutex
	m := map[report.Key]int{}
	k := key(serviceFrame)
	b.ReportAllocs()
	for b.Loop() {
		mu.Lock()
		m[k]++
		mu.Unlock()
	}
}

// BenchmarkReportKnownKey reports an error whose key is already counted:
// the cost every repeated occurrence pays.
func BenchmarkReportKnownKey(b *testing.B) {
	for _, n := range []int{5, 30} {
		b.Run(fmt.Sprintf("frames=%d", n), func(b *testing.B) {
			e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}})
			defer e.Close(context.Background())
			r := deepReport(n)
			ctx := context.Background()
			if err := e.Report(ctx, r); err != nil {
				b.Fatal(err)
			}
			e.Flush(ctx)
			b.ReportAllocs()
			for b.Loop() {
				e.Report(ctx, r)
			}
		})
	}
}

// thousandRules makes 1,000 rules of every code kind, spread over 1,000
// files, some of them files of the stack.
func thousandRules(tb testing.TB) *rules.Set {
	var bb, kn, tp strings.Builder
	for i := range 1000 {
		file := fmt.Sprintf("internal/pkg%d/file.go", i)
		if i%50 == 0 {
			file = fmt.Sprintf("internal/svc%d/handler.go", i/50)
		}
		fmt.Fprintf(&bb, "[[building_block]]\nfilename = %q\nfunction_name = \"Other%d\"\ncode_fragment = \"return nil, err\"\n\n", file, i)
		fmt.Fprintf(&kn, "[[known_error]]\nfilename = %q\nfunction_name = \"Known%d\"\nmin_alert_threshold = 5\n\n", file, i)
		fmt.Fprintf(&tp, "[[third_party]]\nfilename = \"github.com/vendor%d/lib/x.go\"\n\n", i)
	}
	return mustRules(tb, rules.Options{}, map[string]string{
		"building_blocks.toml":       bb.String(),
		"known_errors.toml":          kn.String(),
		"third_party_whitelist.toml": tp.String(),
	})
}

// BenchmarkClassify30FramesThousandRules classifies a stack seen for the
// first time (no cache): 30 frames against 1,000 rules of each kind.
func BenchmarkClassify30FramesThousandRules(b *testing.B) {
	e := flawless.New(flawless.Config{Policy: thousandRules(b)})
	defer e.Close(context.Background())
	r := deepReport(30)
	ctx := context.Background()
	if x := e.Explain(ctx, r, ""); x.Blamed != 0 {
		b.Fatalf("blamed frame %d: %s", x.Blamed, x.Explain())
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Explain(ctx, r, "")
	}
}
