package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Limits of the wire form. A report over a count limit is rejected; a string
// over its size limit is cut, and the cut is marked (see Truncate).
const (
	MaxVars       = 100      // variables per frame, and per report
	MaxHeaders    = 100      // request headers
	MaxCount      = 1 << 30  // occurrences one report may stand for
	MaxTextBytes  = 16 << 10 // message, additional info, request body
	MaxFieldBytes = 1 << 10  // every other string
)

// wireReport is a Report with the version field in front.
type wireReport struct {
	V *int `json:"v"`
	*Report
}

// Marshal returns the wire form (version 1) of r.
func Marshal(r *Report) ([]byte, error) {
	v := Version
	return json.Marshal(wireReport{V: &v, Report: r})
}

// MarshalBatch returns the wire form of several reports:
// {"reports": [...]}.
func MarshalBatch(rs []*Report) ([]byte, error) {
	v := Version
	batch := struct {
		Reports []wireReport `json:"reports"`
	}{Reports: make([]wireReport, len(rs))}
	for i, r := range rs {
		batch.Reports[i] = wireReport{V: &v, Report: r}
	}
	return json.Marshal(batch)
}

// DecodeError is a report that could not be decoded, with the reason.
// Field names the offending field as a path ("reports[2].frames[0].line")
// when one is to blame.
type DecodeError struct {
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Decode reads the wire form: one report object, or {"reports": [...]}.
// Unknown fields are ignored. Missing required fields, wrong types,
// negative counts and more than MaxFrames frames or MaxVars variables are
// rejected with a *DecodeError; strings over their limits are cut with a
// marker. Reports without a time are left with the zero Time.
func Decode(data []byte) ([]*Report, error) {
	if t := bytes.TrimSpace(data); len(t) == 0 || t[0] != '{' {
		return nil, &DecodeError{Reason: "the body must be a JSON object: one report or {\"reports\": [...]}"}
	}
	var top struct {
		Reports *[]json.RawMessage `json:"reports"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError("", err)
	}
	if top.Reports == nil {
		r, err := decodeOne(data, "")
		if err != nil {
			return nil, err
		}
		return []*Report{r}, nil
	}
	if len(*top.Reports) == 0 {
		return nil, &DecodeError{Field: "reports", Reason: "empty list"}
	}
	rs := make([]*Report, 0, len(*top.Reports))
	for i, raw := range *top.Reports {
		r, err := decodeOne(raw, "reports["+strconv.Itoa(i)+"]")
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func decodeOne(data []byte, at string) (*Report, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, &DecodeError{Field: at, Reason: "a report must be a JSON object"}
	}
	w := wireReport{Report: new(Report)}
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, jsonError(at, err)
	}
	if w.V == nil {
		return nil, &DecodeError{Field: join(at, "v"), Reason: "missing field (the wire format version, 1)"}
	}
	if *w.V != Version {
		return nil, &DecodeError{Field: join(at, "v"), Reason: fmt.Sprintf("unsupported version %d (version 1 is read)", *w.V)}
	}
	if err := w.Report.sanitize(at); err != nil {
		return nil, err
	}
	return w.Report, nil
}

func join(at, field string) string {
	if at == "" {
		return field
	}
	return at + "." + field
}

func jsonError(at string, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return &DecodeError{Field: at, Reason: fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, err)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return &DecodeError{Field: join(at, field), Reason: fmt.Sprintf("wrong type: want %s, got JSON %s", te.Type, te.Value)}
	default:
		return &DecodeError{Field: at, Reason: err.Error()}
	}
}

// Validate checks r against the wire limits without changing it.
func (r *Report) Validate() error {
	c := *r
	c.Frames = append([]Frame(nil), r.Frames...)
	return c.sanitize("")
}

// sanitize rejects what breaks the limits and cuts strings that are too
// long.
func (r *Report) sanitize(at string) error {
	bad := func(field, format string, args ...any) error {
		return &DecodeError{Field: join(at, field), Reason: fmt.Sprintf(format, args...)}
	}
	if len(r.Frames) == 0 {
		return bad("frames", "missing field (at least one frame is needed)")
	}
	if len(r.Frames) > MaxFrames {
		return bad("frames", "%d frames; the limit is %d", len(r.Frames), MaxFrames)
	}
	if r.Count < 0 {
		return bad("count", "negative count %d", r.Count)
	}
	if r.Count > MaxCount {
		return bad("count", "count %d is over the limit of %d", r.Count, MaxCount)
	}
	if r.Threshold < 0 {
		return bad("threshold", "negative threshold %d", r.Threshold)
	}
	if r.Threshold > math.MaxInt32 {
		return bad("threshold", "threshold %d is over the limit of %d", r.Threshold, math.MaxInt32)
	}
	if err := checkVars(r.Vars, join(at, "vars")); err != nil {
		return err
	}
	for i := range r.Frames {
		f := &r.Frames[i]
		name := "frames[" + strconv.Itoa(i) + "]"
		if f.Function == "" && f.File == "" {
			return bad(name, "a frame needs a function or a file")
		}
		if f.Line < 0 {
			return bad(name+".line", "negative line %d", f.Line)
		}
		if err := checkVars(f.Vars, join(at, name+".vars")); err != nil {
			return err
		}
		f.Function = Truncate(f.Function, MaxFieldBytes)
		f.File = Truncate(f.File, MaxFieldBytes)
		f.Text = Truncate(f.Text, MaxFieldBytes)
		cutVars(f.Vars)
	}
	if r.Request != nil && len(r.Request.Headers) > MaxHeaders {
		return bad("request.headers", "%d headers; the limit is %d", len(r.Request.Headers), MaxHeaders)
	}
	if len(r.Chain) > maxChain {
		r.Chain = r.Chain[:maxChain]
	}
	r.Hostname = Truncate(r.Hostname, MaxFieldBytes)
	r.Type = Truncate(r.Type, MaxFieldBytes)
	r.Message = Truncate(r.Message, MaxTextBytes)
	r.AdditionalInfo = Truncate(r.AdditionalInfo, MaxTextBytes)
	r.Build.Path = Truncate(r.Build.Path, MaxFieldBytes)
	r.Build.Revision = Truncate(r.Build.Revision, MaxFieldBytes)
	r.Build.GoVersion = Truncate(r.Build.GoVersion, MaxFieldBytes)
	for i := range r.Chain {
		r.Chain[i].Type = Truncate(r.Chain[i].Type, MaxFieldBytes)
		r.Chain[i].Message = Truncate(r.Chain[i].Message, MaxFieldBytes)
	}
	cutVars(r.Vars)
	if q := r.Request; q != nil {
		q.Method = Truncate(q.Method, MaxFieldBytes)
		q.URL = Truncate(q.URL, MaxFieldBytes)
		q.RemoteAddr = Truncate(q.RemoteAddr, MaxFieldBytes)
		q.Body = Truncate(q.Body, MaxTextBytes)
		for k, v := range q.Headers {
			if len(k) > MaxFieldBytes || len(v) > MaxFieldBytes {
				delete(q.Headers, k)
				q.Headers[Truncate(k, MaxFieldBytes)] = Truncate(v, MaxFieldBytes)
			}
		}
	}
	return nil
}

func checkVars(vs []Var, at string) error {
	if len(vs) > MaxVars {
		return &DecodeError{Field: at, Reason: fmt.Sprintf("%d variables; the limit is %d", len(vs), MaxVars)}
	}
	return nil
}

func cutVars(vs []Var) {
	for i := range vs {
		vs[i].Name = Truncate(vs[i].Name, MaxFieldBytes)
		vs[i].Value = Truncate(vs[i].Value, MaxFieldBytes)
	}
}

// Truncate returns s if it is at most max bytes long; otherwise it cuts s
// at a character boundary and appends a marker saying how many bytes were
// cut ("…[cut 1234 bytes]"). The result may exceed max by the marker's
// length.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…[cut " + strconv.Itoa(len(s)-cut) + " bytes]"
}
