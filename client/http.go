package client

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"sort"

	"github.com/flawless-go/flawless/report"
)

// HTTPConfig configures Middleware. The zero HTTPConfig is ready to use.
type HTTPConfig struct {
	// Body sends up to MaxBody bytes of the request body with a report.
	// Off by default: bodies often carry personal data.
	Body bool
	// MaxBody caps the body sent. 0: 4 KiB.
	MaxBody int
	// Scrub matches the names of headers and query parameters whose values
	// are replaced by **scrubbed**. Nil: DefaultScrub. Cookie, Set-Cookie,
	// Authorization and Proxy-Authorization are always scrubbed.
	Scrub *regexp.Regexp
	// Options apply to every report, as with Recover.
	Options []Option
}

// Middleware returns HTTP middleware that reports a panic in a handler,
// with the request, and then panics again, so that net/http behaves as it
// would without it. http.ErrAbortHandler, net/http's way to abort a
// response, is never reported.
//
//	http.ListenAndServe(":8080", client.Middleware(rep, client.HTTPConfig{})(mux))
func Middleware(rep Reporter, cfg HTTPConfig) func(http.Handler) http.Handler {
	if rep == nil {
		panic("client: Middleware with a nil Reporter")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 4 << 10
	}
	if cfg.Scrub == nil {
		cfg.Scrub = DefaultScrub
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body *cappedBuffer
			if cfg.Body && r.Body != nil {
				body = &cappedBuffer{max: cfg.MaxBody}
				r.Body = struct {
					io.Reader
					io.Closer
				}{io.TeeReader(r.Body, body), r.Body}
			}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if !isAbort(v) {
					rp := report.FromPanic(v)
					rp.Request = describeRequest(r, cfg.Scrub, body)
					deliver(r.Context(), rep, rp, apply(cfg.Options))
				}
				panic(v)
			}()
			next.ServeHTTP(w, r)
		})
	}
}

var alwaysScrubbed = map[string]bool{"Cookie": true, "Set-Cookie": true, "Authorization": true, "Proxy-Authorization": true}

// describeRequest returns what a report says of a request: method, URL
// (credentials and secret parameters redacted), headers (secrets
// scrubbed), remote address and, if kept, the start of the body.
func describeRequest(r *http.Request, scrub *regexp.Regexp, body *cappedBuffer) *report.Request {
	q := &report.Request{Method: r.Method, RemoteAddr: r.RemoteAddr, Headers: map[string]string{}}
	u := *r.URL
	u.User = nil
	if u.RawQuery != "" {
		vals := u.Query()
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if scrub.MatchString(k) {
				vals[k] = []string{Scrubbed}
			}
		}
		u.RawQuery = vals.Encode()
	}
	if r.Host != "" && u.Host == "" {
		u.Host = r.Host
	}
	q.URL = RedactURLs(u.String())
	if len(r.Header) > report.MaxHeaders {
		q.Headers["(headers)"] = "too many to list"
	} else {
		for k, vs := range r.Header {
			v := ""
			if len(vs) > 0 {
				v = vs[0]
			}
			if alwaysScrubbed[k] || scrub.MatchString(k) {
				v = Scrubbed
			}
			q.Headers[k] = RedactURLs(v)
		}
	}
	if body != nil {
		q.Body = body.String()
	}
	return q
}

// cappedBuffer keeps the first max bytes written to it.
type cappedBuffer struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	if len(p) > c.max-c.buf.Len() {
		c.cut = true
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	if c.cut {
		return c.buf.String() + "…[cut]"
	}
	return c.buf.String()
}
