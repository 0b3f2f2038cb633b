package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/notify"
)

// smtpServer is a small SMTP server for tests. replies overrides the
// answer to a command ("RCPT", "DATA", "." for the end of the message,
// "MAIL"); hang makes it stop answering after the greeting.
type smtpServer struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config // offered with STARTTLS, or used from the start
	implicit bool
	user, pw string
	hang     bool

	mu       sync.Mutex
	replies  map[string][]string // queued replies per command
	messages []received
	authed   bool
}

type received struct {
	from string
	to   []string
	data []byte
	tls  bool
}

func newSMTPServer(t *testing.T, setup func(*smtpServer)) *smtpServer {
	s := &smtpServer{t: t, replies: map[string][]string{}}
	if setup != nil {
		setup(s)
	}
	var err error
	if s.implicit {
		s.ln, err = tls.Listen("tcp", "127.0.0.1:0", s.tls)
	} else {
		s.ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) addr() string { return s.ln.Addr().String() }

func (s *smtpServer) reply(cmd, def string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.replies[cmd]; len(q) > 0 {
		s.replies[cmd] = q[1:]
		return q[0]
	}
	return def
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_, isTLS := c.(*tls.Conn)
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 test.example ESMTP")
	if s.hang {
		time.Sleep(5 * time.Second)
		return
	}
	var msg received
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch cmd {
		case "EHLO", "HELO":
			ext := []string{"250-test.example"}
			if s.tls != nil && !isTLS {
				ext = append(ext, "250-STARTTLS")
			}
			if s.user != "" {
				ext = append(ext, "250-AUTH PLAIN")
			}
			ext = append(ext, "250 8BITMIME")
			for _, e := range ext {
				w.WriteString(e + "\r\n")
			}
			w.Flush()
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, isTLS = tc, true
			r, w = bufio.NewReader(tc), bufio.NewWriter(tc)
		case "AUTH":
			f := strings.Fields(line)
			raw, _ := base64.StdEncoding.DecodeString(f[len(f)-1])
			parts := strings.Split(string(raw), "\x00")
			if len(parts) == 3 && parts[1] == s.user && parts[2] == s.pw {
				s.mu.Lock()
				s.authed = true
				s.mu.Unlock()
				say("235 ok")
			} else {
				say("535 bad credentials")
			}
		case "MAIL":
			from := strings.Fields(strings.TrimPrefix(line, "MAIL FROM:"))[0] // drop BODY=8BITMIME and the like
			msg = received{from: strings.Trim(from, "<>"), tls: isTLS}
			say(s.reply("MAIL", "250 ok"))
		case "RCPT":
			rep := s.reply("RCPT", "250 ok")
			if strings.HasPrefix(rep, "250") {
				msg.to = append(msg.to, strings.Trim(strings.TrimPrefix(line, "RCPT TO:"), "<>"))
			}
			say(rep)
		case "DATA":
			rep := s.reply("DATA", "354 go on")
			say(rep)
			if !strings.HasPrefix(rep, "354") {
				continue
			}
			var data bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			rep = s.reply(".", "250 queued")
			if strings.HasPrefix(rep, "250") {
				msg.data = data.Bytes()
				s.mu.Lock()
				s.messages = append(s.messages, msg)
				s.mu.Unlock()
			}
			say(rep)
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 command not recognized") // the SMTP answer to a command this test server does not speak
		}
	}
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.messages...)
}

// selfSigned returns a server TLS config and a client one that trusts it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func TestDeliver(t *testing.T) {
	srv := newSMTPServer(t, nil)
	m := mailer(t, notify.Config{Host: srv.addr(), From: "Flawless <flawless@example.com>"})
	n := errorNotice()
	n.To = []string{"ann@example.com", "watcher@example.com", "ANN@example.com"}
	if err := m.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := srv.received()
	if len(got) != 1 {
		t.Fatalf("%d messages received", len(got))
	}
	if got[0].from != "flawless@example.com" || strings.Join(got[0].to, ",") != "ann@example.com,watcher@example.com" {
		t.Errorf("envelope from %q to %v", got[0].from, got[0].to)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got[0].data))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Subject") != "Error on web-3 in cart/cart.go" || !strings.Contains(msg.Header.Get("From"), "flawless@example.com") {
		t.Errorf("headers: %v", msg.Header)
	}
	text, html := parts(t, msg)
	if !strings.Contains(text, "> cart/cart.go:41") || !strings.Contains(html, "cart/cart.go:41") {
		t.Errorf("bodies do not carry the stack")
	}
}

func TestDeliverWithSTARTTLSAndAuth(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := newSMTPServer(t, func(s *smtpServer) { s.tls, s.user, s.pw = serverTLS, "flawless", "s3cret" })
	m := mailer(t, notify.Config{Host: srv.addr(), StartTLS: true, TLS: clientTLS, User: "flawless", Password: "s3cret"})
	if err := m.Notify(context.Background(), errorNotice()); err != nil {
		t.Fatal(err)
	}
	got := srv.received()
	if len(got) != 1 || !got[0].tls || !srv.authed {
		t.Errorf("received %d, over TLS %v, authenticated %v", len(got), len(got) > 0 && got[0].tls, srv.authed)
	}
	bad := mailer(t, notify.Config{Host: srv.addr(), StartTLS: true, TLS: clientTLS, User: "flawless", Password: "wrong"})
	if err := bad.Notify(context.Background(), errorNotice()); !errors.Is(err, flawless.ErrPermanent) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("refused login: %v, want ErrPermanent without the password", err)
	}
	noTLS := newSMTPServer(t, nil)
	m2 := mailer(t, notify.Config{Host: noTLS.addr(), StartTLS: true})
	if err := m2.Notify(context.Background(), errorNotice()); !errors.Is(err, flawless.ErrPermanent) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("a server without STARTTLS: %v", err)
	}
}

func TestDeliverWithImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSigned(t)
	srv := newSMTPServer(t, func(s *smtpServer) { s.tls, s.implicit = serverTLS, true })
	m := mailer(t, notify.Config{Host: srv.addr(), ImplicitTLS: true, TLS: clientTLS})
	if err := m.Notify(context.Background(), errorNotice()); err != nil {
		t.Fatal(err)
	}
	if got := srv.received(); len(got) != 1 || !got[0].tls {
		t.Errorf("received %+v", got)
	}
}

func TestDeliveryFailures(t *testing.T) {
	tests := []struct {
		reason    string
		replies   map[string][]string
		permanent bool
		delivered int
	}{
		{"a temporary answer to DATA is retried later", map[string][]string{"DATA": {"451 try later"}}, false, 0},
		{"a temporary answer at the end of the message", map[string][]string{".": {"452 no space"}}, false, 0},
		{"every recipient refused is permanent", map[string][]string{"RCPT": {"550 no such user", "550 no such user"}}, true, 0},
		{"one recipient refused: the other still gets it", map[string][]string{"RCPT": {"550 no such user"}}, false, 1},
		{"a refused sender is permanent", map[string][]string{"MAIL": {"553 sender rejected"}}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			srv := newSMTPServer(t, func(s *smtpServer) { s.replies = tt.replies })
			m := mailer(t, notify.Config{Host: srv.addr()})
			n := errorNotice()
			n.To = []string{"ann@example.com", "bob@example.com"}
			err := m.Notify(context.Background(), n)
			if tt.delivered > 0 {
				if err != nil {
					t.Fatalf("Notify = %v", err)
				}
			} else if err == nil {
				t.Fatal("Notify succeeded")
			} else if errors.Is(err, flawless.ErrPermanent) != tt.permanent {
				t.Errorf("Notify = %v; permanent %v, want %v", err, errors.Is(err, flawless.ErrPermanent), tt.permanent)
			}
			if got := len(srv.received()); got != tt.delivered {
				t.Errorf("%d messages delivered, want %d", got, tt.delivered)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	srv := newSMTPServer(t, func(s *smtpServer) { s.hang = true })
	m := mailer(t, notify.Config{Host: srv.addr(), Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := m.Notify(context.Background(), errorNotice())
	if err == nil || errors.Is(err, flawless.ErrPermanent) {
		t.Errorf("a server that stops answering: %v, want a temporary error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Notify took %v with a 200 ms timeout", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	slow := mailer(t, notify.Config{Host: srv.addr(), Timeout: time.Minute})
	start = time.Now()
	if err := slow.Notify(ctx, errorNotice()); err == nil {
		t.Error("Notify succeeded against a hung server")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the context's deadline was not honoured: %v", d)
	}
	dead := mailer(t, notify.Config{Host: "127.0.0.1:1", Timeout: time.Second})
	if err := dead.Notify(context.Background(), errorNotice()); err == nil || errors.Is(err, flawless.ErrPermanent) {
		t.Errorf("a closed port: %v, want a temporary error", err)
	}
}
