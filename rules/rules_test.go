package rules_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/rules"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var _ flawless.Policy = (*rules.Set)(nil)

const examples = "../testdata/rules"

func loadExamples(t testing.TB, opts rules.Options) *rules.Set {
	t.Helper()
	s, err := rules.Load(os.DirFS(examples), opts)
	if err != nil {
		t.Fatalf("the example rule files do not load: %v", err)
	}
	return s
}

func ptr(n int) *int { return &n }

func TestLoadExamples(t *testing.T) {
	s := loadExamples(t, rules.Options{})
	want := &rules.Set{
		BuildingBlocks: []rules.CodeRule{
			{Filename: "internal/httpx/params.go", FunctionName: "MustParam", CodeFragment: `panic(fmt.Sprintf("missing parameter %q", name))`, Pos: rules.Pos{File: "building_blocks.toml", Line: 12}},
			{Filename: "internal/must/must.go", Pos: rules.Pos{File: "building_blocks.toml", Line: 18}},
		},
		ThirdParty: []rules.CodeRule{
			{Filename: "github.com/lib/pq/conn.go", FunctionName: "(*conn).recvMessage", Pos: rules.Pos{File: "third_party_whitelist.toml", Line: 7}},
			{Filename: "net/http/h2_bundle.go", CodeFragment: "panic(http2errHandlerPanicked)", Pos: rules.Pos{File: "third_party_whitelist.toml", Line: 11}},
		},
		KnownErrors: []rules.KnownError{
			{Filename: "payments/gateway.go", FunctionName: "(*Gateway).Charge", CodeFragment: `return fmt.Errorf("gateway timeout: %w", err)`, MinAlertThreshold: ptr(50),
				EmailRecipients: []string{"payments-oncall@example.com"}, EmailHeader: "The payment gateway times out now and then; this alert fires only above 50 a week.", Pos: rules.Pos{File: "known_errors.toml", Line: 12}},
			{Filename: "auth/session.go", FunctionName: "Validate", CodeFragment: "return ErrExpired", MaxAlertThreshold: ptr(0), Pos: rules.Pos{File: "known_errors.toml", Line: 20}},
		},
		IgnoredExceptions: []rules.IgnoredException{
			{Type: "*context.deadlineExceededError", Pos: rules.Pos{File: "ignored_exceptions.toml", Line: 6}},
			{MessageMatching: "^context canceled$", Pos: rules.Pos{File: "ignored_exceptions.toml", Line: 9}},
			{Type: "*net.OpError", MessageMatching: "connection reset by peer", Pos: rules.Pos{File: "ignored_exceptions.toml", Line: 12}},
		},
		Watches: []rules.Watch{
			{Email: "payments-lead@example.com", Filepath: "payments", WatchAllErrors: true, Pos: rules.Pos{File: "watched_files.toml", Line: 7}},
			{Email: "ann@example.com", Filepath: "cart/cart.go", Pos: rules.Pos{File: "watched_files.toml", Line: 12}},
		},
		Disowns: []rules.Disown{
			{Filepath: "vendor_patches", Email: "formatter-bot@example.com", DesignatedEmail: "platform@example.com", Pos: rules.Pos{File: "disownership.toml", Line: 5}},
		},
		Remaps: []rules.Remap{
			{Remap: "ann@ann-laptop.local", To: "ann@example.com", Pos: rules.Pos{File: "email_remapping.toml", Line: 4}},
			{Remap: "bob", To: "robert@example.com", Pos: rules.Pos{File: "email_remapping.toml", Line: 8}},
		},
	}
	if diff := cmp.Diff(want, s, cmpopts.IgnoreUnexported(rules.Set{})); diff != "" {
		t.Errorf("Load(examples) mismatch (-want +got):\n%s", diff)
	}
}

func TestMissingFilesAreEmpty(t *testing.T) {
	s, err := rules.Load(fstest.MapFS{}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.KnownErrors)+len(s.BuildingBlocks)+len(s.Watches) != 0 {
		t.Errorf("an empty directory gave rules: %+v", s)
	}
}

func TestParseErrorsNameFileLineAndColumn(t *testing.T) {
	tests := []struct {
		name, file, body, want string
	}{
		{"unknown key", "known_errors.toml", "[[known_error]]\nfilename = \"a.go\"\n  min_alert = 3\n", "known_errors.toml:3:3: unknown key \"known_error.min_alert\""},
		{"wrong type", "known_errors.toml", "\n[[known_error]]\nfilename = \"a.go\"\nmin_alert_threshold = \"three\"\n", "known_errors.toml:4:"},
		{"not TOML", "watched_files.toml", "[[watch]\nemail = 1\n", "watched_files.toml:1:"},
		{"unknown table", "watched_files.toml", "# c\n[[watches]]\nemail = \"a@b.co\"\n", "watched_files.toml:2:3: unknown table \"watches\""},
		{"invalid watcher address", "watched_files.toml", "[[watch]]\nfilepath = \"lib\"\nemail = \"not an address\"\n", "watched_files.toml:3:1: email: \"not an address\" is not a valid email address"},
		{"invalid recipient", "known_errors.toml", "[[known_error]]\nfilename = \"a.go\"\nmin_alert_threshold = 1\n\n[[known_error]]\nfilename = \"b.go\"\n    email_recipients = [\"ok@example.com\", \"bad@@x\"]\n", "known_errors.toml:7:5: email_recipients: \"bad@@x\" is not a valid email address"},
		{"min above max", "known_errors.toml", "[[known_error]]\nfilename = \"a.go\"\nmin_alert_threshold = 5\nmax_alert_threshold = 2\n", "known_errors.toml:3:1: min_alert_threshold: 5 is above max_alert_threshold 2"},
		{"every zero", "known_errors.toml", "[[known_error]]\nfilename = \"a.go\"\nalert_every_n_occurrences = 0\n", "known_errors.toml:3:1: alert_every_n_occurrences: must be at least 1, not 0"},
		{"negative max", "known_errors.toml", "[[known_error]]\nfilename = \"a.go\"\nmax_alert_threshold = -1\n", "known_errors.toml:3:1: max_alert_threshold: negative value -1"},
		{"missing filename", "building_blocks.toml", "[[building_block]]\nfunction_name = \"f\"\n", "building_blocks.toml:1:1: filename: missing"},
		{"bad regex", "ignored_exceptions.toml", "[[ignored_exception]]\nmessage_matching = \"a(b\"\n", "ignored_exceptions.toml:2:1: message_matching: bad regular expression"},
		{"empty ignored exception", "ignored_exceptions.toml", "[[ignored_exception]]\n", "ignored_exceptions.toml:1:1: type: missing"},
		{"disown without designee", "disownership.toml", "[[disown]]\nfilepath = \"x\"\nemail = \"a@example.com\"\n", "disownership.toml:1:1: designated_email: missing email address"},
		{"remap to nothing", "email_remapping.toml", "[[remap]]\nremap = \"bob\"\nto = \"bob\"\n", "email_remapping.toml:3:1: to: \"bob\" is not a valid email address"},
		{"not a rule file", "rules.toml", "", "rules.toml:1: not a rule file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rules.Parse(tt.file, []byte(tt.body), rules.Options{})
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			if !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			var pe *rules.ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *rules.ParseError", err)
			} else if pe.File != tt.file || pe.Line < 1 {
				t.Errorf("ParseError file %q line %d", pe.File, pe.Line)
			}
		})
	}
}

func TestLoadReportsEveryBadFile(t *testing.T) {
	_, err := rules.Load(fstest.MapFS{
		"watched_files.toml":   {Data: []byte("[[watch]]\nfilepath = \"x\"\nemail = \"nope\"\n")},
		"email_remapping.toml": {Data: []byte("[[remap]]\nremap = \"\"\nto = \"a@example.com\"\n")},
	}, rules.Options{})
	if err == nil {
		t.Fatal("Load accepted bad files")
	}
	for _, want := range []string{"watched_files.toml:3:1: email", "email_remapping.toml:2:1: remap: missing"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestMatch(t *testing.T) {
	s := loadExamples(t, rules.Options{})
	const gw = "github.com/acme/shop/payments.(*Gateway).Charge"
	tests := []struct {
		reason                string
		path, function, text  string
		third, building, know string
	}{
		{"exact file, short function, fragment inside the line", "payments/gateway.go", gw, `		return fmt.Errorf("gateway timeout: %w",   err)`, "", "", "known_errors.toml:12"},
		{"another line of the same function", "payments/gateway.go", gw, "return nil", "", "", ""},
		{"the line's text is unknown, so a fragment cannot match", "payments/gateway.go", gw, "", "", "", ""},
		{"a line that is part of the fragment matches too", "payments/gateway.go", gw, `fmt.Errorf("gateway timeout: %w"`, "", "", "known_errors.toml:12"},
		{"bare function name", "auth/session.go", "github.com/acme/shop/auth.Validate", "return ErrExpired", "", "", "known_errors.toml:20"},
		{"same name in another file", "auth/token.go", "github.com/acme/shop/auth.Validate", "return ErrExpired", "", "", ""},
		{"whole file building block", "internal/must/must.go", "github.com/acme/shop/internal/must.Do", "panic(err)", "", "building_blocks.toml:18", ""},
		{"building block by function and fragment", "internal/httpx/params.go", "github.com/acme/shop/internal/httpx.MustParam", `panic(fmt.Sprintf("missing parameter %q", name))`, "", "building_blocks.toml:12", ""},
		{"building block fragment does not match", "internal/httpx/params.go", "github.com/acme/shop/internal/httpx.MustParam", "return v", "", "", ""},
		{"third-party module frame", "github.com/lib/pq/conn.go", "github.com/lib/pq.(*conn).recvMessage", "", "third_party_whitelist.toml:7", "", ""},
		{"third-party, other function", "github.com/lib/pq/conn.go", "github.com/lib/pq.(*conn).Close", "", "", "", ""},
		{"standard library by fragment", "net/http/h2_bundle.go", "net/http.(*http2serverConn).runHandler.func1", "	panic(http2errHandlerPanicked)", "third_party_whitelist.toml:11", "", ""},
		{"directory paths do not match a filename", "internal/must", "x.f", "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			m := s.Match(tt.path, tt.function, tt.text)
			known := ""
			if m.Known != nil {
				known = m.Known.Rule
			}
			got := [3]string{m.ThirdParty, m.BuildingBlock, known}
			if want := [3]string{tt.third, tt.building, tt.know}; got != want {
				t.Errorf("Match = %q, want %q", got, want)
			}
		})
	}
}

func TestKnownErrorRuleIsConverted(t *testing.T) {
	s := loadExamples(t, rules.Options{})
	m := s.Match("auth/session.go", "github.com/acme/shop/auth.Validate", "return ErrExpired")
	if m.Known == nil || m.Known.Max == nil || *m.Known.Max != 0 || m.Known.Min != 0 || m.Known.Every != 0 {
		t.Fatalf("Known = %+v, want max 0 only", m.Known)
	}
	m = s.Match("payments/gateway.go", "github.com/acme/shop/payments.(*Gateway).Charge", `return fmt.Errorf("gateway timeout: %w", err)`)
	want := &flawless.KnownError{Rule: "known_errors.toml:12", Min: 50, Recipients: []string{"payments-oncall@example.com"},
		Header: "The payment gateway times out now and then; this alert fires only above 50 a week."}
	if diff := cmp.Diff(want, m.Known); diff != "" {
		t.Errorf("Known mismatch (-want +got):\n%s", diff)
	}
}

func TestFirstMatchingEntryWins(t *testing.T) {
	s, err := rules.Parse("known_errors.toml", []byte(`
[[known_error]]
filename = "a.go"
function_name = "F"
min_alert_threshold = 1

[[known_error]]
filename = "a.go"
min_alert_threshold = 2
`), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Match("a.go", "x.F", "y"); m.Known == nil || m.Known.Min != 1 {
		t.Errorf("F matched %+v, want the first entry", m.Known)
	}
	if m := s.Match("a.go", "x.G", "y"); m.Known == nil || m.Known.Min != 2 {
		t.Errorf("G matched %+v, want the second entry", m.Known)
	}
}

func TestFunctionMatches(t *testing.T) {
	const fn = "github.com/acme/shop/cart.(*Cart).Add"
	tests := []struct {
		rule, function string
		want           bool
	}{
		{fn, fn, true},
		{"cart.(*Cart).Add", fn, true},
		{"(*Cart).Add", fn, true},
		{"Cart.Add", fn, true},
		{"Add", fn, true},
		{"Remove", fn, false},
		{"(*Cart).Ad", fn, false},
		{"main", "main.main", true},
		{"main.main", "main.main", true},
		{"handler.func1", "github.com/acme/shop.handler.func1", true},
		{"github.com/acme/shop/cart.Add", fn, false},
	}
	for _, tt := range tests {
		if got := rules.FunctionMatches(tt.rule, tt.function); got != tt.want {
			t.Errorf("FunctionMatches(%q, %q) = %v, want %v", tt.rule, tt.function, got, tt.want)
		}
	}
}

func TestIgnore(t *testing.T) {
	s := loadExamples(t, rules.Options{})
	tests := []struct {
		reason string
		r      report.Report
		want   bool
	}{
		{"type matches", report.Report{Type: "*context.deadlineExceededError"}, true},
		{"a wrapped error's type matches", report.Report{Type: "*fmt.wrapError", Chain: []report.Link{{Type: "*context.deadlineExceededError"}}}, true},
		{"message matches", report.Report{Type: "*errors.errorString", Message: "context canceled"}, true},
		{"message regex is anchored by the rule", report.Report{Type: "*errors.errorString", Message: "load: context canceled"}, false},
		{"both must match: type only", report.Report{Type: "*net.OpError", Message: "dial tcp: i/o timeout"}, false},
		{"both must match: both", report.Report{Type: "*net.OpError", Message: "read tcp: connection reset by peer"}, true},
		{"nothing matches", report.Report{Type: "runtime.boundsError", Message: "index out of range"}, false},
	}
	for _, tt := range tests {
		if got := s.Ignore(&tt.r); got != tt.want {
			t.Errorf("%s: Ignore = %v, want %v", tt.reason, got, tt.want)
		}
	}
}

func TestRoute(t *testing.T) {
	s := loadExamples(t, rules.Options{EmailDomain: "example.com"})
	ignoreDomain := loadExamples(t, rules.Options{EmailDomain: "example.com", IgnoreVCSDomain: true})
	tests := []struct {
		reason       string
		set          *rules.Set
		author, path string
		stack        []string
		dev          string
		watchers     []string
	}{
		{"plain address", s, "carl@acme.io", "cart/list.go", nil, "carl@acme.io", nil},
		{"remapped by full address", s, "ann@ann-laptop.local", "cart/list.go", nil, "ann@example.com", nil},
		{"remapped by the part before @", s, "bob@anything.org", "cart/list.go", nil, "robert@example.com", nil},
		{"a domain without a dot takes email_domain_name", s, "dora@laptop", "cart/list.go", nil, "dora@example.com", nil},
		{"ignore_vcs_email_domain", ignoreDomain, "carl@acme.io", "cart/list.go", nil, "carl@example.com", nil},
		{"disowned directory", s, "formatter-bot@example.com", "vendor_patches/x/y.go", nil, "platform@example.com", nil},
		{"disownership is component-wise", s, "formatter-bot@example.com", "vendor_patches2/y.go", nil, "formatter-bot@example.com", nil},
		{"not an address", s, "nobody", "cart/list.go", nil, "", nil},
		{"watcher of the blamed file only", s, "carl@acme.io", "cart/cart.go", []string{"cart/cart.go"}, "carl@acme.io", []string{"ann@example.com"}},
		{"watch only if blamed ignores the stack", s, "carl@acme.io", "cart/list.go", []string{"cart/list.go", "cart/cart.go"}, "carl@acme.io", nil},
		{"watch all errors under a directory, from the stack", s, "carl@acme.io", "cart/list.go", []string{"cart/list.go", "payments/gateway.go"}, "carl@acme.io", []string{"payments-lead@example.com"}},
		{"directory watch is component-wise", s, "carl@acme.io", "payments2/x.go", []string{"payments2/x.go"}, "carl@acme.io", nil},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			rt := tt.set.Route(tt.author, tt.path, tt.stack)
			if rt.Developer != tt.dev {
				t.Errorf("Developer = %q, want %q", rt.Developer, tt.dev)
			}
			if diff := cmp.Diff(tt.watchers, rt.Watchers, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Watchers mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMostSpecificDisownershipWins(t *testing.T) {
	s, err := rules.Parse("disownership.toml", []byte(`
[[disown]]
filepath = "lib"
email = "old@example.com"
designated_email = "team@example.com"

[[disown]]
filepath = "lib/geo/"
email = "old@example.com"
designated_email = "geo@example.com"
`), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Route("old@example.com", "lib/geo/point.go", nil).Developer; got != "geo@example.com" {
		t.Errorf("lib/geo/point.go went to %q, want the lib/geo entry's geo@example.com", got)
	}
	if got := s.Route("old@example.com", "lib/x.go", nil).Developer; got != "team@example.com" {
		t.Errorf("lib/x.go went to %q", got)
	}
	rt := s.Route("old@example.com", "lib/x.go", nil)
	if len(rt.Notes) == 0 || !strings.Contains(rt.Notes[0], "disownership.toml:2") {
		t.Errorf("Notes = %q, want the rule's position", rt.Notes)
	}
}

func TestAppendKeepsEveryByte(t *testing.T) {
	dir := t.TempDir()
	original := "# Known errors of the shop.\n\n[[known_error]] # the first\nfilename = \"a.go\"   # aligned comment\nmax_alert_threshold = 0"
	name := filepath.Join(dir, "known_errors.toml")
	if err := os.WriteFile(name, []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	err := rules.Append(dir, rules.KindKnownError, rules.KnownError{
		Filename: "b.go", FunctionName: "(*S).Run", CodeFragment: `return fmt.Errorf("x: %w", err)`,
		AlertEveryNOccurrences: ptr(10), EmailRecipients: []string{"ops@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(name)
	if !strings.HasPrefix(string(got), original+"\n") {
		t.Fatalf("the old content was not kept byte for byte:\n%s", got)
	}
	st, _ := os.Stat(name)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", st.Mode().Perm())
	}
	s, err := rules.Load(os.DirFS(dir), rules.Options{})
	if err != nil {
		t.Fatalf("the appended file does not load: %v\n%s", err, got)
	}
	if len(s.KnownErrors) != 2 || s.KnownErrors[1].Filename != "b.go" || *s.KnownErrors[1].AlertEveryNOccurrences != 10 ||
		s.KnownErrors[1].CodeFragment != `return fmt.Errorf("x: %w", err)` {
		t.Errorf("entries after Append = %+v", s.KnownErrors)
	}
	if s.KnownErrors[1].Pos.Line < 6 {
		t.Errorf("the new entry is at line %d, want after the old content", s.KnownErrors[1].Pos.Line)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Append left files behind: %v", entries)
	}
}

func TestAppendCreatesTheFile(t *testing.T) {
	dir := t.TempDir()
	if err := rules.Append(dir, rules.KindWatch, rules.Watch{Email: "a@example.com", Filepath: "lib", WatchAllErrors: true}); err != nil {
		t.Fatal(err)
	}
	s, err := rules.Load(os.DirFS(dir), rules.Options{})
	if err != nil || len(s.Watches) != 1 || !s.Watches[0].WatchAllErrors {
		t.Fatalf("Load after Append = %+v, %v", s, err)
	}
}

func TestAppendRefusesBadEntriesAndKeepsTheFile(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "watched_files.toml")
	original := "[[watch]]\nemail = \"a@example.com\"\nfilepath = \"lib\"\n"
	os.WriteFile(name, []byte(original), 0o644)
	err := rules.Append(dir, rules.KindWatch, rules.Watch{Email: "not-an-address", Filepath: "x"})
	if err == nil || !strings.Contains(err.Error(), "watched_files.toml:6:1: email") {
		t.Errorf("Append of an invalid address: err = %v", err)
	}
	if err := rules.Append(dir, rules.KindKnownError, rules.Watch{Email: "a@example.com", Filepath: "x"}); err == nil {
		t.Error("Append of a watch into known_errors.toml was accepted")
	}
	got, _ := os.ReadFile(name)
	if string(got) != original {
		t.Errorf("a refused Append changed the file:\n%s", got)
	}
}

func TestLoaderReloadsAndKeepsTheLastGoodRules(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "building_blocks.toml")
	os.WriteFile(name, []byte("[[building_block]]\nfilename = \"a.go\"\n"), 0o644)
	var seen []*rules.Set
	l := &rules.Loader{Dir: dir, OnChange: func(s *rules.Set) { seen = append(seen, s) }}
	s, err := l.Load()
	if err != nil || len(s.BuildingBlocks) != 1 {
		t.Fatalf("Load = %+v, %v", s, err)
	}
	if changed, err := l.Reload(); changed || err != nil {
		t.Errorf("Reload without a change = %v, %v; want false, nil", changed, err)
	}
	os.WriteFile(name, []byte("[[building_block]]\nfilename = \"a.go\"\n[[building_block]]\nfilename = \"b.go\"\n"), 0o644)
	if changed, err := l.Reload(); !changed || err != nil {
		t.Fatalf("Reload after a change = %v, %v", changed, err)
	}
	if n := len(l.Current().BuildingBlocks); n != 2 {
		t.Errorf("after reload %d building blocks, want 2", n)
	}
	os.WriteFile(name, []byte("[[building_block]]\nfilenam = \"a.go\"\n"), 0o644)
	changed, err := l.Reload()
	if changed || err == nil || !strings.Contains(err.Error(), "building_blocks.toml:2:1: unknown key") {
		t.Errorf("Reload of a bad file = %v, %v", changed, err)
	}
	if n := len(l.Current().BuildingBlocks); n != 2 {
		t.Errorf("a bad file replaced the rules: %d building blocks", n)
	}
	if len(seen) != 2 {
		t.Errorf("OnChange called %d times, want 2", len(seen))
	}
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(examples)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(examples, e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Name(), data)
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		k, ok := rules.KindOf(name)
		if !ok {
			return
		}
		s, err := rules.Parse(k.File, data, rules.Options{})
		if err != nil {
			var pe *rules.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError: %v", err, err)
			}
			return
		}
		// Whatever parses can be asked questions without panicking.
		s.Match("a.go", "x.F", "y")
		s.Route("a@b.co", "a.go", []string{"a.go"})
		s.Ignore(&report.Report{Type: "t", Message: "m"})
	})
}

func TestAppendFormAndTable(t *testing.T) {
	dir := t.TempDir()
	err := rules.AppendForm(dir, "known_error", map[string][]string{
		"filename": {"cart/cart.go"}, "function_name": {"Add"}, "code_fragment": {"return c.items[i]"},
		"min_alert_threshold": {"5"}, "email_recipients": {"a@example.com, b@example.com"}, "email_header": {""},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rules.AppendForm(dir, "watch", map[string][]string{"email": {"w@example.com"}, "filepath": {"lib"}, "watch_all_errors": {"on"}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []map[string][]string{
		{"filename": {"x.go"}, "min_alert_threshold": {"five"}},
		{"filename": {"x.go"}, "email_recipients": {"not-an-address"}},
	} {
		if err := rules.AppendForm(dir, "known_error", bad); err == nil {
			t.Errorf("AppendForm(%v) accepted it", bad)
		}
	}
	if err := rules.AppendForm(dir, "nonsense", nil); err == nil {
		t.Error("an unknown kind was accepted")
	}
	s, err := rules.Load(os.DirFS(dir), rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.Table("known_errors")
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{{"filename": "cart/cart.go", "function_name": "Add", "code_fragment": "return c.items[i]",
		"min_alert_threshold": "5", "email_recipients": "a@example.com, b@example.com", "email_header": "", "at": "known_errors.toml:1"}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("Table mismatch (-want +got):\n%s", diff)
	}
	if rows, _ := s.Table("watch"); len(rows) != 1 || rows[0]["watch_all_errors"] != "true" {
		t.Errorf("watch rows = %v", rows)
	}
}

func TestWriteStarterLoadsWithNoActiveRule(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rules")
	created, err := rules.WriteStarter(dir)
	if err != nil || len(created) != len(rules.Kinds) {
		t.Fatalf("WriteStarter = %v, %v", created, err)
	}
	s, err := rules.Load(os.DirFS(dir), rules.Options{})
	if err != nil {
		t.Fatalf("the starter files do not load: %v", err)
	}
	if n := len(s.KnownErrors) + len(s.BuildingBlocks) + len(s.Watches) + len(s.Remaps) + len(s.Disowns) + len(s.IgnoredExceptions) + len(s.ThirdParty); n != 0 {
		t.Errorf("the starter files hold %d active rules", n)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "known_errors.toml"))
	if !strings.Contains(string(data), "# [[known_error]]") {
		t.Errorf("the starter known_errors.toml has no commented example:\n%s", data)
	}
	os.WriteFile(filepath.Join(dir, "watched_files.toml"), []byte("# mine\n"), 0o644)
	os.Remove(filepath.Join(dir, "known_errors.toml"))
	created, _ = rules.WriteStarter(dir)
	if len(created) != 1 {
		t.Errorf("a second WriteStarter created %v, want only the missing file", created)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "watched_files.toml")); string(data) != "# mine\n" {
		t.Error("WriteStarter overwrote a file")
	}
}
