package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tina4go/sessions/host"
	"github.com/tina4go/sessions/host/config"
)

// serve runs the reference server until ctx is done, then shuts down
// gracefully: in-flight requests finish, then the plugin is stopped.
func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stderr io.Writer) int {
	h, err := host.Open(ctx, host.WithConfig(cfg), host.WithLogger(log), host.WithErrorHandler(jsonUnavailable), host.WithMetrics(nil))
	if err != nil {
		fmt.Fprintln(stderr, "tina4-host:", err)
		return 1
	}
	defer h.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "tina4-host: listen on %s (TINA4_ADDR): %v\n", cfg.Addr, err)
		return 1
	}
	srv := &http.Server{Handler: newServer(h, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("tina4-host serving", "addr", "http://"+ln.Addr().String(), "handler", cfg.Handler)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// SIGHUP swaps the session handler for the one the settings name now,
	// without dropping a request (Host.Reload).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case err := <-errc:
			fmt.Fprintln(stderr, "tina4-host:", err)
			return 1
		case <-hup:
			log.Info("SIGHUP: reloading the session handler")
			if err := h.Reload(ctx); err != nil {
				log.Error("reload failed; the current session handler keeps serving", "error", err)
			} else {
				log.Info("reload done: new calls go to the new session handler")
			}
		case <-ctx.Done():
			break wait
		}
	}
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("shutdown", "error", err)
	}
	if err := h.Close(); err != nil {
		log.Error("stop session handler", "error", err)
	}
	log.Info("stopped")
	return 0
}
