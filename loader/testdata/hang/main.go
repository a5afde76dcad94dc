// Command hang is a test plugin named "Hang": it answers Info, then never
// answers Load, Save or Close (it ignores their deadlines too).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tina4go/sessions/sdk"
)

type hang struct{}

func (hang) Load(context.Context, string) (sdk.Record, error) { select {} }
func (hang) Save(context.Context, string, sdk.Record) error   { select {} }
func (hang) Close(context.Context, string) error              { select {} }

func main() {
	if err := sdk.Serve(sdk.Config{Name: "Hang", Version: "0.0.1", Handler: hang{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
