// Command SessionFileHandler is the file session handler as a plugin binary
// for the tina4go/sessions host. It is started by the host, not by hand, and
// reads its settings (TINA4_SESSION_FOLDER, TINA4_SESSION_SWEEP) from the
// environment the host passes it. It writes nothing to stdout: stdout carries
// the plugin handshake.
package main

import (
	"fmt"
	"os"

	"github.com/tina4go/sessions/plugins/file"
	"github.com/tina4go/sessions/sdk"
)

func main() {
	h, err := file.NewFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	err = sdk.Serve(sdk.Config{Name: file.Name, Version: file.Version, Handler: h})
	h.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
