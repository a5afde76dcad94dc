package config

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseDuration accepts a Go duration ("90s", "30m", "1h30m") or a whole
// number of seconds ("1800"). The result must be greater than zero.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		if n > math.MaxInt64/uint64(time.Second) {
			return 0, errors.New("too long; want a duration like 30m or seconds like 1800")
		}
		d = time.Duration(n) * time.Second
	} else if d, err = time.ParseDuration(s); err != nil {
		return 0, errors.New("want a duration like 30m or seconds like 1800")
	}
	if d <= 0 {
		return 0, errors.New("must be greater than zero; want a duration like 30m or seconds like 1800")
	}
	return d, nil
}

// parseSameSite accepts Lax, Strict or None in any case.
func parseSameSite(s string) (http.SameSite, error) {
	switch strings.ToLower(s) {
	case "lax":
		return http.SameSiteLaxMode, nil
	case "strict":
		return http.SameSiteStrictMode, nil
	case "none":
		return http.SameSiteNoneMode, nil
	}
	return 0, errors.New("want Lax, Strict or None")
}

// parseBool accepts true/false, 1/0 and yes/no in any case.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes":
		return true, nil
	case "false", "0", "no":
		return false, nil
	}
	return false, errors.New("want true or false (also 1/0, yes/no)")
}

// parseLogLevel accepts debug, info, warn or error in any case and returns it
// in lower case.
func parseLogLevel(s string) (string, error) {
	switch l := strings.ToLower(s); l {
	case "debug", "info", "warn", "error":
		return l, nil
	}
	return "", errors.New("want debug, info, warn or error")
}

// parseSHA256 accepts 64 hex digits (any case) and returns them in lower case.
func parseSHA256(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return "", errors.New("want 64 hex digits, as sha256sum prints")
	}
	return s, nil
}

// maxRecordBytes is the protocol's own limit (shared.MaxRecordSize); a
// larger TINA4_SESSION_MAX_BYTES would promise what no transport carries.
const maxRecordBytes = 16 << 20

// parseSize accepts a number of bytes ("4194304") or a number with KiB or
// MiB ("512KiB", "4MiB"; K and M and any case mean the same), from 1 KiB
// to 16 MiB.
func parseSize(s string) (int, error) {
	const want = "want bytes like 4194304, or 512KiB or 4MiB, from 1KiB to 16MiB"
	num, unit := s, 1
	lower := strings.ToLower(s)
	for _, u := range []struct {
		suffix string
		size   int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}} {
		if strings.HasSuffix(lower, u.suffix) {
			num, unit = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.size
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > maxRecordBytes/unit || n*unit < 1<<10 {
		return 0, errors.New(want)
	}
	return n * unit, nil
}

// parseCount accepts a whole number greater than zero.
func parseCount(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, errors.New("want a whole number greater than zero")
	}
	return n, nil
}
