package file_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/tina4go/sessions/plugins/file"
	"github.com/tina4go/sessions/sdk"
)

func Example() {
	dir, err := os.MkdirTemp("", "sessions-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	h, err := file.New(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer h.Stop()

	ctx := context.Background()
	id := strings.Repeat("a", 43) // the host makes these from 32 random bytes
	rec := sdk.Record{Data: []byte("sealed token"), Expires: time.Now().Add(time.Hour)}
	if err := h.Save(ctx, id, rec); err != nil {
		log.Fatal(err)
	}
	got, err := h.Load(ctx, id)
	fmt.Println(string(got.Data), err)

	_ = h.Close(ctx, id)
	_, err = h.Load(ctx, id)
	fmt.Println(errors.Is(err, sdk.ErrNotFound))
	// Output:
	// sealed token <nil>
	// true
}

func ExampleHandler_Sweep() {
	dir, err := os.MkdirTemp("", "sessions-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// With the background sweeper off, sweep when it suits you.
	h, err := file.New(dir, file.WithSweepInterval(0))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Stop()

	ctx := context.Background()
	past := sdk.Record{Data: []byte("old"), Expires: time.Now().Add(-time.Minute)}
	_ = h.Save(ctx, strings.Repeat("a", 43), past)
	_ = h.Save(ctx, strings.Repeat("b", 43), past)

	removed, err := h.Sweep(time.Now())
	fmt.Println(removed, err)
	// Output: 2 <nil>
}

func ExampleHandler_SaveIf() {
	dir, err := os.MkdirTemp("", "sessions-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	h, err := file.New(dir, file.WithSweepInterval(0))
	if err != nil {
		log.Fatal(err)
	}
	defer h.Stop()

	ctx := context.Background()
	id := strings.Repeat("a", 43)
	rec := sdk.Record{Data: []byte("v1"), Expires: time.Now().Add(time.Hour)}
	first, _ := h.SaveIf(ctx, id, rec, 0) // 0: only if there is no session yet

	// Another request saves over the version it loaded...
	rec.Data = []byte("v2")
	_, err = h.SaveIf(ctx, id, rec, first)
	fmt.Println(err)

	// ...so a request that still holds the first version gets a conflict
	// carrying the record as it is now.
	rec.Data = []byte("stale")
	_, err = h.SaveIf(ctx, id, rec, first)
	var conflict *sdk.ConflictError
	if errors.As(err, &conflict) {
		fmt.Println(conflict.Found, string(conflict.Current.Data))
	}
	// Output:
	// <nil>
	// true v2
}
