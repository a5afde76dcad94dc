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

// PluginSet returns the VersionedPlugins map for protocol version 1 serving impl
// (nil on the host side).
func PluginSet(impl Store) map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{
		1: {PluginName: &GRPCPlugin{Impl: impl}},
	}
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
	return Record{Data: r.Data, Expires: time.UnixMilli(r.ExpiresUnixMs)}, nil
}

// Save stores rec under id.
func (c *GRPCClient) Save(ctx context.Context, id string, rec Record) error {
	_, err := c.client.Save(ctx, &proto.SaveRequest{Id: id, Data: rec.Data, ExpiresUnixMs: rec.Expires.UnixMilli()})
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
	return &proto.LoadResponse{Found: true, Data: rec.Data, ExpiresUnixMs: rec.Expires.UnixMilli()}, nil
}

func (s *grpcServer) Save(ctx context.Context, req *proto.SaveRequest) (*proto.SaveResponse, error) {
	if err := s.impl.Save(ctx, req.Id, Record{Data: req.Data, Expires: time.UnixMilli(req.ExpiresUnixMs)}); err != nil {
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
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Unknown, err.Error())
	}
}

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
	default:
		return err
	}
}
