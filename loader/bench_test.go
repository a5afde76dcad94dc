package loader

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tina4go/sessions/plugins/file"
	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// BenchmarkSaveLoad measures one Save plus one Load of a 300-byte record
// (what a session request that changes something costs) against the file
// handler built in and as a plugin process.
func BenchmarkSaveLoad(b *testing.B) {
	folder := b.TempDir()
	for _, v := range []struct {
		name string
		cfg  Config
	}{
		{"builtin", Config{Name: "SessionFileHandler", Dir: b.TempDir(), Builtins: map[string]Builtin{
			"SessionFileHandler": func() (shared.Store, error) {
				h, err := file.New(folder, file.WithSweepInterval(0))
				return sdk.NewStore(file.Name, file.Version, h), err
			}}}},
		{"plugin", Config{Name: "SessionFileHandler", Dir: pluginDirB(b), Env: []string{"TINA4_SESSION_FOLDER=" + folder}}},
	} {
		b.Run(v.name, func(b *testing.B) {
			v.cfg.Logger = quietLogger()
			h, err := Open(context.Background(), v.cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Shutdown()
			ctx := context.Background()
			id := testID('b')
			rec := shared.Record{Data: make([]byte, 300), Expires: time.Now().Add(time.Hour)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := h.Save(ctx, id, rec); err != nil {
					b.Fatal(err)
				}
				if _, err := h.Load(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInfo measures the bare round trip of one call (no store work).
func BenchmarkInfo(b *testing.B) {
	h, err := Open(context.Background(), Config{Name: "SessionFileHandler", Dir: pluginDirB(b),
		Env: []string{"TINA4_SESSION_FOLDER=" + b.TempDir()}, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := h.Info(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad measures one Load of a 512-byte record from an in-memory
// handler (the probe plugin) over each transport, so the cost is the hop.
func BenchmarkLoad(b *testing.B) {
	for _, transport := range []string{TransportFast, TransportGRPC} {
		b.Run(transport, func(b *testing.B) {
			dir := filepath.Join(b.TempDir(), "plugins")
			os.Mkdir(dir, 0o755)
			src, _ := os.ReadFile(filepath.Join(binDir, "probe"))
			os.WriteFile(filepath.Join(dir, "Probe"), src, 0o755)
			cfg := Config{Name: "Probe", Dir: dir, Logger: quietLogger()}
			if transport == TransportGRPC {
				cfg.Transport = TransportGRPC
			}
			h, err := Open(context.Background(), cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Shutdown()
			// A cancellable ctx, as an HTTP request's is.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			id := testID('b')
			if err := h.Save(ctx, id, shared.Record{Data: make([]byte, 512), Expires: time.Now().Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			b.Run("sequential", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := h.Load(ctx, id); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(32)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := h.Load(ctx, id); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}
