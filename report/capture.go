package report

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// MaxFrames is the largest number of frames a report may carry.
const MaxFrames = 256

// maxChain bounds how many wrapped errors a report records.
const maxChain = 32

// FromPanic returns a report of the panic value v. Call it while the panic
// is being recovered, from the deferred function or anything it calls: the
// stack then starts at the panicking line, with the runtime's own frames
// (gopanic, panicmem, mapassign, goPanicIndex, …) left out. Called when no
// panic is under way, the stack starts at FromPanic's caller.
func FromPanic(v any) *Report {
	var pcs [MaxFrames + 64]uintptr
	n := runtime.Callers(2, pcs[:])
	r := &Report{Panic: true}
	r.Frames = panicFrames(pcs[:n])
	describe(r, v)
	fill(r)
	return r
}

// FromError returns a report of err whose stack starts at the caller of
// FromError; skip leaves out that many more frames (skip 1 starts at the
// caller's caller, for helpers that report on behalf of their caller).
func FromError(err error, skip int) *Report {
	var pcs [MaxFrames]uintptr
	n := runtime.Callers(2+skip, pcs[:])
	r := &Report{Frames: FramesFromPCs(pcs[:n])}
	describe(r, err)
	fill(r)
	return r
}

// FramesFromPCs resolves program counters, as returned by runtime.Callers,
// into frames, innermost first, leaving out the goroutine's bottom frame
// (runtime.goexit). At most MaxFrames are returned.
func FramesFromPCs(pcs []uintptr) []Frame {
	if len(pcs) == 0 {
		return nil
	}
	frames := make([]Frame, 0, min(len(pcs), MaxFrames))
	it := runtime.CallersFrames(pcs)
	for len(frames) < MaxFrames {
		f, more := it.Next()
		if f.Function != "runtime.goexit" && (f.Function != "" || f.File != "") {
			frames = append(frames, Frame{Function: f.Function, File: f.File, Line: f.Line})
		}
		if !more {
			break
		}
	}
	return frames
}

// panicFrames drops everything up to and including the innermost
// runtime.gopanic and the runtime frames right after it, so that the first
// frame is the line that panicked. Without a gopanic frame all frames are
// kept.
func panicFrames(pcs []uintptr) []Frame {
	all := FramesFromPCs(pcs)
	for i, f := range all {
		if f.Function != "runtime.gopanic" {
			continue
		}
		j := i + 1
		for j < len(all) && isRuntime(all[j].Function) {
			j++
		}
		if j < len(all) {
			return all[j:]
		}
		break
	}
	return all
}

func isRuntime(function string) bool {
	return strings.HasPrefix(function, "runtime.") && !strings.HasPrefix(function, "runtime.main")
}

// describe fills the type, message and error chain of r from v. Methods of
// v that panic (a nil receiver's Error, say) do not escape.
func describe(r *Report, v any) {
	r.Type = fmt.Sprintf("%T", v)
	r.Message = safeText(v)
	if err, ok := v.(error); ok {
		r.Chain = Chain(err)
	}
}

// Chain returns the errors that err wraps, found by Unwrap() error and
// Unwrap() []error, depth first, outermost first. err itself is not
// included. At most 32 links are returned.
func Chain(err error) []Link {
	var links []Link
	var walk func(e error)
	walk = func(e error) {
		var next []error
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if w := safeUnwrap(u.Unwrap); w != nil {
				next = []error{w}
			}
		case interface{ Unwrap() []error }:
			next = safeUnwrapAll(u.Unwrap)
		}
		for _, w := range next {
			if w == nil || len(links) >= maxChain {
				continue
			}
			links = append(links, Link{Type: fmt.Sprintf("%T", w), Message: safeText(w)})
			walk(w)
		}
	}
	if err != nil {
		walk(err)
	}
	return links
}

func safeUnwrap(f func() error) (e error) {
	defer func() {
		if recover() != nil {
			e = nil
		}
	}()
	return f()
}

func safeUnwrapAll(f func() []error) (es []error) {
	defer func() {
		if recover() != nil {
			es = nil
		}
	}()
	return f()
}

// safeText renders v the way fmt's %v does, but survives a panicking Error
// or String method.
func safeText(v any) (s string) {
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("(%T: rendering panicked: %v)", v, p)
		}
	}()
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	default:
		return fmt.Sprint(v)
	}
}

var (
	hostname  = sync.OnceValue(func() string { h, _ := os.Hostname(); return h })
	buildInfo = sync.OnceValue(readBuild)
)

func fill(r *Report) {
	r.Time = time.Now()
	r.Hostname = hostname()
	r.Build = buildInfo()
}

// CurrentBuild returns the build info of the running binary.
func CurrentBuild() Build { return buildInfo() }

func readBuild() Build {
	b := Build{GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Path = info.Main.Path
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}
