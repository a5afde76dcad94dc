// Command Echo is the transport benchmark's handler plugin (see
// bench/transport_test.go): Load returns the same 512-byte record from
// memory for any id, Save and Close do nothing. With no store behind it,
// what a Load costs the host is the wire: the transport, the framing and
// the handler process's scheduling. The benchmark's TestMain builds it into
// its plugin directory.
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// recordSize is the size of the record Load returns; bench/transport_test.go
// checks every Load against the same number.
const recordSize = 512

// echo serves one fixed record.
type echo struct{ rec sdk.Record }

func (e echo) Load(context.Context, string) (sdk.Record, error) { return e.rec, nil }
func (echo) Save(context.Context, string, sdk.Record) error     { return nil }
func (echo) Close(context.Context, string) error                { return nil }

func main() {
	rec := sdk.Record{Data: bytes.Repeat([]byte{'e'}, recordSize), Expires: time.Now().Add(24 * time.Hour)}
	if err := sdk.Serve(sdk.Config{Name: "Echo", Version: "0", Handler: echo{rec}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
