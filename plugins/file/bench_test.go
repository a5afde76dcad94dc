package file

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tina4go/sessions/sdk"
)

// benchHandler is a Handler on a fresh folder with the sweeper off.
func benchHandler(b *testing.B) *Handler {
	b.Helper()
	h, err := New(b.TempDir(), WithSweepInterval(0), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(h.Stop)
	return h
}

// benchRecord is a record of a typical sealed session's size.
func benchRecord() sdk.Record {
	return sdk.Record{Data: make([]byte, 1024), Expires: time.Now().Add(time.Hour)}
}

// BenchmarkSave is one Save (temporary file, fsync, rename) of 1 KiB.
func BenchmarkSave(b *testing.B) {
	h := benchHandler(b)
	ctx, id, rec := context.Background(), newBenchID(), benchRecord()
	for b.Loop() {
		if err := h.Save(ctx, id, rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveIf is one successful SaveIf (temporary file, fsync, then
// under the stripe lock: header read, version check, rename) of 1 KiB.
func BenchmarkSaveIf(b *testing.B) {
	h := benchHandler(b)
	ctx, id, rec := context.Background(), newBenchID(), benchRecord()
	var version uint64
	for b.Loop() {
		v, err := h.SaveIf(ctx, id, rec, version)
		if err != nil {
			b.Fatal(err)
		}
		version = v
	}
}

// BenchmarkLockUnlock is one Lock and one Unlock of a session.
func BenchmarkLockUnlock(b *testing.B) {
	h := benchHandler(b)
	ctx, id := context.Background(), newBenchID()
	for b.Loop() {
		if got, err := h.Lock(ctx, id, "0123456789abcdef", time.Minute); !got || err != nil {
			b.Fatal(got, err)
		}
		if err := h.Unlock(ctx, id, "0123456789abcdef"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad is one Load of a 1 KiB record.
func BenchmarkLoad(b *testing.B) {
	h := benchHandler(b)
	ctx, id, rec := context.Background(), newBenchID(), benchRecord()
	if err := h.Save(ctx, id, rec); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Load(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadParallel is Load of one record from every CPU at once.
func BenchmarkLoadParallel(b *testing.B) {
	h := benchHandler(b)
	ctx, id, rec := context.Background(), newBenchID(), benchRecord()
	if err := h.Save(ctx, id, rec); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.Load(ctx, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func newBenchID() string { return "benchmark-session-id-0123456789abcdefghijkl"[:43] }

// BenchmarkSaveIfParallel64 is 64 goroutines, each saving its own session
// with SaveIf over and over, as 64 clients of one app server do: the case
// the subfolders are for (every create and rename locks only its own
// subfolder). ns/op is wall time divided by saves.
func BenchmarkSaveIfParallel64(b *testing.B) {
	h := benchHandler(b)
	ctx, rec := context.Background(), benchRecord()
	const clients = 64
	ids := make([]string, clients)
	versions := make([]uint64, clients)
	for i := range ids {
		ids[i] = fmt.Sprintf("benchmark-session-%02d-0123456789abcdefghijklmn", i)[:43]
		v, err := h.SaveIf(ctx, ids[i], rec, 0)
		if err != nil {
			b.Fatal(err)
		}
		versions[i] = v
	}
	var next atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				v, err := h.SaveIf(ctx, ids[i], rec, versions[i])
				if err != nil {
					b.Error(err)
					return
				}
				versions[i] = v
			}
		})
	}
	wg.Wait()
}
