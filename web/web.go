// Package web is flawless-server's HTTP side as one http.Handler: the
// ingestion endpoint clients send reports to, and the pages a team looks at
// (the weekly leaderboard, the traceback of an error, the health page, and
// the forms that add rules). It is mountable inside a host application's
// own mux:
//
//	h, err := web.New(web.Config{Engine: e})
//	mux.Handle("/flawless/", http.StripPrefix("/flawless", h))
package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
)

// RuleAdmin reads and extends the rule files for the admin pages. Kinds are
// named by their table ("known_error", "building_block", "third_party",
// "watch", "disown", "remap", "ignored_exception").
type RuleAdmin interface {
	// Append adds an entry of a kind from form values named like the rule
	// file's keys, then makes it take effect. An error says what is wrong
	// with the values, for the person who filled in the form.
	Append(kind string, values url.Values) error
	// Entries lists the entries of a kind, as rows of key → value.
	Entries(kind string) ([]map[string]string, error)
}

// Config configures the handler.
type Config struct {
	// Engine takes the reports and holds the store the pages show.
	// Required.
	Engine *flawless.Engine
	// Rules backs the admin forms. Nil: the forms answer that no rules
	// directory is configured.
	Rules RuleAdmin
	// AdminToken, when set, is required for every admin write. Empty:
	// admin writes are accepted only from loopback addresses.
	AdminToken string
	// IngestToken, when set, is required as a bearer token on ingestion.
	IngestToken string
	// MaxReportBytes bounds an ingestion body. 0: 1 MiB.
	MaxReportBytes int64
	// MinimumDate hides errors in lines changed before it from the
	// leaderboard, unless asked for (report_only_after_minimum_date).
	MinimumDate time.Time
	// Health returns the configuration to show on the health page, with
	// secrets already redacted. Nil: none shown.
	Health func() map[string]any
	// Logger hears about failed requests. Nil: discard.
	Logger *slog.Logger
	// Now tells the time. Nil: time.Now.
	Now func() time.Time
}

// Handler serves ingestion and the pages.
type Handler struct {
	cfg   Config
	mux   *http.ServeMux
	csrf  []byte
	log   *slog.Logger
	pages map[string]*template.Template
}

//go:embed templates static
var assets embed.FS

// New returns the handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Engine == nil {
		return nil, errors.New("web: Config.Engine is required")
	}
	if cfg.MaxReportBytes <= 0 {
		cfg.MaxReportBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, mux: http.NewServeMux(), log: cfg.Logger, pages: map[string]*template.Template{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.csrf = make([]byte, 32)
	if _, err := rand.Read(h.csrf); err != nil {
		return nil, err
	}
	for _, page := range []string{"leaderboard", "traceback", "health", "admin", "form", "config", "message"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", page, err)
		}
		h.pages[page] = t
	}
	m := h.mux
	m.HandleFunc("POST /api/v1/reports", h.ingest)
	m.HandleFunc("GET /{$}", h.leaderboard)
	m.HandleFunc("GET /get_weekly_error_report", h.leaderboard)
	m.HandleFunc("GET /view_traceback", h.traceback)
	m.HandleFunc("GET /check_health", h.health)
	m.HandleFunc("GET /admin", h.admin)
	m.HandleFunc("GET /view_config", h.viewConfig)
	for path, kinds := range formRoutes {
		m.HandleFunc("GET "+path, h.form(path, kinds))
		m.HandleFunc("POST "+path, h.save(path, kinds))
	}
	static, _ := fs.Sub(assets, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, http.StatusNotFound, "No page here.")
	})
	return h, nil
}

// ServeHTTP implements http.Handler. A panic in a page is answered with
// 500 and logged; it never takes the server down.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.Error("panic serving a page", "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	h.mux.ServeHTTP(w, r)
}

// ingest takes one report or {"reports": [...]}; 202 once every report is
// counted in the store.
func (h *Handler) ingest(w http.ResponseWriter, r *http.Request) {
	if tok := h.cfg.IngestToken; tok != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(tok)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="flawless"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "a valid bearer token is required"})
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxReportBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"error": fmt.Sprintf("the body is over the limit of %d bytes (max_report_bytes)", tooBig.Limit)})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "could not read the body: " + err.Error()})
		return
	}
	rs, err := report.Decode(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	now := h.cfg.Now()
	for i, rep := range rs {
		if rep.Time.IsZero() {
			rep.Time = now
		}
		if err := h.cfg.Engine.Report(r.Context(), rep); err != nil && !errors.Is(err, flawless.ErrClosed) {
			h.log.Error("could not count a report", "err", err)
			writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "could not store the report", "accepted": i})
			return
		}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(rs)})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// render writes a page; data's fields are escaped by html/template.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, page string, data map[string]any) {
	data["Base"] = basePath(r)
	data["Now"] = h.cfg.Now()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(code)
	if err := h.pages[page].Execute(w, data); err != nil {
		h.log.Error("render page", "page", page, "err", err)
	}
}

// basePath is the prefix the handler is mounted under, so that links work
// inside a host application: the part of the original request path that
// http.StripPrefix took off.
func basePath(r *http.Request) string {
	full := r.URL.Path
	if r.RequestURI != "" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			full = u.Path
		}
	}
	if prefix, ok := strings.CutSuffix(full, r.URL.Path); ok {
		return strings.TrimSuffix(prefix, "/")
	}
	return ""
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, code, map[string]any{"error": msg})
		return
	}
	h.render(w, r, code, "message", map[string]any{"Title": http.StatusText(code), "Message": msg, "Code": code})
}

// week parses the timestamp parameter: any instant in the week, RFC 3339
// or epoch seconds; default now.
func (h *Handler) week(r *http.Request) (time.Time, error) {
	s := r.URL.Query().Get("timestamp")
	t := h.cfg.Now()
	if s != "" {
		if n, err := strconv.ParseFloat(s, 64); err == nil {
			if n < 0 || n > 1e11 {
				return time.Time{}, fmt.Errorf("timestamp %s is out of range", s)
			}
			t = time.Unix(int64(n), 0)
		} else if p, err := time.Parse(time.RFC3339, s); err == nil {
			t = p
		} else {
			return time.Time{}, fmt.Errorf("timestamp %q is neither RFC 3339 nor epoch seconds", s)
		}
	}
	return h.cfg.Engine.Week(t), nil
}

func boolParam(r *http.Request, name string) bool {
	switch strings.ToLower(r.URL.Query().Get(name)) {
	case "1", "true", "on", "yes":
		return true
	}
	return false
}

// developerRow is one developer on the leaderboard.
type developerRow struct {
	Email  string
	Count  int
	Bar    int // percent of the busiest developer's count
	Errors []flawless.Entry
}

func (h *Handler) leaderboard(w http.ResponseWriter, r *http.Request) {
	week, err := h.week(r)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	withKnown, withOld := boolParam(r, "include_known_errors"), boolParam(r, "include_modified_before_min_date")
	ents, err := h.cfg.Engine.Store().Entries(r.Context(), week)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "The store could not be read: "+err.Error())
		return
	}
	byDev := map[string]*developerRow{}
	var unblamable *flawless.Entry
	hidden := 0
	for i := range ents {
		e := ents[i]
		switch {
		case e.Unblamable:
			unblamable = &e
			continue
		case e.Known && !withKnown, !withOld && !e.Author.Time.IsZero() && e.Author.Time.Before(h.cfg.MinimumDate):
			hidden++
			continue
		}
		dev := e.Developer
		switch {
		case dev != "":
		case e.Blamed:
			dev = "nobody (no repository to blame in)"
		default:
			dev = "not blamed yet"
		}
		row := byDev[dev]
		if row == nil {
			row = &developerRow{Email: dev}
			byDev[dev] = row
		}
		row.Count += e.Count
		row.Errors = append(row.Errors, e)
	}
	var rows []*developerRow
	top := 1
	for _, row := range byDev {
		slices.SortFunc(row.Errors, func(a, b flawless.Entry) int { return b.Count - a.Count })
		rows = append(rows, row)
		top = max(top, row.Count)
	}
	slices.SortFunc(rows, func(a, b *developerRow) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Email, b.Email)
	})
	for _, row := range rows {
		row.Bar = max(1, row.Count*100/top)
	}
	q := url.Values{}
	if withKnown {
		q.Set("include_known_errors", "1")
	}
	if withOld {
		q.Set("include_modified_before_min_date", "1")
	}
	link := func(t time.Time) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("timestamp", strconv.FormatInt(t.Unix(), 10))
		return "?" + v.Encode()
	}
	h.render(w, r, http.StatusOK, "leaderboard", map[string]any{
		"Title": "Errors of the week of " + week.Format("2 January 2006"), "Week": week, "Rows": rows,
		"Unblamable": unblamable, "Hidden": hidden, "WithKnown": withKnown, "WithOld": withOld,
		"Prev": link(week.AddDate(0, 0, -7)), "Next": link(week.AddDate(0, 0, 7)), "Query": q.Encode(),
	})
}

func (h *Handler) traceback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	path, function := q.Get("filename"), q.Get("function_name")
	if path == "" || function == "" {
		h.fail(w, r, http.StatusBadRequest, "filename and function_name are required.")
		return
	}
	line := 0
	if s := q.Get("line_number"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("line_number %q is not a line number.", s))
			return
		}
		line = n
	}
	week, err := h.week(r)
	if err != nil {
		h.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	key := report.NewKey(path, function, q.Get("text"), line)
	ent, err := h.cfg.Engine.Store().Get(r.Context(), week, key)
	if errors.Is(err, flawless.ErrNotFound) {
		h.fail(w, r, http.StatusNotFound, "No such error in the week of "+week.Format("2 January 2006")+".")
		return
	}
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "The store could not be read: "+err.Error())
		return
	}
	h.render(w, r, http.StatusOK, "traceback", map[string]any{"Title": "Error in " + ent.Key.Path, "E": ent})
}

func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"status": "OK", "stats": h.cfg.Engine.Stats()}
	if h.cfg.Health != nil {
		data["config"] = h.cfg.Health()
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, data)
		return
	}
	var cfg []struct{ Name, Value string }
	if c, ok := data["config"].(map[string]any); ok {
		for k, v := range c {
			cfg = append(cfg, struct{ Name, Value string }{k, fmt.Sprint(v)})
		}
		slices.SortFunc(cfg, func(a, b struct{ Name, Value string }) int { return strings.Compare(a.Name, b.Name) })
	}
	h.render(w, r, http.StatusOK, "health", map[string]any{"Title": "Health", "Stats": data["stats"], "Config": cfg})
}

// A form page and the rule kinds it can write.
var formRoutes = map[string][]string{
	"/add_known_error":       {"known_error", "building_block", "third_party"},
	"/add_watch":             {"watch"},
	"/remap_email":           {"remap"},
	"/disown_file":           {"disown"},
	"/add_ignored_exception": {"ignored_exception"},
}

// field is one input of a rule form.
type field struct {
	Name, Label, Help string
	Kind              string // text, number, checkbox, textarea
}

var kindTitles = map[string]string{
	"known_error": "Known error", "building_block": "Building block", "third_party": "Third-party code",
	"watch": "Watch a file", "remap": "Remap an address", "disown": "Disown a file", "ignored_exception": "Ignore an error type",
}

var kindFields = map[string][]field{
	"known_error": {
		{"filename", "File", "repository path, exact", "text"}, {"function_name", "Function", "blank: any function", "text"},
		{"code_fragment", "Code", "part of the line; blank: any line", "text"},
		{"min_alert_threshold", "First email at", "count this week", "number"}, {"max_alert_threshold", "No email above", "count; 0 silences", "number"},
		{"alert_every_n_occurrences", "Email every", "occurrences", "number"}, {"email_recipients", "Also tell", "addresses, comma separated", "text"},
		{"email_header", "Email header", "shown at the top of the email", "textarea"},
	},
	"building_block":    {{"filename", "File", "repository path, exact", "text"}, {"function_name", "Function", "blank: any function", "text"}, {"code_fragment", "Code", "blank: any line", "text"}},
	"third_party":       {{"filename", "File", "module path, e.g. github.com/lib/pq/conn.go", "text"}, {"function_name", "Function", "blank: any function", "text"}, {"code_fragment", "Code", "blank: any line", "text"}},
	"watch":             {{"email", "Email", "who to tell", "text"}, {"filepath", "File or directory", "repository path", "text"}, {"watch_all_errors", "Any error passing through it", "else only errors blamed on that file", "checkbox"}},
	"remap":             {{"remap", "Address in commits", "full address, or the part before @", "text"}, {"to", "Send to", "address", "text"}},
	"disown":            {{"filepath", "File or directory", "repository path", "text"}, {"email", "Blamed address", "", "text"}, {"designated_email", "Send to instead", "", "text"}},
	"ignored_exception": {{"type", "Go type", "as %T prints it, e.g. *net.OpError", "text"}, {"message_matching", "Message matching", "regular expression", "text"}},
}

// csrfToken is the token forms carry; it is tied to this server process.
func (h *Handler) csrfToken() string {
	m := hmac.New(sha256.New, h.csrf)
	m.Write([]byte("flawless admin form"))
	return hex.EncodeToString(m.Sum(nil))
}

func (h *Handler) form(path string, kinds []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		kind := r.URL.Query().Get("kind")
		if kind == "" {
			kind = kinds[0]
		}
		if !slices.Contains(kinds, kind) {
			h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("kind %q cannot be added here.", kind))
			return
		}
		h.renderForm(w, r, http.StatusOK, path, kinds, kind, r.URL.Query(), "")
	}
}

func (h *Handler) renderForm(w http.ResponseWriter, r *http.Request, code int, path string, kinds []string, kind string, values url.Values, problem string) {
	var choices []struct{ Kind, Title string }
	for _, k := range kinds {
		choices = append(choices, struct{ Kind, Title string }{k, kindTitles[k]})
	}
	h.render(w, r, code, "form", map[string]any{
		"Title": kindTitles[kind], "Path": path, "Kind": kind, "Kinds": choices, "Fields": kindFields[kind],
		"Values": values, "CSRF": h.csrfToken(), "NeedToken": h.cfg.AdminToken != "", "Problem": problem,
	})
}

func (h *Handler) save(path string, kinds []string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			h.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error())
			return
		}
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(h.csrfToken())) {
			h.fail(w, r, http.StatusForbidden, "The form's security token is missing or stale; reload the form and try again.")
			return
		}
		if msg, ok := h.allowed(r); !ok {
			h.fail(w, r, http.StatusForbidden, msg)
			return
		}
		kind := r.PostForm.Get("kind")
		if !slices.Contains(kinds, kind) {
			h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("kind %q cannot be added here.", kind))
			return
		}
		if h.cfg.Rules == nil {
			h.fail(w, r, http.StatusServiceUnavailable, "No rules directory is configured (config_dir_path).")
			return
		}
		if err := h.cfg.Rules.Append(kind, r.PostForm); err != nil {
			h.renderForm(w, r, http.StatusBadRequest, path, kinds, kind, r.PostForm, err.Error())
			return
		}
		http.Redirect(w, r, basePath(r)+"/view_config?key="+url.QueryEscape(kind), http.StatusSeeOther)
	}
}

// allowed decides whether an admin write may proceed.
func (h *Handler) allowed(r *http.Request) (string, bool) {
	if tok := h.cfg.AdminToken; tok != "" {
		got := r.PostForm.Get("admin_token")
		if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
			return "", true
		}
		return "The admin token is missing or wrong.", false
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsLoopback() {
		return "", true
	}
	return "Without an admin_token configured, rules can only be added from the server's own machine.", false
}

func (h *Handler) admin(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "admin", map[string]any{"Title": "Admin", "Kinds": kindTitles})
}

func (h *Handler) viewConfig(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("key")
	if _, ok := kindFields[kind]; !ok {
		h.fail(w, r, http.StatusBadRequest, fmt.Sprintf("key %q is not a rule kind; use one of known_error, building_block, third_party, watch, remap, disown, ignored_exception.", kind))
		return
	}
	if h.cfg.Rules == nil {
		h.fail(w, r, http.StatusServiceUnavailable, "No rules directory is configured (config_dir_path).")
		return
	}
	rows, err := h.cfg.Rules.Entries(kind)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, err.Error())
		return
	}
	h.render(w, r, http.StatusOK, "config", map[string]any{"Title": "Rules: " + kindTitles[kind], "Kind": kind, "Columns": kindFields[kind], "Rows": rows})
}

var funcs = template.FuncMap{
	"date": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Format("2006-01-02 15:04")
	},
	"short": func(s string) string { return s[:min(len(s), 12)] },
	"link": func(e flawless.Entry) string {
		line := e.Key.Line
		if c := e.Classification; c != nil {
			if f, ok := c.BlamedFrame(); ok {
				line = f.Line
			}
		}
		return "view_traceback?" + url.Values{
			"filename": {e.Key.Path}, "function_name": {e.Key.Function}, "text": {e.Key.Text},
			"line_number": {strconv.Itoa(line)}, "timestamp": {strconv.FormatInt(e.Week.Unix(), 10)},
		}.Encode()
	},
	"shortfn": report.ShortFunction,
	"line": func(e flawless.Entry) int {
		if c := e.Classification; c != nil {
			if f, ok := c.BlamedFrame(); ok {
				return f.Line
			}
		}
		return e.Key.Line
	},
	"frames": func(e flawless.Entry) []map[string]any {
		var out []map[string]any
		if e.Last == nil {
			return nil
		}
		for i, f := range e.Last.Frames {
			row := map[string]any{"Path": f.File, "Function": f.Function, "Line": f.Line, "Text": f.Text, "Vars": f.Vars, "Library": true}
			if c := e.Classification; c != nil && i < len(c.Frames) {
				fi := c.Frames[i]
				row["Path"], row["Blamed"], row["Verdict"] = fi.Path, i == c.Blamed, fi.Verdict.String()
				row["Library"] = fi.Verdict != flawless.VerdictBlamable && fi.Verdict != flawless.VerdictKnownError
				if fi.Text != "" {
					row["Text"] = fi.Text
				}
			}
			out = append(out, row)
		}
		return out
	},
	"get": func(v url.Values, k string) string { return v.Get(k) },
}
