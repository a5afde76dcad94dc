package redistest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// clusterTimeout bounds how long StartCluster waits for every node to report
// a healthy cluster.
const clusterTimeout = 30 * time.Second

// StartCluster starts n redis-server processes in cluster mode and joins
// them into one Redis Cluster of n masters and no replicas, with
//
//	redis-cli --cluster create <addrs...> --cluster-replicas 0 --cluster-yes
//
// It returns once every node says cluster_state:ok and knows all n nodes.
// Each node runs like Start's, plus --cluster-enabled yes,
// --cluster-config-file nodes.conf and its own free cluster bus port. Redis
// Cluster needs at least 3 masters.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: StartCluster(%d): Redis Cluster needs at least 3 masters", n)
	}
	cli := lookPath(t, "redis-cli")
	nodes := make([]*Server, n)
	addrs := make([]string, n)
	for i := range nodes {
		nodes[i] = Start(t,
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(FreePort(t)),
			"--cluster-node-timeout", "5000",
		)
		addrs[i] = nodes[i].Addr()
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}

	want := "cluster_known_nodes:" + strconv.Itoa(n)
	for _, node := range nodes {
		for {
			info, err := node.Client().ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("redistest: cluster node %s not ready after %s: want cluster_state:ok and %s, got %q (%v)",
					node.Addr(), clusterTimeout, want, info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nodes
}
