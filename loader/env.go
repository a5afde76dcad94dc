package loader

import (
	"os"
	"strings"

	"github.com/tina4go/sessions/shared"
)

// hostEnvAllowed lists the host variables a plugin inherits; everything else
// in the host's environment stays out of the plugin process.
var hostEnvAllowed = []string{"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER"}

// secretKey reports whether an environment key holds host secret material
// that must never reach a plugin: TINA4_SECRET, TINA4_SECRET_FILE, and any
// other TINA4_*SECRET* variable outside the handlers' TINA4_SESSION_*
// namespace (a handler's own password, such as TINA4_SESSION_REDIS_SECRET,
// is its setting and does reach it).
func secretKey(key string) bool {
	return key == "TINA4_SECRET" || key == "TINA4_SECRET_FILE" ||
		(strings.Contains(key, "SECRET") && !strings.HasPrefix(key, "TINA4_SESSION_"))
}

// pluginEnv builds a plugin's whole environment: the allowed host variables,
// then the TINA4_* settings given (those may come from .env), then the extra
// variables an operator listed (TINA4_PLUGIN_ENV), minus secrets and what
// the host sets per launch.
func pluginEnv(settings, extra []string) []string {
	var env []string
	for _, k := range hostEnvAllowed {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range settings {
		k, _, ok := strings.Cut(kv, "=")
		// The fast-transport directory is the loader's to give, per launch.
		if !ok || !strings.HasPrefix(k, "TINA4_") || secretKey(k) || k == shared.FastDirEnv {
			continue
		}
		env = append(env, kv)
	}
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || secretKey(strings.ToUpper(k)) || strings.HasPrefix(k, "PLUGIN_") || k == shared.Handshake.MagicCookieKey || k == shared.FastDirEnv {
			continue
		}
		env = append(env, kv)
	}
	return env
}
