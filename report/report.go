// Package report is the vocabulary of Flawless: a Report of one panic or
// error, its stack Frames, the Vars attached to it, the Key that identifies
// an error across occurrences, and the JSON wire form in which reports travel
// from a client to a server.
//
// It imports only the standard library, so a program that captures reports
// (the client package) links nothing else.
//
// Reports are built by capture functions:
//
//	defer func() {
//		if v := recover(); v != nil {
//			r := report.FromPanic(v) // stack starts at the panicking line
//			...
//		}
//	}()
//
//	r := report.FromError(err, 0) // stack starts at the caller
package report

import (
	"strconv"
	"strings"
	"time"
)

// Version is the wire format version written in the "v" field.
const Version = 1

// Report is one occurrence of a panic or error, or a batch of identical
// occurrences aggregated by a client (Count > 1).
//
// A Report must not be modified once it has been handed to a reporter.
type Report struct {
	// Time is when the error happened. The zero Time means "when received".
	Time time.Time `json:"time,omitzero"`
	// Hostname is the host the error happened on.
	Hostname string `json:"hostname,omitempty"`
	// Type is the Go type of the panic value or error, as printed by %T
	// ("*fs.PathError", "runtime.boundsError"), or a name the client chose.
	Type string `json:"type,omitempty"`
	// Message is the panic value or the error's text.
	Message string `json:"message,omitempty"`
	// Panic reports whether the report comes from a recovered panic.
	Panic bool `json:"panic,omitempty"`
	// Chain is the error's chain of wrapped errors, outermost first, as
	// found by Unwrap() error and Unwrap() []error (depth first). It is empty
	// for a value that is not an error or wraps nothing.
	Chain []Link `json:"chain,omitempty"`
	// Frames is the stack, innermost (the failing line) first.
	Frames []Frame `json:"frames"`
	// Build describes the binary that produced the report.
	Build Build `json:"build,omitzero"`
	// Vars are values attached to the report as a whole, such as values
	// from the context or attributes of a log record, sorted by name.
	Vars []Var `json:"vars,omitempty"`
	// Request is the HTTP request being served, if any.
	Request *Request `json:"request,omitempty"`
	// Count is how many identical occurrences this report stands for.
	// Zero means one.
	Count int `json:"count,omitempty"`
	// Threshold overrides the server's report_error_threshold for this
	// error when positive.
	Threshold int `json:"threshold,omitempty"`
	// AdditionalInfo is free text the caller attached.
	AdditionalInfo string `json:"additional_info,omitempty"`
}

// Occurrences returns the number of occurrences r stands for: Count, or 1
// when Count is zero or less.
func (r *Report) Occurrences() int {
	if r.Count < 1 {
		return 1
	}
	return r.Count
}

// Frame is one call in a stack.
type Frame struct {
	// Function is the fully qualified function name, as the runtime reports
	// it ("github.com/acme/shop/cart.(*Cart).Add").
	Function string `json:"function"`
	// File is the source file, as compiled into the binary: absolute, or
	// module-relative ("github.com/acme/shop/cart/cart.go") for builds made
	// with -trimpath.
	File string `json:"file"`
	// Line is the 1-based line number in File.
	Line int `json:"line"`
	// Text is the source text of the line, when the client knows it.
	// Servers read it from the repository otherwise.
	Text string `json:"text,omitempty"`
	// Vars are values belonging to this frame, sorted by name.
	Vars []Var `json:"vars,omitempty"`
}

// ShortFunction returns the function name without its package path:
// "(*Cart).Add" for "github.com/acme/shop/cart.(*Cart).Add".
func (f Frame) ShortFunction() string {
	return ShortFunction(f.Function)
}

// ShortFunction returns name without its package path.
func ShortFunction(name string) string {
	i := strings.LastIndexByte(name, '/')
	rest := name[i+1:]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		return rest[j+1:]
	}
	return rest
}

// Package returns the import path of the package the function name belongs
// to: "github.com/acme/shop/cart" for "github.com/acme/shop/cart.(*Cart).Add".
func Package(function string) string {
	i := strings.LastIndexByte(function, '/')
	rest := function[i+1:]
	if j := strings.IndexByte(rest, '.'); j >= 0 {
		return function[:i+1+j]
	}
	return function
}

// Var is a named value rendered as text.
type Var struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Link is one error in an error chain.
type Link struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// Build describes the binary that produced a report, from its build info.
type Build struct {
	// Path is the main module's path ("github.com/acme/shop").
	Path string `json:"path,omitempty"`
	// Revision is the vcs.revision the binary was built from.
	Revision string `json:"revision,omitempty"`
	// Modified reports vcs.modified: the work tree had uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go toolchain version ("go1.26.1").
	GoVersion string `json:"go_version,omitempty"`
}

// Request describes the HTTP request being served when an error happened.
type Request struct {
	Method     string            `json:"method,omitempty"`
	URL        string            `json:"url,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	RemoteAddr string            `json:"remote_addr,omitempty"`
	Body       string            `json:"body,omitempty"`
}

// Key identifies an error across occurrences: the repository path and
// function of the blamed frame and its whitespace-normalised line text.
// When the text is unknown, Line stands in for it; otherwise Line is zero,
// so that an edit above the line does not make a new error.
//
// Key is comparable and can be used as a map key.
type Key struct {
	Path     string `json:"path"`
	Function string `json:"function"`
	Text     string `json:"text,omitempty"`
	Line     int    `json:"line,omitempty"`
}

// NewKey returns the key of an error blamed on line of the function in the
// repository path, whose source text is text (empty when unknown).
func NewKey(path, function, text string, line int) Key {
	k := Key{Path: path, Function: function, Text: NormalizeSpace(text)}
	if k.Text == "" {
		k.Line = line
	}
	return k
}

// String returns the key as "path:function: text" (or "path:function:line").
func (k Key) String() string {
	if k.Text == "" {
		return k.Path + ":" + k.Function + ":" + strconv.Itoa(k.Line)
	}
	return k.Path + ":" + k.Function + ": " + k.Text
}

// NormalizeSpace trims s and collapses every run of white space to a single
// space.
func NormalizeSpace(s string) string {
	clean := true
	prevSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		sp := c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
		if sp && (prevSpace || c != ' ') {
			clean = false
			break
		}
		prevSpace = sp
	}
	if clean && !prevSpace {
		return s
	}
	if clean && s == "" {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
