package config_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tina4go/sessions/host/config"
)

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "tina4-config")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	dotenv := "TINA4_SESSION_HANDLER=SessionRedisHandler\nTINA4_SESSION_REDIS_URL=redis://127.0.0.1:6379/0\nTINA4_SECRET=do-not-pass-this-to-plugins\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
		log.Fatal(err)
	}

	cfg, err := config.Load(config.Options{
		Dir:     dir,
		Environ: []string{"TINA4_SESSION_TTL=3600", "TINA4_SESSION_SAMESITE=strict"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Handler, cfg.TTL, cfg.SameSiteName())
	for _, kv := range cfg.PluginEnv {
		fmt.Println(kv)
	}
	// Output:
	// SessionRedisHandler 1h0m0s Strict
	// TINA4_SESSION_HANDLER=SessionRedisHandler
	// TINA4_SESSION_REDIS_URL=redis://127.0.0.1:6379/0
	// TINA4_SESSION_SAMESITE=strict
	// TINA4_SESSION_TTL=3600
}
