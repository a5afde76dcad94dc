package handlertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

// NewPrincipal returns a fresh random principal key, in the format the host
// sends: 64 characters of 0-9 a-f.
func NewPrincipal() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func indexer(ctx context.Context, h sdk.Handler) (sdk.Indexer, error) {
	ix, ok := h.(sdk.Indexer)
	if !ok || !offers(ctx, h, shared.CapabilityIndex) {
		return nil, errNotOffered
	}
	return ix, nil
}

// saveAs saves a record of data under id with principal p ("" for none),
// alternately with Save and, when h has versions, SaveIf over what is there
// now (so both carry the principal).
func saveAs(ctx context.Context, h sdk.Handler, id, p, data string, useSaveIf bool) error {
	r := sdk.Record{Data: []byte(data), Expires: future(), Principal: p}
	if v, ok := h.(sdk.VersionedHandler); ok && useSaveIf && offers(ctx, h, shared.CapabilityVersions) {
		var expect uint64
		if cur, err := h.Load(ctx, id); err == nil {
			expect = cur.Version
		}
		if _, err := v.SaveIf(ctx, id, r, expect); err != nil {
			return fmt.Errorf("SaveIf of %q with a principal returned %v", data, err)
		}
		return nil
	}
	if err := h.Save(ctx, id, r); err != nil {
		return fmt.Errorf("Save of %q with a principal returned %v", data, err)
	}
	return nil
}

func closeAll(ctx context.Context, ix sdk.Indexer, p string, want int, what string) error {
	n, err := ix.CloseAll(ctx, p)
	if err != nil {
		return fmt.Errorf("%s: CloseAll returned %v", what, err)
	}
	if n != want {
		return fmt.Errorf("%s: CloseAll reports %d sessions closed, want %d", what, n, want)
	}
	return nil
}

func checkCloseAll(ctx context.Context, h sdk.Handler, _ Options) error {
	ix, err := indexer(ctx, h)
	if err != nil {
		return err
	}
	p, q := NewPrincipal(), NewPrincipal()
	mine1, mine2, expired, closed, other, none := NewID(), NewID(), NewID(), NewID(), NewID(), NewID()
	for _, id := range []string{mine1, mine2, expired, closed, other, none} {
		defer h.Close(context.WithoutCancel(ctx), id)
	}
	if err := saveAs(ctx, h, mine1, p, "mine 1", false); err != nil {
		return err
	}
	if err := saveAs(ctx, h, mine2, p, "mine 2", true); err != nil {
		return err
	}
	if err := h.Save(ctx, expired, sdk.Record{Data: []byte("expired"), Expires: time.Now().Add(-time.Minute), Principal: p}); err != nil {
		return fmt.Errorf("Save of an expired record with a principal returned %v", err)
	}
	if err := saveAs(ctx, h, closed, p, "closed", false); err != nil {
		return err
	}
	if err := h.Close(ctx, closed); err != nil {
		return fmt.Errorf("Close returned %v", err)
	}
	if err := saveAs(ctx, h, other, q, "other", true); err != nil {
		return err
	}
	if err := saveAs(ctx, h, none, "", "none", false); err != nil {
		return err
	}
	if err := closeAll(ctx, ix, p, 2, "a principal with two live sessions, an expired one and a closed one"); err != nil {
		return err
	}
	for _, id := range []string{mine1, mine2} {
		if err := expectNotFound(ctx, h, id, "a session of the principal after CloseAll"); err != nil {
			return err
		}
	}
	if err := expectRecord(ctx, h, other, sdk.Record{Data: []byte("other"), Expires: future()}, "a session of another principal after CloseAll"); err != nil {
		return fmt.Errorf("%w (CloseAll must close only the principal's sessions)", err)
	}
	if err := expectRecord(ctx, h, none, sdk.Record{Data: []byte("none"), Expires: future()}, "a session without a principal after CloseAll"); err != nil {
		return fmt.Errorf("%w (CloseAll must close only the principal's sessions)", err)
	}
	if err := closeAll(ctx, ix, q, 1, "the other principal"); err != nil {
		return err
	}
	if err := expectNotFound(ctx, h, other, "the other principal's session after its CloseAll"); err != nil {
		return err
	}
	return expectRecord(ctx, h, none, sdk.Record{Data: []byte("none"), Expires: future()}, "a session without a principal after two CloseAlls")
}

func checkCloseAllMoved(ctx context.Context, h sdk.Handler, _ Options) error {
	ix, err := indexer(ctx, h)
	if err != nil {
		return err
	}
	p, q := NewPrincipal(), NewPrincipal()
	toQ, toNone, back := NewID(), NewID(), NewID()
	for _, id := range []string{toQ, toNone, back} {
		defer h.Close(context.WithoutCancel(ctx), id)
	}
	steps := []struct{ id, p, data string }{
		{toQ, p, "p"}, {toNone, p, "p"}, {back, p, "p"},
		{toQ, q, "now q's"}, {toNone, "", "now no one's"}, {back, q, "q"},
		{back, p, "p's again"},
	}
	for i, s := range steps {
		if err := saveAs(ctx, h, s.id, s.p, s.data, i%2 == 1); err != nil {
			return err
		}
	}
	if err := closeAll(ctx, ix, p, 1, "a principal whose sessions moved to another principal or none, and one came back"); err != nil {
		return fmt.Errorf("%w (CloseAll must close only sessions whose latest write has the principal)", err)
	}
	if err := expectNotFound(ctx, h, back, "a session saved under the principal again"); err != nil {
		return err
	}
	if err := expectRecord(ctx, h, toQ, sdk.Record{Data: []byte("now q's"), Expires: future()}, "a session re-saved under another principal"); err != nil {
		return fmt.Errorf("%w (the old principal's CloseAll must leave it)", err)
	}
	if err := expectRecord(ctx, h, toNone, sdk.Record{Data: []byte("now no one's"), Expires: future()}, "a session re-saved without a principal"); err != nil {
		return fmt.Errorf("%w (the old principal's CloseAll must leave it)", err)
	}
	if err := closeAll(ctx, ix, q, 1, "the principal a session moved to"); err != nil {
		return err
	}
	return expectNotFound(ctx, h, toQ, "a session re-saved under another principal, after that principal's CloseAll")
}

func checkCloseAllUnknown(ctx context.Context, h sdk.Handler, _ Options) error {
	ix, err := indexer(ctx, h)
	if err != nil {
		return err
	}
	if err := closeAll(ctx, ix, NewPrincipal(), 0, "a principal never saved"); err != nil {
		return err
	}
	p := NewPrincipal()
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	if err := saveAs(ctx, h, id, p, "x", false); err != nil {
		return err
	}
	if err := closeAll(ctx, ix, p, 1, "a principal with one session"); err != nil {
		return err
	}
	return closeAll(ctx, ix, p, 0, "the same principal again")
}

func checkCloseAllStaysClosed(ctx context.Context, h sdk.Handler, _ Options) error {
	ix, err := indexer(ctx, h)
	if err != nil {
		return err
	}
	v, err := versioned(ctx, h)
	if err != nil {
		return err
	}
	p := NewPrincipal()
	id := NewID()
	defer h.Close(context.WithoutCancel(ctx), id)
	v1, err := v.SaveIf(ctx, id, sdk.Record{Data: []byte("live"), Expires: future(), Principal: p}, 0)
	if err != nil {
		return fmt.Errorf("SaveIf of a new id with a principal returned %v", err)
	}
	if err := closeAll(ctx, ix, p, 1, "a principal with one session"); err != nil {
		return err
	}
	_, err = v.SaveIf(ctx, id, sdk.Record{Data: []byte("back from the dead"), Expires: future(), Principal: p}, v1)
	if err := expectConflict(err, false, nil, 0, "SaveIf with the version a record had before CloseAll"); err != nil {
		return fmt.Errorf("%w (a destroyed session must stay destroyed)", err)
	}
	return expectNotFound(ctx, h, id, "after a SaveIf on a record CloseAll closed")
}
