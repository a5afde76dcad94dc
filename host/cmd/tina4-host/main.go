// Command tina4-host is the tina4go/sessions reference server and plugin
// tool.
//
//	tina4-host [serve]             run the reference server (TINA4_ADDR, default 127.0.0.1:7145)
//	tina4-host plugins             list the handlers in the plugin directory
//	tina4-host plugins verify NAME launch NAME and run the quick conformance checks through it
//	tina4-host plugins verify --full NAME  the whole conformance kit (sdk/handlertest)
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tina4go/sessions/host/config"
)

const usage = `usage:
  tina4-host [serve]              run the reference server on TINA4_ADDR (default 127.0.0.1:7145)
  tina4-host plugins              list the session handlers in the plugin directory
  tina4-host plugins verify NAME  launch handler NAME and run the quick conformance checks through it
  tina4-host plugins verify --full NAME
                                  run the whole conformance kit against handler NAME (any language;
                                  about 10s; the same checks and messages as sdk/handlertest)

Configuration comes from the environment and a .env file in the working directory;
see docs/configuration.md.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(config.Options{})
	if err != nil {
		fmt.Fprintln(stderr, "tina4-host:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level(cfg.LogLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch {
	case len(args) == 0 || args[0] == "serve":
		return serve(ctx, cfg, log, stderr)
	case args[0] == "plugins" && len(args) == 1:
		return listPlugins(ctx, cfg, log, stdout, stderr)
	case args[0] == "plugins" && len(args) == 3 && args[1] == "verify":
		return verifyPlugin(ctx, cfg, log, args[2], false, stdout, stderr)
	case args[0] == "plugins" && len(args) == 4 && args[1] == "verify" && args[2] == "--full":
		return verifyPlugin(ctx, cfg, log, args[3], true, stdout, stderr)
	case args[0] == "help" || args[0] == "-h" || args[0] == "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tina4-host: unknown command %q\n%s", strings.Join(args, " "), usage)
		return 2
	}
}

func level(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
