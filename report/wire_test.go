package report_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flawless-go/flawless/report"
	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

func sample() *report.Report {
	return &report.Report{
		Time:     time.Date(2026, 11, 20, 14, 3, 7, 500_000_000, time.UTC),
		Hostname: "web-3",
		Type:     "*fs.PathError",
		Message:  "open /etc/shop/prices.json: no such file or directory",
		Chain:    []report.Link{{Type: "*errors.errorString", Message: "no such file or directory"}},
		Frames: []report.Frame{
			{Function: "github.com/acme/shop/prices.Load", File: "/home/ci/shop/prices/load.go", Line: 41, Text: "return nil, err"},
			{Function: "main.main", File: "/home/ci/shop/cmd/shop/main.go", Line: 17, Vars: []report.Var{{Name: "path", Value: "/etc/shop/prices.json"}}},
		},
		Build:          report.Build{Path: "github.com/acme/shop", Revision: "8a3f0c1d2e4b5a69788796a5b4c3d2e1f0a9b8c7", GoVersion: "go1.26.8"},
		Vars:           []report.Var{{Name: "user_id", Value: "42"}},
		Request:        &report.Request{Method: "GET", URL: "/prices?sku=7", Headers: map[string]string{"User-Agent": "curl/8.5.0", "Cookie": "**scrubbed**"}, RemoteAddr: "10.0.0.7:51234"},
		Count:          1,
		AdditionalInfo: "nightly price import",
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func indent(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		t.Fatal(err)
	}
	out.WriteByte('\n')
	return out.Bytes()
}

func TestMarshalGolden(t *testing.T) {
	b, err := report.Marshal(sample())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.json", indent(t, b))

	b, err = report.MarshalBatch([]*report.Report{sample(), {Frames: []report.Frame{{Function: "main.main", File: "main.go", Line: 3}}}})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "batch.golden.json", indent(t, b))
}

func TestRoundTrip(t *testing.T) {
	want := sample()
	b, err := report.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := report.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*report.Report{want}, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

// TestDocumentedExampleDecodes keeps docs/wire-format.md honest: its example
// decodes to the report the golden file holds.
func TestDocumentedExampleDecodes(t *testing.T) {
	doc, err := os.ReadFile("../docs/wire-format.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no json example in docs/wire-format.md")
	}
	got, err := report.Decode(m[1])
	if err != nil {
		t.Fatalf("the documented example does not decode: %v", err)
	}
	if diff := cmp.Diff([]*report.Report{sample()}, got); diff != "" {
		t.Errorf("documented example mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeRejectsBadInput(t *testing.T) {
	frame := `{"function":"main.main","file":"main.go","line":3}`
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", `{"v":1,`, "invalid JSON"},
		{"not an object", `[1,2]`, "the body must be a JSON object"},
		{"batch item not an object", `{"reports":[3]}`, "reports[0]: a report must be a JSON object"},
		{"missing version", `{"frames":[` + frame + `]}`, "v: missing field"},
		{"unknown version", `{"v":2,"frames":[` + frame + `]}`, "v: unsupported version 2"},
		{"missing frames", `{"v":1}`, "frames: missing field"},
		{"empty frames", `{"v":1,"frames":[]}`, "frames: missing field"},
		{"line of the wrong type", `{"v":1,"frames":[{"function":"f","file":"a.go","line":"7"}]}`, "frames.line: wrong type: want int, got JSON string"},
		{"message of the wrong type", `{"v":1,"message":3,"frames":[` + frame + `]}`, "message: wrong type"},
		{"negative count", `{"v":1,"count":-2,"frames":[` + frame + `]}`, "count: negative count -2"},
		{"absurd count", `{"v":1,"count":99999999999,"frames":[` + frame + `]}`, "count: count 99999999999 is over the limit"},
		{"negative threshold", `{"v":1,"threshold":-1,"frames":[` + frame + `]}`, "threshold: negative threshold"},
		{"negative line", `{"v":1,"frames":[{"function":"f","file":"a.go","line":-3}]}`, "frames[0].line: negative line -3"},
		{"empty frame", `{"v":1,"frames":[` + frame + `,{}]}`, "frames[1]: a frame needs a function or a file"},
		{"too many frames", `{"v":1,"frames":[` + many(257, frame) + `]}`, "frames: 257 frames; the limit is 256"},
		{"too many frame vars", `{"v":1,"frames":[{"function":"f","vars":[` + many(101, `{"name":"a","value":"b"}`) + `]}]}`, "frames[0].vars: 101 variables; the limit is 100"},
		{"too many report vars", `{"v":1,"frames":[` + frame + `],"vars":[` + many(101, `{"name":"a","value":"b"}`) + `]}`, "vars: 101 variables"},
		{"empty batch", `{"reports":[]}`, "reports: empty list"},
		{"bad report in a batch", `{"reports":[{"v":1,"frames":[` + frame + `]},{"v":1,"frames":[{"function":"f","line":-1}]}]}`, "reports[1].frames[0].line: negative line -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := report.Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode accepted it: %+v", rs)
			}
			var de *report.DecodeError
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *report.DecodeError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeCutsLongStrings(t *testing.T) {
	long := strings.Repeat("é", 20<<10) // 40 KiB of two-byte characters
	r := &report.Report{Message: long, Type: long, Frames: []report.Frame{{Function: "f", File: "a.go", Text: long, Vars: []report.Var{{Name: "v", Value: long}}}}}
	b, _ := report.Marshal(r)
	rs, err := report.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got := rs[0]
	for name, s := range map[string]string{"message": got.Message, "type": got.Type, "text": got.Frames[0].Text, "var": got.Frames[0].Vars[0].Value} {
		if !strings.Contains(s, "…[cut ") || len(s) > report.MaxTextBytes+40 {
			t.Errorf("%s: %d bytes, marker present %v", name, len(s), strings.Contains(s, "…[cut "))
		}
		if !strings.HasPrefix(long, strings.SplitN(s, "…[cut", 2)[0]) {
			t.Errorf("%s was not cut at a character boundary", name)
		}
	}
	if len(got.Message) < report.MaxTextBytes-2 {
		t.Errorf("message cut to %d bytes, want about %d", len(got.Message), report.MaxTextBytes)
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	rs, err := report.Decode([]byte(`{"v":1,"future":{"x":1},"frames":[{"function":"f","file":"a.go","line":1,"column":4}]}`))
	if err != nil || len(rs) != 1 || rs[0].Frames[0].Function != "f" {
		t.Fatalf("Decode = %v, %v", rs, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"report.golden.json", "batch.golden.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"frames":[{"function":"f","line":-1}]}`))
	f.Add([]byte(`{"reports":[{"v":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := report.Decode(data)
		if err != nil {
			return
		}
		for _, r := range rs {
			if len(r.Frames) == 0 || len(r.Frames) > report.MaxFrames || r.Count < 0 {
				t.Fatalf("accepted a report that breaks the limits: %+v", r)
			}
			b, err := report.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			again, err := report.Decode(b)
			if err != nil {
				t.Fatalf("re-decoding an accepted report failed: %v\n%s", err, b)
			}
			if len(again) != 1 || len(again[0].Frames) != len(r.Frames) {
				t.Fatalf("round trip changed the report")
			}
		}
	})
}
