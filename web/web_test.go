package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/web"
)

// fakeRules is a RuleAdmin in memory.
type fakeRules struct {
	mu   sync.Mutex
	rows map[string][]map[string]string
}

func (f *fakeRules) Append(kind string, v url.Values) error {
	if v.Get("filename") == "bad" || v.Get("email") == "bad" {
		return errors.New("filename: that is not right")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	row := map[string]string{"at": fmt.Sprintf("%s:%d", kind, len(f.rows[kind])+1)}
	for k := range v {
		row[k] = v.Get(k)
	}
	f.rows[kind] = append(f.rows[kind], row)
	return nil
}

func (f *fakeRules) Entries(kind string) ([]map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rows[kind], nil
}

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

type fixture struct {
	engine *flawless.Engine
	h      http.Handler
	rules  *fakeRules
}

func newFixture(t testing.TB, cfg web.Config) *fixture {
	t.Helper()
	e := flawless.New(flawless.Config{Now: func() time.Time { return now }, Location: time.UTC,
		Blamer: flawless.BlamerFunc(func(context.Context, flawless.Location, int) (flawless.Author, error) {
			return flawless.Author{Name: "Ann", Email: "ann@example.com", Commit: "abcdef1234567890", Time: now.Add(-48 * time.Hour)}, nil
		})})
	t.Cleanup(func() { e.Close(context.Background()) })
	fr := &fakeRules{rows: map[string][]map[string]string{}}
	cfg.Engine = e
	if cfg.Rules == nil {
		cfg.Rules = fr
	}
	cfg.Now = func() time.Time { return now }
	h, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{engine: e, h: h, rules: fr}
}

func (f *fixture) do(t *testing.T, method, target string, body io.Reader, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, body)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if r.Header.Get("Content-Type") == "" && method == http.MethodPost && !strings.HasPrefix(target, "/api/") {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

const xss = `<script>alert(1)</script>`

func reportJSON(msg, host, fn, file string) string {
	r := &report.Report{Hostname: host, Type: "*main.Err" + xss, Message: msg,
		Build:  report.Build{Path: "github.com/acme/shop"},
		Vars:   []report.Var{{Name: "v" + xss, Value: xss}},
		Frames: []report.Frame{{Function: fn, File: file, Line: 7, Text: "boom()" + xss}}}
	b, _ := report.Marshal(r)
	return string(b)
}

func (f *fixture) ingest(t *testing.T, body string) {
	t.Helper()
	if w := f.do(t, "POST", "/api/v1/reports", strings.NewReader(body), nil); w.Code != http.StatusAccepted {
		t.Fatalf("ingest = %d %s", w.Code, w.Body)
	}
	f.engine.Flush(context.Background())
}

func TestIngestion(t *testing.T) {
	f := newFixture(t, web.Config{MaxReportBytes: 4096, IngestToken: "in-tok"})
	auth := map[string]string{"Authorization": "Bearer in-tok"}
	good := reportJSON("boom", "web-1", "github.com/acme/shop/cart.Add", "/w/cart/cart.go")
	tests := []struct {
		reason string
		body   string
		hdr    map[string]string
		code   int
		want   string
	}{
		{"one report", good, auth, 202, `"accepted":1`},
		{"a batch", `{"reports":[` + good + `,` + good + `]}`, auth, 202, `"accepted":2`},
		{"no token", good, nil, 401, "bearer token"},
		{"a wrong token", good, map[string]string{"Authorization": "Bearer nope"}, 401, "bearer token"},
		{"malformed JSON", `{"v":1,`, auth, 400, "invalid JSON"},
		{"a missing field", `{"v":1}`, auth, 400, "frames: missing field"},
		{"a negative count", `{"v":1,"count":-1,"frames":[{"function":"f","file":"a.go"}]}`, auth, 400, "count: negative count"},
		{"oversized", `{"v":1,"message":"` + strings.Repeat("x", 5000) + `"}`, auth, 413, "max_report_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			w := f.do(t, "POST", "/api/v1/reports", strings.NewReader(tt.body), tt.hdr)
			if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
				t.Errorf("= %d %s; want %d containing %q", w.Code, w.Body, tt.code, tt.want)
			}
		})
	}
	ents, _ := f.engine.Store().Entries(context.Background(), f.engine.Week(now))
	if len(ents) != 1 || ents[0].Count != 3 {
		t.Errorf("entries after ingestion: %+v", ents)
	}
	if w := f.do(t, "GET", "/api/v1/reports", nil, nil); w.Code != http.StatusNotFound && w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET on ingestion = %d", w.Code)
	}
}

func TestPagesEscapeEverythingFromReports(t *testing.T) {
	f := newFixture(t, web.Config{})
	f.ingest(t, reportJSON("message"+xss, "host"+xss, "github.com/acme/shop/cart.Add"+xss, "/w/cart/cart"+xss+".go"))
	f.ingest(t, reportJSON("second", "h", "github.com/acme/shop/cart.Remove", "/w/cart/cart.go"))
	board := f.do(t, "GET", "/", nil, nil)
	if board.Code != 200 {
		t.Fatalf("leaderboard = %d", board.Code)
	}
	links := regexp.MustCompile(`href="(/view_traceback\?[^"]+)"`).FindAllStringSubmatch(board.Body.String(), -1)
	if len(links) != 2 {
		t.Fatalf("%d traceback links on the leaderboard:\n%s", len(links), board.Body)
	}
	pages := map[string]string{"leaderboard": board.Body.String()}
	for i, l := range links {
		target := strings.ReplaceAll(l[1], "&amp;", "&")
		tb := f.do(t, "GET", target, nil, nil)
		if tb.Code != 200 {
			t.Fatalf("traceback %s = %d %s", target, tb.Code, tb.Body)
		}
		pages[fmt.Sprint("traceback", i)] = tb.Body.String()
	}
	pages["form"] = f.do(t, "GET", "/add_known_error?filename="+url.QueryEscape(xss)+"&code_fragment="+url.QueryEscape(xss), nil, nil).Body.String()
	pages["health"] = f.do(t, "GET", "/check_health", nil, nil).Body.String()
	for name, body := range pages {
		if strings.Contains(body, "<script>") {
			t.Errorf("%s carries an unescaped <script>", name)
		}
	}
	if !strings.Contains(pages["traceback0"]+pages["traceback1"], "message&lt;script&gt;") {
		t.Error("the traceback does not show the escaped message")
	}
}

func TestLeaderboard(t *testing.T) {
	f := newFixture(t, web.Config{})
	for range 3 {
		f.ingest(t, reportJSON("a", "h", "github.com/acme/shop/cart.Add", "/w/cart/cart.go"))
	}
	body := f.do(t, "GET", "/get_weekly_error_report", nil, nil).Body.String()
	for _, want := range []string{`id="ann@example.com"`, `class="bar" style="width: 100%"`, "cart/cart.go", `id="prev-week"`, `id="next-week"`, "Errors of the week of 15 November 2026"} {
		if !strings.Contains(body, want) {
			t.Errorf("the leaderboard lacks %q", want)
		}
	}
	lastWeek := f.do(t, "GET", "/?timestamp="+fmt.Sprint(now.AddDate(0, 0, -7).Unix()), nil, nil).Body.String()
	if !strings.Contains(lastWeek, "No errors this week") || !strings.Contains(lastWeek, "8 November 2026") {
		t.Error("the previous week shows errors, or the wrong week")
	}
	if body := f.do(t, "GET", "/?timestamp=2026-11-18T10:00:00Z", nil, nil).Body.String(); !strings.Contains(body, "cart/cart.go") {
		t.Error("an RFC 3339 timestamp in the week does not show its errors")
	}
}

func TestBadParameters(t *testing.T) {
	f := newFixture(t, web.Config{})
	tests := []struct {
		target string
		code   int
		want   string
	}{
		{"/?timestamp=yesterday", 400, "neither RFC 3339 nor epoch seconds"},
		{"/?timestamp=-5", 400, "out of range"},
		{"/view_traceback", 400, "filename and function_name are required"},
		{"/view_traceback?filename=a.go&function_name=f&line_number=x", 400, "not a line number"},
		{"/view_traceback?filename=a.go&function_name=f&line_number=3", 404, "No such error"},
		{"/view_traceback?filename=../../etc/passwd&function_name=f", 404, "No such error"},
		{"/view_config?key=passwords", 400, "not a rule kind"},
		{"/view_config", 400, "not a rule kind"},
		{"/add_known_error?kind=watch", 400, "cannot be added here"},
		{"/nope", 404, "No page here"},
		{"/static/../../web.go", 404, ""},
	}
	for _, tt := range tests {
		w := f.do(t, "GET", tt.target, nil, nil)
		if loc := w.Header().Get("Location"); w.Code/100 == 3 && loc != "" {
			w = f.do(t, "GET", loc, nil, nil) // the mux cleans the path first
		}
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("GET %s = %d; want %d with %q\n%s", tt.target, w.Code, tt.code, tt.want, w.Body)
		}
		if strings.Contains(w.Body.String(), "root:") {
			t.Errorf("GET %s read a file outside the repository", tt.target)
		}
	}
	w := f.do(t, "GET", "/view_traceback", nil, map[string]string{"Accept": "application/json"})
	if w.Code != 400 || !strings.Contains(w.Header().Get("Content-Type"), "json") {
		t.Errorf("JSON error = %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

func csrfOf(t *testing.T, body string) string {
	m := regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the form:\n%s", body)
	}
	return m[1]
}

func TestAdminForms(t *testing.T) {
	f := newFixture(t, web.Config{})
	form := f.do(t, "GET", "/add_known_error?filename=cart%2Fcart.go&function_name=Add&code_fragment=return+x", nil, nil)
	if form.Code != 200 || !strings.Contains(form.Body.String(), `value="cart/cart.go"`) {
		t.Fatalf("prefilled form = %d\n%s", form.Code, form.Body)
	}
	tok := csrfOf(t, form.Body.String())
	post := func(path string, v url.Values, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(v.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		return w
	}
	ok := url.Values{"csrf": {tok}, "kind": {"known_error"}, "filename": {"cart/cart.go"}, "min_alert_threshold": {"5"}}
	if w := post("/add_known_error", ok, "127.0.0.1:5555"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/view_config?key=known_error" {
		t.Fatalf("save = %d %s", w.Code, w.Header().Get("Location"))
	}
	list := f.do(t, "GET", "/view_config?key=known_error", nil, nil).Body.String()
	if !strings.Contains(list, "cart/cart.go") || !strings.Contains(list, "known_error:1") {
		t.Errorf("view_config lacks the saved entry:\n%s", list)
	}
	for _, tt := range []struct {
		reason string
		v      url.Values
		remote string
		code   int
		want   string
	}{
		{"no CSRF token", url.Values{"kind": {"known_error"}, "filename": {"x.go"}}, "127.0.0.1:1", 403, "security token"},
		{"a forged CSRF token", url.Values{"csrf": {"00ff"}, "kind": {"known_error"}, "filename": {"x.go"}}, "127.0.0.1:1", 403, "security token"},
		{"from another machine without a token", url.Values{"csrf": {tok}, "kind": {"known_error"}, "filename": {"x.go"}}, "10.1.2.3:1", 403, "own machine"},
		{"a kind of another page", url.Values{"csrf": {tok}, "kind": {"watch"}}, "127.0.0.1:1", 400, "cannot be added here"},
		{"bad values come back with the reason", url.Values{"csrf": {tok}, "kind": {"known_error"}, "filename": {"bad"}}, "127.0.0.1:1", 400, "that is not right"},
	} {
		w := post("/add_known_error", tt.v, tt.remote)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.want) {
			t.Errorf("%s: = %d; want %d with %q", tt.reason, w.Code, tt.code, tt.want)
		}
	}
	if n := len(f.rules.rows["known_error"]); n != 1 {
		t.Errorf("%d known errors saved, want only the good one", n)
	}
	for _, path := range []string{"/add_watch", "/remap_email", "/disown_file", "/add_ignored_exception", "/admin"} {
		if w := f.do(t, "GET", path, nil, nil); w.Code != 200 {
			t.Errorf("GET %s = %d", path, w.Code)
		}
	}
}

func TestAdminToken(t *testing.T) {
	f := newFixture(t, web.Config{AdminToken: "adm-s3cret"})
	form := f.do(t, "GET", "/add_watch", nil, nil).Body.String()
	if !strings.Contains(form, `name="admin_token"`) || strings.Contains(form, "adm-s3cret") {
		t.Fatal("the form does not ask for the token, or shows it")
	}
	tok := csrfOf(t, form)
	v := url.Values{"csrf": {tok}, "kind": {"watch"}, "email": {"w@example.com"}, "filepath": {"lib"}}
	r := httptest.NewRequest("POST", "/add_watch", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != 403 {
		t.Errorf("without the token = %d, want 403 (loopback is not enough once a token is set)", w.Code)
	}
	v.Set("admin_token", "adm-s3cret")
	r = httptest.NewRequest("POST", "/add_watch", strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.RemoteAddr = "10.9.8.7:1"
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != http.StatusSeeOther {
		t.Errorf("with the token from another machine = %d, want 303", w.Code)
	}
}

func TestHealthRedactsAndAnswersJSON(t *testing.T) {
	f := newFixture(t, web.Config{Health: func() map[string]any {
		return map[string]any{"smtp_password": "(set)", "listen": ":9028"}
	}})
	w := f.do(t, "GET", "/check_health", nil, map[string]string{"Accept": "application/json"})
	var got struct {
		Status string         `json:"status"`
		Config map[string]any `json:"config"`
		Stats  flawless.Stats `json:"stats"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || got.Status != "OK" || got.Config["smtp_password"] != "(set)" {
		t.Errorf("JSON health = %s (%v)", w.Body, err)
	}
	html := f.do(t, "GET", "/check_health", nil, nil).Body.String()
	if !strings.Contains(html, "Status: OK") || !strings.Contains(html, "smtp_password") {
		t.Errorf("HTML health:\n%s", html)
	}
}

func TestMountedUnderAPrefix(t *testing.T) {
	f := newFixture(t, web.Config{})
	f.ingest(t, reportJSON("a", "h", "github.com/acme/shop/cart.Add", "/w/cart/cart.go"))
	mux := http.NewServeMux()
	mux.Handle("/flawless/", http.StripPrefix("/flawless", f.h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/flawless/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `href="/flawless/static/style.css"`) || !strings.Contains(string(body), `href="/flawless/view_traceback?`) {
		t.Fatalf("mounted leaderboard = %d\n%s", resp.StatusCode, body)
	}
	css, err := http.Get(srv.URL + "/flawless/static/style.css")
	if err != nil || css.StatusCode != 200 {
		t.Errorf("stylesheet under the prefix: %v %v", css.StatusCode, err)
	}
}

func TestAPanickingPageDoesNotCrash(t *testing.T) {
	f := newFixture(t, web.Config{Health: func() map[string]any { panic("health broke") }})
	w := f.do(t, "GET", "/check_health", nil, nil)
	if w.Code != 500 {
		t.Errorf("a panicking page = %d, want 500", w.Code)
	}
}

// BenchmarkIngestHotError posts one repeated error over loopback HTTP with
// keep-alive from 8 goroutines, against a bare net/http handler that
// decodes the same JSON and answers 202, in the same run.
func BenchmarkIngestHotError(b *testing.B) {
	body := reportJSON("boom", "web-1", "github.com/acme/shop/cart.Add", "/w/cart/cart.go")
	run := func(b *testing.B, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		b.SetParallelism(4) // 4 × GOMAXPROCS(2) = 8 goroutines
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Post(srv.URL+"/api/v1/reports", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) {
		run(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			data, _ := io.ReadAll(r.Body)
			if _, err := report.Decode(data); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"accepted":1}`))
		}))
	})
	b.Run("memory", func(b *testing.B) {
		f := newFixture(b, web.Config{})
		run(b, f.h)
	})
}
