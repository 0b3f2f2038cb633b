package client_test

import (
	"bytes"
	"context"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flawless-go/flawless/client"
	"github.com/flawless-go/flawless/report"
)

var _ client.Reporter = (*client.Remote)(nil)

func panicReport(line int) *report.Report {
	return &report.Report{Type: "string", Message: "boom", Frames: []report.Frame{{Function: "main.f", File: "/w/main.go", Line: line}}}
}

func newRemote(t *testing.T, cfg client.RemoteConfig) *client.Remote {
	t.Helper()
	r, err := client.NewRemote(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

func TestRemoteAggregatesIdenticalReports(t *testing.T) {
	srv := newReportServer(t, nil)
	r := newRemote(t, client.RemoteConfig{URLs: []string{srv.srv.URL}})
	for range 100 {
		r.Report(context.Background(), panicReport(7))
	}
	r.Report(context.Background(), panicReport(8)) // another error
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	total := map[int]int{}
	sends := map[int]int{}
	for _, rep := range srv.got() {
		total[rep.Frames[0].Line] += rep.Occurrences()
		sends[rep.Frames[0].Line]++
	}
	if total[7] != 100 || total[8] != 1 {
		t.Errorf("counts received = %v, want line 7: 100, line 8: 1", total)
	}
	// 1..10 one by one, 16, 32, 64, then the rest on Flush.
	if sends[7] != 14 {
		t.Errorf("line 7 was sent %d times, want 14", sends[7])
	}
	if s := r.Stats(); s.Aggregated != 100-13 || s.Sent != 15 || s.Dropped != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestRemoteFailsOverAndBacksOff(t *testing.T) {
	var downCalls atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downCalls.Add(1)
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	up := newReportServer(t, nil)
	r := newRemote(t, client.RemoteConfig{URLs: []string{down.URL, up.srv.URL}})
	r.Report(context.Background(), panicReport(1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(up.got()) != 1 || downCalls.Load() != 1 {
		t.Errorf("the second server got %d reports after %d tries of the first", len(up.got()), downCalls.Load())
	}
	r.Report(context.Background(), panicReport(2))
	r.Flush(ctx)
	if downCalls.Load() != 1 {
		t.Errorf("after a failover the failed server is tried first again (%d calls)", downCalls.Load())
	}
}

func TestRemoteHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int64
	var first time.Time
	srv := newReportServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		if calls.Add(1) == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return false
		}
		if d := time.Since(first); d < 900*time.Millisecond {
			t.Errorf("retried after %v, before Retry-After: 1", d)
		}
		return true
	})
	r := newRemote(t, client.RemoteConfig{URLs: []string{srv.srv.URL}})
	r.Report(context.Background(), panicReport(1))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil || len(srv.got()) != 1 {
		t.Errorf("after Retry-After: %v, %d reports", err, len(srv.got()))
	}
}

func TestRemoteDropsWhatTheServerRefuses(t *testing.T) {
	srv := newReportServer(t, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, `{"error":"frames: missing"}`, http.StatusBadRequest)
		return false
	})
	r := newRemote(t, client.RemoteConfig{URLs: []string{srv.srv.URL}})
	r.Report(context.Background(), panicReport(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil || r.Stats().Dropped != 1 {
		t.Errorf("a refused report: %v, stats %+v", err, r.Stats())
	}
}

// TestRemoteNeverHurtsTheHost: with the server down, hanging or answering
// garbage, Recover returns at once, the queue stays bounded, nothing
// panics, and Close leaves no goroutine behind.
func TestRemoteNeverHurtsTheHost(t *testing.T) {
	hang := make(chan struct{})
	servers := map[string]string{}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer slow.Close()
	defer close(hang) // before slow.Close, which waits for its handlers
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.Write(bytes.Repeat([]byte{0xff, '{', '\n'}, 10000))
	}))
	defer garbage.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	servers["down"], servers["slow"], servers["garbage"] = deadURL, slow.URL, garbage.URL
	for name, url := range servers {
		t.Run(name, func(t *testing.T) {
			r, err := client.NewRemote(client.RemoteConfig{URLs: []string{url}, QueueSize: 50, Timeout: 200 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			var worst time.Duration
			for i := range 2000 {
				start := time.Now()
				func() {
					defer client.Recover(context.Background(), r, client.Swallow())
					panic(fmt.Sprintf("boom %d", i))
				}()
				// and 2,000 distinct errors (stacks), which aggregation cannot fold
				r.Report(context.Background(), panicReport(i))
				worst = max(worst, time.Since(start))
			}
			if worst > 50*time.Millisecond {
				t.Errorf("the slowest Recover took %v", worst)
			}
			s := r.Stats()
			if s.Dropped == 0 {
				t.Errorf("nothing was dropped with a queue of 50 and no server: %+v", s)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			start := time.Now()
			r.Close(ctx)
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Close took %v with a 500 ms deadline", d)
			}
			// No goroutine of the Remote is left (the test servers' own
			// handlers may still hang; they are not the client's).
			deadline := time.Now().Add(3 * time.Second)
			for {
				buf := make([]byte, 1<<20)
				stacks := string(buf[:runtime.Stack(buf, true)])
				if !strings.Contains(stacks, "client.(*Remote)") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("a goroutine of the Remote outlived Close:\n%s", stacks)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestRemoteCountersArePublished(t *testing.T) {
	srv := newReportServer(t, nil)
	r := newRemote(t, client.RemoteConfig{URLs: []string{srv.srv.URL}, ExpvarName: "flawless_client_test"})
	r.Report(context.Background(), panicReport(3))
	r.Flush(context.Background())
	v := expvar.Get("flawless_client_test")
	if v == nil || !strings.Contains(v.String(), `"sent":1`) {
		t.Errorf("expvar = %v", v)
	}
	if _, err := client.NewRemote(client.RemoteConfig{}); err == nil {
		t.Error("a Remote without URLs was accepted")
	}
	if _, err := client.NewRemote(client.RemoteConfig{URLs: []string{"flawless:9028"}}); err == nil {
		t.Error("a URL without a scheme was accepted")
	}
}

func TestMiddleware(t *testing.T) {
	rec := &recorder{}
	mw := client.Middleware(rec, client.HTTPConfig{Body: true, MaxBody: 8})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/ok":
			w.Write([]byte("fine"))
			return
		}
		panic("handler broke")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/cart?id=7&api_key=sk-1&token=abc", strings.NewReader("password=hunter2&x=1"))
	req.Header.Set("Cookie", "session=s3cret")
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Set("X-Api-Key", "k3y")
	req.Header.Set("User-Agent", "test")
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close() // net/http aborts the connection after a panic
	}
	http.Get(srv.URL + "/abort")
	if resp, err := http.Get(srv.URL + "/ok"); err != nil || resp.StatusCode != 200 {
		t.Errorf("a handler without a panic: %v", err)
	}
	rs := rec.got()
	if len(rs) != 1 {
		t.Fatalf("%d reports, want 1 (ErrAbortHandler is never reported)", len(rs))
	}
	q := rs[0].Request
	if q == nil || q.Method != "POST" || !strings.Contains(q.URL, "/cart?") || !strings.Contains(q.URL, "id=7") {
		t.Fatalf("request = %+v", q)
	}
	for _, secret := range []string{"sk-1", "abc", "s3cret", "t0ken", "k3y", "hunter2"} {
		if strings.Contains(fmt.Sprint(q), secret) {
			t.Errorf("the report carries the secret %q: %+v", secret, q)
		}
	}
	if q.Headers["User-Agent"] != "test" || q.Headers["Cookie"] != client.Scrubbed {
		t.Errorf("headers = %v", q.Headers)
	}
	if q.Body != "password…[cut]" {
		t.Errorf("body = %q, want the first 8 bytes, marked as cut", q.Body)
	}
	if !strings.Contains(rs[0].Frames[0].Function, "TestMiddleware") {
		t.Errorf("first frame %+v, want the handler's line", rs[0].Frames[0])
	}
}

func TestMiddlewareRepanics(t *testing.T) {
	h := client.Middleware(&recorder{}, client.HTTPConfig{})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("x") }))
	defer func() {
		if v := recover(); v != "x" {
			t.Errorf("the middleware let %v through, want the handler's panic", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	t.Error("no panic came out of the middleware")
}

type tracedErr struct{ pcs []uintptr }

func (e *tracedErr) Error() string      { return "db timeout" }
func (e *tracedErr) Callers() []uintptr { return e.pcs }

func TestSlogHandler(t *testing.T) {
	rec := &recorder{}
	var out bytes.Buffer
	logger := slog.New(client.NewSlogHandler(slog.NewTextHandler(&out, nil), rec, nil))
	logger = logger.With("service", "cart").WithGroup("req")
	logger.Info("just information", "n", 1)
	want := line() + 1
	logger.Error("could not load the cart", "user", 42, "password", "hunter2", slog.Group("db", "host", "db-1"))
	pcs := make([]uintptr, 16)
	pcs = pcs[:runtime.Callers(1, pcs)]
	origin := line() - 1
	logger.Error("query failed", "err", fmt.Errorf("load: %w", &tracedErr{pcs}))
	if !strings.Contains(out.String(), "just information") || !strings.Contains(out.String(), "could not load the cart") {
		t.Errorf("records did not reach the wrapped handler:\n%s", out.String())
	}
	rs := rec.got()
	if len(rs) != 2 {
		t.Fatalf("%d reports, want the 2 errors", len(rs))
	}
	r := rs[0]
	if r.Message != "could not load the cart" || r.Frames[0].Line != want || !strings.Contains(r.Frames[0].Function, "TestSlogHandler") {
		t.Errorf("first report: %q at %+v, want line %d", r.Message, r.Frames[0], want)
	}
	vars := map[string]string{}
	for _, v := range r.Vars {
		vars[v.Name] = v.Value
	}
	if vars["service"] != "cart" || vars["req.user"] != "42" || vars["req.password"] != client.Scrubbed || vars["req.db.host"] != "db-1" {
		t.Errorf("vars = %v", vars)
	}
	e := rs[1]
	if e.Type != "*fmt.wrapError" || e.Message != "query failed: load: db timeout" || e.Frames[0].Line != origin {
		t.Errorf("error report: %q %q at %+v, want the error's origin line %d", e.Type, e.Message, e.Frames[0], origin)
	}
	if len(e.Chain) < 2 || e.Chain[1].Type != "*client_test.tracedErr" {
		t.Errorf("chain = %+v", e.Chain)
	}
}

type failingHandler struct{ slog.Handler }

func (failingHandler) Handle(context.Context, slog.Record) error { return errors.New("disk full") }

func TestSlogHandlerKeepsTheWrappedHandlersError(t *testing.T) {
	rec := &recorder{}
	h := client.NewSlogHandler(failingHandler{slog.NewTextHandler(io.Discard, nil)}, rec, slog.LevelWarn)
	err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelWarn, "careful", 0))
	if err == nil || err.Error() != "disk full" {
		t.Errorf("Handle = %v, want the wrapped handler's error", err)
	}
	if len(rec.got()) != 0 {
		t.Error("a record without a PC made a report with no frames")
	}
}
