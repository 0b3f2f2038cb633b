package client_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless/client"
	"github.com/flawless-go/flawless/report"
)

func TestParseCrash(t *testing.T) {
	tests := []struct {
		name, out, typ, msg, fn string
		line                    int
	}{
		{"panic in a goroutine", `panic: runtime error: index out of range [5] with length 0

goroutine 18 [running]:
main.worker()
	/src/app/main.go:48 +0x1d
created by main.main in goroutine 1
	/src/app/main.go:27 +0x95
exit status 2
`, "runtime.Error", "runtime error: index out of range [5] with length 0", "main.worker", 48},
		{"a re-panic", `panic: boom [recovered, repanicked]

goroutine 1 [running]:
panic({0x4a2f40?, 0x50e5b0?})
	/usr/local/go/src/runtime/panic.go:803 +0x132
main.(*Server).handle(0xc000010000)
	/src/app/server.go:12 +0x25
main.main()
	/src/app/main.go:9 +0x18
`, "panic", "boom", "main.(*Server).handle", 12},
		{"concurrent map writes", `fatal error: concurrent map writes

goroutine 7 [running]:
internal/runtime/maps.fatal({0x4b1ee2?, 0x0?})
	/usr/local/go/src/runtime/panic.go:1058 +0x18
main.main.func1()
	/src/app/main.go:31 +0x45
created by main.main in goroutine 1
	/src/app/main.go:29 +0x2e

goroutine 1 [sleep]:
time.Sleep(0xdf8475800)
	/usr/local/go/src/runtime/time.go:338 +0x165
`, "fatal error", "concurrent map writes", "main.main.func1", 31},
		{"out of memory, with a runtime stack first", `fatal error: runtime: out of memory

runtime stack:
runtime.throw({0x4b8c8d?, 0x0?})
	/usr/local/go/src/runtime/panic.go:1101 +0x48

goroutine 1 [running]:
runtime.systemstack_switch()
	/usr/local/go/src/runtime/asm_amd64.s:479 fp=0xc0000 sp=0xc0000 pc=0x46
runtime.mallocgc(0xc0000000, 0x4a1b60, 0x1)
	/usr/local/go/src/runtime/malloc.go:1075 +0x4a
main.main()
	/src/app/main.go:60 +0x3b
`, "fatal error", "runtime: out of memory", "main.main", 60},
		{"deadlock", `fatal error: all goroutines are asleep - deadlock!

goroutine 1 [chan receive]:
main.main()
	/src/app/main.go:41 +0x29
`, "fatal error", "all goroutines are asleep - deadlock!", "main.main", 41},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := client.ParseCrash(tt.out)
			if r == nil {
				t.Fatal("no report")
			}
			if r.Type != tt.typ || r.Message != tt.msg || r.Frames[0].Function != tt.fn || r.Frames[0].Line != tt.line {
				t.Errorf("= %q %q, first frame %+v", r.Type, r.Message, r.Frames[0])
			}
			if err := r.Validate(); err != nil {
				t.Errorf("the report is not valid on the wire: %v", err)
			}
		})
	}
	// What the crash output really holds for fatal errors: no header line.
	headless := []struct{ name, out, msg, fn string }{
		{"map writes, no header", "\ngoroutine 20 [running]:\ninternal/runtime/maps.fatal({0x4af804?, 0x0?})\n\t/usr/local/go/src/runtime/panic.go:1181 +0x18\nmain.main.func1()\n\t/src/app/main.go:16 +0x45\n", "concurrent map access", "main.main.func1"},
		{"out of memory, no header", "\ngoroutine 1 gp=0x2754 m=0 mp=0x55cd [running]:\nruntime.throw({0x4ad7fb?, 0x4984c0?})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x48 fp=0x2 sp=0x2 pc=0x4\nruntime.mallocgc(0xc0000000, 0x495240, 0x1)\n\t/usr/local/go/src/runtime/malloc.go:1156 +0xd3 fp=0x2 sp=0x2 pc=0x4\nmain.main()\n\t/src/app/main.go:13 +0x2e fp=0x2 sp=0x2 pc=0x4\n", "out of memory", "main.main"},
		{"deadlock, no header", "\ngoroutine 1 [chan receive]:\nmain.main()\n\t/src/app/main.go:41 +0x29\n", "deadlock", "main.main"},
	}
	for _, tt := range headless {
		r := client.ParseCrash(tt.out)
		if r == nil || !strings.Contains(r.Message, tt.msg) || r.Frames[0].Function != tt.fn {
			t.Errorf("%s: %+v", tt.name, r)
		}
	}
	if r := client.ParseCrash("all is well\nexit status 0\n"); r != nil {
		t.Errorf("ordinary output gave a report: %+v", r)
	}
}

// reportServer records what clients send.
type reportServer struct {
	mu      sync.Mutex
	reports []*report.Report
	srv     *httptest.Server
}

func newReportServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request) bool) *reportServer {
	s := &reportServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h != nil && !h(w, r) {
			return
		}
		body, _ := io.ReadAll(r.Body)
		rs, err := report.Decode(body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		s.reports = append(s.reports, rs...)
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *reportServer) got() []*report.Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*report.Report(nil), s.reports...)
}

func (s *reportServer) waitFor(t *testing.T, n int, d time.Duration) []*report.Report {
	t.Helper()
	deadline := time.Now().Add(d)
	for len(s.got()) < n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	return s.got()
}

// TestCrashWatchdog runs a program that dies in each way that kills a Go
// process before deferred code runs, and receives the watchdog's report.
func TestCrashWatchdog(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and crashes a program; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "crasher")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/crasher").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	tests := []struct {
		mode, msg, fn string
	}{
		{"goroutine-panic", "index out of range [5] with length 0", "main.worker"},
		{"map-writes", "concurrent map", "main.main.func1"},
		{"oom", "out of memory", "main.main"},
		// No deadlock case: a program that links net/http (as every user of
		// this package does) never gets "all goroutines are asleep" from
		// the Go runtime, so there is no such crash to watch for; the
		// parsing of that output is covered by TestParseCrash.
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			srv := newReportServer(t, nil)
			cmd := exec.Command(bin, tt.mode)
			cmd.Env = append(cmd.Environ(), "FLAWLESS_TEST_SERVER="+srv.srv.URL)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the program did not crash:\n%s", out)
			}
			if !strings.Contains(string(out), strings.Fields(tt.msg)[0]) {
				t.Errorf("the crash output still goes to standard error; it lacks %q:\n%s", tt.msg, out)
			}
			rs := srv.waitFor(t, 1, 15*time.Second)
			if len(rs) != 1 {
				t.Fatalf("%d reports arrived, want 1; program output:\n%s", len(rs), out)
			}
			r := rs[0]
			if !strings.Contains(r.Message, tt.msg) || r.Frames[0].Function != tt.fn || !strings.HasSuffix(r.Frames[0].File, "main.go") {
				t.Errorf("report: %q, first frame %+v", r.Message, r.Frames[0])
			}
			if r.Build.Path != "github.com/flawless-go/flawless" {
				t.Errorf("build path %q", r.Build.Path)
			}
		})
	}
	t.Run("a clean exit reports nothing", func(t *testing.T) {
		srv := newReportServer(t, nil)
		cmd := exec.Command(bin, "clean")
		cmd.Env = append(cmd.Environ(), "FLAWLESS_TEST_SERVER="+srv.srv.URL)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("clean run: %v\n%s", err, out)
		}
		if rs := srv.waitFor(t, 1, 500*time.Millisecond); len(rs) != 0 {
			t.Errorf("a clean exit was reported: %+v", rs[0])
		}
	})
	_ = context.Background
}
