package notify_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/notify"
	"github.com/flawless-go/flawless/report"
	"github.com/google/go-cmp/cmp"
)

var (
	_      flawless.Notifier = (*notify.Mailer)(nil)
	update                   = flag.Bool("update", false, "rewrite golden files")
	now                      = time.Date(2026, 11, 20, 14, 3, 7, 0, time.UTC)
	week                     = time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)
)

func mailer(t testing.TB, cfg notify.Config) *notify.Mailer {
	t.Helper()
	if cfg.EmailDomain == "" {
		cfg.EmailDomain = "example.com"
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = "https://flawless.example.com"
	}
	cfg.Now = func() time.Time { return now }
	m, err := notify.NewMailer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// entry builds an error entry blamed on cart/cart.go.
func entry() flawless.Entry {
	r := &report.Report{
		Hostname: "web-3", Type: "runtime.boundsError", Message: "runtime error: index out of range [3] with length 3", Panic: true,
		Build: report.Build{Path: "github.com/acme/shop", Revision: "8a3f0c1d2e4b5a69788796a5b4c3d2e1f0a9b8c7"},
		Frames: []report.Frame{
			{Function: "github.com/acme/shop/cart.(*Cart).Item", File: "/home/ci/shop/cart/cart.go", Line: 41},
			{Function: "github.com/acme/shop/api.(*Server).handleCart", File: "/home/ci/shop/api/cart.go", Line: 88},
			{Function: "net/http.HandlerFunc.ServeHTTP", File: "/usr/local/go/src/net/http/server.go", Line: 2220},
		},
	}
	c := &flawless.Classification{
		Blamed: 0, Revision: r.Build.Revision,
		Key: report.Key{Path: "cart/cart.go", Function: "github.com/acme/shop/cart.(*Cart).Item", Text: "return c.items[i]"},
		Frames: []flawless.FrameInfo{
			{Path: "cart/cart.go", Function: r.Frames[0].Function, Line: 41, Text: "\treturn c.items[i]", InRepo: true, Verdict: flawless.VerdictBlamable},
			{Path: "api/cart.go", Function: r.Frames[1].Function, Line: 88, Text: "\titem := s.cart.Item(n)", InRepo: true, Verdict: flawless.VerdictBlamable},
			{Path: "net/http/server.go", Function: r.Frames[2].Function, Line: 2220, Verdict: flawless.VerdictNotInRepo},
		},
	}
	return flawless.Entry{
		Key: c.Key, Week: week, Count: 7, FirstSeen: now.Add(-time.Hour), LastSeen: now, Last: r, Classification: c,
		Blamed: true, Developer: "ann@example.com", NoticeClaimed: now,
		Author: flawless.Author{Name: "Ann", Email: "ann@example.com", Time: time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC), Commit: "5b1c0ffee1234567890abcdef1234567890abcd"},
	}
}

func errorNotice() *flawless.Notice {
	e := entry()
	return &flawless.Notice{Kind: flawless.NoticeError, To: []string{"ann@example.com"}, Entry: e, Time: now,
		Reasons: []string{"Blame: line last changed in commit 5b1c0ffee123 by Ann <ann@example.com> on 2026-11-02 09:30:00 +0000"}}
}

// render writes the parts of an email that must not change: the headers in
// order, then each body.
func render(t *testing.T, m *notify.Mailer, n *flawless.Notice) string {
	t.Helper()
	e, rejected, err := m.Compose(n)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := e.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the message does not parse: %v", err)
	}
	var b strings.Builder
	var keys []string
	for k := range msg.Header {
		if k != "Content-Type" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	dec := new(mime.WordDecoder)
	for _, k := range keys {
		v, _ := dec.DecodeHeader(msg.Header.Get(k))
		fmt.Fprintf(&b, "%s: %s\n", k, v)
	}
	if len(rejected) > 0 {
		fmt.Fprintf(&b, "(rejected: %v)\n", rejected)
	}
	text, html := parts(t, msg)
	fmt.Fprintf(&b, "\n--- text/plain ---\n%s\n--- text/html ---\n%s", text, html)
	return b.String()
}

// parts returns the plain-text and HTML bodies of a message.
func parts(t *testing.T, msg *mail.Message) (text, html string) {
	t.Helper()
	text, html, err := readParts(msg)
	if err != nil {
		t.Fatal(err)
	}
	return text, html
}

func readParts(msg *mail.Message) (text, html string, err error) {
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return "", "", fmt.Errorf("Content-Type %q, want multipart: %v", msg.Header.Get("Content-Type"), err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if err == io.EOF {
			return text, html, nil
		}
		if err != nil {
			return "", "", err
		}
		body, _ := io.ReadAll(p) // quoted-printable is decoded by NextPart
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(body)
		case "text/html":
			html = string(body)
		}
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, diff)
	}
}

func TestEmailsGolden(t *testing.T) {
	m := mailer(t, notify.Config{})
	max := 100
	known := errorNotice()
	known.To = []string{"ann@example.com", "payments-oncall@example.com", "Ann@Example.com"}
	known.Entry.Known = true
	known.Known = &flawless.KnownError{Rule: "known_errors.toml:12", Min: 5, Max: &max, Recipients: []string{"payments-oncall@example.com"},
		Header: "The payment gateway times out now and then.\nThis alert fires only above 5 a week."}
	known.Reasons = append(known.Reasons, "Known error rule known_errors.toml:12")

	rich := errorNotice()
	rich.Entry.Last.Vars = []report.Var{{Name: "user_id", Value: "42"}, {Name: "api_key", Value: "**scrubbed**"}}
	rich.Entry.Last.Frames[1].Vars = []report.Var{{Name: "n", Value: "3"}, {Name: "cart", Value: "&{items:[1 2 3]}"}}
	rich.Entry.Last.Request = &report.Request{Method: "GET", URL: "/cart/item?n=3", RemoteAddr: "10.0.0.7:51234",
		Headers: map[string]string{"User-Agent": "curl/8.5.0", "Cookie": "**scrubbed**"}}
	rich.Entry.Last.AdditionalInfo = "nightly import\nbatch 17"
	rich.Entry.Last.Chain = []report.Link{{Type: "*fs.PathError", Message: "open prices.json: no such file"}}

	fallback := errorNotice()
	fallback.Entry.Classification.Fallback = true
	fallback.Reasons = append(fallback.Reasons, "The report's revision was not in the repository; blamed at the branch head 8a3f0c1d2e4b")

	problem := &flawless.Notice{Kind: flawless.NoticeProblem, To: []string{"ops@example.com"}, Time: now,
		Problem: "Unable to do blame for cart/cart.go:github.com/acme/shop/cart.(*Cart).Item: return c.items[i]: blame: no such line."}

	for name, n := range map[string]*flawless.Notice{
		"ordinary": errorNotice(), "known": known, "rich": rich, "fallback": fallback, "problem": problem,
	} {
		t.Run(name, func(t *testing.T) { golden(t, name, render(t, m, n)) })
	}
}

func TestEmailContent(t *testing.T) {
	m := mailer(t, notify.Config{BaseURL: "flawless.example.com:9028"})
	got := render(t, m, errorNotice())
	for _, want := range []string{
		"Subject: Error on web-3 in cart/cart.go",
		"From: <flawless@example.com>",
		"To: <ann@example.com>",
		"> cart/cart.go:41 in github.com/acme/shop/cart.(*Cart).Item",
		"net/http/server.go:2220 in net/http.HandlerFunc.ServeHTTP (library)",
		"http://flawless.example.com:9028/view_traceback?filename=cart%2Fcart.go&function_name=github.com%2Facme%2Fshop%2Fcart.%28%2ACart%29.Item&line_number=41&text=return+c.items%5Bi%5D&timestamp=1794700800",
		"http://flawless.example.com:9028/get_weekly_error_report?timestamp=1794700800#ann@example.com",
		"http://flawless.example.com:9028/add_known_error?code_fragment=return+c.items%5Bi%5D&filename=cart%2Fcart.go&function_name=",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the email lacks %q", want)
		}
	}
}

func TestMessageIDIsStableForOneErrorAndWeek(t *testing.T) {
	m := mailer(t, notify.Config{})
	id := func(n *flawless.Notice) string {
		e, _, _ := m.Compose(n)
		return e.Headers.Get("Message-Id")
	}
	a, b := errorNotice(), errorNotice()
	b.Entry.Count = 99 // a resend sees a later count; it is the same email
	if id(a) != id(b) || !strings.HasSuffix(id(a), "@example.com>") {
		t.Errorf("Message-Id %s and %s, want one", id(a), id(b))
	}
	c := errorNotice()
	c.Entry.Week = week.AddDate(0, 0, 7)
	if id(a) == id(c) {
		t.Error("another week has the same Message-Id")
	}
}

func TestHeaderInjectionIsImpossible(t *testing.T) {
	m := mailer(t, notify.Config{})
	n := errorNotice()
	n.Entry.Last.Hostname = "web-3\r\nBcc: mallory@evil.example\r\n\r\n<script>"
	n.Entry.Key.Path = "cart/cart.go\nX-Injected: yes"
	n.Entry.Author.Name = "Ann\r\nReply-To: mallory@evil.example"
	n.Entry.Last.Message = "boom\r\nSubject: other"
	n.To = []string{"ann@example.com", "x@example.com\r\nBcc: mallory@evil.example"}
	e, rejected, err := m.Compose(n)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := e.Bytes()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"Bcc", "X-Injected", "Reply-To"} {
		if v := msg.Header.Get(h); v != "" {
			t.Errorf("header %s was injected: %q", h, v)
		}
	}
	head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		for _, h := range []string{"Bcc:", "X-Injected:", "Reply-To:", "Subject: other"} {
			if strings.HasPrefix(line, h) {
				t.Errorf("an injected header line: %q", line)
			}
		}
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if strings.ContainsAny(subject, "\r\n") || !strings.HasPrefix(subject, "Error on web-3") {
		t.Errorf("Subject = %q", subject)
	}
	if len(rejected) != 1 || len(e.To) != 1 {
		t.Errorf("recipients %v, rejected %v; want the address with CRLF rejected", e.To, rejected)
	}
	_, html := parts(t, msg)
	if strings.Contains(html, "<script>") {
		t.Error("the HTML body carries an unescaped <script>")
	}
}

func TestRecipients(t *testing.T) {
	valid, invalid := notify.Recipients([]string{"ann@example.com", "ANN@example.com", "Bob <bob@example.com>", "not an address", "", "carl@example.co.uk", "dora@例え.jp", "eve@localhost"})
	if diff := cmp.Diff([]string{"ann@example.com", "bob@example.com", "carl@example.co.uk", "dora@例え.jp", "eve@localhost"}, valid); diff != "" {
		t.Errorf("valid mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"not an address", ""}, invalid); diff != "" {
		t.Errorf("invalid mismatch (-want +got):\n%s", diff)
	}
}

func TestLogMode(t *testing.T) {
	var buf bytes.Buffer
	m := mailer(t, notify.Config{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if !m.LogMode() {
		t.Fatal("no smtp host, but not in log mode")
	}
	if err := m.Notify(context.Background(), errorNotice()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"log mode", "Error on web-3 in cart/cart.go", "ann@example.com", "cart/cart.go:41"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestNewMailerRejectsBadSettings(t *testing.T) {
	for _, cfg := range []notify.Config{
		{From: "not an address"},
		{BaseURL: "://nope"},
		{Host: "smtp.example.com:notaport:1"},
	} {
		if _, err := notify.NewMailer(cfg); err == nil {
			t.Errorf("NewMailer(%+v) accepted it", cfg)
		}
	}
}

func TestNoValidRecipientIsPermanent(t *testing.T) {
	m := mailer(t, notify.Config{})
	n := errorNotice()
	n.To = []string{"bad"}
	if err := m.Notify(context.Background(), n); !errors.Is(err, flawless.ErrPermanent) {
		t.Errorf("Notify = %v, want ErrPermanent", err)
	}
}

func BenchmarkRenderEmail(b *testing.B) {
	m := mailer(b, notify.Config{})
	n := errorNotice()
	n.Entry.Last.Vars = []report.Var{{Name: "user_id", Value: "42"}}
	b.ReportAllocs()
	for b.Loop() {
		e, _, err := m.Compose(n)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Bytes(); err != nil {
			b.Fatal(err)
		}
	}
}
