// Command SessionMemoryHandler is the example handler from
// docs/writing-a-handler.md: it keeps sessions in the plugin process's
// memory. Build it into the host's plugin directory and select it with
// TINA4_SESSION_HANDLER=SessionMemoryHandler.
//
// Sessions live as long as the plugin process: a restart of the plugin (or
// the host) forgets them. That makes it a good first handler and a poor
// production store.
package main

import (
	"fmt"
	"os"

	"github.com/tina4go/sessions/sdk"
)

func main() {
	store := NewMemoryStore()
	if err := sdk.Serve(sdk.Config{Name: "SessionMemoryHandler", Version: "1.0.0", Handler: store}); err != nil {
		fmt.Fprintln(os.Stderr, err) // never stdout: it carries the plugin handshake
		os.Exit(1)
	}
}
