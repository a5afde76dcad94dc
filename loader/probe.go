package loader

import (
	"context"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// A plugin process that is alive but answers nothing (stopped, deadlocked)
// would otherwise never be restarted: the supervisor only sees exits, and
// every call would wait for TINA4_PLUGIN_TIMEOUT and fail, for ever. The
// liveness probe tells it apart from a plugin whose store is slow or down:
// it asks go-plugin's own health service, which every plugin serves beside
// the session handler and which touches no store. A plugin that misses
// probeFailures probes in a row is killed, and the supervisor relaunches it.
const (
	probeInterval = time.Second
	probeTimeout  = time.Second
	probeFailures = 3
)

// probe watches in until it exits or h stops.
func (h *Handler) probe(in *instance) {
	rpc, err := in.client.Client()
	if err != nil {
		return
	}
	gc, ok := rpc.(*plugin.GRPCClient)
	if !ok {
		return
	}
	health := grpc_health_v1.NewHealthClient(gc.Conn)
	tick := time.NewTicker(h.cfg.ProbeInterval)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-in.gone:
			return
		case <-h.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		_, err := health.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
		cancel()
		if err == nil {
			missed = 0
			continue
		}
		if missed++; missed < probeFailures {
			continue
		}
		in.unresponsive.Store(true)
		h.cfg.Logger.Error("session handler stopped answering its liveness probe; killing it to restart it",
			"handler", h.Name(), "pid", in.info.PID, "missed", missed, "every", h.cfg.ProbeInterval.String(), "error", err.Error())
		killGroup(in.cmd)
		if in.cmd.Process != nil {
			in.cmd.Process.Kill()
		}
		return
	}
}
