package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"

	"github.com/flawless-go/flawless/report"
)

// SlogHandler is a log/slog handler that passes every record to another
// handler and reports the records at Level or above, with their attributes
// as the report's variables. An attribute holding an error gives the
// report its type and wrapped errors, and its origin when the error
// carries one.
//
//	logger := slog.New(client.NewSlogHandler(slog.NewJSONHandler(os.Stderr, nil), rep, slog.LevelError))
type SlogHandler struct {
	next  slog.Handler
	rep   Reporter
	level slog.Leveler
	attrs []report.Var // from WithAttrs, with group prefixes
	group string       // prefix of attributes added from now on
}

// NewSlogHandler returns a handler that wraps next and reports records at
// level or above (slog.LevelError when level is nil) to rep.
func NewSlogHandler(next slog.Handler, rep Reporter, level slog.Leveler) *SlogHandler {
	if next == nil || rep == nil {
		panic("client: NewSlogHandler with a nil handler or Reporter")
	}
	if level == nil {
		level = slog.LevelError
	}
	return &SlogHandler{next: next, rep: rep, level: level}
}

// Enabled implements slog.Handler.
func (h *SlogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level.Level() || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *SlogHandler) Handle(ctx context.Context, rec slog.Record) error {
	var err error
	if h.next.Enabled(ctx, rec.Level) {
		err = h.next.Handle(ctx, rec)
	}
	if rec.Level >= h.level.Level() {
		h.report(ctx, rec)
	}
	return err
}

func (h *SlogHandler) report(ctx context.Context, rec slog.Record) {
	defer func() { recover() }() // a report must never break logging
	vars := slices.Clone(h.attrs)
	var cause error
	rec.Attrs(func(a slog.Attr) bool {
		vars, cause = flatten(vars, h.group, a, cause)
		return true
	})
	r := &report.Report{Type: "slog.Record", Message: rec.Message}
	if cause != nil {
		e := report.FromError(cause, 0)
		r.Type, r.Chain = e.Type, append([]report.Link{{Type: e.Type, Message: e.Message}}, e.Chain...)
		r.Message = rec.Message + ": " + e.Message
		r.Hostname, r.Build, r.Time = e.Hostname, e.Build, rec.Time
		if pcs := origin(cause); len(pcs) > 0 {
			r.Frames = report.FramesFromPCs(pcs)
		}
	} else {
		e := report.FromError(errors.New(rec.Message), 0)
		r.Hostname, r.Build, r.Time = e.Hostname, e.Build, rec.Time
	}
	if len(r.Frames) == 0 {
		r.Frames = framesFromRecord(rec.PC)
	}
	if len(r.Frames) == 0 {
		return
	}
	scrub := scrubFor(ctx)
	for i := range vars {
		vars[i].Value = render(scrub, vars[i].Name, vars[i].Value)
	}
	slices.SortStableFunc(vars, func(a, b report.Var) int { return strings.Compare(a.Name, b.Name) })
	r.Vars = vars[:min(len(vars), MaxValues)]
	ctxVars := Values(ctx)
	r.Vars = append(r.Vars, ctxVars[:min(len(ctxVars), MaxValues-len(r.Vars))]...)
	r.Message = RedactURLs(r.Message)
	h.rep.Report(ctx, r)
}

// framesFromRecord returns the stack of the goroutine from the logging call
// (the record's PC) outward, or that one frame if it is not on this stack.
func framesFromRecord(pc uintptr) []report.Frame {
	if pc == 0 {
		return nil
	}
	want, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	var pcs [report.MaxFrames]uintptr
	n := runtime.Callers(1, pcs[:])
	frames := report.FramesFromPCs(pcs[:n])
	for i, f := range frames {
		if f.Function == want.Function && f.Line == want.Line {
			return frames[i:]
		}
	}
	return []report.Frame{{Function: want.Function, File: want.File, Line: want.Line}}
}

// flatten adds an attribute (groups flattened with dots) to vars; the first
// error value found becomes the cause.
func flatten(vars []report.Var, prefix string, a slog.Attr, cause error) ([]report.Var, error) {
	a.Value = a.Value.Resolve()
	name := a.Key
	if prefix != "" {
		name = prefix + "." + a.Key
	}
	if a.Value.Kind() == slog.KindGroup {
		p := name
		if a.Key == "" {
			p = prefix
		}
		for _, g := range a.Value.Group() {
			vars, cause = flatten(vars, p, g, cause)
		}
		return vars, cause
	}
	if a.Key == "" {
		return vars, cause
	}
	v := a.Value.Any()
	if err, ok := v.(error); ok && cause == nil {
		cause = err
	}
	return append(vars, report.Var{Name: name, Value: fmt.Sprint(v)}), cause
}

// WithAttrs implements slog.Handler.
func (h *SlogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = slices.Clone(h.attrs)
	for _, a := range attrs {
		c.attrs, _ = flatten(c.attrs, h.group, a, nil)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *SlogHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	if h.group != "" {
		c.group = h.group + "." + name
	} else {
		c.group = name
	}
	return &c
}
