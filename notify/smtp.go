package notify

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"time"

	"github.com/flawless-go/flawless"
)

// send delivers msg to the recipients over SMTP. Every step (dial,
// greeting, each command, the message) has its own deadline, no later than
// ctx's; ctx's end also closes the connection.
func (m *Mailer) send(ctx context.Context, to []string, msg []byte) error {
	addr := m.addr()
	host, _, _ := net.SplitHostPort(addr)
	deadline := func() time.Time {
		d := time.Now().Add(m.cfg.Timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(d) {
			return dl
		}
		return d
	}
	dialer := &net.Dialer{Deadline: deadline()}
	tlsCfg := m.tlsConfig(host)
	var conn net.Conn
	var err error
	if m.cfg.ImplicitTLS {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: tlsCfg}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("notify: connect to %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	step := func() { conn.SetDeadline(deadline()) }
	fail := func(stage string, err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("notify: smtp %s: %w", stage, ctx.Err())
		}
		if Permanent(err) {
			return fmt.Errorf("notify: smtp %s: %w: %w", stage, flawless.ErrPermanent, err)
		}
		return fmt.Errorf("notify: smtp %s: %w", stage, err)
	}

	step()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fail("greeting", err)
	}
	step()
	if err := c.Hello(localName()); err != nil {
		return fail("EHLO", err)
	}
	if m.cfg.StartTLS && !m.cfg.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("notify: %s does not offer STARTTLS (smtp_use_tls is set): %w", addr, flawless.ErrPermanent)
		}
		step()
		if err := c.StartTLS(tlsCfg); err != nil {
			return fail("STARTTLS", err)
		}
	}
	if m.cfg.User != "" && m.cfg.Password != "" {
		step()
		if err := c.Auth(smtp.PlainAuth("", m.cfg.User, m.cfg.Password, host)); err != nil {
			// A refused login, or credentials that would go out unencrypted:
			// retrying will not help.
			return fmt.Errorf("notify: smtp AUTH: %w: %w", flawless.ErrPermanent, err)
		}
	}
	from, _ := mail.ParseAddress(m.from)
	step()
	if err := c.Mail(from.Address); err != nil {
		return fail("MAIL FROM", err)
	}
	var refused []string
	for _, rcpt := range to {
		step()
		if err := c.Rcpt(rcpt); err != nil {
			if Permanent(err) {
				refused = append(refused, rcpt)
				continue
			}
			return fail("RCPT TO", err)
		}
	}
	if len(refused) == len(to) {
		return fmt.Errorf("notify: every recipient was refused (%v): %w", refused, flawless.ErrPermanent)
	}
	step()
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	step()
	if _, err := w.Write(msg); err != nil {
		return fail("message", err)
	}
	step()
	if err := w.Close(); err != nil {
		return fail("end of message", err)
	}
	step()
	c.Quit()
	if len(refused) > 0 {
		m.log.Warn("the SMTP server refused some recipients", "refused", refused)
	}
	return nil
}

func (m *Mailer) tlsConfig(host string) *tls.Config {
	if m.cfg.TLS != nil {
		c := m.cfg.TLS.Clone()
		if c.ServerName == "" {
			c.ServerName = host
		}
		return c
	}
	return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
}

func localName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return headerSafe(h)
}
