// Package client captures panics and errors in a Go program and hands them
// to a Reporter: the in-process *flawless.Engine, or a remote reporter that
// sends them to flawless-server.
//
// Recover a panic in any function, reporting it and re-panicking:
//
//	func (s *Server) handle(ctx context.Context) {
//		defer client.Recover(ctx, s.reporter)
//		...
//	}
//
// Run a goroutine with the same protection:
//
//	client.Go(ctx, reporter, func() { worker(ctx) })
//
// Report an error that is returned rather than panicked:
//
//	if err := charge(ctx, order); err != nil {
//		client.Report(ctx, reporter, err)
//		return err
//	}
package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/flawless-go/flawless/report"
)

// Reporter takes reports. *flawless.Engine implements it.
type Reporter interface {
	Report(ctx context.Context, r *report.Report) error
}

// Option changes how one call captures and reports.
type Option func(*settings)

type settings struct {
	swallow   bool
	threshold int
	info      string
}

// Swallow makes Recover stop the panic after reporting it, instead of
// panicking again. The function deferring Recover then returns normally,
// with its named results as they were.
func Swallow() Option { return func(s *settings) { s.swallow = true } }

// Threshold overrides the server's report_error_threshold for the error
// reported.
func Threshold(n int) Option { return func(s *settings) { s.threshold = n } }

// AdditionalInfo attaches free text to the report.
func AdditionalInfo(text string) Option { return func(s *settings) { s.info = text } }

func apply(opts []Option) settings {
	var s settings
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	return s
}

// Recover reports a panic under way and then panics again with the same
// value, so that the program behaves as it would without it; with Swallow
// it stops the panic instead. It must be deferred directly:
//
//	defer client.Recover(ctx, reporter)
//
// Wrapping it in another function (defer func() { client.Recover(...) }())
// stops it from seeing the panic. http.ErrAbortHandler, the panic net/http
// uses to abort a response, is never reported. The report's stack starts at
// the line that panicked.
func Recover(ctx context.Context, rep Reporter, opts ...Option) {
	v := recover()
	if v == nil {
		return
	}
	s := apply(opts)
	if !isAbort(v) {
		if rm, ok := rep.(*Remote); ok {
			safely(func() { rm.recoverPanic(ctx, v, s) })
		} else {
			deliver(ctx, rep, report.FromPanic(v), s)
		}
	}
	if !s.swallow {
		panic(v)
	}
}

func isAbort(v any) bool {
	err, ok := v.(error)
	return ok && errors.Is(err, http.ErrAbortHandler)
}

// Go runs fn in a new goroutine under Recover: a panic in fn is reported,
// and then, as without Go, crashes the program unless Swallow is given.
func Go(ctx context.Context, rep Reporter, fn func(), opts ...Option) {
	go func() {
		defer Recover(ctx, rep, opts...)
		fn()
	}()
}

// Report reports err, a returned error, and returns what the reporter
// returned. The stack is where err came from when err (or an error it
// wraps) carries one, through a Callers() []uintptr method or the
// StackTrace() method of the common errors packages; otherwise it is the
// stack of Report's caller. A nil err is not reported.
func Report(ctx context.Context, rep Reporter, err error, opts ...Option) error {
	if err == nil {
		return nil
	}
	r := report.FromError(err, 1)
	if pcs := origin(err); len(pcs) > 0 {
		if frames := report.FramesFromPCs(pcs); len(frames) > 0 {
			r.Frames = frames
		}
	}
	return deliver(ctx, rep, r, apply(opts))
}

// origin returns the program counters of the innermost error in err's
// chain that recorded where it was made.
func origin(err error) (pcs []uintptr) {
	defer func() {
		if recover() != nil {
			pcs = nil
		}
	}()
	var found []uintptr
	walk(err, func(e error) {
		if c, ok := e.(interface{ Callers() []uintptr }); ok {
			if p := c.Callers(); len(p) > 0 {
				found = p
			}
			return
		}
		if p := stackTraceMethod(e); len(p) > 0 {
			found = p
		}
	})
	return found
}

// stackTraceMethod reads a StackTrace() method whose result is a slice of
// program counters (uintptr-kinded), the shape used by github.com/pkg/errors
// and its forks, without importing them.
func stackTraceMethod(e error) []uintptr {
	m := reflect.ValueOf(e).MethodByName("StackTrace")
	if !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 {
		return nil
	}
	t := m.Type().Out(0)
	if t.Kind() != reflect.Slice || t.Elem().Kind() != reflect.Uintptr {
		return nil
	}
	v := m.Call(nil)[0]
	pcs := make([]uintptr, v.Len())
	for i := range pcs {
		pcs[i] = uintptr(v.Index(i).Uint())
	}
	return pcs
}

// walk visits err and the errors it wraps, outermost first.
func walk(err error, visit func(error)) {
	for depth := 0; err != nil && depth < 32; depth++ {
		visit(err)
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e, visit)
			}
			return
		default:
			return
		}
	}
}

// deliver adds the context's values and the options to r and hands it to
// rep. A reporter that panics does not take the caller down.
func deliver(ctx context.Context, rep Reporter, r *report.Report, s settings) (err error) {
	if rep == nil {
		return errors.New("client: nil Reporter")
	}
	if ctx == nil {
		ctx = context.Background()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("client: reporter panicked: %v", p)
		}
	}()
	if err := deliverPrepared(ctx, r, s); err != nil {
		return err
	}
	return rep.Report(ctx, r)
}

// deliverPrepared adds the context's values and the options to r.
func deliverPrepared(ctx context.Context, r *report.Report, s settings) error {
	if ctx == nil {
		ctx = context.Background()
	}
	r.Vars = Values(ctx)
	r.Threshold = s.threshold
	r.AdditionalInfo = s.info
	r.Message = RedactURLs(r.Message)
	return nil
}

// safely runs f, containing a panic in it.
func safely(f func()) {
	defer func() { recover() }()
	f()
}

// Limits of rendered variables.
const (
	MaxValueLen = 250 // characters of one rendered value
	MaxValues   = 100 // values per report
)

// Scrubbed replaces the value of a variable whose name looks secret.
const Scrubbed = "**scrubbed**"

// DefaultScrub matches the names of variables whose values are never sent,
// unless a context says otherwise (WithScrub).
var DefaultScrub = regexp.MustCompile(`(?i)password|passwd|secret|token|authorization|cookie|key|credential`)

type valuesKey struct{}

type scrubKey struct{}

// WithScrub returns a context whose reports scrub the values of variables
// whose names match re, instead of DefaultScrub.
func WithScrub(ctx context.Context, re *regexp.Regexp) context.Context {
	return context.WithValue(ctx, scrubKey{}, re)
}

// scrubFor returns the scrub pattern in force for ctx.
func scrubFor(ctx context.Context) *regexp.Regexp {
	if re, ok := ctx.Value(scrubKey{}).(*regexp.Regexp); ok && re != nil {
		return re
	}
	return DefaultScrub
}

type kv struct {
	name  string
	value any
}

// WithValues returns a context carrying name/value pairs (name1, value1,
// name2, value2, …) that become variables of any report made with it. Later
// values of the same name win. Values are rendered with %+v only if a report
// is made.
func WithValues(ctx context.Context, pairs ...any) context.Context {
	prev, _ := ctx.Value(valuesKey{}).([]kv)
	next := slices.Clone(prev)
	for i := 0; i < len(pairs); i += 2 {
		name := fmt.Sprint(pairs[i])
		var v any = "(missing value)"
		if i+1 < len(pairs) {
			v = pairs[i+1]
		}
		next = append(next, kv{name, v})
	}
	return context.WithValue(ctx, valuesKey{}, next)
}

// Values renders the variables carried by ctx: sorted by name, secrets
// scrubbed (DefaultScrub, or the pattern given with WithScrub), each value
// capped at MaxValueLen characters, at most MaxValues.
func Values(ctx context.Context) []report.Var {
	pairs, _ := ctx.Value(valuesKey{}).([]kv)
	if len(pairs) == 0 {
		return nil
	}
	latest := map[string]any{}
	for _, p := range pairs {
		latest[p.name] = p.value
	}
	scrub := scrubFor(ctx)
	vars := make([]report.Var, 0, len(latest))
	for name, v := range latest {
		vars = append(vars, report.Var{Name: name, Value: render(scrub, name, v)})
	}
	slices.SortFunc(vars, func(a, b report.Var) int { return strings.Compare(a.Name, b.Name) })
	if len(vars) > MaxValues {
		vars = vars[:MaxValues]
	}
	return vars
}

// Render renders one named value as a report shows it: scrubbed when the
// name matches DefaultScrub, else %+v with URL credentials redacted, capped
// at MaxValueLen characters. A value whose formatting panics is rendered as
// a note saying so.
func Render(name string, v any) string { return render(DefaultScrub, name, v) }

func render(scrub *regexp.Regexp, name string, v any) (s string) {
	if scrub.MatchString(name) {
		return Scrubbed
	}
	defer func() {
		if p := recover(); p != nil {
			s = fmt.Sprintf("(%T: formatting panicked: %v)", v, p)
		}
	}()
	s = RedactURLs(fmt.Sprintf("%+v", v))
	if r := []rune(s); len(r) > MaxValueLen {
		s = string(r[:MaxValueLen]) + "…"
	}
	return s
}

var urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]+(:[^/@\s]*)?@`)

// RedactURLs replaces the credentials of URLs in s (scheme://user:pass@host)
// with "redacted".
func RedactURLs(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return urlUserinfo.ReplaceAllString(s, "${1}redacted@")
}
