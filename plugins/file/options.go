package file

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Settings NewFromEnv reads, and their defaults.
const (
	// EnvFolder names the folder that holds session files.
	EnvFolder = "TINA4_SESSION_FOLDER"
	// EnvSweep is how often expired files are removed: a Go duration
	// ("90s", "5m") or a whole number of seconds; 0 turns sweeping off.
	EnvSweep = "TINA4_SESSION_SWEEP"

	// DefaultFolder is used when TINA4_SESSION_FOLDER is unset or empty. A
	// relative folder is resolved against the working directory.
	DefaultFolder = "./sessions"
	// DefaultSweepInterval is used when TINA4_SESSION_SWEEP is unset and by
	// New without WithSweepInterval.
	DefaultSweepInterval = time.Minute
)

// config is what the options set.
type config struct {
	sweepInterval time.Duration
	log           *slog.Logger
	now           func() time.Time
}

// Option changes how New builds a Handler.
type Option func(*config)

// WithSweepInterval sets how often the background sweeper removes expired
// and damaged files (default one minute). Zero or a negative duration turns
// the sweeper off; Sweep can still be called directly.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) { c.sweepInterval = d }
}

// WithLogger sets the logger for warnings and sweep reports (default
// sdk.Logger()). A nil logger keeps the default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.log = l }
}

// WithClock sets the clock Load and the background sweeper use to decide
// whether a record has expired (default time.Now). It exists for tests. A
// nil clock keeps the default.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// NewFromEnv returns a Handler configured from the environment:
// TINA4_SESSION_FOLDER (default ./sessions) and TINA4_SESSION_SWEEP (default
// 1m). An invalid TINA4_SESSION_SWEEP is an error that names the variable.
// Otherwise it fails as New does.
func NewFromEnv() (*Handler, error) { return NewFromGetenv(os.Getenv) }

// NewFromGetenv is NewFromEnv reading the settings through getenv; extra
// options are applied after those settings.
func NewFromGetenv(getenv func(string) string, extra ...Option) (*Handler, error) {
	folder, opts, err := configFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return New(folder, append(opts, extra...)...)
}

// configFromEnv reads the settings through getenv.
func configFromEnv(getenv func(string) string) (folder string, opts []Option, err error) {
	folder = getenv(EnvFolder)
	if folder == "" {
		folder = DefaultFolder
	}
	every, err := parseSweep(getenv(EnvSweep))
	if err != nil {
		return "", nil, err
	}
	return folder, []Option{WithSweepInterval(every)}, nil
}

// parseSweep reads a TINA4_SESSION_SWEEP value: empty for the default, a Go
// duration, or a whole number of seconds. Zero or less turns sweeping off;
// anything between zero and one second is refused as a likely mistake.
func parseSweep(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultSweepInterval, nil
	}
	var d time.Duration
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		switch {
		case n <= 0:
			return 0, nil
		case n > math.MaxInt64/int64(time.Second):
			return 0, fmt.Errorf("%s=%q is too long an interval; use at most %d seconds, or 0 to turn sweeping off", EnvSweep, s, math.MaxInt64/int64(time.Second))
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, fmt.Errorf("%s=%q is not a sweep interval: use a Go duration such as 90s or 5m, a whole number of seconds such as 90, or 0 to turn sweeping off", EnvSweep, s)
	}
	if d > 0 && d < time.Second {
		return 0, fmt.Errorf("%s=%q is shorter than one second: sweeping scans the whole folder, so use 1s or more (the default is %s), or 0 to turn sweeping off", EnvSweep, s, DefaultSweepInterval)
	}
	return d, nil
}
