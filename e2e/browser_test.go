// Package e2e tests flawless-server's pages in a real browser (headless
// Chromium, driven with chromedp). It is a module of its own so that the
// library does not depend on the browser driver.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/flawless-go/flawless/report"
)

func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("Chromium is not installed (Debian package chromium); .ci/run installs it for this test")
	return ""
}

// startServer builds and starts flawless-server on a free port with its
// defaults in a temporary directory.
func startServer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "flawless-server")
	build := exec.Command("go", "build", "-o", bin, "./cmd/flawless-server")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "FLAWLESS_LISTEN=127.0.0.1:0", "FLAWLESS_REPORT_ERROR_THRESHOLD=1")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "Flawless is listening on "); ok {
			go io.Copy(io.Discard, stdout)
			return "http://" + addr
		}
	}
	t.Fatalf("the server did not start:\n%s", stderr.String())
	return ""
}

func post(t *testing.T, base string, r *report.Report) {
	t.Helper()
	body, _ := report.Marshal(r)
	resp, err := http.Post(base+"/api/v1/reports", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingestion answered %d", resp.StatusCode)
	}
}

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("FLAWLESS_E2E_SCREENSHOTS")
	if dir == "" {
		dir = "screenshots"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestLeaderboardTracebackAndAddKnownError opens the leaderboard, follows
// a traceback link, submits the add-known-error form from there, and finds
// the entry in view_config; it saves a screenshot of each page.
func TestLeaderboardTracebackAndAddKnownError(t *testing.T) {
	exe := chromium(t)
	base := startServer(t)
	for i := range 3 {
		post(t, base, &report.Report{
			Hostname: "web-1", Type: "runtime.boundsError", Message: "index out of range [3] with length 3",
			Build: report.Build{Path: "github.com/acme/shop"},
			Frames: []report.Frame{
				{Function: "github.com/acme/shop/cart.(*Cart).Item", File: "/home/ci/shop/cart/cart.go", Line: 41, Text: "return c.items[i]"},
				{Function: "github.com/acme/shop/api.(*Server).handleCart", File: "/home/ci/shop/api/cart.go", Line: 88 + i%2, Text: "item := s.cart.Item(n)"},
			},
			Vars: []report.Var{{Name: "user_id", Value: "42"}},
		})
	}
	shots := screenshotDir(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	must := func(step string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("browser, %s: %v", step, err)
		}
	}
	// The first call starts the browser; it must not carry a timeout.
	must("open the leaderboard", chromedp.Do(ctx, chromedp.Navigate(base+"/")))
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	shot := func(step string) []byte {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 gives PNG
		must(step, err)
		return png
	}
	text := func(step string, sel chromedp.CSS) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		must(step, err)
		return s
	}
	must("leaderboard", chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("table.board"))))
	board := text("leaderboard text", "main")
	png1 := shot("leaderboard screenshot")
	must("follow a traceback link", chromedp.Do(ctx, chromedp.Click(chromedp.CSS("a.traceback")), chromedp.WaitVisible(chromedp.CSS("table.stack"))))
	traceback := text("traceback text", "main")
	png2 := shot("traceback screenshot")
	must("open the add-known-error form", chromedp.Do(ctx,
		chromedp.Click(chromedp.Search(`//a[contains(., "Add to the known errors")]`)),
		chromedp.WaitVisible(chromedp.ID("rule-form")),
		chromedp.SetValue(chromedp.CSS(`input[name="min_alert_threshold"]`), "5"),
		chromedp.SetValue(chromedp.CSS(`input[name="email_recipients"]`), "oncall@example.com")))
	png3 := shot("form screenshot")
	must("submit the form", chromedp.Do(ctx, chromedp.Submit(chromedp.ID("rule-form")), chromedp.WaitVisible(chromedp.ID("entries"))))
	entries := text("view_config text", "#entries")
	png4 := shot("view_config screenshot")
	for name, png := range map[string][]byte{"leaderboard.png": png1, "traceback.png": png2, "add_known_error.png": png3, "view_config.png": png4} {
		if len(png) < 1000 {
			t.Errorf("screenshot %s is empty", name)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(board, "cart/cart.go") || !strings.Contains(board, "no repository to blame in") {
		t.Errorf("leaderboard text:\n%s", board)
	}
	if !strings.Contains(traceback, "index out of range") || !strings.Contains(traceback, "cart/cart.go:41") || !strings.Contains(traceback, "user_id") {
		t.Errorf("traceback text:\n%s", traceback)
	}
	if !strings.Contains(entries, "cart/cart.go") || !strings.Contains(entries, "oncall@example.com") || !strings.Contains(entries, "known_errors.toml") {
		t.Errorf("view_config entries:\n%s", entries)
	}
}
