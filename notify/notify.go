// Package notify turns the engine's notices into email and delivers them.
// *Mailer implements flawless.Notifier.
//
// The email holds what a developer needs to act without opening anything
// else: the error, the stack with the blamed line marked and library frames
// dimmed, the variables, the request, why this developer got it (commit,
// author, date, the rules that applied), and links to the most recent
// occurrence, to all of their errors and to a form that silences the error.
// It is HTML with a plain-text alternative; everything that came from a
// report is escaped, and no header can be added or broken from a report.
//
// Delivery is SMTP with a deadline on the dial and on every command,
// STARTTLS or implicit TLS, and AUTH when a user and password are set. A
// 5xx answer is permanent (the error wraps flawless.ErrPermanent); anything
// else is retried by the engine. Without an SMTP host, emails are written to
// the log instead.
package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/jordan-wright/email"
)

// Config configures a Mailer.
type Config struct {
	// Host is the SMTP server, "host" or "host:port" (port 25 when
	// missing; 465 with ImplicitTLS). Empty: log mode, emails are written
	// to Logger instead of sent.
	Host string
	// User and Password are used for AUTH PLAIN when both are set.
	User, Password string
	// StartTLS upgrades the connection with STARTTLS (smtp_use_tls).
	StartTLS bool
	// ImplicitTLS connects with TLS from the start (smtp_implicit_tls).
	ImplicitTLS bool
	// TLS configures TLS. Nil: verify the server against the system roots.
	TLS *tls.Config
	// From is the sender. Empty: flawless@EmailDomain.
	From string
	// EmailDomain is the team's email domain (email_domain_name).
	EmailDomain string
	// BaseURL is where the Flawless pages are, for links ("hostname").
	// Empty: http://localhost:9028.
	BaseURL string
	// Timeout bounds the dial and each SMTP command. 0: 30 seconds.
	Timeout time.Duration
	// Logger receives log-mode emails and delivery warnings. Nil: discard.
	Logger *slog.Logger
	// Now tells the time for the Date header. Nil: time.Now.
	Now func() time.Time
}

// Mailer composes and sends notices as email. It is safe for concurrent
// use; each delivery uses its own connection.
type Mailer struct {
	cfg  Config
	from string
	base *url.URL
	log  *slog.Logger
}

var (
	//go:embed templates
	templateFS      embed.FS
	errorHTML       = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/error.html"))
	errorText       = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/error.txt"))
	problemHTML     = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/problem.html"))
	problemText     = texttemplate.Must(texttemplate.ParseFS(templateFS, "templates/problem.txt"))
	errNoRecipients = errors.New("notify: no valid recipients")
)

// NewMailer checks cfg and returns a Mailer.
func NewMailer(cfg Config) (*Mailer, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Mailer{cfg: cfg, log: cfg.Logger}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	from := cfg.From
	if from == "" {
		domain := cfg.EmailDomain
		if domain == "" {
			domain = "localhost"
		}
		from = "flawless@" + domain
	}
	a, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("notify: smtp_from %q is not a valid address: %w", from, err)
	}
	m.from = a.String()
	base := cfg.BaseURL
	if base == "" {
		base = "http://localhost:9028"
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("notify: hostname %q is not a URL for links", cfg.BaseURL)
	}
	m.base = u
	if cfg.Host != "" && strings.Contains(cfg.Host, ":") {
		_, port, err := net.SplitHostPort(cfg.Host)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("notify: smtp_host %q is not host or host:port", cfg.Host)
		}
	}
	return m, nil
}

// LogMode reports whether emails go to the log instead of an SMTP server.
func (m *Mailer) LogMode() bool { return m.cfg.Host == "" }

func (m *Mailer) addr() string {
	if _, _, err := net.SplitHostPort(m.cfg.Host); err == nil {
		return m.cfg.Host
	}
	if m.cfg.ImplicitTLS {
		return net.JoinHostPort(m.cfg.Host, "465")
	}
	return net.JoinHostPort(m.cfg.Host, "25")
}

// Notify implements flawless.Notifier: it composes the notice and delivers
// it, or writes it to the log in log mode.
func (m *Mailer) Notify(ctx context.Context, n *flawless.Notice) error {
	e, rejected, err := m.Compose(n)
	if err != nil {
		return err
	}
	if len(rejected) > 0 {
		m.log.Warn("invalid recipient addresses left out", "addresses", rejected, "subject", e.Subject)
	}
	if len(e.To) == 0 {
		return fmt.Errorf("%w: %s", flawless.ErrPermanent, errNoRecipients)
	}
	if m.LogMode() {
		m.log.Info("email (log mode: no smtp_host)", "to", e.To, "subject", e.Subject, "body", string(e.Text))
		return nil
	}
	msg, err := e.Bytes()
	if err != nil {
		return fmt.Errorf("notify: render: %w", err)
	}
	return m.send(ctx, e.To, msg)
}

// Compose builds the email for a notice. Invalid and duplicate recipients
// are left out; the invalid ones are returned.
func (m *Mailer) Compose(n *flawless.Notice) (*email.Email, []string, error) {
	to, rejected := Recipients(n.To)
	e := email.NewEmail()
	e.From = m.from
	e.To = to
	e.Subject = headerSafe(n.Subject())
	e.Headers.Set("Date", m.cfg.Now().Format(time.RFC1123Z))
	e.Headers.Set("Message-Id", m.messageID(n))
	e.Headers.Set("X-Flawless-Key", headerSafe(n.Entry.Key.String()))
	var html, text bytes.Buffer
	var err error
	if n.Kind == flawless.NoticeProblem {
		v := struct{ Problem, Health string }{n.Problem, m.link("/check_health", nil, "")}
		if err = problemHTML.Execute(&html, v); err == nil {
			err = problemText.Execute(&text, v)
		}
	} else {
		v := m.view(n)
		if err = errorHTML.Execute(&html, v); err == nil {
			err = errorText.Execute(&text, v)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("notify: render: %w", err)
	}
	e.HTML, e.Text = html.Bytes(), text.Bytes()
	return e, rejected, nil
}

// Recipients returns the valid addresses, without duplicates (compared
// without regard to case), in their order, and the invalid ones.
func Recipients(addrs []string) (valid, invalid []string) {
	return flawless.ValidRecipients(addrs)
}

// messageID is the same for every send of one error's email in one week,
// so that a resend after a failure is recognisably the same message.
func (m *Mailer) messageID(n *flawless.Notice) string {
	h := sha256.New()
	if n.Kind == flawless.NoticeProblem {
		fmt.Fprintf(h, "problem\x00%s\x00%d", n.Problem, n.Time.UnixNano())
	} else {
		fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d", n.Entry.Key.Path, n.Entry.Key.Function, n.Entry.Key.Line, n.Entry.Week.Unix())
		h.Write([]byte(n.Entry.Key.Text))
		fmt.Fprintf(h, "\x00%d", n.Entry.NoticeClaimed.Unix())
	}
	domain := m.cfg.EmailDomain
	if domain == "" {
		domain = "flawless.invalid"
	}
	return "<" + hex.EncodeToString(h.Sum(nil)[:16]) + "@" + headerSafe(domain) + ">"
}

// headerSafe replaces control characters, so that text from a report
// cannot end a header line and start another.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// view is what the error templates show.
type view struct {
	Header, Type, Message, Host, Revision, AdditionalInfo string
	Count                                                 int
	Chain                                                 []report.Link
	Frames                                                []frameView
	Vars                                                  []varGroup
	Request                                               *requestView
	Reasons                                               []string
	Links                                                 struct{ Traceback, Mine, Whitelist string }
}

type frameView struct {
	Path, Function, Text string
	Line                 int
	Blamed, Library      bool
}

type varGroup struct {
	Title string
	Vars  []report.Var
}

type requestView struct {
	Method, URL, RemoteAddr, Body string
	Headers                       []report.Var
}

func (m *Mailer) view(n *flawless.Notice) *view {
	ent := n.Entry
	r := ent.Last
	if r == nil {
		r = &report.Report{}
	}
	v := &view{Type: headerSafe(r.Type), Message: r.Message, Host: headerSafe(r.Hostname), Count: ent.Count, Chain: r.Chain,
		AdditionalInfo: r.AdditionalInfo, Reasons: n.Reasons}
	if v.Host == "" {
		v.Host = "an unknown host"
	}
	if n.Known != nil {
		v.Header = n.Known.Header
	}
	c := ent.Classification
	if c != nil && c.Revision != "" {
		v.Revision = c.Revision[:min(12, len(c.Revision))]
	}
	if len(r.Vars) > 0 {
		v.Vars = append(v.Vars, varGroup{"Values", sortedVars(r.Vars)})
	}
	for i, f := range r.Frames {
		fv := frameView{Path: headerSafe(f.File), Function: headerSafe(f.Function), Line: f.Line, Text: headerSafe(strings.TrimSpace(f.Text)), Library: true}
		if c != nil && i < len(c.Frames) {
			fi := c.Frames[i]
			fv.Path, fv.Blamed = headerSafe(fi.Path), i == c.Blamed
			fv.Library = fi.Verdict != flawless.VerdictBlamable && fi.Verdict != flawless.VerdictKnownError
			if fi.Text != "" {
				fv.Text = headerSafe(strings.TrimSpace(fi.Text))
			}
		}
		v.Frames = append(v.Frames, fv)
		if len(f.Vars) > 0 && !fv.Library {
			v.Vars = append(v.Vars, varGroup{"Variables of " + report.ShortFunction(f.Function) + " (" + fv.Path + ":" + strconv.Itoa(f.Line) + ")", sortedVars(f.Vars)})
		}
	}
	if q := r.Request; q != nil {
		rv := &requestView{Method: q.Method, URL: q.URL, RemoteAddr: q.RemoteAddr, Body: q.Body}
		for k, val := range q.Headers {
			rv.Headers = append(rv.Headers, report.Var{Name: k, Value: val})
		}
		rv.Headers = sortedVars(rv.Headers)
		v.Request = rv
	}
	if len(v.Reasons) == 0 {
		v.Reasons = []string{"You are listed as a recipient of this error."}
	}
	week := ent.Week.Unix()
	v.Links.Traceback = m.link("/view_traceback", url.Values{
		"filename":      {ent.Key.Path},
		"function_name": {ent.Key.Function},
		"line_number":   {strconv.Itoa(lastLine(ent))},
		"text":          {ent.Key.Text},
		"timestamp":     {strconv.FormatInt(week, 10)},
	}, "")
	v.Links.Mine = m.link("/get_weekly_error_report", url.Values{"timestamp": {strconv.FormatInt(week, 10)}}, ent.Developer)
	v.Links.Whitelist = m.link("/add_known_error", url.Values{
		"filename":      {ent.Key.Path},
		"function_name": {ent.Key.Function},
		"code_fragment": {ent.Key.Text},
	}, "")
	return v
}

func lastLine(ent flawless.Entry) int {
	if ent.Classification != nil {
		if f, ok := ent.Classification.BlamedFrame(); ok {
			return f.Line
		}
	}
	return ent.Key.Line
}

func sortedVars(vs []report.Var) []report.Var {
	out := slices.Clone(vs)
	slices.SortStableFunc(out, func(a, b report.Var) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// link builds a URL of the pages with proper escaping.
func (m *Mailer) link(path string, q url.Values, fragment string) string {
	u := *m.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	u.RawQuery = q.Encode()
	u.Fragment = fragment
	return u.String()
}

// Permanent reports whether an SMTP error is a permanent (5xx) rejection.
func Permanent(err error) bool {
	var te *textproto.Error
	return errors.As(err, &te) && te.Code >= 500 && te.Code < 600
}
