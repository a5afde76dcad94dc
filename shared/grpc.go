package shared

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tina4go/sessions/shared/proto"
)

// GRPCPlugin is the go-plugin glue: on the plugin side Impl is served, on the
// host side a Store that calls over gRPC is returned.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Store
}

// GRPCServer registers Impl on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	proto.RegisterSessionHandlerServer(s, &grpcServer{impl: p.Impl})
	return nil
}

// GRPCClient returns a Store that calls the plugin over conn.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return &GRPCClient{client: proto.NewSessionHandlerClient(c)}, nil
}

// PluginSet returns the VersionedPlugins map for every protocol version in
// Protocols, serving impl (nil on the host side). The versions share one gRPC
// service: protocol 2 only adds calls and fields, so a host and a handler
// agree on the newest version both list, and a protocol-1 handler never
// receives a protocol-2 call.
func PluginSet(impl Store) map[int]plugin.PluginSet {
	set := map[int]plugin.PluginSet{}
	for _, v := range Protocols {
		set[v] = plugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
	}
	return set
}

// GRPCClient is the host-side Store that calls a plugin over gRPC.
type GRPCClient struct{ client proto.SessionHandlerClient }

// Info asks the plugin what it is.
func (c *GRPCClient) Info(ctx context.Context) (Info, error) {
	r, err := c.client.Info(ctx, &proto.InfoRequest{})
	if err != nil {
		return Info{}, fromStatus(err)
	}
	info := Info{Name: r.Name, Version: r.Version, Capabilities: r.Capabilities, PID: int(r.Pid),
		FastAddr: r.FastAddr, FastSecret: r.FastSecret}
	for _, v := range r.Protocols {
		info.Protocols = append(info.Protocols, int(v))
	}
	return info, nil
}

// Health asks the plugin whether its store is usable.
func (c *GRPCClient) Health(ctx context.Context) error {
	r, err := c.client.Health(ctx, &proto.HealthRequest{})
	if err != nil {
		return fromStatus(err)
	}
	if !r.Ok {
		return errors.New(r.Message)
	}
	return nil
}

// Load fetches the record for id; ErrNotFound when there is none.
func (c *GRPCClient) Load(ctx context.Context, id string) (Record, error) {
	r, err := c.client.Load(ctx, &proto.LoadRequest{Id: id})
	if err != nil {
		return Record{}, fromStatus(err)
	}
	if !r.Found {
		return Record{}, ErrNotFound
	}
	return Record{Data: r.Data, Expires: time.UnixMilli(r.ExpiresUnixMs), Version: r.Version}, nil
}

// SaveIf stores rec under id if the stored version is expect (protocol 2).
func (c *GRPCClient) SaveIf(ctx context.Context, id string, rec Record, expect uint64) (uint64, error) {
	r, err := c.client.SaveIf(ctx, &proto.SaveIfRequest{Id: id, Data: rec.Data, ExpiresUnixMs: rec.Expires.UnixMilli(), IfVersion: expect, Principal: rec.Principal})
	if err != nil {
		return 0, fromStatus(err)
	}
	if !r.Saved {
		ce := &ConflictError{Found: r.Found}
		if r.Found {
			ce.Current = Record{Data: r.Data, Expires: time.UnixMilli(r.ExpiresUnixMs), Version: r.Version}
		}
		return 0, ce
	}
	return r.Version, nil
}

// Lock takes the lock of id for token (protocol 2).
func (c *GRPCClient) Lock(ctx context.Context, id, token string, ttl time.Duration) (bool, error) {
	r, err := c.client.Lock(ctx, &proto.LockRequest{Id: id, Token: token, TtlMs: ttl.Milliseconds()})
	if err != nil {
		return false, fromStatus(err)
	}
	return r.Acquired, nil
}

// Unlock releases the lock of id if token holds it (protocol 2).
func (c *GRPCClient) Unlock(ctx context.Context, id, token string) error {
	_, err := c.client.Unlock(ctx, &proto.UnlockRequest{Id: id, Token: token})
	return fromStatus(err)
}

// CloseAll destroys every live record of principal (protocol 2).
func (c *GRPCClient) CloseAll(ctx context.Context, principal string) (int, error) {
	r, err := c.client.CloseAll(ctx, &proto.CloseAllRequest{Principal: principal})
	if err != nil {
		return 0, fromStatus(err)
	}
	return int(r.Closed), nil
}

// Save stores rec under id.
func (c *GRPCClient) Save(ctx context.Context, id string, rec Record) error {
	_, err := c.client.Save(ctx, &proto.SaveRequest{Id: id, Data: rec.Data, ExpiresUnixMs: rec.Expires.UnixMilli(), Principal: rec.Principal})
	return fromStatus(err)
}

// Close destroys the record for id.
func (c *GRPCClient) Close(ctx context.Context, id string) error {
	_, err := c.client.Close(ctx, &proto.CloseRequest{Id: id})
	return fromStatus(err)
}

type grpcServer struct {
	proto.UnimplementedSessionHandlerServer
	impl Store
}

func (s *grpcServer) Info(ctx context.Context, _ *proto.InfoRequest) (*proto.InfoResponse, error) {
	info, err := s.impl.Info(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	r := &proto.InfoResponse{Name: info.Name, Version: info.Version, Capabilities: info.Capabilities, Pid: int64(info.PID),
		FastAddr: info.FastAddr, FastSecret: info.FastSecret}
	for _, v := range info.Protocols {
		r.Protocols = append(r.Protocols, int32(v))
	}
	return r, nil
}

func (s *grpcServer) Health(ctx context.Context, _ *proto.HealthRequest) (*proto.HealthResponse, error) {
	if err := s.impl.Health(ctx); err != nil {
		return &proto.HealthResponse{Ok: false, Message: err.Error()}, nil
	}
	return &proto.HealthResponse{Ok: true}, nil
}

func (s *grpcServer) Load(ctx context.Context, req *proto.LoadRequest) (*proto.LoadResponse, error) {
	rec, err := s.impl.Load(ctx, req.Id)
	if errors.Is(err, ErrNotFound) {
		return &proto.LoadResponse{Found: false}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.LoadResponse{Found: true, Data: rec.Data, ExpiresUnixMs: rec.Expires.UnixMilli(), Version: rec.Version}, nil
}

func (s *grpcServer) SaveIf(ctx context.Context, req *proto.SaveIfRequest) (*proto.SaveIfResponse, error) {
	v, ok := s.impl.(Versioned)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this handler has no record versions (capability \"versions\")")
	}
	ver, err := v.SaveIf(ctx, req.Id, Record{Data: req.Data, Expires: time.UnixMilli(req.ExpiresUnixMs), Principal: req.Principal}, req.IfVersion)
	var ce *ConflictError
	if errors.As(err, &ce) {
		r := &proto.SaveIfResponse{Found: ce.Found}
		if ce.Found {
			r.Data, r.ExpiresUnixMs, r.Version = ce.Current.Data, ce.Current.Expires.UnixMilli(), ce.Current.Version
		}
		return r, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.SaveIfResponse{Saved: true, Version: ver}, nil
}

func (s *grpcServer) Lock(ctx context.Context, req *proto.LockRequest) (*proto.LockResponse, error) {
	l, ok := s.impl.(Locker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this handler has no session lock (capability \"lock\")")
	}
	got, err := l.Lock(ctx, req.Id, req.Token, time.Duration(req.TtlMs)*time.Millisecond)
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.LockResponse{Acquired: got}, nil
}

func (s *grpcServer) Unlock(ctx context.Context, req *proto.UnlockRequest) (*proto.UnlockResponse, error) {
	l, ok := s.impl.(Locker)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this handler has no session lock (capability \"lock\")")
	}
	if err := l.Unlock(ctx, req.Id, req.Token); err != nil {
		return nil, toStatus(err)
	}
	return &proto.UnlockResponse{}, nil
}

func (s *grpcServer) CloseAll(ctx context.Context, req *proto.CloseAllRequest) (*proto.CloseAllResponse, error) {
	ix, ok := s.impl.(Indexer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this handler has no principal index (capability \"index\")")
	}
	n, err := ix.CloseAll(ctx, req.Principal)
	if err != nil {
		return nil, toStatus(err)
	}
	return &proto.CloseAllResponse{Closed: int64(n)}, nil
}

func (s *grpcServer) Save(ctx context.Context, req *proto.SaveRequest) (*proto.SaveResponse, error) {
	if err := s.impl.Save(ctx, req.Id, Record{Data: req.Data, Expires: time.UnixMilli(req.ExpiresUnixMs), Principal: req.Principal}); err != nil {
		return nil, toStatus(err)
	}
	return &proto.SaveResponse{}, nil
}

func (s *grpcServer) Close(ctx context.Context, req *proto.CloseRequest) (*proto.CloseResponse, error) {
	if err := s.impl.Close(ctx, req.Id); err != nil {
		return nil, toStatus(err)
	}
	return &proto.CloseResponse{}, nil
}

// toStatus turns a handler error into a gRPC status the host can branch on.
func toStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalidID):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrTooLarge):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, ErrUnsupported):
		return status.Error(codes.Unimplemented, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}

// ErrUnsupported marks a call the handler does not implement (a protocol-2
// call to a handler without the capability).
var ErrUnsupported = errors.New("not supported by this session handler")

// RemoteError is a failure reported by the handler itself (its store failed),
// as opposed to a failure to reach the handler.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "session handler: " + e.Msg }

// fromStatus turns a gRPC status back into an error the host can branch on
// with errors.Is: ErrInvalidID, context.DeadlineExceeded, context.Canceled,
// *RemoteError for handler failures, and the raw gRPC error (codes.Unavailable
// and the like) when the plugin could not be reached.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", ErrInvalidID, st.Message())
	case codes.ResourceExhausted:
		// The handler's own limit, or gRPC's message limit on either side.
		return fmt.Errorf("%w: %s", ErrTooLarge, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.Unknown:
		return &RemoteError{Msg: st.Message()}
	case codes.Unimplemented:
		return fmt.Errorf("%w: %s", ErrUnsupported, st.Message())
	default:
		return err
	}
}
