package redis

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tina4go/sessions/sdk"
)

// saveIfSource is SaveIf's check and write, one Lua script on the session's
// one key: Redis runs it atomically, and on a Cluster it runs on the master
// of that key's slot.
//
// It judges the stored value as decode and loadLegacy do, against the
// caller's clock (ARGV[4]), so a record Load reports as not found is no
// record here either: a value with the magic counts only when its format is
// 1, 2 or 3, it is long enough for its header (with a format-3 value's
// principal) and its expiry is after now; a
// bare token (no magic) counts while its key's expiry (PEXPIRETIME, or PTTL
// on a Redis without it) is after now; anything else, a key of another type
// included, is no record. The current version is then bytes 13..20 of a
// format-2 or format-3 value, legacyVersion for the earlier formats (and for a stored
// version 0, which this handler never writes), and eight zero bytes for no
// record. Versions are compared as their 8 big-endian bytes, so expect 0
// matches exactly "no record".
//
//	KEYS[1]  the session's key
//	ARGV[1]  the expected version, 8 bytes big-endian
//	ARGV[2]  the value to store
//	ARGV[3]  its expiry in Unix milliseconds; "0": delete the key instead
//	ARGV[4]  the caller's clock, Unix milliseconds
//
// It returns 0 when it wrote, {1} for a conflict with no record, and for a
// conflict with a record {2, value} (a value with the magic), {3, value,
// PEXPIRETIME} or {4, value, PTTL} (a bare token).
//
// The script first reads only the first 21 bytes of the value (GETRANGE)
// and writes at once when they are a live format-2 or format-3 header with
// the expected version, which is every save without a conflict; anything
// else, it reads the whole value and judges it in full. A script's fixed
// cost in Redis (about 4 µs) is most of what SaveIf costs over Save, so the
// common path is kept to one read of 21 bytes and one write.
const saveIfSource = `
local key, want, now = KEYS[1], ARGV[1], tonumber(ARGV[4])
local none, legacy = '\0\0\0\0\0\0\0\0', '\0\0\0\0\0\0\0\1'
local function write()
	if ARGV[3] == '0' then
		redis.call('DEL', key)
	else
		redis.call('SET', key, ARGV[2], 'PXAT', ARGV[3])
	end
	return 0
end
-- fits reports whether the value is at least n bytes long.
local function fits(n)
	local l = redis.pcall('STRLEN', key)
	return type(l) == 'number' and l >= n
end
-- The common case: a live format-2 or format-3 value holding the expected
-- version. Only its header is read. A user whose ACL lacks GETRANGE or
-- STRLEN takes the path below, which reads the whole value.
if want ~= none then
	local h = redis.pcall('GETRANGE', key, 0, 20)
	if type(h) == 'string' and string.sub(h, 13, 20) == want and string.sub(h, 1, 3) == '\0t4' then
		local f = string.byte(h, 4)
		if f == 2 and #h >= 20 or f == 3 and #h == 21 and fits(21 + string.byte(h, 21)) then
			local e = 0
			for i = 5, 12 do e = e * 256 + string.byte(h, i) end
			if e > now then
				return write()
			end
		end
	end
end
-- Every other case: the whole value, judged in full.
local ver, kind, exp = none, 1, 0
local cur = redis.pcall('GET', key)
if type(cur) == 'table' then
	if string.sub(cur.err or '', 1, 9) ~= 'WRONGTYPE' then
		return cur
	end
	cur = false
end
if cur then
	if #cur >= 4 and string.sub(cur, 1, 3) == '\0t4' then
		local f, hdr = string.byte(cur, 4), 0
		if f == 1 then hdr = 12 elseif f == 2 then hdr = 20
		elseif f == 3 and #cur >= 21 then hdr = 21 + string.byte(cur, 21) end
		if hdr > 0 and #cur >= hdr then
			local e = 0
			for i = 5, 12 do e = e * 256 + string.byte(cur, i) end
			if e > now then
				kind, ver = 2, legacy
				if f >= 2 and string.sub(cur, 13, 20) ~= none then
					ver = string.sub(cur, 13, 20)
				end
			end
		end
	else
		local t = redis.pcall('PEXPIRETIME', key)
		if type(t) == 'number' then
			if t > now then kind, ver, exp = 3, legacy, t end
		else
			t = redis.call('PTTL', key)
			if t > 0 then kind, ver, exp = 4, legacy, t end
		end
	end
end
if ver ~= want then
	if kind == 1 then return {1} end
	return {kind, cur, exp}
end
return write()
`

// Replies of saveIfSource.
const (
	saveIfSaved          = 0
	saveIfNoRecord       = 1
	saveIfConflict       = 2
	saveIfLegacyExpireAt = 3
	saveIfLegacyTTL      = 4
)

// lockSource takes or extends a lock: KEYS[1] the lock's key, ARGV[1] the
// token, ARGV[2] the ttl in milliseconds. It returns 1 when the token holds
// the lock afterwards, else 0.
const lockSource = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
	return 1
end
return 0
`

// unlockSource deletes KEYS[1] if it holds the token ARGV[1].
const unlockSource = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
end
return 0
`

// The scripts run with EVALSHA, and with EVAL when Redis does not have them
// yet (redis.Script.Run).
var (
	saveIfScript = redis.NewScript(saveIfSource)
	lockScript   = redis.NewScript(lockSource)
	unlockScript = redis.NewScript(unlockSource)
)

// lockSuffix ends the key of a session's lock. A session key is the prefix
// and 43 characters without a colon, so no session key ends with it.
const lockSuffix = ":lock"

// SaveIf stores r under id, as Save does but with the version it returns,
// only if the live record under id has version expect (0: only if there is
// no live record). The check and the write are one Lua script on the one
// key of the session (see saveIfSource), so SaveIf is atomic against every
// process that shares the Redis and works on a Cluster. A value in an
// earlier format has version 1.
//
// When the stored version is another, SaveIf writes nothing and returns a
// *sdk.ConflictError carrying the stored record (data, expiry and version,
// read as Load reads it), or Found=false when there is no live record. A
// record whose Expires is not in the future is not stored: when the version
// matches, SaveIf deletes the key instead, and returns a new version that
// no record has. A record with a principal is added to the principal's
// index before the script runs (see index.go), whatever the script then
// decides.
//
// It returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id or a principal that is not a principal key, without asking
// Redis; ctx.Err() when ctx is already done; and
// an error naming Redis and its address when Redis fails. After such an
// error, the key holds either the old record or the new one.
func (h *Handler) SaveIf(ctx context.Context, id string, r sdk.Record, expect uint64) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key, err := h.key(id)
	if err != nil {
		return 0, err
	}
	if err := checkPrincipal(r.Principal); err != nil {
		return 0, err
	}
	now := time.Now()
	ver := newVersion()
	var value []byte
	var pxat int64 // 0: delete
	if r.Expires.After(now) {
		pxat = expiryMillis(r.Expires)
		value = encodeValue(pxat, ver, r.Principal, r.Data)
		// The index first: an entry for a write that then conflicts is
		// harmless (see index.go).
		if err := h.index(ctx, r.Principal, id, pxat); err != nil {
			return 0, err
		}
	}
	var want [8]byte
	binary.BigEndian.PutUint64(want[:], expect)
	reply, err := saveIfScript.Run(ctx, h.client, []string{key}, want[:], value, pxat, now.UnixMilli()).Result()
	if err != nil {
		return 0, h.fail(ctx, "save session "+shortID(id)+" if unchanged", err)
	}
	kind, cur, exp, ok := saveIfReply(reply)
	if !ok {
		return 0, h.fail(ctx, "save session "+shortID(id)+" if unchanged", fmt.Errorf("unexpected reply from the script: %.100v", reply))
	}
	var rec sdk.Record
	switch kind {
	case saveIfSaved:
		return ver, nil
	case saveIfNoRecord:
		return 0, &sdk.ConflictError{Found: false}
	case saveIfConflict:
		if !hasMagic(cur) {
			return 0, h.fail(ctx, "save session "+shortID(id)+" if unchanged", fmt.Errorf("the script reported a value without the magic as one with it"))
		}
		rec, err = h.decode(id, cur, now)
		if err != nil {
			// The script judged it live by the same clock; cannot happen.
			return 0, &sdk.ConflictError{Found: false}
		}
	case saveIfLegacyExpireAt:
		rec = sdk.Record{Data: cur, Expires: time.UnixMilli(exp), Version: legacyVersion}
	case saveIfLegacyTTL:
		rec = sdk.Record{Data: cur, Expires: time.Now().Add(time.Duration(exp) * time.Millisecond), Version: legacyVersion}
	}
	return 0, &sdk.ConflictError{Found: true, Current: rec}
}

// saveIfReply takes saveIfSource's reply apart.
func saveIfReply(r any) (kind int64, value []byte, exp int64, ok bool) {
	if n, isInt := r.(int64); isInt {
		return n, nil, 0, n == saveIfSaved
	}
	reply, isSlice := r.([]any)
	if !isSlice || len(reply) == 0 {
		return 0, nil, 0, false
	}
	if kind, ok = reply[0].(int64); !ok {
		return 0, nil, 0, false
	}
	switch kind {
	case saveIfNoRecord:
		return kind, nil, 0, len(reply) == 1
	case saveIfConflict, saveIfLegacyExpireAt, saveIfLegacyTTL:
		if len(reply) != 3 {
			return 0, nil, 0, false
		}
		s, ok1 := reply[1].(string)
		exp, ok2 := reply[2].(int64)
		return kind, []byte(s), exp, ok1 && ok2
	}
	return 0, nil, 0, false
}

// Lock takes the lock of session id for token until ttl has passed (rounded
// up to the millisecond) and returns true, unless another token holds it
// (then false); taking it again with the token that holds it extends it to
// ttl from now. The lock is the key Prefix + id + ":lock", holding the
// token, with the lock's expiry on the key; one Lua script reads and writes
// it, so Lock is atomic against every process that shares the Redis. Load,
// Save, SaveIf and Close never touch that key; a lock whose holder dies
// expires with its key.
//
// It returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id, and an error for an empty token or a ttl that is not
// positive, without asking Redis; ctx.Err() when ctx is already done; and an
// error naming Redis and its address when Redis fails.
func (h *Handler) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	key, err := h.lockKey(id)
	if err != nil {
		return false, err
	}
	if token == "" || ttl <= 0 {
		return false, fmt.Errorf("lock session %s: want a token and a positive ttl, got a token of %d bytes and ttl %v", shortID(id), len(token), ttl)
	}
	ms := int64((ttl + time.Millisecond - 1) / time.Millisecond)
	got, err := lockScript.Run(ctx, h.client, []string{key}, token, ms).Int64()
	if err != nil {
		return false, h.fail(ctx, "lock session "+shortID(id), err)
	}
	return got == 1, nil
}

// Unlock deletes the lock of session id if token holds it, in one Lua
// script, and otherwise does nothing; it returns nil in both cases. It
// returns an error wrapping sdk.ErrInvalidID for an id that is not a
// session id, without asking Redis; ctx.Err() when ctx is already done; and
// an error naming Redis and its address when Redis fails.
func (h *Handler) Unlock(ctx context.Context, id, token string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := h.lockKey(id)
	if err != nil {
		return err
	}
	if err := unlockScript.Run(ctx, h.client, []string{key}, token).Err(); err != nil {
		return h.fail(ctx, "unlock session "+shortID(id), err)
	}
	return nil
}

// lockKey returns the Redis key of the lock of session id, refusing ids as
// key does.
func (h *Handler) lockKey(id string) (string, error) {
	key, err := h.key(id)
	if err != nil {
		return "", err
	}
	return key + lockSuffix, nil
}
