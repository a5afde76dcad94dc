// Package config reads the host's settings from the process environment and a
// .env file, using spf13/viper for the file.
//
// A variable set in the real environment beats the same variable in .env,
// which beats the default. A variable that is present but empty still masks
// .env, and then means "use the default"; so `TINA4_SESSION_TTL=` in the
// environment selects 30m whatever .env says.
//
//	Variable                     Default                   Meaning
//	TINA4_SESSION_HANDLER        SessionFileHandler        session store plugin: a bare name, the binary <plugin dir>/<name>
//	TINA4_PLUGIN_DIR             <host executable dir>/plugins  where handler binaries live
//	TINA4_SESSION_FOLDER         ./sessions                directory the file handler stores sessions in
//	TINA4_SESSION                tina4_session             session cookie name (must be a valid cookie name)
//	TINA4_SESSION_TTL            30m                       session lifetime: a Go duration (90s, 30m, 2h) or whole seconds (1800); > 0
//	TINA4_SESSION_LIFETIME       0 (off)                   absolute session lifetime since creation, however active (duration or seconds); 0 = none, else >= TINA4_SESSION_TTL
//	TINA4_SESSION_PERSIST        true                      persistent cookies (Max-Age); false: browser-session cookies; a session's RememberMe overrides it
//	TINA4_SESSION_SAMESITE       Lax                       cookie SameSite: Lax, Strict or None (any case); browsers drop None cookies unless Secure
//	TINA4_SESSION_SECURE         false                     cookie Secure flag: true/false, 1/0, yes/no (any case)
//	TINA4_SECRET                 (unset)                   secret the session keys derive from; set it (32+ random characters) on every server of a cluster
//	TINA4_SECRET_PREVIOUS        (unset)                   older secrets, comma-separated: tokens they sealed still open (rotation); needs TINA4_SECRET
//	TINA4_SECRET_FILE            .tina4/secret.key         key file generated and used when TINA4_SECRET is unset
//	TINA4_PLUGIN_TIMEOUT         5s                        deadline for each call to the plugin (duration or seconds; > 0)
//	TINA4_PLUGIN_START_TIMEOUT   10s                       deadline for launching the plugin and its handshake (duration or seconds; > 0)
//	TINA4_SESSION_HANDLER_SHA256 (unset)                   SHA-256 (64 hex digits) the handler binary must have
//	TINA4_PLUGIN_SUMS            (unset)                   sums file ("<sha256>  <name>" lines, as sha256sum prints) kept outside the plugin dir
//	TINA4_SESSION_MAX_BYTES      4MiB                      largest sealed session the host stores or loads (bytes, KiB or MiB; 1KiB to 16MiB)
//	TINA4_PLUGIN_MAX_CALLS       128                       calls to the handler in flight at once; more wait, within TINA4_PLUGIN_TIMEOUT
//	TINA4_PLUGIN_USER            (unset)                   run handler plugins as this user (name or uid); the host must run as root
//	TINA4_SESSION_LOCK           false                     serialize the requests of one session, load to commit, across every host (true/false); needs a handler with the "lock" capability
//	TINA4_SESSION_LOCK_WAIT      10s                       how long a request waits for its session's lock before it is answered 503 (duration or seconds; > 0)
//	TINA4_SESSION_LOCK_TTL       30s                       how long a lock lives if the host holding it dies; longer than your slowest request (duration or seconds; > 0)
//	TINA4_PLUGIN_ENV             (unset)                   more variables to pass to the handler, by name, comma-separated (PYTHONPATH,NODE_PATH); never a secret
//	TINA4_PLUGIN_TRANSPORT       auto                      auto: the fast transport when the handler offers it, else gRPC; grpc: always gRPC
//	TINA4_ADDR                   127.0.0.1:7145            listen address of the reference server
//	TINA4_LOG_LEVEL              info                      debug, info, warn or error (any case)
//
// Every TINA4_* variable from the environment or .env, these and any a
// handler defines for itself (TINA4_SESSION_REDIS_URL, ...), is passed to the
// plugin process through [Config.PluginEnv], except secret material.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// Variable names.
const (
	envHandler       = "TINA4_SESSION_HANDLER"
	envPluginDir     = "TINA4_PLUGIN_DIR"
	envSessionFolder = "TINA4_SESSION_FOLDER"
	envCookieName    = "TINA4_SESSION"
	envTTL           = "TINA4_SESSION_TTL"
	envLifetime      = "TINA4_SESSION_LIFETIME"
	envPersist       = "TINA4_SESSION_PERSIST"
	envSameSite      = "TINA4_SESSION_SAMESITE"
	envSecure        = "TINA4_SESSION_SECURE"
	envSecret        = "TINA4_SECRET"
	envSecretPrev    = "TINA4_SECRET_PREVIOUS"
	envSecretFile    = "TINA4_SECRET_FILE"
	envPluginTimeout = "TINA4_PLUGIN_TIMEOUT"
	envStartTimeout  = "TINA4_PLUGIN_START_TIMEOUT"
	envAddr          = "TINA4_ADDR"
	envHandlerSHA256 = "TINA4_SESSION_HANDLER_SHA256"
	envPluginSums    = "TINA4_PLUGIN_SUMS"
	envLogLevel      = "TINA4_LOG_LEVEL"
	envTransport     = "TINA4_PLUGIN_TRANSPORT"
	envPluginUser    = "TINA4_PLUGIN_USER"
	envMaxBytes      = "TINA4_SESSION_MAX_BYTES"
	envMaxCalls      = "TINA4_PLUGIN_MAX_CALLS"
	envLock          = "TINA4_SESSION_LOCK"
	envPluginEnv     = "TINA4_PLUGIN_ENV"
	envLockWait      = "TINA4_SESSION_LOCK_WAIT"
	envLockTTL       = "TINA4_SESSION_LOCK_TTL"

	prefix = "TINA4_"
)

// Config is the host's settings. The package comment lists every variable.
type Config struct {
	Handler       string        // TINA4_SESSION_HANDLER, default "SessionFileHandler"
	PluginDir     string        // TINA4_PLUGIN_DIR, default "plugins" beside the running executable
	SessionFolder string        // TINA4_SESSION_FOLDER, default "./sessions"
	CookieName    string        // TINA4_SESSION, default "tina4_session"
	TTL           time.Duration // TINA4_SESSION_TTL, default 30m
	Lifetime      time.Duration // TINA4_SESSION_LIFETIME, default 0 (no absolute lifetime); else >= TTL
	Persist       bool          // TINA4_SESSION_PERSIST, default true (persistent cookies)
	SameSite      http.SameSite // TINA4_SESSION_SAMESITE: Lax (default), Strict or None
	Secure        bool          // TINA4_SESSION_SECURE, default false
	Secret        string        // TINA4_SECRET, default "" (the host then uses SecretFile)
	SecretPrev    []string      // TINA4_SECRET_PREVIOUS split at commas (see secretList), default nil; they only open tokens
	SecretFile    string        // TINA4_SECRET_FILE, default ".tina4/secret.key"
	PluginTimeout time.Duration // TINA4_PLUGIN_TIMEOUT, default 5s
	StartTimeout  time.Duration // TINA4_PLUGIN_START_TIMEOUT, default 10s
	Addr          string        // TINA4_ADDR, default "127.0.0.1:7145"
	LogLevel      string        // TINA4_LOG_LEVEL, default "info"; always lower case
	HandlerSHA256 string        // TINA4_SESSION_HANDLER_SHA256, default "" (no pin); lower-case hex
	PluginSums    string        // TINA4_PLUGIN_SUMS, default "" (no sums file)
	Transport     string        // TINA4_PLUGIN_TRANSPORT: "auto" (default) or "grpc"; always lower case
	PluginUser    string        // TINA4_PLUGIN_USER, default "" (plugins run as the host's user)
	MaxBytes      int           // TINA4_SESSION_MAX_BYTES, default 4 MiB, at most 16 MiB
	MaxCalls      int           // TINA4_PLUGIN_MAX_CALLS, default 128
	Lock          bool          // TINA4_SESSION_LOCK, default false
	LockWait      time.Duration // TINA4_SESSION_LOCK_WAIT, default 10s
	LockTTL       time.Duration // TINA4_SESSION_LOCK_TTL, default 30s

	// ExtraEnv is what TINA4_PLUGIN_ENV asks to pass to the handler besides
	// its usual environment, as "NAME=VALUE" (values from the environment or
	// .env; a listed name that is set in neither is left out).
	ExtraEnv []string

	// PluginEnv is every TINA4_* variable from the environment or .env as
	// "KEY=VALUE", sorted by key, the environment's value winning over .env's,
	// keys in upper case. Host key material is left out: TINA4_SECRET,
	// TINA4_SECRET_FILE and any other key containing "SECRET" outside the
	// handlers' TINA4_SESSION_* namespace (so TINA4_SESSION_REDIS_SECRET, a
	// Redis password, does reach the Redis handler).
	PluginEnv []string

	// EnvFile is the absolute path of the .env file that was read, or "" if
	// there was none.
	EnvFile string
}

// Options says where Load looks for settings.
type Options struct {
	// Dir is the directory holding .env; "" means the working directory.
	Dir string
	// Environ is the process environment as "KEY=VALUE" entries; nil means
	// os.Environ(). When a key appears twice the first entry wins, as with
	// os.Getenv.
	Environ []string
}

// Load reads the settings: each variable from opts.Environ if present, else
// from Dir/.env if that file exists and sets it, else its default.
//
// A missing .env is not an error. Load returns an error, naming the variable,
// its value, where it came from and what is accepted, for: a .env that cannot
// be read or parsed; a TTL or timeout that is not a positive duration or whole
// number of seconds; a TINA4_SESSION_LIFETIME other than 0 that is shorter
// than TINA4_SESSION_TTL; a SameSite other than Lax, Strict or None; a Secure that
// is not a boolean; a log level other than debug, info, warn or error; an
// invalid cookie name. When several settings are wrong, the error lists all
// of them. Values are never checked against the file system or network here:
// the loader and server report those problems.
func Load(opts Options) (Config, error) {
	dir := cmp.Or(opts.Dir, ".")
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}

	src := sources{env: parseEnviron(environ)}
	if err := src.readEnvFile(filepath.Join(dir, ".env")); err != nil {
		return Config{}, err
	}

	c := Config{
		Handler:       src.str(envHandler, "SessionFileHandler"),
		PluginDir:     src.str(envPluginDir, defaultPluginDir()),
		SessionFolder: src.str(envSessionFolder, "./sessions"),
		CookieName:    src.str(envCookieName, "tina4_session"),
		Secret:        src.str(envSecret, ""),
		SecretPrev:    secretList(src.str(envSecretPrev, "")),
		SecretFile:    src.str(envSecretFile, filepath.Join(".tina4", "secret.key")),
		Addr:          src.str(envAddr, "127.0.0.1:7145"),
		PluginSums:    src.str(envPluginSums, ""),
		EnvFile:       src.envFilePath,
		PluginEnv:     src.pluginEnv(),
	}
	var errs []error
	c.TTL = parse(&src, &errs, envTTL, 30*time.Minute, parseDuration)
	c.Lifetime = parse(&src, &errs, envLifetime, 0, parseLifetime)
	if c.Lifetime > 0 && c.Lifetime < c.TTL {
		errs = append(errs, fmt.Errorf("config: %s=%s is shorter than %s=%s: the absolute lifetime must be at least the idle lifetime; raise %s, lower %s, or set %s=0 to turn it off",
			envLifetime, c.Lifetime, envTTL, c.TTL, envLifetime, envTTL, envLifetime))
	}
	c.Persist = parse(&src, &errs, envPersist, true, parseBool)
	c.PluginTimeout = parse(&src, &errs, envPluginTimeout, 5*time.Second, parseDuration)
	c.StartTimeout = parse(&src, &errs, envStartTimeout, 10*time.Second, parseDuration)
	c.SameSite = parse(&src, &errs, envSameSite, http.SameSiteLaxMode, parseSameSite)
	c.Secure = parse(&src, &errs, envSecure, false, parseBool)
	c.LogLevel = parse(&src, &errs, envLogLevel, "info", parseLogLevel)
	c.HandlerSHA256 = parse(&src, &errs, envHandlerSHA256, "", parseSHA256)
	c.Transport = parse(&src, &errs, envTransport, "auto", parseTransport)
	c.PluginUser = src.str(envPluginUser, "")
	c.MaxBytes = parse(&src, &errs, envMaxBytes, 4<<20, parseSize)
	c.MaxCalls = parse(&src, &errs, envMaxCalls, 128, parseCount)
	c.Lock = parse(&src, &errs, envLock, false, parseBool)
	c.LockWait = parse(&src, &errs, envLockWait, 10*time.Second, parseDuration)
	c.LockTTL = parse(&src, &errs, envLockTTL, 30*time.Second, parseDuration)
	c.ExtraEnv = extraEnv(&src, &errs)
	if v, where, ok := src.lookup(envHandler); ok && v != "" && !handlerName.MatchString(v) {
		errs = append(errs, fmt.Errorf("config: %s=%s%s: not a handler name: a letter, then letters, digits, '_' or '-', at most 64 characters (the host runs <plugin dir>/<name>; never a path)", envHandler, v, where))
	}
	if v, where, ok := src.lookup(envCookieName); ok && v != "" {
		if err := (&http.Cookie{Name: v, Value: "x"}).Valid(); err != nil {
			errs = append(errs, fmt.Errorf("config: %s=%s%s: not a valid cookie name; use letters, digits, '-' and '_'", envCookieName, v, where))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseLifetime is parseDuration, or 0 ("0", "0s") for no absolute
// lifetime.
func parseLifetime(v string) (time.Duration, error) {
	if d, err := time.ParseDuration(v); err == nil && d == 0 {
		return 0, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%w, or 0 for none", err)
	}
	return d, nil
}

// SameSiteName returns "Strict" or "None" for those modes and "Lax" for any
// other value, including http.SameSiteDefaultMode, since Lax is what browsers
// apply when a cookie has no SameSite attribute.
func (c Config) SameSiteName() string {
	switch c.SameSite {
	case http.SameSiteStrictMode:
		return "Strict"
	case http.SameSiteNoneMode:
		return "None"
	default:
		return "Lax"
	}
}

// defaultPluginDir is "plugins" beside the running executable, or "plugins"
// relative to the working directory if the executable cannot be found.
func defaultPluginDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "plugins"
	}
	return filepath.Join(filepath.Dir(exe), "plugins")
}

// sources holds the raw values from the environment and the .env file.
type sources struct {
	env         map[string]string // keys as given
	file        map[string]string // keys upper-cased
	envFilePath string
}

// HandlerEnv is PluginEnv as a plugin process gets it. Plugins run in a
// private working directory of their own, so TINA4_SESSION_FOLDER is made
// absolute (resolved against this process's working directory, as the
// built-in handler resolves it) and always present.
func (c Config) HandlerEnv() []string {
	folder := c.SessionFolder
	if abs, err := filepath.Abs(folder); err == nil {
		folder = abs
	}
	out := make([]string, 0, len(c.PluginEnv)+1)
	for _, kv := range c.PluginEnv {
		if !strings.HasPrefix(kv, envSessionFolder+"=") {
			out = append(out, kv)
		}
	}
	return append(out, envSessionFolder+"="+folder)
}

// handlerName is the grammar of TINA4_SESSION_HANDLER (the loader checks it
// again, as loader.ValidName, before it builds a path).
var handlerName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]{0,63}$`)

// extraEnv resolves TINA4_PLUGIN_ENV: a comma-separated list of variable
// names to pass to the handler. Names of host key material (see PluginEnv),
// go-plugin's own (PLUGIN_*) and the handshake cookie are refused.
func extraEnv(src *sources, errs *[]error) []string {
	list, where, _ := src.lookup(envPluginEnv)
	var out []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		switch {
		case !validEnvName(name):
			*errs = append(*errs, fmt.Errorf("config: %s=%s%s: %q is not a variable name (letters, digits and _, not starting with a digit)", envPluginEnv, list, where, name))
			continue
		case secretName(name):
			*errs = append(*errs, fmt.Errorf("config: %s=%s%s: %s is host key material and never reaches a plugin; take it out of the list", envPluginEnv, list, where, name))
			continue
		case strings.HasPrefix(name, "PLUGIN_") || name == "TINA4_SESSION_PLUGIN" || name == "TINA4_PLUGIN_FAST_DIR":
			*errs = append(*errs, fmt.Errorf("config: %s=%s%s: %s is set by the host for each launch; take it out of the list", envPluginEnv, list, where, name))
			continue
		}
		if v, _, ok := src.lookup(name); ok {
			out = append(out, name+"="+v)
		}
	}
	return out
}

func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', 'A' <= r && r <= 'Z', 'a' <= r && r <= 'z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

// secretName is the rule PluginEnv applies: TINA4_SECRET, TINA4_SECRET_FILE
// and any name containing SECRET outside the handlers' TINA4_SESSION_*
// namespace.
func secretName(name string) bool {
	up := strings.ToUpper(name)
	return up == envSecret || up == envSecretFile || (strings.Contains(up, "SECRET") && !strings.HasPrefix(up, "TINA4_SESSION_"))
}

// secretList splits TINA4_SECRET_PREVIOUS: comma-separated secrets, each
// trimmed of surrounding spaces and tabs, empty entries dropped. A secret
// holding a comma, or starting or ending with a space, cannot be listed.
// Nothing here is ever put in an error message.
func secretList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.Trim(s, " \t"); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseTransport(v string) (string, error) {
	switch v = strings.ToLower(v); v {
	case "auto", "grpc":
		return v, nil
	}
	return "", errors.New("want auto or grpc")
}

// parseEnviron turns "KEY=VALUE" entries into a map; the first entry for a
// key wins. Entries without "=" or with an empty key are skipped.
func parseEnviron(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		if _, seen := m[k]; !seen {
			m[k] = v
		}
	}
	return m
}

// readEnvFile reads path with viper's dotenv decoder. A missing file is not
// an error.
func (s *sources) readEnvFile(path string) error {
	v := viper.New()
	v.SetConfigFile(path)
	v.SetConfigType("env")
	if err := v.ReadInConfig(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if strings.Contains(strings.ToUpper(err.Error()), "SECRET") {
			// The parser quotes the bad line; keep a secret out of the logs.
			return fmt.Errorf("config: read %s: a line mentioning a secret is malformed (not shown, to keep it out of logs); fix the file (lines of KEY=VALUE) or remove it", path)
		}
		return fmt.Errorf("config: read %s: %w; fix the file (lines of KEY=VALUE) or remove it", path, err)
	}
	keys := v.AllKeys() // lower-cased by viper
	s.file = make(map[string]string, len(keys))
	for _, k := range keys {
		s.file[strings.ToUpper(k)] = v.GetString(k)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	s.envFilePath = path
	return nil
}

// lookup returns the effective raw value of key and, for error messages,
// where it came from. ok is false when neither source sets key.
func (s *sources) lookup(key string) (value, where string, ok bool) {
	if v, ok := s.env[key]; ok {
		return v, " (from the environment)", true
	}
	if v, ok := s.file[key]; ok {
		return v, " (from " + s.envFilePath + ")", true
	}
	return "", "", false
}

// str returns key's effective value, or def when it is unset or empty.
func (s *sources) str(key, def string) string {
	if v, _, _ := s.lookup(key); v != "" {
		return v
	}
	return def
}

// parse converts key's effective value with fn, returning def when it is
// unset or empty. A conversion error is added to errs, phrased as
// "KEY=value: <what is wanted> (from <where>)".
func parse[T any](s *sources, errs *[]error, key string, def T, fn func(string) (T, error)) T {
	raw, where, _ := s.lookup(key)
	v := strings.TrimSpace(raw)
	if v == "" {
		return def
	}
	out, err := fn(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("config: %s=%s: %w%s", key, raw, err, where))
		return def
	}
	return out
}

// pluginEnv lists the TINA4_* settings the plugin may see.
func (s *sources) pluginEnv() []string {
	merged := make(map[string]string)
	for k, v := range s.file {
		if strings.HasPrefix(k, prefix) {
			merged[k] = v
		}
	}
	for k, v := range s.env {
		if strings.HasPrefix(k, prefix) {
			merged[k] = v
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		if !isSecret(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + merged[k]
	}
	return out
}

// isSecret reports whether key names session key material, which must never
// reach a plugin process.
// The rule is the loader's: TINA4_SECRET, TINA4_SECRET_FILE, and any other
// key containing SECRET outside the handlers' TINA4_SESSION_* namespace.
func isSecret(key string) bool {
	return key == envSecret || key == envSecretFile ||
		(strings.Contains(key, "SECRET") && !strings.HasPrefix(key, "TINA4_SESSION_"))
}
