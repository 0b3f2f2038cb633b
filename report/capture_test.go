package report_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/flawless-go/flawless/report"
)

// line returns the line it is called from.
func line() int {
	_, _, n, _ := runtime.Caller(1)
	return n
}

type customPanic struct{ Code int }

type boom struct{}

func (*boom) Error() string { panic("Error method broke") }

// catch runs f and returns the report FromPanic makes of its panic.
func catch(f func()) (r *report.Report) {
	defer func() { r = report.FromPanic(recover()) }()
	f()
	return nil
}

var sink int

func TestFromPanicStartsAtThePanickingLine(t *testing.T) {
	zero := 0
	var nilPtr *customPanic
	var iface any = "a string"
	idx := 5
	tests := []struct {
		name     string
		f        func()
		line     int
		wantType string
		wantMsg  string
	}{
		{"panic(string)", func() { panic("it broke") }, line(), "string", "it broke"},
		{"panic(error)", func() { panic(fs.ErrNotExist) }, line(), "*errors.errorString", "file does not exist"},
		{"panic(custom value)", func() { panic(customPanic{Code: 7}) }, line(), "report_test.customPanic", "{7}"},
		//lint:ignore SA5000 the test needs this panic
		{"nil map write", func() { var m map[string]int; m["a"] = 1 }, line(), "plainError", "assignment to entry in nil map"},
		{"index out of range", func() { s := []int{1}; sink = s[idx] }, line(), "runtime.boundsError", "index out of range [5] with length 1"},
		{"nil pointer dereference", func() { sink = nilPtr.Code }, line(), "runtime.errorString", "invalid memory address or nil pointer dereference"},
		{"failed type assertion", func() { sink = iface.(int) }, line(), "*runtime.TypeAssertionError", "interface conversion"},
		{"division by zero", func() { sink = 1 / zero }, line(), "runtime.errorString", "integer divide by zero"},
	}
	_, thisFile, _, _ := runtime.Caller(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := catch(tt.f)
			if r == nil || len(r.Frames) == 0 {
				t.Fatalf("no report or no frames: %+v", r)
			}
			top := r.Frames[0]
			if top.File != thisFile || top.Line != tt.line {
				t.Errorf("first frame = %s:%d (%s), want %s:%d", top.File, top.Line, top.Function, thisFile, tt.line)
			}
			if strings.HasPrefix(top.Function, "runtime.") {
				t.Errorf("first frame is a runtime frame: %s", top.Function)
			}
			if !strings.HasSuffix(r.Type, tt.wantType) {
				t.Errorf("Type = %q, want suffix %q", r.Type, tt.wantType)
			}
			if !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", r.Message, tt.wantMsg)
			}
			if !r.Panic {
				t.Error("Panic = false, want true")
			}
			for _, f := range r.Frames {
				if f.Function == "runtime.goexit" {
					t.Errorf("runtime.goexit kept in %v", r.Frames)
				}
			}
		})
	}
}

func TestFromPanicSurvivesAPanickingErrorMethod(t *testing.T) {
	r := catch(func() { panic(error(&boom{})) })
	if !strings.Contains(r.Message, "rendering panicked") {
		t.Errorf("Message = %q, want a note that rendering panicked", r.Message)
	}
	if r.Type != "*report_test.boom" {
		t.Errorf("Type = %q", r.Type)
	}
}

func TestFromPanicOutsideAPanicStartsAtTheCaller(t *testing.T) {
	want := line() + 1
	r := report.FromPanic("not panicking")
	if r.Frames[0].Line != want || !strings.HasSuffix(r.Frames[0].Function, "TestFromPanicOutsideAPanicStartsAtTheCaller") {
		t.Errorf("first frame = %+v, want this function at line %d", r.Frames[0], want)
	}
}

func helperThatReports(err error) *report.Report { return report.FromError(err, 1) }

func TestFromErrorStartsAtTheCallSite(t *testing.T) {
	err := fmt.Errorf("load config: %w", &fs.PathError{Op: "open", Path: "/etc/x", Err: fs.ErrNotExist})
	want := line() + 1
	r := report.FromError(err, 0)
	if got := r.Frames[0]; got.Line != want || !strings.HasSuffix(got.Function, "TestFromErrorStartsAtTheCallSite") {
		t.Errorf("skip 0: first frame = %+v, want line %d of this test", got, want)
	}
	want = line() + 1
	r = helperThatReports(err)
	if got := r.Frames[0]; got.Line != want || !strings.HasSuffix(got.Function, "TestFromErrorStartsAtTheCallSite") {
		t.Errorf("skip 1: first frame = %+v, want line %d of this test", got, want)
	}
	if r.Type != "*fmt.wrapError" || r.Message != "load config: open /etc/x: file does not exist" || r.Panic {
		t.Errorf("Type, Message, Panic = %q, %q, %v", r.Type, r.Message, r.Panic)
	}
	wantChain := []report.Link{
		{Type: "*fs.PathError", Message: "open /etc/x: file does not exist"},
		{Type: "*errors.errorString", Message: "file does not exist"},
	}
	if fmt.Sprint(r.Chain) != fmt.Sprint(wantChain) {
		t.Errorf("Chain = %v, want %v", r.Chain, wantChain)
	}
}

func TestChainFollowsJoinedErrors(t *testing.T) {
	a, b := errors.New("a"), fmt.Errorf("b: %w", os.ErrClosed)
	got := report.Chain(errors.Join(a, b))
	want := []report.Link{
		{Type: "*errors.errorString", Message: "a"},
		{Type: "*fmt.wrapError", Message: "b: file already closed"},
		{Type: "*errors.errorString", Message: "file already closed"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Chain = %v, want %v", got, want)
	}
}

type loop struct{}

func (loop) Error() string   { return "loop" }
func (l loop) Unwrap() error { return l }

func TestChainIsBounded(t *testing.T) {
	if got := len(report.Chain(loop{})); got != 32 {
		t.Errorf("a self-wrapping error gave %d links, want the cap of 32", got)
	}
}

func TestCaptureFillsHostAndBuild(t *testing.T) {
	r := report.FromError(errors.New("x"), 0)
	host, _ := os.Hostname()
	if r.Hostname != host {
		t.Errorf("Hostname = %q, want %q", r.Hostname, host)
	}
	if r.Build.GoVersion != runtime.Version() {
		t.Errorf("GoVersion = %q, want %q", r.Build.GoVersion, runtime.Version())
	}
	if r.Build.Path != "github.com/flawless-go/flawless" {
		t.Errorf("Build.Path = %q, want the main module's path", r.Build.Path)
	}
	if r.Time.IsZero() {
		t.Error("Time is zero")
	}
}

func TestRepanicKeepsTheOriginalLineInTheStack(t *testing.T) {
	var want int
	r := catch(func() {
		defer func() {
			if v := recover(); v != nil {
				panic(v) // a bare re-raise: the engine never blames this line
			}
		}()
		want = line() + 1
		panic("original")
	})
	found := false
	for _, f := range r.Frames {
		if f.Line == want && strings.Contains(f.Function, "TestRepanicKeepsTheOriginalLineInTheStack") {
			found = true
		}
	}
	if !found {
		t.Errorf("the original panicking line %d is not in the stack %v", want, r.Frames)
	}
}
