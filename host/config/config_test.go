package config

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// load runs Load with env as the whole environment and dotenv, if not "", as
// the content of .env in a fresh directory.
func load(t *testing.T, env []string, dotenv string) (Config, error) {
	t.Helper()
	dir := t.TempDir()
	if dotenv != "" {
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if env == nil {
		env = []string{}
	}
	return Load(Options{Dir: dir, Environ: env})
}

func mustLoad(t *testing.T, env []string, dotenv string) Config {
	t.Helper()
	c, err := load(t, env, dotenv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, nil, "")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Handler:       "SessionFileHandler",
		PluginDir:     filepath.Join(filepath.Dir(exe), "plugins"),
		SessionFolder: "./sessions",
		CookieName:    "tina4_session",
		TTL:           30 * time.Minute,
		Persist:       true,
		SameSite:      http.SameSiteLaxMode,
		Secure:        false,
		Secret:        "",
		SecretFile:    filepath.Join(".tina4", "secret.key"),
		PluginTimeout: 5 * time.Second,
		StartTimeout:  10 * time.Second,
		Addr:          "127.0.0.1:7145",
		LogLevel:      "info",
		Transport:     "auto",
		MaxBytes:      4 << 20,
		MaxCalls:      128,
		LockWait:      10 * time.Second,
		LockTTL:       30 * time.Second,
		PluginEnv:     []string{},
		EnvFile:       "",
	}
	if !equal(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.SameSiteName() != "Lax" {
		t.Errorf("SameSiteName() = %q, want Lax", c.SameSiteName())
	}
}

func equal(a, b Config) bool {
	pa, pb := a.PluginEnv, b.PluginEnv
	a.PluginEnv, b.PluginEnv = nil, nil
	return reflect.DeepEqual(a, b) && slices.Equal(pa, pb)
}

func TestPluginDirDefaultIsBesideExecutable(t *testing.T) {
	c := mustLoad(t, nil, "")
	if !strings.HasSuffix(c.PluginDir, string(filepath.Separator)+"plugins") {
		t.Errorf("PluginDir = %q, want it to end with /plugins", c.PluginDir)
	}
	if !filepath.IsAbs(c.PluginDir) {
		t.Errorf("PluginDir = %q, want an absolute path beside the executable", c.PluginDir)
	}
}

func TestPrecedence(t *testing.T) {
	dotenv := "TINA4_SESSION_HANDLER=FromDotenv\nTINA4_ADDR=0.0.0.0:9000\n"
	c := mustLoad(t, []string{"TINA4_SESSION_HANDLER=FromEnv"}, dotenv)
	if c.Handler != "FromEnv" {
		t.Errorf("Handler = %q, want the environment's FromEnv over .env", c.Handler)
	}
	if c.Addr != "0.0.0.0:9000" {
		t.Errorf("Addr = %q, want .env's 0.0.0.0:9000 over the default", c.Addr)
	}
	if c.SessionFolder != "./sessions" {
		t.Errorf("SessionFolder = %q, want the default", c.SessionFolder)
	}
	if c.EnvFile == "" || filepath.Base(c.EnvFile) != ".env" || !filepath.IsAbs(c.EnvFile) {
		t.Errorf("EnvFile = %q, want the absolute path of the .env read", c.EnvFile)
	}
}

func TestEmptyEnvironmentValueMasksDotenvAndMeansDefault(t *testing.T) {
	c := mustLoad(t, []string{"TINA4_SESSION_TTL=", "TINA4_SESSION_HANDLER="},
		"TINA4_SESSION_TTL=1h\nTINA4_SESSION_HANDLER=SessionRedisHandler\n")
	if c.TTL != 30*time.Minute || c.Handler != "SessionFileHandler" {
		t.Errorf("TTL, Handler = %v, %q; want the defaults 30m, SessionFileHandler", c.TTL, c.Handler)
	}
	if !slices.Contains(c.PluginEnv, "TINA4_SESSION_HANDLER=") {
		t.Errorf("PluginEnv = %q, want the environment's empty TINA4_SESSION_HANDLER", c.PluginEnv)
	}
}

func TestFirstEnvironEntryWins(t *testing.T) {
	c := mustLoad(t, []string{"TINA4_ADDR=:1", "TINA4_ADDR=:2", "NOEQUALS", "=C:=C:\\"}, "")
	if c.Addr != ":1" {
		t.Errorf("Addr = %q, want the first entry :1 (as os.Getenv)", c.Addr)
	}
}

func TestPluginEnv(t *testing.T) {
	env := []string{
		"PATH=/usr/bin",
		"TINA4_SESSION_REDIS_URL=redis://env:6379/0",
		"TINA4_SECRET=env-secret-value-0123456789",
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
	}
	dotenv := strings.Join([]string{
		"TINA4_SESSION_REDIS_URL=redis://dotenv:6379/0",
		"TINA4_SESSION_REDIS_PREFIX=app:",
		"TINA4_SECRET=dotenv-secret-value-0123456789",
		"TINA4_SECRET_FILE=/etc/tina4.key",
		"TINA4_OTHER_SECRET=hidden",
		"TINA4_SESSION_MONGO_SECRET=mongo-password",
		"TINA4_SESSION_REDIS_SECRET=redis-password",
		"tina4_lower=lower",
		"OTHER_APP=x",
	}, "\n")
	c := mustLoad(t, env, dotenv)
	want := []string{
		"TINA4_LOWER=lower",
		"TINA4_SESSION_HANDLER=SessionRedisHandler",
		"TINA4_SESSION_MONGO_SECRET=mongo-password",
		"TINA4_SESSION_REDIS_PREFIX=app:",
		"TINA4_SESSION_REDIS_SECRET=redis-password",
		"TINA4_SESSION_REDIS_URL=redis://env:6379/0",
	}
	if !slices.Equal(c.PluginEnv, want) {
		t.Errorf("PluginEnv:\n got %q\nwant %q", c.PluginEnv, want)
	}
	for _, kv := range c.PluginEnv {
		if strings.Contains(kv, "secret-value") || strings.Contains(kv, "hidden") || strings.Contains(kv, "tina4.key") {
			t.Errorf("PluginEnv leaks secret material: %q", kv)
		}
	}
	if c.Secret != "env-secret-value-0123456789" {
		t.Errorf("Secret = %q, want the environment's", c.Secret)
	}
	if c.SecretFile != "/etc/tina4.key" {
		t.Errorf("SecretFile = %q, want .env's", c.SecretFile)
	}
}

func TestDotenvOnlySecretNotInPluginEnv(t *testing.T) {
	c := mustLoad(t, nil, "TINA4_SECRET=dotenv-only-secret-0123456789\n")
	if c.Secret != "dotenv-only-secret-0123456789" {
		t.Errorf("Secret = %q, want .env's", c.Secret)
	}
	if len(c.PluginEnv) != 0 {
		t.Errorf("PluginEnv = %q, want empty", c.PluginEnv)
	}
}

func TestDurations(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    time.Duration
		wantErr string
	}{
		{"90s", 90 * time.Second, ""},
		{"30m", 30 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"1800", 1800 * time.Second, ""},
		{" 60 ", time.Minute, ""},
		{"0", 0, "greater than zero"},
		{"0s", 0, "greater than zero"},
		{"-5s", 0, "greater than zero"},
		{"-5", 0, "want a duration like 30m or seconds like 1800"},
		{"abc", 0, "TINA4_SESSION_TTL=abc: want a duration like 30m or seconds like 1800"},
		{"1.5", 0, "want a duration"},
		{"99999999999999999", 0, "too long"},
	} {
		c, err := load(t, []string{"TINA4_SESSION_TTL=" + tc.value}, "")
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("TTL %q: %v", tc.value, err)
		case tc.wantErr == "" && c.TTL != tc.want:
			t.Errorf("TTL %q = %v, want %v", tc.value, c.TTL, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("TTL %q: err = %v, want one containing %q", tc.value, err, tc.wantErr)
		}
	}
	c := mustLoad(t, []string{"TINA4_PLUGIN_TIMEOUT=2", "TINA4_PLUGIN_START_TIMEOUT=1m"}, "")
	if c.PluginTimeout != 2*time.Second || c.StartTimeout != time.Minute {
		t.Errorf("PluginTimeout, StartTimeout = %v, %v; want 2s, 1m", c.PluginTimeout, c.StartTimeout)
	}
	if _, err := load(t, nil, "TINA4_PLUGIN_START_TIMEOUT=soon\n"); err == nil ||
		!strings.Contains(err.Error(), "TINA4_PLUGIN_START_TIMEOUT=soon") || !strings.Contains(err.Error(), ".env") {
		t.Errorf("bad timeout in .env: err = %v, want one naming the variable and the .env file", err)
	}
}

func TestSameSite(t *testing.T) {
	for value, want := range map[string]http.SameSite{
		"Lax": http.SameSiteLaxMode, "lax": http.SameSiteLaxMode,
		"Strict": http.SameSiteStrictMode, "STRICT": http.SameSiteStrictMode,
		"None": http.SameSiteNoneMode, "none": http.SameSiteNoneMode,
	} {
		c, err := load(t, []string{"TINA4_SESSION_SAMESITE=" + value}, "")
		if err != nil || c.SameSite != want {
			t.Errorf("SameSite %q = %v, %v; want %v", value, c.SameSite, err, want)
		}
		if got := c.SameSiteName(); !strings.EqualFold(got, value) {
			t.Errorf("SameSiteName() for %q = %q", value, got)
		}
	}
	if _, err := load(t, []string{"TINA4_SESSION_SAMESITE=sometimes"}, ""); err == nil ||
		!strings.Contains(err.Error(), "want Lax, Strict or None") {
		t.Errorf("SameSite sometimes: err = %v, want one listing Lax, Strict or None", err)
	}
	if got := (Config{}).SameSiteName(); got != "Lax" {
		t.Errorf("zero Config SameSiteName() = %q, want Lax", got)
	}
}

func TestSecure(t *testing.T) {
	for value, want := range map[string]bool{
		"true": true, "TRUE": true, "1": true, "yes": true, "Yes": true,
		"false": false, "False": false, "0": false, "no": false, "NO": false,
	} {
		c, err := load(t, []string{"TINA4_SESSION_SECURE=" + value}, "")
		if err != nil || c.Secure != want {
			t.Errorf("Secure %q = %v, %v; want %v", value, c.Secure, err, want)
		}
	}
	for _, value := range []string{"maybe", "2", "y"} {
		if _, err := load(t, []string{"TINA4_SESSION_SECURE=" + value}, ""); err == nil {
			t.Errorf("Secure %q: no error", value)
		}
	}
}

func TestLogLevel(t *testing.T) {
	c := mustLoad(t, []string{"TINA4_LOG_LEVEL=DEBUG"}, "")
	if c.LogLevel != "debug" {
		t.Errorf("LogLevel = %q, want debug", c.LogLevel)
	}
	if _, err := load(t, []string{"TINA4_LOG_LEVEL=loud"}, ""); err == nil {
		t.Error("LogLevel loud: no error")
	}
}

func TestTransport(t *testing.T) {
	if c := mustLoad(t, []string{"TINA4_PLUGIN_TRANSPORT=gRPC"}, ""); c.Transport != "grpc" {
		t.Errorf("Transport = %q, want grpc", c.Transport)
	}
	if _, err := load(t, []string{"TINA4_PLUGIN_TRANSPORT=carrier-pigeon"}, ""); err == nil || !strings.Contains(err.Error(), "want auto or grpc") {
		t.Errorf("Transport carrier-pigeon: want an error naming the choices, got %v", err)
	}
}

func TestCookieName(t *testing.T) {
	if c := mustLoad(t, []string{"TINA4_SESSION=app-sid"}, ""); c.CookieName != "app-sid" {
		t.Errorf("CookieName = %q, want app-sid", c.CookieName)
	}
	if _, err := load(t, []string{"TINA4_SESSION=bad name;"}, ""); err == nil {
		t.Error("cookie name with a space and ';': no error")
	}
}

func TestAllErrorsReported(t *testing.T) {
	_, err := load(t, []string{"TINA4_SESSION_TTL=abc", "TINA4_SESSION_SECURE=maybe"}, "")
	if err == nil || !strings.Contains(err.Error(), "TINA4_SESSION_TTL") || !strings.Contains(err.Error(), "TINA4_SESSION_SECURE") {
		t.Errorf("err = %v, want both bad settings named", err)
	}
}

func TestMalformedDotenv(t *testing.T) {
	for name, content := range map[string]string{
		"no separator":   "TINA4_SESSION_HANDLER=ok\nthis line is not a setting\n",
		"unclosed quote": "TINA4_SECRET=\"abc\nTINA4_ADDR=:1\n",
	} {
		_, err := load(t, nil, content)
		if err == nil || !strings.Contains(err.Error(), ".env") {
			t.Errorf("%s: err = %v, want an error naming the .env file", name, err)
		}
	}
}

func TestMalformedDotenvDoesNotEchoSecret(t *testing.T) {
	_, err := load(t, nil, "TINA4_SECRET hunter2-hunter2-hunter2\n")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want an error that does not show the secret", err)
	}
}

func TestUnreadableDotenv(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".env"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Options{Dir: dir, Environ: []string{}}); err == nil {
		t.Error(".env is a directory: no error")
	}
}

func TestDotenvQuotingAndComments(t *testing.T) {
	c := mustLoad(t, nil, "# a comment\nexport TINA4_ADDR=\":8080\"\nTINA4_SESSION_FOLDER='/var/lib/tina4 sessions'\n")
	if c.Addr != ":8080" || c.SessionFolder != "/var/lib/tina4 sessions" {
		t.Errorf("Addr, SessionFolder = %q, %q; want :8080, /var/lib/tina4 sessions", c.Addr, c.SessionFolder)
	}
}

func TestDefaultOptionsUseWorkingDirectoryAndProcessEnvironment(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("TINA4_ADDR=:7000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("TINA4_SESSION_HANDLER", "FromProcess")
	c, err := Load(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":7000" || c.Handler != "FromProcess" {
		t.Errorf("Addr, Handler = %q, %q; want :7000 from ./.env and FromProcess from the environment", c.Addr, c.Handler)
	}
}

func TestHandlerEnvMakesTheSessionFolderAbsolute(t *testing.T) {
	wd, _ := os.Getwd()
	c := mustLoad(t, []string{"TINA4_SESSION_FOLDER=./here", "TINA4_SESSION_TTL=90s"}, "")
	env := c.HandlerEnv()
	if !slices.Contains(env, "TINA4_SESSION_FOLDER="+filepath.Join(wd, "here")) || slices.Contains(env, "TINA4_SESSION_FOLDER=./here") {
		t.Errorf("HandlerEnv = %q, want TINA4_SESSION_FOLDER resolved against %s, once", env, wd)
	}
	if !slices.Contains(env, "TINA4_SESSION_TTL=90s") {
		t.Errorf("HandlerEnv = %q, want the other settings kept", env)
	}
	if env := mustLoad(t, nil, "").HandlerEnv(); !slices.Contains(env, "TINA4_SESSION_FOLDER="+filepath.Join(wd, "sessions")) {
		t.Errorf("with nothing set, HandlerEnv = %q, want the default folder, absolute", env)
	}
}

func TestMaxBytesAndMaxCalls(t *testing.T) {
	for in, want := range map[string]int{"4194304": 4 << 20, "512KiB": 512 << 10, "4MiB": 4 << 20, "16m": 16 << 20, "64k": 64 << 10, "1 MiB": 1 << 20} {
		if c := mustLoad(t, []string{"TINA4_SESSION_MAX_BYTES=" + in}, ""); c.MaxBytes != want {
			t.Errorf("TINA4_SESSION_MAX_BYTES=%s: got %d, want %d", in, c.MaxBytes, want)
		}
	}
	for _, bad := range []string{"17MiB", "0", "-1", "lots", "100", "1GiB", "4.5MiB"} {
		if _, err := load(t, []string{"TINA4_SESSION_MAX_BYTES=" + bad}, ""); err == nil || !strings.Contains(err.Error(), "16MiB") {
			t.Errorf("TINA4_SESSION_MAX_BYTES=%s: want an error giving the range, got %v", bad, err)
		}
	}
	if c := mustLoad(t, []string{"TINA4_PLUGIN_MAX_CALLS=8"}, ""); c.MaxCalls != 8 {
		t.Errorf("MaxCalls = %d, want 8", c.MaxCalls)
	}
	if _, err := load(t, []string{"TINA4_PLUGIN_MAX_CALLS=0"}, ""); err == nil {
		t.Error("TINA4_PLUGIN_MAX_CALLS=0: no error")
	}
}

func TestPluginEnvNamesExtraVariables(t *testing.T) {
	c := mustLoad(t, []string{"TINA4_PLUGIN_ENV=PYTHONPATH, NODE_PATH,NOT_SET_ANYWHERE", "PYTHONPATH=/opt/py"}, "NODE_PATH=/opt/node\n")
	want := []string{"PYTHONPATH=/opt/py", "NODE_PATH=/opt/node"}
	if !slices.Equal(c.ExtraEnv, want) {
		t.Errorf("ExtraEnv = %q, want %q", c.ExtraEnv, want)
	}
	for _, bad := range []string{"TINA4_SECRET", "APP_SECRET_KEY", "tina4_secret_file", "PLUGIN_CLIENT_CERT", "TINA4_SESSION_PLUGIN", "1X", "A-B"} {
		_, err := Load(Options{Dir: t.TempDir(), Environ: []string{"TINA4_PLUGIN_ENV=PATH," + bad, "TINA4_SECRET=s3cret-value-0123456789"}})
		if err == nil || !strings.Contains(err.Error(), "TINA4_PLUGIN_ENV") || !strings.Contains(err.Error(), bad) {
			t.Errorf("TINA4_PLUGIN_ENV listing %s: %v; want an error naming it", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-value") {
			t.Errorf("the error shows the secret's value: %v", err)
		}
	}
}

func TestAHandlerNameThatIsAPathIsASettingError(t *testing.T) {
	for _, bad := range []string{"../SessionFileHandler", "/bin/sh", "a b", "1abc", strings.Repeat("a", 65)} {
		_, err := Load(Options{Dir: t.TempDir(), Environ: []string{"TINA4_SESSION_HANDLER=" + bad}})
		if err == nil || !strings.Contains(err.Error(), "TINA4_SESSION_HANDLER") {
			t.Errorf("TINA4_SESSION_HANDLER=%s: %v; want an error naming the variable", bad, err)
		}
	}
	if _, err := Load(Options{Dir: t.TempDir(), Environ: []string{"TINA4_SESSION_HANDLER=Session_Mongo-Handler2"}}); err != nil {
		t.Errorf("a valid name: %v", err)
	}
}

func TestSecretPrevious(t *testing.T) {
	for in, want := range map[string][]string{
		"":                        nil,
		" , ,":                    nil,
		"old-secret-0123456789ab": {"old-secret-0123456789ab"},
		"older-one-0123456789, \told-two-0123456789ab ,,": {"older-one-0123456789", "old-two-0123456789ab"},
	} {
		if c := mustLoad(t, []string{"TINA4_SECRET_PREVIOUS=" + in}, ""); !slices.Equal(c.SecretPrev, want) {
			t.Errorf("TINA4_SECRET_PREVIOUS=%q: SecretPrev = %q, want %q", in, c.SecretPrev, want)
		}
	}
	c := mustLoad(t, nil, "TINA4_SECRET=current-secret-0123456789\nTINA4_SECRET_PREVIOUS=dotenv-old-0123456789,dotenv-older-0123456789\n")
	if want := []string{"dotenv-old-0123456789", "dotenv-older-0123456789"}; !slices.Equal(c.SecretPrev, want) {
		t.Errorf("from .env: SecretPrev = %q, want %q", c.SecretPrev, want)
	}
	if c := mustLoad(t, []string{"TINA4_SECRET_PREVIOUS=env-old-0123456789ab"}, "TINA4_SECRET_PREVIOUS=dotenv-old-0123456789\n"); !slices.Equal(c.SecretPrev, []string{"env-old-0123456789ab"}) {
		t.Errorf("the environment should beat .env: SecretPrev = %q", c.SecretPrev)
	}
}

func TestSecretPreviousNeverReachesThePlugin(t *testing.T) {
	c := mustLoad(t, []string{"TINA4_SECRET_PREVIOUS=env-old-0123456789ab", "TINA4_SESSION_TTL=1h"},
		"TINA4_SECRET_PREVIOUS=dotenv-old-0123456789\ntina4_secret_previous=lower-old-0123456789\n")
	for _, env := range [][]string{c.PluginEnv, c.HandlerEnv()} {
		for _, kv := range env {
			if strings.Contains(kv, "SECRET_PREVIOUS") || strings.Contains(kv, "-old-") {
				t.Errorf("the plugin environment holds a previous secret: %q", kv)
			}
		}
	}
	if !slices.Contains(c.PluginEnv, "TINA4_SESSION_TTL=1h") {
		t.Errorf("PluginEnv = %q, want the other settings kept", c.PluginEnv)
	}
	_, err := load(t, []string{"TINA4_PLUGIN_ENV=TINA4_SECRET_PREVIOUS", "TINA4_SECRET_PREVIOUS=env-old-0123456789ab"}, "")
	if err == nil || !strings.Contains(err.Error(), "host key material") {
		t.Errorf("TINA4_PLUGIN_ENV=TINA4_SECRET_PREVIOUS: %v; want it refused", err)
	}
	if err != nil && strings.Contains(err.Error(), "env-old") {
		t.Errorf("the error shows the secret's value: %v", err)
	}
}

func TestMalformedDotenvDoesNotEchoPreviousSecret(t *testing.T) {
	_, err := load(t, nil, "TINA4_SECRET_PREVIOUS hunter2-hunter2-hunter2\n")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v, want an error that does not show the secret", err)
	}
}
