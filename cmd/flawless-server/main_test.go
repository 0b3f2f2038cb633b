package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/flawless-go/flawless/store/bolt"
	"github.com/flawless-go/flawless/web"
)

func noEnv(string) string { return "" }

func runCmd(t *testing.T, stdin string, env func(string) string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb, env)
	return code, out.String(), errb.String()
}

func TestOptions(t *testing.T) {
	code, out, _ := runCmd(t, "", noEnv, "options")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, o := range options {
		if !strings.Contains(out, o.name) || !strings.Contains(out, "FLAWLESS_"+strings.ToUpper(o.name)) {
			t.Errorf("options does not describe %s", o.name)
		}
	}
	for _, want := range []string{`listen                          string           default ":9028"`, "report_error_threshold", "default 3", "duration"} {
		if !strings.Contains(out, want) {
			t.Errorf("options lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := runCmd(t, "", noEnv, "help"); code != 0 || !strings.Contains(out, "configure") {
		t.Errorf("help = %d %s", code, out)
	}
	if code, _, errs := runCmd(t, "", noEnv, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Errorf("an unknown command = %d %s", code, errs)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "flawless.toml")
	rulesDir := filepath.Join(dir, "rules")
	tests := []struct {
		reason, config, rule string
		code                 int
		want                 string
	}{
		{"a good configuration", "listen = \":9100\"\nconfig_dir_path = \"" + rulesDir + "\"\n", "", 0, "are fine"},
		{"an unknown option", "config_dir_path = \"" + rulesDir + "\"\n\nlisten_port = 9100\n", "", 1, conf + ":3:1: unknown option \"listen_port\""},
		{"a wrong type", "config_dir_path = \"" + rulesDir + "\"\nreport_error_threshold = \"three\"\n", "", 1, conf + ":2:"},
		{"a bad value", "config_dir_path = \"" + rulesDir + "\"\n  time_zone = \"Mars/Olympus\"\n", "", 1, conf + ":2:3: time_zone"},
		{"a bad regular expression", "config_dir_path = \"" + rulesDir + "\"\nonly_blame_filepaths_matching = [\"(\"]\n", "", 1, conf + ":2:1: only_blame_filepaths_matching: bad regular expression"},
		{"a bad date", "config_dir_path = \"" + rulesDir + "\"\nreport_only_after_minimum_date = \"1-1-2010\"\n", "", 1, "report_only_after_minimum_date"},
		{"a bad rule file", "config_dir_path = \"" + rulesDir + "\"\n", "[[watch]]\nemail = \"nope\"\nfilepath = \"x\"\n", 1, "watched_files.toml:2:1: email"},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			writeFile(t, conf, tt.config)
			os.RemoveAll(rulesDir)
			if tt.rule != "" {
				writeFile(t, filepath.Join(rulesDir, "watched_files.toml"), tt.rule)
			}
			code, out, errs := runCmd(t, "", noEnv, "check", "-conf", conf)
			if code != tt.code || !strings.Contains(out+errs, tt.want) {
				t.Errorf("check = %d\nstdout: %s\nstderr: %s\nwant %d with %q", code, out, errs, tt.code, tt.want)
			}
		})
	}
	if code, _, errs := runCmd(t, "", noEnv, "check", "-conf", filepath.Join(dir, "missing.toml")); code != 1 || !strings.Contains(errs, "missing.toml") {
		t.Errorf("a missing explicit file = %d %s", code, errs)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	env := map[string]string{"FLAWLESS_REPORT_ERROR_THRESHOLD": "7", "FLAWLESS_SMTP_USE_TLS": "true", "FLAWLESS_ONLY_BLAME_FILEPATHS_MATCHING": "cmd/, internal/"}
	cfg, err := LoadConfig(filepath.Join(t.TempDir(), "none.toml"), false, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReportErrorThreshold != 7 || !cfg.SMTPUseTLS || strings.Join(cfg.OnlyBlameFilepathsMatching, "|") != "cmd/|internal/" {
		t.Errorf("config = %+v", cfg)
	}
	_, err = LoadConfig("none.toml", false, func(k string) string {
		if k == "FLAWLESS_MAX_REPORT_BYTES" {
			return "lots"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "FLAWLESS_MAX_REPORT_BYTES") {
		t.Errorf("a bad variable: %v", err)
	}
}

func TestConfigureThroughAPipe(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, ".git"), 0o755)
	conf := filepath.Join(dir, "flawless.toml")
	answers := strings.Join([]string{
		"port?", "99999", "9100", // two bad ports, then a good one
		"not a url", "http://flawless.example.com:9100",
		"smtp.example.com:587", "mailer", "", "hunter2", "maybe", "y",
		"example", "example.com",
		"ops at example", "ops@example.com",
		"", "",
		filepath.Join(dir, "nothing-here"), repo,
	}, "\n") + "\n"
	code, out, errs := runCmd(t, answers, noEnv, "configure", "-conf", conf)
	if code != 0 {
		t.Fatalf("configure = %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"is not a port number", "give a URL", "a password is needed", "please answer y or n", "is not a domain", "is not an email address", "is not a git repository"} {
		if !strings.Contains(out, want) {
			t.Errorf("configure did not re-ask with %q", want)
		}
	}
	cfg, err := LoadConfig(conf, true, noEnv)
	if err != nil {
		t.Fatalf("the written file does not load: %v", err)
	}
	if cfg.Listen != ":9100" || cfg.SMTPHost != "smtp.example.com:587" || cfg.SMTPPassword != "hunter2" || !cfg.SMTPUseTLS ||
		cfg.DefaultContact != "ops@example.com" || cfg.RepoDir != repo || cfg.EmailDomainName != "example.com" {
		t.Errorf("written config = %+v", cfg)
	}
	// Running out of answers stops without writing or crashing.
	os.Remove(conf)
	code, _, errs = runCmd(t, "9100\n", noEnv, "configure", "-conf", conf)
	if code != 1 || !strings.Contains(errs, "nothing was written") {
		t.Errorf("configure with too few answers = %d %s", code, errs)
	}
	if _, err := os.Stat(conf); err == nil {
		t.Error("a file was written from too few answers")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs serve in this process on a free port; its output goes
// to out.
func startServer(t *testing.T, cfg Config, out io.Writer) (string, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, out, out, ready) }()
	select {
	case addr := <-ready:
		return "http://" + addr, cancel, done
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not start")
	}
	return "", cancel, done
}

func TestStartAndShutdown(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDirPath, cfg.ConfigDirPath = filepath.Join(dir, "data"), filepath.Join(dir, "rules")
	cfg.AdminToken, cfg.SMTPPassword, cfg.IngestToken = "adm-token-123", "smtp-pass-456", "ing-token-789"
	cfg.SMTPHost, cfg.SMTPUser, cfg.LogLevel = "127.0.0.1:1", "mailer", "debug"
	cfg.RepoURL = "file:///nonexistent/repo"
	cfg.RepoDir = filepath.Join(dir, "no-repo")
	var out syncBuffer
	// The clone fails (no such repository): the error must not show secrets either.
	if err := serve(context.Background(), cfg, &out, &out, nil); err == nil {
		t.Fatal("serve started without its repository")
	}
	cfg.RepoURL, cfg.RepoDir = "", ""
	base, cancel, done := startServer(t, cfg, &out)
	// A report whose delivery fails (nothing listens on port 1) makes the
	// server log SMTP errors.
	rep, _ := report.Marshal(&report.Report{Message: "m", Build: report.Build{Path: "github.com/flawless-go/flawless"},
		Frames: []report.Frame{{Function: "github.com/flawless-go/flawless.New", File: "/x/engine.go", Line: 1}}})
	req, _ := http.NewRequest("POST", base+"/api/v1/reports", bytes.NewReader(rep))
	req.Header.Set("Authorization", "Bearer ing-token-789")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingestion: %v", err)
	}
	resp, err := http.Get(base + "/check_health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Status: OK") {
		t.Fatalf("health = %d %s", resp.StatusCode, body)
	}
	for _, secret := range []string{"adm-token-123", "smtp-pass-456", "ing-token-789"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("the health page shows the secret %s", secret)
		}
	}
	for _, f := range []string{"known_errors.toml", "watched_files.toml"} {
		if _, err := os.Stat(filepath.Join(cfg.ConfigDirPath, f)); err != nil {
			t.Errorf("the rules directory lacks %s", f)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	logs := out.String()
	if !strings.Contains(logs, "Flawless is listening") || !strings.Contains(logs, "level=") {
		t.Fatalf("no banner or log lines were captured:\n%s", logs)
	}
	for _, secret := range []string{"adm-token-123", "smtp-pass-456", "ing-token-789"} {
		if strings.Contains(logs, secret) {
			t.Errorf("a log line shows the secret %s", secret)
		}
	}
}

// TestKillDoesNotLoseAcceptedReports builds the server, posts reports from
// several goroutines, kills the server with SIGKILL mid-stream, restarts
// it, and finds every report that got a 202 counted.
func TestKillDoesNotLoseAcceptedReports(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "flawless-server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "FLAWLESS_LISTEN=127.0.0.1:0", "FLAWLESS_DATA_DIR_PATH="+filepath.Join(dir, "data"),
		"FLAWLESS_CONFIG_DIR_PATH="+filepath.Join(dir, "rules"), "FLAWLESS_REPO_DIR=", "FLAWLESS_LOG_LEVEL=warn")
	start := func() (*exec.Cmd, string) {
		cmd := exec.Command(bin, "start") // no flawless.toml in dir: all defaults
		cmd.Dir = dir
		cmd.Env = env
		stdout, _ := cmd.StdoutPipe()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "Flawless is listening on "); ok {
				go io.Copy(io.Discard, stdout)
				return cmd, "http://" + addr
			}
		}
		cmd.Wait()
		t.Fatalf("the server did not say where it listens:\n%s", stderr.String())
		return nil, ""
	}
	cmd, base := start()
	var accepted atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	client := &http.Client{Timeout: 5 * time.Second}
	for g := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := &report.Report{Hostname: "h", Message: "m", Build: report.Build{Path: "github.com/acme/shop"},
					Frames: []report.Frame{{Function: fmt.Sprintf("github.com/acme/shop/p%d.F", g%3), File: fmt.Sprintf("/w/p%d/f.go", g%3), Line: 1 + i%4}}}
				body, _ := report.Marshal(r)
				resp, err := client.Post(base+"/api/v1/reports", "application/json", bytes.NewReader(body))
				if err != nil {
					return // the server is gone
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					accepted.Add(1)
				}
			}
		})
	}
	time.Sleep(700 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	wg.Wait()
	if accepted.Load() < 10 {
		t.Fatalf("only %d reports were accepted before the kill", accepted.Load())
	}
	cmd, base = start() // the store opens cleanly after a kill
	resp, err := http.Get(base + "/check_health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the restarted server: %v", err)
	}
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	st, err := bolt.Open(filepath.Join(dir, "data", "flawless.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	weeks, _ := st.Weeks(context.Background())
	counted := 0
	for _, w := range weeks {
		ents, _ := st.Entries(context.Background(), w)
		for _, e := range ents {
			counted += e.Count
		}
	}
	if int64(counted) < accepted.Load() {
		t.Errorf("%d reports got a 202, but %d are counted after the kill", accepted.Load(), counted)
	}
	t.Logf("%d accepted, %d counted (a report in flight at the kill may be counted without its 202)", accepted.Load(), counted)
}

// BenchmarkIngestDurable posts one repeated error over loopback HTTP with
// keep-alive from 8 goroutines to the handler with the durable store,
// against a bare net/http handler that decodes the same JSON and answers
// 202, in the same run.
func BenchmarkIngestDurable(b *testing.B) {
	r := &report.Report{Hostname: "web-1", Type: "string", Message: "boom", Build: report.Build{Path: "github.com/acme/shop"},
		Frames: []report.Frame{{Function: "github.com/acme/shop/cart.Add", File: "/w/cart/cart.go", Line: 7}}}
	body, _ := report.Marshal(r)
	bench := func(b *testing.B, h http.Handler) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
		b.SetParallelism(4)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Post(srv.URL+"/api/v1/reports", "application/json", bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	b.Run("bare", func(b *testing.B) {
		bench(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			data, _ := io.ReadAll(r.Body)
			if _, err := report.Decode(data); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}))
	})
	b.Run("bolt", func(b *testing.B) {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "flawless.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		e := flawless.New(flawless.Config{Store: st})
		defer e.Close(context.Background())
		h, _ := web.New(web.Config{Engine: e})
		bench(b, h)
	})
}
