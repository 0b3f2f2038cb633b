// Command httpservice is a small net/http service instrumented with
// Flawless: panics in handlers and returned errors are reported to
// flawless-server, along with values from the request's context.
//
//	go run ./cmd/flawless-server &
//	go run ./examples/httpservice
//	curl 'localhost:8080/item?i=7'   # panics: index out of range
//	curl 'localhost:8080/price?sku=x' # a returned error, reported
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"time"

	"github.com/flawless-go/flawless/client"
)

var items = []string{"apple", "bread", "cheese"}

func main() {
	server := flag.String("server", "http://localhost:9028", "flawless-server to report to")
	addr := flag.String("listen", ":8080", "address of this service")
	flag.Parse()

	rep, err := client.NewRemote(client.RemoteConfig{URLs: []string{*server}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Errors logged at Error level are reported too.
	logger := slog.New(client.NewSlogHandler(slog.NewTextHandler(os.Stderr, nil), rep, slog.LevelError))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /item", func(w http.ResponseWriter, r *http.Request) {
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		fmt.Fprintln(w, items[i]) // panics for i >= 3: reported by the middleware
	})
	mux.HandleFunc("GET /price", func(w http.ResponseWriter, r *http.Request) {
		ctx := client.WithValues(r.Context(), "sku", r.URL.Query().Get("sku"))
		p, err := price(r.URL.Query().Get("sku"))
		if err != nil {
			client.Report(ctx, rep, err) // a returned error, blamed where it was made
			logger.ErrorContext(ctx, "price lookup failed", "err", err)
			http.Error(w, "no price", http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, p)
	})
	srv := &http.Server{Addr: *addr, Handler: client.Middleware(rep, client.HTTPConfig{})(mux)}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	fmt.Printf("listening on %s, reporting to %s\n", *addr, *server)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
	}
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep.Close(cctx) // deliver what is pending
}

var errUnknownSKU = errors.New("unknown sku")

func price(sku string) (int, error) {
	if sku != "apple" {
		return 0, fmt.Errorf("price of %q: %w", sku, errUnknownSKU)
	}
	return 3, nil
}
