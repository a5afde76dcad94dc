package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// fail describes an error from Redis for op (empty for a health check). The
// message starts with "redis <address>", says whether Redis could not be
// reached, and for authentication and permission errors says what to check.
// err stays wrapped, and so does ctx.Err() when ctx is done, so callers can
// match context.DeadlineExceeded whichever way go-redis reported it.
func (h *Handler) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	if op != "" {
		op += ": "
	}
	switch {
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("redis %s: %sthe handler has been stopped: %w", h.where, op, err)
	case redis.IsAuthError(err):
		return fmt.Errorf("redis %s: %s%w (check the password in %s or %s, and the user in %s)",
			h.where, op, err, EnvPassword, EnvSecret, EnvUsername)
	case redis.IsPermissionError(err), scriptPermissionError(err):
		return fmt.Errorf("redis %s: %s%w (the Redis user needs GET, SET, DEL, EVALSHA, EVAL, PEXPIRE, MULTI, EXEC, PEXPIRETIME or PTTL, and PING, on keys %s*; for sessions of a principal also ZADD, ZREMRANGEBYSCORE, ZRANGE, ZSCAN, ZSCORE, ZREM, PEXPIREAT and GETRANGE)",
			h.where, op, err, h.prefix)
	case strings.Contains(err.Error(), "all sentinels specified in configuration are unreachable"):
		return fmt.Errorf("redis %s: %s%w (no Sentinel answered with the address of that master: check %s and %s)",
			h.where, op, err, EnvMaster, EnvAddrs)
	case timedOut(err):
		return fmt.Errorf("redis %s did not answer in time: %s%w", h.where, op, err)
	case unreachable(err):
		return fmt.Errorf("redis %s unreachable: %s%w", h.where, op, err)
	default:
		return fmt.Errorf("redis %s: %s%w", h.where, op, err)
	}
}

// unreachable reports whether err means the connection to Redis could not
// be made or was lost, as opposed to Redis answering with an error.
func unreachable(err error) bool {
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return false
	}
	var nerr net.Error
	return errors.As(err, &nerr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// timedOut reports whether err is a deadline: the caller's, or a socket
// timeout.
func timedOut(err error) bool {
	var nerr net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout())
}

// scriptPermissionError reports whether err is Redis refusing a command a
// script called because the user may not run it. Redis 7.0 answers that
// with ERR, not NOPERM.
func scriptPermissionError(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.Contains(rerr.Error(), "user executing the script can't run")
}
