// Package redis is SessionRedisHandler, the tina4go/sessions store for
// production: sessions in Redis, a single server, a Sentinel-managed master
// or a Redis Cluster, through one pooled go-redis client per process.
//
// The host seals every session before it arrives here, so Redis holds an
// encrypted token, never readable session values. Each session is one Redis
// string:
//
//	key:    Prefix + id            (for example tina4:session:<43-char id>)
//	value:  "\x00t4\x02"           4-byte magic (format 2)
//	        + Expires              8 bytes, big-endian Unix milliseconds, rounded up
//	        + Version              8 bytes, big-endian: a random number other than 0 and 1
//	        + the token            byte for byte
//	expiry: the same millisecond   (SET key value PXAT <Unix ms>)
//
// A session that belongs to a principal (Record.Principal, capability
// "index"; see index.go) is written in format 3, which adds the principal
// key between the version and the token:
//
//	value:  "\x00t4\x03" + Expires + Version
//	        + principal length     1 byte (1 to 128)
//	        + principal            its hex characters
//	        + the token
//
// and its id is added to the set Prefix + "principal:" + principal. A
// session without one is written in format 2 as before, so a handler of an
// earlier version still reads every session that has no principal.
//
// Redis removes expired sessions by itself. Load is one GET: one round trip
// and one command, since the value carries its own expiry and version;
// Expires comes back to the millisecond as it was saved, and Load reports a
// record whose Expires has passed as not found even if Redis still holds the
// key. A host token is a JWT and never starts with a NUL byte, so the magic
// cannot be mistaken for the start of a token. SET ... PXAT needs Redis 6.2
// or newer.
//
// Every write (Save and SaveIf) gives the record a new random version.
// SaveIf checks the stored version and writes in one Lua script on the one
// key of the session, so it is atomic across every process that shares the
// Redis, and works on a Cluster. Lock and Unlock keep a per-session lock
// under its own key, Prefix + id + ":lock", a string holding the holder's
// token with the lock's expiry on the key; nothing else reads or deletes
// that key.
//
// Values in the two earlier formats are still read, and report version 1
// (legacyVersion), which no write ever gives: format 1 ("\x00t4\x01", the
// expiry, the token; no version) and, older still, the bare token with the
// expiry only on the key. Load reads the bare token in one more round trip:
// MULTI, GET, PEXPIRETIME, EXEC, or PTTL in place of PEXPIRETIME on a Redis
// older than 7.0, which lacks it (Expires is then exact to within the round
// trip). The next write rewrites the session in the current format. A value
// with the magic but shorter than its header, or with the magic's first
// three bytes and a format this handler does not know (a newer one), was not
// written by this handler; Load logs a warning and reports it as not found,
// like a key of another type.
//
// The package is importable so a host can run the handler in process;
// cmd/SessionRedisHandler wraps it into a plugin binary with sdk.Serve.
package redis

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/sdk"
)

// Name is the handler's name: the plugin binary's file name and the value of
// TINA4_SESSION_HANDLER that selects it.
const Name = "SessionRedisHandler"

// Version is the handler's own version.
const Version = "0.2.0"

// startPingTimeout bounds the PING New sends to report whether Redis is
// reachable.
const startPingTimeout = 2 * time.Second

// Handler stores each session as one Redis string under Prefix + id, a
// session's lock under Prefix + id + ":lock", and the ids of a principal's
// sessions in a set under Prefix + "principal:" + principal. It is safe for concurrent use, also by several processes (several app servers)
// sharing one Redis. Create it with New and call Stop when done.
type Handler struct {
	client redis.UniversalClient
	prefix string
	where  string // what error messages call the Redis: "127.0.0.1:6379", "cluster a,b,c", ...
	log    *slog.Logger

	// pttl is set once Redis has refused PEXPIRETIME (Redis before 7.0);
	// Load then asks PTTL instead.
	pttl atomic.Bool

	stopOnce sync.Once
}

var (
	_ sdk.Handler          = (*Handler)(nil)
	_ sdk.VersionedHandler = (*Handler)(nil)
	_ sdk.Locker           = (*Handler)(nil)
	_ sdk.Indexer          = (*Handler)(nil)
	_ sdk.HealthChecker    = (*Handler)(nil)
	_ sdk.Stopper          = (*Handler)(nil)
)

// New returns a Handler with one pooled go-redis client built from
// opts.Redis by redis.NewUniversalClient (see Options for the two settings
// New adjusts).
//
// New does not need Redis to be reachable: it sends one PING, waiting at
// most 2 seconds, and logs a warning saying what is wrong if it fails.
// Until Redis answers, Load, Save, Close and Health return errors naming
// Redis; once it answers, they work again with no restart. New fails only
// for options that can never work (a database other than 0 for a Cluster).
func New(opts Options) (*Handler, error) {
	var u redis.UniversalOptions
	if opts.Redis != nil {
		u = *opts.Redis
	}
	u.Addrs = slices.Clone(u.Addrs)
	if len(u.Addrs) == 0 {
		u.Addrs = []string{net.JoinHostPort(DefaultHost, strconv.Itoa(DefaultPort))}
	}
	if u.MasterName == "" && (len(u.Addrs) > 1 || u.IsClusterMode) && u.DB != 0 {
		return nil, fmt.Errorf("redis database %d requested for a Redis Cluster (%s), which has only database 0: unset %s or use database 0",
			u.DB, strings.Join(u.Addrs, ","), EnvDB)
	}
	u.ContextTimeoutEnabled = true
	if u.DialerRetries == 0 {
		u.DialerRetries = 1
	}
	h := &Handler{
		client: redis.NewUniversalClient(&u),
		prefix: opts.Prefix,
		where:  describe(&u),
		log:    opts.Logger,
	}
	if h.prefix == "" {
		h.prefix = DefaultPrefix
	}
	if h.log == nil {
		h.log = sdk.Logger()
	}

	ctx, cancel := context.WithTimeout(context.Background(), startPingTimeout)
	defer cancel()
	if err := h.Health(ctx); err != nil {
		h.log.Warn("redis does not answer yet; session requests fail (the host answers 503) until it does, then work again by themselves",
			"redis", h.where, "error", err.Error())
	} else {
		h.log.Info("connected to redis", "redis", h.where, "prefix", h.prefix)
	}
	return h, nil
}

// describe names the Redis a client talks to, for messages.
func describe(u *redis.UniversalOptions) string {
	switch {
	case u.MasterName != "":
		return "sentinel master " + u.MasterName + " via " + strings.Join(u.Addrs, ",")
	case len(u.Addrs) > 1 || u.IsClusterMode:
		return "cluster " + strings.Join(u.Addrs, ",")
	default:
		return u.Addrs[0]
	}
}

// Stored value layout: a 4-byte magic, "\x00t4" and the format, then
// Expires as big-endian Unix milliseconds, then (format 2) the version, then
// the token. See the package documentation.
const (
	magicPrefix = "\x00t4"
	formatV1    = 1 // "\x00t4\x01" + Expires + token: no version
	formatV2    = 2 // "\x00t4\x02" + Expires + Version + token: a record without a principal
	formatV3    = 3 // "\x00t4\x03" + Expires + Version + principal length + principal + token
	magicLen    = len(magicPrefix) + 1
	headerV1    = magicLen + 8
	headerV2    = headerV1 + 8
	headerV3    = headerV2 + 1 // and the principal
)

// legacyVersion is the version Load reports for a value without one (format
// 1, or the bare token): no write gives it, so SaveIf over such a value
// succeeds with expect 1 and conflicts with anything else.
const legacyVersion = 1

// newVersion returns a random version for a write: never 0 (no record) and
// never legacyVersion.
func newVersion() uint64 {
	for {
		if v := rand.Uint64(); v > legacyVersion {
			return v
		}
	}
}

// encodeValue returns the value that stores data expiring at pxat (Unix
// milliseconds) with version ver: in format 2 without a principal, in
// format 3 with one (which must be valid: at most 128 bytes).
func encodeValue(pxat int64, ver uint64, principal string, data []byte) []byte {
	header := headerV2
	if principal != "" {
		header = headerV3 + len(principal)
	}
	value := make([]byte, header+len(data))
	copy(value, magicPrefix)
	value[len(magicPrefix)] = formatV2
	binary.BigEndian.PutUint64(value[magicLen:], uint64(pxat))
	binary.BigEndian.PutUint64(value[headerV1:], ver)
	if principal != "" {
		value[len(magicPrefix)] = formatV3
		value[headerV2] = byte(len(principal))
		copy(value[headerV3:], principal)
	}
	copy(value[header:], data)
	return value
}

// expiryMillis is r.Expires in Unix milliseconds, rounded up to Redis's
// millisecond so the key never expires before r.Expires.
func expiryMillis(expires time.Time) int64 {
	return (expires.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
}

// Load returns the record stored under id, with its version (1 for a value
// in an earlier format, which has none).
//
// It returns sdk.ErrNotFound when there is no key for id (never saved,
// closed, or expired and removed by Redis), and also when the key holds
// something this handler never writes (not a string, a value with the magic
// but too short to hold its header or of an unknown format, or a value
// without the magic and without an expiry); those are logged as warnings and
// left for the next write to replace. It returns an error wrapping
// sdk.ErrInvalidID for an id that is not a session id, without asking Redis;
// ctx.Err() when ctx is already done; and an error naming Redis and its
// address when Redis cannot be asked.
//
// Load sends one GET. Only for a value written by an earlier version of
// this handler without the magic, it then reads the value and the key's
// expiry again in one MULTI/EXEC (see the package documentation).
func (h *Handler) Load(ctx context.Context, id string) (sdk.Record, error) {
	if err := ctx.Err(); err != nil {
		return sdk.Record{}, err
	}
	key, err := h.key(id)
	if err != nil {
		return sdk.Record{}, err
	}
	v, err := h.client.Get(ctx, key).Bytes()
	switch {
	// Compared, not errors.Is: a failed connection or handshake may wrap
	// redis.Nil (a Sentinel that does not know the master answers
	// get-master-addr-by-name with a null), and that is not "no such key".
	// GET's own null reply is redis.Nil itself.
	case err == redis.Nil:
		return sdk.Record{}, sdk.ErrNotFound
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		h.warnNotString(id)
		return sdk.Record{}, sdk.ErrNotFound
	case err != nil:
		return sdk.Record{}, h.fail(ctx, "load session "+shortID(id), err)
	}
	if !hasMagic(v) {
		return h.loadLegacy(ctx, id, key)
	}
	return h.decode(id, v, time.Now())
}

// hasMagic reports whether v starts with a magic: "\x00t4" and a format
// byte. A bare token (a JWT) never does.
func hasMagic(v []byte) bool {
	return len(v) >= magicLen && string(v[:len(magicPrefix)]) == magicPrefix
}

// decode returns the record in v, a value with the magic, as it is at now:
// sdk.ErrNotFound when its expiry is not after now, or when v is not a
// value this handler writes (too short, or a format it does not know). Data
// is a sub-slice of v, so v must not be used afterwards. SaveIf's script
// judges a stored value the same way (saveIfSource).
func (h *Handler) decode(id string, v []byte, now time.Time) (sdk.Record, error) {
	header := headerV1
	switch format := v[len(magicPrefix)]; format {
	case formatV1:
	case formatV2:
		header = headerV2
	case formatV3:
		header = headerV3
		if len(v) >= headerV3 {
			header += int(v[headerV2])
		}
	default:
		h.log.Warn("session value in redis has a format this handler does not know (written by a newer version?); treating the session as not found",
			"redis", h.where, "session", shortID(id), "format", int(format))
		return sdk.Record{}, sdk.ErrNotFound
	}
	if len(v) < header {
		h.log.Warn("session value in redis is too short to hold its header, so this handler did not write it; treating the session as not found",
			"redis", h.where, "session", shortID(id), "bytes", len(v))
		return sdk.Record{}, sdk.ErrNotFound
	}
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(v[magicLen:headerV1])))
	if !now.Before(expires) {
		// Redis still had it, but by this process's clock it has expired.
		return sdk.Record{}, sdk.ErrNotFound
	}
	version := uint64(legacyVersion)
	if header >= headerV2 {
		version = max(binary.BigEndian.Uint64(v[headerV1:headerV2]), legacyVersion) // 0 was not written here either
	}
	return sdk.Record{Data: v[header:len(v):len(v)], Expires: expires, Version: version}, nil
}

// loadLegacy reads key's value and expiry in one MULTI/EXEC, for a value
// written by an earlier version of this handler: the bare token, with the
// expiry only on the key.
func (h *Handler) loadLegacy(ctx context.Context, id, key string) (sdk.Record, error) {
	usePTTL := h.pttl.Load()
	var get *redis.StringCmd
	var exp *redis.DurationCmd
	_, txErr := h.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, key)
		if usePTTL {
			exp = p.PTTL(ctx, key)
		} else {
			exp = p.PExpireTime(ctx, key)
		}
		return nil
	})
	now := time.Now()
	if !usePTTL && redis.HasErrorPrefix(exp.Err(), "unknown command") {
		h.pttl.Store(true)
		h.log.Info("redis has no PEXPIRETIME (added in Redis 7.0); reading expiries of sessions saved by an earlier version of this handler with PTTL instead", "redis", h.where)
		return h.loadLegacy(ctx, id, key)
	}

	err := get.Err()
	fromTx := false
	switch {
	case err == nil && txErr != nil:
		// A failure of the connection or its handshake (a wrong password,
		// say) is reported by TxPipelined alone; the commands then hold no
		// error and no value. Such an error may wrap redis.Nil (a Sentinel
		// that does not know the master), which is not "no such key".
		err, fromTx = txErr, true
	case redis.IsExecAbortError(err) && exp.Err() != nil:
		err = exp.Err() // why the transaction was refused, e.g. NOPERM
	}
	switch {
	case errors.Is(err, redis.Nil) && !fromTx:
		return sdk.Record{}, sdk.ErrNotFound
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		h.warnNotString(id)
		return sdk.Record{}, sdk.ErrNotFound
	case err != nil:
		return sdk.Record{}, h.fail(ctx, "load session "+shortID(id), err)
	}
	if err := exp.Err(); err != nil {
		return sdk.Record{}, h.fail(ctx, "load session "+shortID(id), err)
	}
	data, _ := get.Bytes()
	if hasMagic(data) {
		// A write in the current format replaced the value since the GET.
		return h.decode(id, data, now)
	}

	var expires time.Time
	switch d := exp.Val(); {
	case d == -2: // removed between the two commands; cannot happen inside MULTI
		return sdk.Record{}, sdk.ErrNotFound
	case d == -1:
		h.log.Warn("session key in redis has no expiry, so this handler did not write it; treating the session as not found",
			"redis", h.where, "session", shortID(id))
		return sdk.Record{}, sdk.ErrNotFound
	case usePTTL:
		expires = now.Add(d)
	default:
		expires = time.UnixMilli(d.Milliseconds())
	}
	if !now.Before(expires) {
		// Redis still had it, but by this process's clock it has expired.
		return sdk.Record{}, sdk.ErrNotFound
	}
	return sdk.Record{Data: data, Expires: expires, Version: legacyVersion}, nil
}

// warnNotString logs that id's key is not a string.
func (h *Handler) warnNotString(id string) {
	h.log.Warn("session key in redis is not a string; treating the session as not found",
		"redis", h.where, "session", shortID(id))
}

// Save stores r under id with SET key value PXAT <r.Expires in Unix ms>,
// where value is the magic, r.Expires, a new random version, r.Principal
// if there is one, and r.Data (see the package documentation; r.Version is
// ignored), replacing whatever the key held; Redis applies it atomically
// and removes the key once r.Expires has passed. A record whose Expires is
// not in the future is not stored: Save deletes the key instead, so an
// older record cannot be loaded either.
//
// A record with a principal is first added to the principal's index (see
// index.go), then written.
//
// It returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id or a principal that is not a principal key, without asking
// Redis; ctx.Err() when ctx is already done; and an error naming Redis and
// its address when the write fails. After an error, the key holds either
// the old record or the new one.
func (h *Handler) Save(ctx context.Context, id string, r sdk.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := h.key(id)
	if err != nil {
		return err
	}
	if !r.Expires.After(time.Now()) {
		if err := h.client.Del(ctx, key).Err(); err != nil {
			return h.fail(ctx, "save expired session "+shortID(id), err)
		}
		return nil
	}
	if err := checkPrincipal(r.Principal); err != nil {
		return err
	}
	pxat := expiryMillis(r.Expires)
	if err := h.index(ctx, r.Principal, id, pxat); err != nil {
		return err
	}
	cmd := redis.NewStatusCmd(ctx, "set", key, encodeValue(pxat, newVersion(), r.Principal, r.Data), "pxat", pxat)
	if err := h.client.Process(ctx, cmd); err != nil {
		return h.fail(ctx, "save session "+shortID(id), err)
	}
	return nil
}

// Close deletes the key of id. Closing an id that has no key returns nil.
// It leaves the session's lock alone (see Lock): the lock is not the record,
// its holder releases it, and it expires by itself.
// It returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id, without asking Redis; ctx.Err() when ctx is already done; and
// an error naming Redis and its address when the delete fails.
func (h *Handler) Close(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := h.key(id)
	if err != nil {
		return err
	}
	if err := h.client.Del(ctx, key).Err(); err != nil {
		return h.fail(ctx, "close session "+shortID(id), err)
	}
	return nil
}

// Health sends PING (to every node of a Cluster) and returns nil when Redis
// answers. Otherwise the error names Redis, its address and the cause, for
// example "redis 127.0.0.1:6379 unreachable: dial tcp 127.0.0.1:6379:
// connect: connection refused" or "redis 127.0.0.1:6379: WRONGPASS ...".
func (h *Handler) Health(ctx context.Context) error {
	var err error
	if c, ok := h.client.(*redis.ClusterClient); ok {
		err = c.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
			if err := node.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("node %s: %w", node.Options().Addr, err)
			}
			return nil
		})
	} else {
		err = h.client.Ping(ctx).Err()
	}
	if err != nil {
		return h.fail(ctx, "", err)
	}
	return nil
}

// Stop closes the Redis client and its connections. It is safe to call more
// than once and from several goroutines. After Stop, every other method
// returns an error (wrapping redis.ErrClosed).
func (h *Handler) Stop() {
	h.stopOnce.Do(func() {
		if err := h.client.Close(); err != nil {
			h.log.Warn("closing the redis client failed", "redis", h.where, "error", err.Error())
		}
	})
}

// key returns the Redis key of the session id. It refuses, with an error
// wrapping sdk.ErrInvalidID, every id that is not a session id; the refused
// id is not repeated in the error, since it came from a client.
func (h *Handler) key(id string) (string, error) {
	if !sdk.ValidID(id) {
		return "", fmt.Errorf("%w: want 43 characters of A-Z a-z 0-9 - _, got %d bytes", sdk.ErrInvalidID, len(id))
	}
	return h.prefix + id, nil
}

// shortID is the start of a session id, enough to tell sessions apart in a
// message without writing down a bearer secret.
func shortID(id string) string {
	const keep = 6
	if len(id) <= keep {
		return id
	}
	return id[:keep] + "…"
}
