package flawless_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/rules"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The fixture of the original server's test suite, with Go paths.
var fixtureRules = map[string]string{
	"watched_files.toml": `
[[watch]]
email = "wilfred@shopkick.com"
filepath = "tools/furminator.go"
watch_all_errors = true

[[watch]]
email = "lassie@shopkick.com"
filepath = "tools/furminator.go"
watch_all_errors = true

[[watch]]
email = "wishbone@shopkick.com"
filepath = "lib/no/such/path/for/testing.go"
watch_all_errors = true
`,
	"third_party_whitelist.toml": `
[[third_party]]
filename = "facebook.go"
function_name = "PostTreatToFacebook"
code_fragment = "http.PostForm(url, args)"

[[third_party]]
filename = "github.com/acme/sqlpool/pool.go"
function_name = "(*Pool).Get"
code_fragment = 'return nil, fmt.Errorf("pool limit of size %d overflow %d '
`,
	"known_errors.toml": `
[[known_error]]
filename = "lib/doghouse/authentication.go"
function_name = "CheckAuth"
code_fragment = 'return BadAuthenticationError("Something smells off...")'
max_alert_threshold = 0

[[known_error]]
filename = "coreservices/waterbowl/rewards/water.go"
function_name = "MakeExternalAPIRequest"
code_fragment = "panic(err)"
email_recipients = ["wilfred@shopkick.com", "snoopy@shopkick.com"]
email_header = "NOTE: This error typically does not require dev team involvement."
alert_every_n_occurrences = 1
`,
	"building_blocks.toml": `
[[building_block]]
filename = "lib/doghouse/base.go"
function_name = "GetRequestParam"
code_fragment = 'panic(BadRequestError("Missing param " + name))'
`,
	"ignored_exceptions.toml": `
[[ignored_exception]]
type = "*shop.BananaError"
`,
	"disownership.toml": `
[[disown]]
filepath = "scripts"
email = "wishbone@shopkick.com"
designated_email = "lassie@shopkick.com"
`,
}

var (
	fixtureNow     = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	fixtureAuthor  = flawless.Author{Name: "John Egan", Email: "wishbone@shopkick.com", Time: time.Date(2017, 7, 30, 0, 0, 0, 0, time.UTC), Commit: "75563df6"}
	onlyBlamePaths = mustCompile(`^coreservices/[^/]*$`, `^coreservices/(?:waterbowl|service)/`, `^lib/`, `^tools/`, `^scripts/`)

	testFrame     = frame("lib/test.go", 5, "TestFunc", "code")
	serviceFrame  = frame("coreservices/service.go", 7, "(*Service).Serve", "...")
	thirdParty    = frame("thirdparty/lib.go", 9, "Call", "x")
	waterFrame    = frame("coreservices/waterbowl/rewards/water.go", 12, "MakeExternalAPIRequest", "\tpanic(err)")
	standardTrace = []report.Frame{thirdParty, serviceFrame, testFrame} // innermost first
)

// outcome is what a scenario leaves behind: the week's entries and the
// emails sent.
type entrySummary struct {
	Key        report.Key
	Count      int
	Developer  string
	Notified   int
	Known      bool
	AuthorTime time.Time
	LastSeen   time.Time
}

type email struct {
	To      []string
	Subject string
}

func summarize(ents []flawless.Entry) []entrySummary {
	var out []entrySummary
	for _, e := range ents {
		out = append(out, entrySummary{e.Key, e.Count, e.Developer, e.Notified, e.Known, e.Author.Time, e.LastSeen})
	}
	slices.SortFunc(out, func(a, b entrySummary) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

func key(f report.Frame) report.Key {
	return report.NewKey(f.File[len("/home/ci/shop/"):], f.Function, f.Text, f.Line)
}

func TestOriginalServerScenarios(t *testing.T) {
	type step struct {
		at time.Time
		r  *report.Report
	}
	at := func(r *report.Report) step { return step{fixtureNow, r} }
	withThreshold := func(n int, r *report.Report) *report.Report { r.Threshold = n; return r }
	withType := func(typ string, r *report.Report) *report.Report { r.Type = typ; return r }
	withInfo := func(info string, r *report.Report) *report.Report { r.AdditionalInfo = info; return r }
	author2009 := fixtureAuthor
	author2009.Time = time.Date(2009, 7, 30, 0, 0, 0, 0, time.UTC)

	tests := []struct {
		name      string
		threshold int
		author    *flawless.Author
		steps     []step
		entries   []entrySummary
		blames    []blameCall
		emails    []email
		check     func(t *testing.T, notices []*flawless.Notice)
	}{
		{
			name:    "records an error",
			steps:   []step{at(newReport("localhost", "email text", standardTrace...))},
			entries: []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"coreservices/service.go", 7}},
			emails:  []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/service.go"}},
			check: func(t *testing.T, ns []*flawless.Notice) {
				if got := ns[0].Entry.Last.Message; got != "email text" {
					t.Errorf("notice message = %q, want %q", got, "email text")
				}
			},
		},
		{
			name:    "records an error with thrift in the file name",
			steps:   []step{at(newReport("localhost", "email text", frame("coreservices/thrift_file.go", 7, "Serve", "..."), thirdParty))},
			entries: []entrySummary{{key(frame("coreservices/thrift_file.go", 7, "Serve", "...")), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"coreservices/thrift_file.go", 7}},
			emails:  []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/thrift_file.go"}},
		},
		{
			name:    "ignores an error in the thrift directory",
			steps:   []step{at(newReport("localhost", "email text", frame("coreservices/thrift/file.go", 7, "Serve", "..."), thirdParty))},
			entries: []entrySummary{{Key: flawless.UnblamableKey, Count: 1, LastSeen: fixtureNow}},
		},
		{
			name:  "ignores ignored exceptions",
			steps: []step{at(withType("*shop.BananaError", newReport("localhost", "email text", standardTrace...)))},
		},
		{
			name:      "does not report errors under the threshold",
			threshold: 2,
			steps:     []step{at(newReport("localhost", "email text", standardTrace...))},
			entries:   []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 0, false, fixtureAuthor.Time, fixtureNow}},
			blames:    []blameCall{{"coreservices/service.go", 7}},
		},
		{
			name:      "uses the threshold given in the report",
			threshold: 2,
			steps:     []step{at(withThreshold(1, newReport("localhost", "email text", standardTrace...)))},
			entries:   []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:    []blameCall{{"coreservices/service.go", 7}},
			emails:    []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/service.go"}},
		},
		{
			name:      "always alerts on red alert errors, and blames a known error's panic line",
			threshold: 3,
			steps: []step{at(newReport("localhost", "email text",
				waterFrame, frame("coreservices/service/utils.go", 3, "Helper", "y"), serviceFrame, testFrame))},
			entries: []entrySummary{{key(waterFrame), 1, "wishbone@shopkick.com", 1, true, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"coreservices/waterbowl/rewards/water.go", 12}},
			emails:  []email{{[]string{"snoopy@shopkick.com", "wilfred@shopkick.com", "wishbone@shopkick.com"}, "Error on localhost in coreservices/waterbowl/rewards/water.go"}},
		},
		{
			name:      "includes watchers",
			threshold: 2,
			steps:     []step{at(withThreshold(1, newReport("localhost", "email text", thirdParty, frame("tools/furminator.go", 7, "Fubar", "..."), testFrame)))},
			entries:   []entrySummary{{key(frame("tools/furminator.go", 7, "Fubar", "...")), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:    []blameCall{{"tools/furminator.go", 7}},
			emails:    []email{{[]string{"lassie@shopkick.com", "wilfred@shopkick.com", "wishbone@shopkick.com"}, "Error on localhost in tools/furminator.go"}},
		},
		{
			name:      "includes extra information",
			threshold: 2,
			steps:     []step{at(withThreshold(1, withInfo("extra stuff", newReport("localhost", "email text", waterFrame))))},
			entries:   []entrySummary{{key(waterFrame), 1, "wishbone@shopkick.com", 1, true, fixtureAuthor.Time, fixtureNow}},
			blames:    []blameCall{{"coreservices/waterbowl/rewards/water.go", 12}},
			emails:    []email{{[]string{"snoopy@shopkick.com", "wilfred@shopkick.com", "wishbone@shopkick.com"}, "Error on localhost in coreservices/waterbowl/rewards/water.go"}},
			check: func(t *testing.T, ns []*flawless.Notice) {
				n := ns[0]
				if n.Known == nil || n.Known.Header != "NOTE: This error typically does not require dev team involvement." {
					t.Errorf("notice Known = %+v, want the rule's email header", n.Known)
				}
				if n.Entry.Last.AdditionalInfo != "extra stuff" || n.Entry.Last.Message != "email text" {
					t.Errorf("notice report = %q, %q", n.Entry.Last.AdditionalInfo, n.Entry.Last.Message)
				}
			},
		},
		{
			name:      "removes duplicate recipients",
			threshold: 2,
			steps:     []step{at(withThreshold(1, newReport("localhost", "email text", serviceFrame, frame("lib/no/such/path/for/testing.go", 3, "Run", "z"))))},
			entries:   []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:    []blameCall{{"coreservices/service.go", 7}},
			emails:    []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/service.go"}},
		},
		{
			name:    "does not email errors before the cutoff date",
			author:  &author2009,
			steps:   []step{at(newReport("localhost", "email text", standardTrace...))},
			entries: []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 0, false, author2009.Time, fixtureNow}},
			blames:  []blameCall{{"coreservices/service.go", 7}},
		},
		{
			name: "records an error only once",
			steps: []step{
				at(newReport("localhost", "email text", standardTrace...)),
				{fixtureNow.AddDate(0, 0, 1), newReport("localhost", "email text", standardTrace...)},
			},
			entries: []entrySummary{{key(serviceFrame), 2, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow.AddDate(0, 0, 1)}},
			blames:  []blameCall{{"coreservices/service.go", 7}},
			emails:  []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/service.go"}},
		},
		{
			name: "does not email whitelisted (silenced) known errors",
			steps: []step{at(newReport("localhost", "email text",
				frame("lib/doghouse/authentication.go", 4, "CheckAuth", `return BadAuthenticationError("Something smells off...")`), testFrame))},
			entries: []entrySummary{{key(frame("lib/doghouse/authentication.go", 4, "CheckAuth", `return BadAuthenticationError("Something smells off...")`)), 1, "wishbone@shopkick.com", 0, true, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"lib/doghouse/authentication.go", 4}},
		},
		{
			name: "ignores whitelisted third-party errors",
			steps: []step{at(newReport("localhost", "email text",
				report.Frame{Function: "github.com/acme/sqlpool.(*Pool).Get", File: "/root/go/pkg/mod/github.com/acme/sqlpool@v0.5.6/pool.go", Line: 80,
					Text: `return nil, fmt.Errorf("pool limit of size %d overflow %d reached, connection timed out", p.size, p.overflow)`},
				serviceFrame, testFrame))},
		},
		{
			name:  "ignores whitelisted third-party errors in the repository (facebook)",
			steps: []step{at(newReport("localhost", "email text", frame("facebook.go", 30, "PostTreatToFacebook", "resp, err := http.PostForm(url, args)"), serviceFrame))},
		},
		{
			name: "traces up the stack for errors from building blocks",
			steps: []step{at(newReport("localhost", "email text",
				frame("lib/doghouse/base.go", 9, "GetRequestParam", `panic(BadRequestError("Missing param " + name))`), serviceFrame, testFrame))},
			entries: []entrySummary{{key(serviceFrame), 1, "wishbone@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"coreservices/service.go", 7}},
			emails:  []email{{[]string{"wishbone@shopkick.com"}, "Error on localhost in coreservices/service.go"}},
		},
		{
			name:    "handles disowned files",
			steps:   []step{at(newReport("localhost", "email text", thirdParty, frame("scripts/my_script.go", 7, "RunAll", "code"), testFrame))},
			entries: []entrySummary{{key(frame("scripts/my_script.go", 7, "RunAll", "code")), 1, "lassie@shopkick.com", 1, false, fixtureAuthor.Time, fixtureNow}},
			blames:  []blameCall{{"scripts/my_script.go", 7}},
			emails:  []email{{[]string{"lassie@shopkick.com"}, "Error on localhost in scripts/my_script.go"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{t: fixtureNow}
			author := fixtureAuthor
			if tt.author != nil {
				author = *tt.author
			}
			blamer := &fakeBlamer{author: author}
			rec := &recorder{}
			threshold := tt.threshold
			if threshold == 0 {
				threshold = 1
			}
			e := flawless.New(flawless.Config{
				Blamer:         blamer,
				Notifier:       rec,
				Policy:         mustRules(t, rules.Options{EmailDomain: "example.com"}, fixtureRules),
				Now:            clk.Now,
				Location:       time.UTC,
				Threshold:      threshold,
				MinimumDate:    time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC),
				OnlyBlamePaths: onlyBlamePaths,
			})
			for _, s := range tt.steps {
				clk.Set(s.at)
				if err := e.Report(t.Context(), s.r); err != nil {
					t.Fatalf("Report: %v", err)
				}
				settle(t, e)
			}
			closeEngine(t, e)
			ents, err := e.Store().Entries(t.Context(), flawless.WeekStart(fixtureNow, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.entries, summarize(ents), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.blames, blamer.Calls(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("blame calls mismatch (-want +got):\n%s", diff)
			}
			notices := rec.Notices(flawless.NoticeError)
			var got []email
			for _, n := range notices {
				to := slices.Clone(n.To)
				slices.Sort(to)
				got = append(got, email{to, n.Subject()})
			}
			if diff := cmp.Diff(tt.emails, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("emails mismatch (-want +got):\n%s", diff)
			}
			if tt.check != nil && len(notices) > 0 {
				tt.check(t, notices)
			}
		})
	}
}

// capturePanic runs f and reports its panic the way client.Recover does.
func capturePanic(f func()) (r *report.Report) {
	defer func() { r = report.FromPanic(recover()) }()
	f()
	return nil
}

func TestPanicInTheStandardLibraryIsBlamedOnTheCaller(t *testing.T) {
	blamer := &fakeBlamer{author: fixtureAuthor}
	e := flawless.New(flawless.Config{Blamer: blamer})
	defer closeEngine(t, e)
	r := capturePanic(func() { mustCompileBad() })
	if !strings.HasPrefix(r.Frames[0].Function, "regexp.") {
		t.Fatalf("the innermost frame is %s, want one in package regexp", r.Frames[0].Function)
	}
	x := e.Explain(t.Context(), r, "ann@example.com")
	f, ok := x.BlamedFrame()
	if !ok {
		t.Fatalf("nothing blamed: %s", x.Explain())
	}
	if f.Path != "helpers_test.go" || f.Function != "github.com/flawless-go/flawless_test.mustCompileBad" {
		t.Errorf("blamed %s in %s, want the caller of regexp.MustCompile in helpers_test.go (frames: %s)", f.Function, f.Path, x.Explain())
	}
	if x.Frames[0].Verdict != flawless.VerdictNotInRepo || x.Frames[0].Path != "regexp/regexp.go" {
		t.Errorf("regexp frame = %+v, want not in the repository, named regexp/regexp.go", x.Frames[0])
	}
	if err := e.Report(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	settle(t, e)
	if calls := blamer.Calls(); len(calls) != 1 || calls[0].Path != "helpers_test.go" {
		t.Errorf("blame calls = %v", calls)
	}
}

func TestThirdPartyModuleFramesAreNeverBlamed(t *testing.T) {
	e := flawless.New(flawless.Config{})
	defer closeEngine(t, e)
	r := newReport("h", "m",
		moduleFrame("github.com/lib/pq", "v1.10.9", "conn.go", 100, "(*conn).recv"),
		report.Frame{Function: "github.com/acme/shopify/client.Do", File: "/root/go/pkg/mod/github.com/acme/shopify@v1.0.0/client/do.go", Line: 7},
		report.Frame{Function: "github.com/acme/shop/vendor/github.com/x/y.F", File: "/home/ci/shop/vendor/github.com/x/y/f.go", Line: 3},
		frame("cart/cart.go", 41, "(*Cart).Add", "return c.items[i]"),
	)
	x := e.Explain(t.Context(), r, "")
	want := []flawless.Verdict{flawless.VerdictNotInRepo, flawless.VerdictNotInRepo, flawless.VerdictBlamable, flawless.VerdictBlamable}
	var got []flawless.Verdict
	for _, f := range x.Frames {
		got = append(got, f.Verdict)
	}
	// The vendored frame's function has the main module's prefix; it maps,
	// but only_blame_filepaths_matching keeps vendor/ out in practice. Here
	// it shows that the module path check is exact: shopify is not shop.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts mismatch (-want +got):\n%s\n%s", diff, x.Explain())
	}
	if x.Frames[0].Path != "github.com/lib/pq/conn.go" {
		t.Errorf("module frame path = %q, want github.com/lib/pq/conn.go", x.Frames[0].Path)
	}
	if f, _ := x.BlamedFrame(); f.Path != "vendor/github.com/x/y/f.go" {
		t.Errorf("blamed %q", f.Path)
	}
	// With only_blame_filepaths_matching excluding vendor/, blame reaches the cart.
	e2 := flawless.New(flawless.Config{OnlyBlamePaths: mustCompile(`^(?:cart|lib)/`)})
	defer closeEngine(t, e2)
	x2 := e2.Explain(t.Context(), r, "")
	if f, _ := x2.BlamedFrame(); f.Path != "cart/cart.go" {
		t.Errorf("with a path filter, blamed %q, want cart/cart.go", f.Path)
	}
}

func TestWeekRolloverResetsCountsAndAllowsANewEmail(t *testing.T) {
	la, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	saturday := time.Date(2026, 11, 21, 23, 59, 0, 0, la) // a Saturday
	clk := &clock{t: saturday}
	rec := &recorder{}
	e := flawless.New(flawless.Config{Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Now: clk.Now, Location: la, Threshold: 2})
	defer closeEngine(t, e)
	report2 := func() {
		for range 2 {
			if err := e.Report(t.Context(), newReport("h", "m", serviceFrame)); err != nil {
				t.Fatal(err)
			}
		}
		settle(t, e)
	}
	report2()
	clk.Set(saturday.Add(2 * time.Minute)) // Sunday 00:01: a new week
	report2()
	if n := len(rec.Notices(flawless.NoticeError)); n != 2 {
		t.Errorf("%d emails over two weeks, want one each week", n)
	}
	for _, week := range []time.Time{time.Date(2026, 11, 15, 0, 0, 0, 0, la), time.Date(2026, 11, 22, 0, 0, 0, 0, la)} {
		ent, err := e.Store().Get(t.Context(), week, key(serviceFrame))
		if err != nil {
			t.Fatalf("week of %v: %v", week, err)
		}
		if ent.Count != 2 || ent.Notified != 1 {
			t.Errorf("week of %v: count %d, notified %d; want 2, 1", week, ent.Count, ent.Notified)
		}
	}
}

func TestWeekStartsOnSunday(t *testing.T) {
	la, _ := time.LoadLocation("America/Los_Angeles")
	tests := []struct {
		reason string
		t      time.Time
		loc    *time.Location
		want   time.Time
	}{
		{"a Wednesday", time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC), time.UTC, time.Date(2019, 12, 29, 0, 0, 0, 0, time.UTC)},
		{"Sunday midnight starts its own week", time.Date(2019, 12, 29, 0, 0, 0, 0, time.UTC), time.UTC, time.Date(2019, 12, 29, 0, 0, 0, 0, time.UTC)},
		{"Saturday night belongs to the week before", time.Date(2019, 12, 28, 23, 59, 59, 0, time.UTC), time.UTC, time.Date(2019, 12, 22, 0, 0, 0, 0, time.UTC)},
		{"the configured zone decides, not UTC", time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), la, time.Date(2026, 11, 15, 0, 0, 0, 0, la)},
		{"a week with a daylight-saving change", time.Date(2026, 11, 3, 12, 0, 0, 0, la), la, time.Date(2026, 11, 1, 0, 0, 0, 0, la)},
	}
	for _, tt := range tests {
		if got := flawless.WeekStart(tt.t, tt.loc); !got.Equal(tt.want) {
			t.Errorf("%s: WeekStart(%v) = %v, want %v", tt.reason, tt.t, got, tt.want)
		}
	}
}

func TestConcurrentFirstOccurrencesNotifyOnce(t *testing.T) {
	rec := &recorder{}
	blamer := &fakeBlamer{author: fixtureAuthor}
	e := flawless.New(flawless.Config{Blamer: blamer, Notifier: rec, Threshold: 1})
	const goroutines = 64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			<-start
			if err := e.Report(context.Background(), newReport("h", "m", serviceFrame, testFrame)); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	closeEngine(t, e)
	if n := len(rec.Notices(flawless.NoticeError)); n != 1 {
		t.Errorf("%d goroutines reporting one new key sent %d notifications, want exactly 1", goroutines, n)
	}
	if n := len(blamer.Calls()); n != 1 {
		t.Errorf("blame ran %d times, want once", n)
	}
	ent, err := e.Store().Get(context.Background(), e.Week(time.Now()), key(serviceFrame))
	if err != nil {
		t.Fatal(err)
	}
	if ent.Count != goroutines {
		t.Errorf("count = %d, want %d", ent.Count, goroutines)
	}
}

func TestConcurrentEnginesSharingAStoreNotifyOnce(t *testing.T) {
	store := flawless.NewMemStore()
	rec := &recorder{}
	var engines []*flawless.Engine
	for range 4 {
		engines = append(engines, flawless.New(flawless.Config{Store: store, Blamer: &fakeBlamer{author: fixtureAuthor}, Notifier: rec, Threshold: 1}))
	}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			engines[i%len(engines)].Report(context.Background(), newReport("h", "m", serviceFrame))
		})
	}
	wg.Wait()
	for _, e := range engines {
		closeEngine(t, e)
	}
	if n := len(rec.Notices(flawless.NoticeError)); n != 1 {
		t.Errorf("4 engines sharing a store sent %d notifications, want 1", n)
	}
}
