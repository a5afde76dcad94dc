package redis

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// The principal index (protocol 2, capability "index") backs the host's
// "log out everywhere". For a session whose record has a principal (an
// opaque hex key the host derives from a user id; never the user id), the
// handler keeps:
//
//   - the principal inside the session's own value (format 3, see the
//     package documentation), so whose the session is now is always read
//     from the session itself, in the same key, by the same atomic script
//     that deletes it;
//   - the session's id in a sorted set, Prefix + "principal:" + principal,
//     scored with the latest expiry (Unix milliseconds) a write of that id
//     announced. Every add also removes the members whose score has passed
//     and sets the set's own expiry to its highest score, so the set never
//     outlives the sessions it lists and never grows past the sessions of
//     one lifetime. It holds ids and expiries only. A session key is the
//     prefix and 43 characters without a colon and a lock key ends in
//     ":lock", so no session or lock key looks like a set's.
//
// The session key and the set are in different slots of a Redis Cluster,
// so no one script can write both. Save and SaveIf add to the set first and
// write the session second, as two steps. CloseAll reads the set and, for
// each id, checks and deletes the session in one script on the session's
// key, deleting it only if its value names the principal now; then it
// removes from the set the ids whose session it deleted (unless a later
// expiry was added for one meanwhile) and the ids whose score has passed,
// and nothing else. That makes every outcome safe:
//
//   - a member for a session that is gone, was never written (a SaveIf
//     conflict, a failure or a crash between the steps) or was saved since
//     under another principal or none, is harmless: CloseAll leaves such
//     a session alone. It also leaves the member, since the session may be
//     one whose save is between its two steps right now; the member goes
//     once its score has passed;
//   - a session written with the principal always has its member, since
//     the member came first, and a member goes only with its session or
//     its expiry. (A session CloseAll deleted can come back only through a
//     plain Save of its id; a host with record versions saves with SaveIf,
//     which refuses a deleted session.)
//
// Close deletes only the session; its member goes with its score or the
// next CloseAll.

// principalInfix follows the prefix in the key of a principal's set.
const principalInfix = "principal:"

// indexSource adds a session to a principal's sorted set (raising its
// score to the session's expiry if that is later), removes the members
// whose score has passed, and sets the set's expiry to its highest score:
//
//	KEYS[1]  the principal's set
//	ARGV[1]  the session id
//	ARGV[2]  the session's expiry, Unix milliseconds
//	ARGV[3]  the caller's clock, Unix milliseconds
const indexSource = `
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 2 then
	redis.call('PEXPIREAT', KEYS[1], top[2])
end
return 0
`

// unindexSource removes from a principal's set the ids in ARGV (id, score
// pairs) whose score is still at most the one given:
//
//	KEYS[1]  the principal's set
//	ARGV     id 1, score 1, id 2, score 2, ...
const unindexSource = `
for i = 1, #ARGV, 2 do
	local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
	if s and tonumber(s) <= tonumber(ARGV[i + 1]) then
		redis.call('ZREM', KEYS[1], ARGV[i])
	end
end
return 0
`

// closeIfSource deletes a session if its value names the principal:
//
//	KEYS[1]  the session's key
//	ARGV[1]  the principal
//	ARGV[2]  the caller's clock, Unix milliseconds
//
// It reads the header only (GETRANGE) and returns 1 when it deleted a live
// session, 2 when it deleted one whose expiry has passed by the caller's
// clock, and 0 when it deleted nothing: no key, a key of another type, or a
// value of another principal or of a format without one.
const closeIfSource = `
local hdr = redis.pcall('GETRANGE', KEYS[1], 0, 20 + 128)
if type(hdr) == 'table' then
	if string.sub(hdr.err or '', 1, 9) == 'WRONGTYPE' then return 0 end
	return hdr
end
if #hdr < 21 or string.sub(hdr, 1, 4) ~= '\0t4\3' then return 0 end
local n = string.byte(hdr, 21)
if n ~= #ARGV[1] or string.sub(hdr, 22, 21 + n) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local e = 0
for i = 5, 12 do e = e * 256 + string.byte(hdr, i) end
if e > tonumber(ARGV[2]) then return 1 end
return 2
`

var (
	indexScript   = redis.NewScript(indexSource)
	unindexScript = redis.NewScript(unindexSource)
	closeIfScript = redis.NewScript(closeIfSource)
)

// closeAllBatch is how many ids CloseAll asks ZSCAN for at a time.
const closeAllBatch = 100

// checkPrincipal refuses a principal that is neither "" (none) nor a
// principal key, with an error wrapping sdk.ErrInvalidID.
func checkPrincipal(p string) error {
	if p != "" && !sdk.ValidPrincipal(p) {
		return shared.PrincipalError(p)
	}
	return nil
}

// indexKey is the key of principal p's set.
func (h *Handler) indexKey(p string) string { return h.prefix + principalInfix + p }

// index adds id, a session expiring at pxat (Unix milliseconds), to the
// set of principal p; nothing for p "" (none).
func (h *Handler) index(ctx context.Context, p, id string, pxat int64) error {
	if p == "" {
		return nil
	}
	err := indexScript.Run(ctx, h.client, []string{h.indexKey(p)}, id, pxat, time.Now().UnixMilli()).Err()
	if err != nil {
		return h.fail(ctx, "index session "+shortID(id)+" under its principal", err)
	}
	return nil
}

// CloseAll deletes every session listed in principal's set whose value
// names principal now (see the top of index.go), and returns how many of
// them had not expired. It reads the set with ZSCAN, a batch at a time; for
// each id it runs one script on the session's key that checks the value's
// principal and deletes it; then one script on the set removes the ids
// whose session it deleted and the ids whose score has passed. A member
// whose session it left stays until its score passes (Redis deletes the
// set once it is empty, or at its highest score). On a Cluster every
// command goes to the master of its own key.
//
// It returns an error wrapping sdk.ErrInvalidID for a principal that is
// not a principal key, without asking Redis; ctx.Err() when ctx is done;
// and an error naming Redis and its address when Redis fails, with the
// number of sessions deleted until then. Members not yet checked stay, so
// calling CloseAll again finishes the job.
func (h *Handler) CloseAll(ctx context.Context, principal string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if !sdk.ValidPrincipal(principal) {
		return 0, shared.PrincipalError(principal)
	}
	key := h.indexKey(principal)
	closed := 0
	var cursor uint64
	for {
		flat, next, err := h.client.ZScan(ctx, key, cursor, "", closeAllBatch).Result()
		if redis.HasErrorPrefix(err, "WRONGTYPE") {
			h.log.Warn("the key of a principal's index in redis is not a sorted set; nothing to close", "redis", h.where)
			return 0, nil
		}
		if err != nil {
			return closed, h.fail(ctx, "read the sessions of a principal", err)
		}
		now := time.Now().UnixMilli()
		var drop []any // id, score pairs
		var failed error
		for i := 0; i+1 < len(flat); i += 2 {
			id, score := flat[i], flat[i+1]
			ms, err := strconv.ParseFloat(score, 64)
			if !sdk.ValidID(id) || err != nil {
				drop = append(drop, id, "1e300") // not ours
				continue
			}
			if ms <= float64(now) {
				drop = append(drop, id, score) // every write of it has expired
				continue
			}
			if err := ctx.Err(); err != nil {
				failed = err
				break
			}
			got, err := closeIfScript.Run(ctx, h.client, []string{h.prefix + id}, principal, now).Int64()
			if err != nil {
				failed = h.fail(ctx, "close session "+shortID(id)+" of a principal", err)
				break
			}
			if got != 0 {
				drop = append(drop, id, score)
			}
			if got == 1 {
				closed++
			}
		}
		if len(drop) > 0 {
			if err := unindexScript.Run(ctx, h.client, []string{key}, drop...).Err(); err != nil && failed == nil {
				failed = h.fail(ctx, "remove closed sessions from the index of a principal", err)
			}
		}
		if failed != nil {
			return closed, failed
		}
		if cursor = next; cursor == 0 {
			return closed, nil
		}
	}
}
