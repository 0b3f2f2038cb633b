package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/notify"
	"github.com/flawless-go/flawless/report"
)

// smtpSink runs Postfix's smtp-sink, a real SMTP server that writes each
// message it accepts to a file in dir; extra arguments make it answer
// chosen commands with errors.
type smtpSink struct {
	addr, dir string
	cmd       *exec.Cmd
}

func sinkBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"smtp-sink", "/usr/sbin/smtp-sink"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("smtp-sink is not installed (Debian package postfix); .ci/run installs it for these tests")
	return ""
}

func startSink(t *testing.T, addr string, args ...string) *smtpSink {
	t.Helper()
	bin := sinkBinary(t)
	// smtp-sink writes as an unprivileged user, who must reach the folder
	// (t.TempDir's parent is private).
	dir, err := os.MkdirTemp("", "flawless-smtp-sink-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	t.Cleanup(func() { os.RemoveAll(dir) })
	if addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port
		if err != nil {
			t.Fatal(err)
		}
		addr = ln.Addr().String()
		ln.Close()
	}
	full := []string{"-d", filepath.Join(dir, "%Y%m%d%H%M%S.")}
	if os.Geteuid() == 0 {
		full = append(full, "-u", "nobody")
	}
	full = append(full, args...)
	full = append(full, addr, "10")
	cmd := exec.Command(bin, full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{addr: addr, dir: dir, cmd: cmd}
	t.Cleanup(s.stop)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s
		}
		if i > 100 {
			t.Fatalf("smtp-sink did not start on %s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *smtpSink) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// dumped is one message as smtp-sink wrote it.
type dumped struct {
	rcpts []string
	msg   *mail.Message
}

func (s *smtpSink) messages(t *testing.T) []dumped {
	t.Helper()
	var out []dumped
	filepath.Walk(s.dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var d dumped
		sc := bufio.NewScanner(bytes.NewReader(data))
		headerLines := 0
		for sc.Scan() {
			line := sc.Text()
			headerLines += len(line) + 1
			if v, ok := strings.CutPrefix(line, "X-Rcpt-Args: "); ok {
				d.rcpts = append(d.rcpts, strings.Trim(strings.Fields(strings.TrimPrefix(v, "TO:"))[0], "<>"))
			}
			if strings.HasPrefix(line, "Received: ") {
				sc.Scan() // the Received header takes three lines
				headerLines += len(sc.Text()) + 1
				sc.Scan()
				headerLines += len(sc.Text()) + 1
				break
			}
		}
		if headerLines > len(data) {
			return nil // still being written
		}
		msg, err := mail.ReadMessage(bytes.NewReader(data[headerLines:]))
		if err != nil {
			return nil // still being written
		}
		d.msg = msg
		out = append(out, d)
		return nil
	})
	return out
}

// TestDeliveryThroughARealSMTPServer sends through smtp-sink and checks
// the envelope, the headers and both parts of the body as received.
func TestDeliveryThroughARealSMTPServer(t *testing.T) {
	var sink *smtpSink
	if addr, dir := os.Getenv("FLAWLESS_TEST_SMTP_SINK"), os.Getenv("FLAWLESS_TEST_SMTP_SINK_DIR"); addr != "" && dir != "" {
		// Started by .ci/run; its dump folder may hold earlier messages,
		// so the message is found by its unique text.
		sink = &smtpSink{addr: addr, dir: dir}
	} else {
		sink = startSink(t, "")
	}
	before := len(sink.messages(t))
	m := mailer(t, notify.Config{Host: sink.addr, From: "Flawless <flawless@example.com>"})
	n := errorNotice()
	n.Entry.Last.Message = fmt.Sprintf("index out of range (run %d)", time.Now().UnixNano())
	n.To = []string{"ann@example.com", "watcher@example.com"}
	if err := m.Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	var got *dumped
	var text, html string
	for deadline := time.Now().Add(5 * time.Second); got == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, d := range sink.messages(t)[min(before, len(sink.messages(t))):] {
			// A message still being written does not parse yet.
			if tx, h, err := readParts(d.msg); err == nil && strings.Contains(tx, n.Entry.Last.Message) {
				got, text, html = &d, tx, h
			}
		}
	}
	if got == nil {
		t.Fatal("the message was not found among those smtp-sink received")
	}
	if strings.Join(got.rcpts, ",") != "ann@example.com,watcher@example.com" {
		t.Errorf("envelope recipients %v", got.rcpts)
	}
	if s := got.msg.Header.Get("Subject"); s != "Error on web-3 in cart/cart.go" {
		t.Errorf("Subject = %q", s)
	}
	if id := got.msg.Header.Get("Message-Id"); !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-Id = %q", id)
	}
	if !strings.Contains(text, "> cart/cart.go:41 in github.com/acme/shop/cart.(*Cart).Item") {
		t.Errorf("the text part lacks the blamed frame:\n%s", text)
	}
	if !strings.Contains(html, "background: #ffe3e3") || !strings.Contains(html, "View the most recent occurrence") {
		t.Errorf("the HTML part lacks the marked frame or the links")
	}
}

// TestRetryThenGiveUpWithARealSMTPServer runs the engine against smtp-sink
// answering first with temporary errors, then, restarted on the same
// address, with permanent ones: the notification is retried, then given
// up on, and nothing is delivered twice or lost silently.
func TestRetryThenGiveUpWithARealSMTPServer(t *testing.T) {
	temp := startSink(t, "", "-r", "RCPT")
	m := mailer(t, notify.Config{Host: temp.addr, Timeout: 2 * time.Second})
	store := flawless.NewMemStore()
	blamer := flawless.BlamerFunc(func(context.Context, flawless.Location, int) (flawless.Author, error) {
		return flawless.Author{Email: "ann@example.com", Commit: "abc"}, nil
	})
	e := flawless.New(flawless.Config{Store: store, Blamer: blamer, Notifier: m, Threshold: 1,
		RetryInterval: 100 * time.Millisecond, MaxRetryInterval: 200 * time.Millisecond, DefaultContact: "ops@example.com"})
	defer e.Close(context.Background())
	r := &report.Report{Hostname: "web-1", Type: "string", Message: "boom", Build: report.Build{Path: "github.com/acme/shop"},
		Frames: []report.Frame{{Function: "github.com/acme/shop/cart.Add", File: "/w/cart/cart.go", Line: 3}}}
	if err := e.Report(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	key := report.NewKey("cart/cart.go", "github.com/acme/shop/cart.Add", "", 3)
	get := func() flawless.Entry {
		ent, err := store.Get(context.Background(), e.Week(time.Now()), key)
		if err != nil {
			t.Fatal(err)
		}
		return ent
	}
	waitFor := func(what string, ok func(flawless.Entry) bool) flawless.Entry {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ent := get()
			if ok(ent) {
				return ent
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen: %+v (pending %+v)", what, ent, ent.Pending)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ent := waitFor("two failed attempts", func(x flawless.Entry) bool { return x.Pending != nil && x.Pending.Attempts >= 2 })
	if !strings.Contains(ent.Pending.LastError, "RCPT") || ent.Notified != 0 {
		t.Errorf("after temporary failures: last error %q, notified %d", ent.Pending.LastError, ent.Notified)
	}
	temp.stop()
	startSink(t, temp.addr, "-f", "RCPT")
	ent = waitFor("giving up", func(x flawless.Entry) bool { return x.Pending == nil })
	if ent.Failed != 1 || ent.Notified != 0 {
		t.Errorf("after a permanent failure: failed %d, notified %d; want 1, 0", ent.Failed, ent.Notified)
	}
	if s := e.Stats(); s.GaveUp != 1 || s.Problems < 1 {
		t.Errorf("stats: gave up %d, problems %d", s.GaveUp, s.Problems)
	}
}
