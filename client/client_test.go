package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/client"
	"github.com/flawless-go/flawless/report"
	"github.com/google/go-cmp/cmp"
)

var _ client.Reporter = (*flawless.Engine)(nil)

type recorder struct {
	mu      sync.Mutex
	reports []*report.Report
	done    chan struct{}
}

func (r *recorder) Report(_ context.Context, rep *report.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, rep)
	if r.done != nil {
		close(r.done)
	}
	return nil
}

func (r *recorder) got() []*report.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports
}

func line() int {
	_, _, n, _ := runtime.Caller(1)
	return n
}

func TestRecoverReportsAndRepanics(t *testing.T) {
	rec := &recorder{}
	var want int
	var repanicked any
	func() {
		defer func() { repanicked = recover() }()
		func() {
			defer client.Recover(t.Context(), rec)
			want = line() + 1
			panic("boom")
		}()
	}()
	if repanicked != "boom" {
		t.Errorf("re-panicked with %v, want the original value", repanicked)
	}
	rs := rec.got()
	if len(rs) != 1 {
		t.Fatalf("%d reports, want 1", len(rs))
	}
	if f := rs[0].Frames[0]; f.Line != want || !strings.HasSuffix(f.File, "client_test.go") {
		t.Errorf("first frame %s:%d, want client_test.go:%d", f.File, f.Line, want)
	}
	if rs[0].Message != "boom" || rs[0].Type != "string" || !rs[0].Panic {
		t.Errorf("report = %q %q panic=%v", rs[0].Type, rs[0].Message, rs[0].Panic)
	}
}

func TestRecoverSwallow(t *testing.T) {
	rec := &recorder{}
	f := func() (n int) {
		defer client.Recover(t.Context(), rec, client.Swallow(), client.Threshold(7), client.AdditionalInfo("nightly job"))
		n = 1
		var m map[string]int
		//lint:ignore SA5000 the test needs this panic
		m["x"] = 1
		return 2
	}
	if n := f(); n != 1 {
		t.Errorf("swallowed panic returned %d, want the named result as it was (1)", n)
	}
	rs := rec.got()
	if len(rs) != 1 || rs[0].Threshold != 7 || rs[0].AdditionalInfo != "nightly job" || !strings.Contains(rs[0].Message, "nil map") {
		t.Errorf("reports = %+v", rs)
	}
}

func TestRecoverNeverReportsErrAbortHandler(t *testing.T) {
	rec := &recorder{}
	var repanicked any
	func() {
		defer func() { repanicked = recover() }()
		func() {
			defer client.Recover(t.Context(), rec)
			panic(http.ErrAbortHandler)
		}()
	}()
	if repanicked != http.ErrAbortHandler {
		t.Errorf("re-panicked with %v, want http.ErrAbortHandler", repanicked)
	}
	if n := len(rec.got()); n != 0 {
		t.Errorf("ErrAbortHandler was reported %d times", n)
	}
}

type panickingReporter struct{}

func (panickingReporter) Report(context.Context, *report.Report) error { panic("reporter broke") }

func TestAPanickingReporterDoesNotChangeThePanic(t *testing.T) {
	var repanicked any
	func() {
		defer func() { repanicked = recover() }()
		func() {
			defer client.Recover(t.Context(), panickingReporter{})
			panic("original")
		}()
	}()
	if repanicked != "original" {
		t.Errorf("re-panicked with %v, want the original value", repanicked)
	}
}

func TestGoReportsPanicsInGoroutines(t *testing.T) {
	rec := &recorder{done: make(chan struct{})}
	client.Go(t.Context(), rec, func() { panic(fmt.Errorf("worker failed")) }, client.Swallow())
	<-rec.done
	rs := rec.got()
	if len(rs) != 1 || rs[0].Message != "worker failed" || !strings.Contains(rs[0].Frames[0].Function, "TestGoReportsPanicsInGoroutines") {
		t.Errorf("reports = %+v", rs[0])
	}
}

type tracedError struct{ pcs []uintptr }

func (e *tracedError) Error() string      { return "traced" }
func (e *tracedError) Callers() []uintptr { return e.pcs }

// pkgFrame mimics github.com/pkg/errors: StackTrace returns a slice of a
// uintptr type of its own.
type pkgFrame uintptr
type pkgStack []pkgFrame
type pkgError struct{ stack []uintptr }

func (e *pkgError) Error() string { return "pkg error" }
func (e *pkgError) StackTrace() pkgStack {
	s := make(pkgStack, len(e.stack))
	for i, pc := range e.stack {
		s[i] = pkgFrame(pc)
	}
	return s
}

func callers() ([]uintptr, int) {
	pcs := make([]uintptr, 32)
	_, _, n, _ := runtime.Caller(0)
	return pcs[:runtime.Callers(1, pcs)], n + 1
}

func TestReport(t *testing.T) {
	rec := &recorder{}
	want := line() + 1
	client.Report(t.Context(), rec, errors.New("plain"))
	pcs, originLine := callers()
	client.Report(t.Context(), rec, fmt.Errorf("wrapped: %w", &tracedError{pcs}))
	client.Report(t.Context(), rec, fmt.Errorf("wrapped: %w", &pkgError{pcs}))
	if err := client.Report(t.Context(), rec, nil); err != nil || len(rec.got()) != 3 {
		t.Fatalf("Report(nil) = %v with %d reports", err, len(rec.got()))
	}
	rs := rec.got()
	if f := rs[0].Frames[0]; f.Line != want || !strings.HasSuffix(f.Function, "TestReport") {
		t.Errorf("plain error: first frame %s:%d, want the call site at line %d", f.Function, f.Line, want)
	}
	for i, name := range []string{"Callers()", "StackTrace()"} {
		if f := rs[i+1].Frames[0]; f.Line != originLine || !strings.HasSuffix(f.Function, "client_test.callers") {
			t.Errorf("%s: first frame %s:%d, want the origin in callers() at line %d", name, f.Function, f.Line, originLine)
		}
	}
	if rs[1].Type != "*fmt.wrapError" || rs[1].Chain[0].Type != "*client_test.tracedError" {
		t.Errorf("type %q, chain %+v", rs[1].Type, rs[1].Chain)
	}
}

func TestValues(t *testing.T) {
	ctx := client.WithValues(t.Context(), "user", 42, "api_key", "sk-123", "order", struct{ ID int }{7})
	ctx = client.WithValues(ctx, "user", "ann", "dsn", "postgres://app:hunter2@db:5432/shop", "long", strings.Repeat("x", 300), "odd")
	got := client.Values(ctx)
	want := []report.Var{
		{Name: "api_key", Value: client.Scrubbed},
		{Name: "dsn", Value: "postgres://redacted@db:5432/shop"},
		{Name: "long", Value: strings.Repeat("x", 250) + "…"},
		{Name: "odd", Value: "(missing value)"},
		{Name: "order", Value: "{ID:7}"},
		{Name: "user", Value: "ann"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Values mismatch (-want +got):\n%s", diff)
	}
	rec := &recorder{}
	client.Report(ctx, rec, errors.New("x"))
	if diff := cmp.Diff(want, rec.got()[0].Vars); diff != "" {
		t.Errorf("report vars mismatch (-want +got):\n%s", diff)
	}
}

func TestScrubIsConfigurable(t *testing.T) {
	ctx := client.WithScrub(t.Context(), regexp.MustCompile(`(?i)^ssn$`))
	ctx = client.WithValues(ctx, "ssn", "123-45-6789", "password", "shown-by-this-pattern")
	got := client.Values(ctx)
	want := []report.Var{{Name: "password", Value: "shown-by-this-pattern"}, {Name: "ssn", Value: client.Scrubbed}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Values mismatch (-want +got):\n%s", diff)
	}
}

func TestValuesAreBounded(t *testing.T) {
	ctx := t.Context()
	for i := range 150 {
		ctx = client.WithValues(ctx, fmt.Sprintf("v%03d", i), i)
	}
	if n := len(client.Values(ctx)); n != client.MaxValues {
		t.Errorf("%d values, want the cap of %d", n, client.MaxValues)
	}
}

func TestMessagesHaveURLCredentialsRedacted(t *testing.T) {
	rec := &recorder{}
	client.Report(t.Context(), rec, errors.New(`dial "amqp://guest:guest@rabbit:5672/": refused`))
	if got := rec.got()[0].Message; got != `dial "amqp://redacted@rabbit:5672/": refused` {
		t.Errorf("Message = %q", got)
	}
}

func TestRecoverWithTheInProcessEngine(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer e.Close(context.Background())
	var want int
	func() {
		defer client.Recover(t.Context(), e, client.Swallow())
		want = line() + 1
		panic("in-process")
	}()
	ents, err := e.Store().Entries(t.Context(), e.Week(time.Now()))
	if err != nil || len(ents) != 1 {
		t.Fatalf("entries = %+v, %v", ents, err)
	}
	k := ents[0].Key
	if k.Path != "client/client_test.go" || k.Line != want || !strings.HasSuffix(k.Function, "TestRecoverWithTheInProcessEngine.func1") {
		t.Errorf("key = %+v, want client/client_test.go line %d", k, want)
	}
}
