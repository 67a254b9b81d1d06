package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// The servers the gateway calls. --grpc_server names one host:port, a
// comma-separated list of them, or one target with a scheme that a gRPC
// resolver looks up, such as dns:///parley-server:50051 (every address the
// name has). Calls go over one connection that spreads them over the
// servers that are up with gRPC's round_robin policy: a list is handed to
// it by a manual resolver, a name by gRPC's DNS resolver. /healthz checks
// each server on a connection of its own (health.go).

// roundRobinServiceConfig is the default service config of the gateway's
// connection: each call goes to the next server that is ready, and a
// server that is down is skipped until it is back.
const roundRobinServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// reconnectParams are how often a connection dials a server that is down
// again: from 100 ms, growing to at most a second, so that a server that
// is back (restarted, or replaced on its address) takes calls and resumed
// streams within about a second. gRPC's default backoff grows to two
// minutes, longer than a stream waits to resume (--stream_resume_timeout).
var reconnectParams = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// serverListScheme is the scheme of the target of a connection to a list of
// servers; the manual resolver behind it answers with the list.
const serverListScheme = "parley-servers"

// upstream is the parsed --grpc_server.
type upstream struct {
	// target is what the gateway's connection dials.
	target string
	// addresses are the host:port pairs given, one or more; empty for a
	// target with a scheme.
	addresses []string
	// lookupHost and lookupPort are the name and port of a dns target,
	// which /healthz looks up to check every address the name has.
	lookupHost, lookupPort string
	// servers hands a list of more than one address to the connection.
	servers *manual.Resolver
}

// parseUpstream reads --grpc_server: host:port[,host:port...], or one
// target with a scheme (scheme://[authority]/endpoint).
func parseUpstream(spec string) (*upstream, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New("no server: give host:port, a comma-separated list of them, or dns:///name:port")
	}
	if strings.Contains(spec, "://") {
		return parseSchemeTarget(spec)
	}
	u := &upstream{}
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		addr := strings.TrimSpace(item)
		if addr == "" {
			continue
		}
		if host, port, err := net.SplitHostPort(addr); err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("server %q is not host:port", addr)
		}
		if !seen[addr] {
			seen[addr] = true
			u.addresses = append(u.addresses, addr)
		}
	}
	switch len(u.addresses) {
	case 0:
		return nil, fmt.Errorf("no server in %q", spec)
	case 1:
		// One address is dialled as before: gRPC's DNS resolver, which
		// gives round_robin every address a host name has.
		u.target = u.addresses[0]
	default:
		endpoints := make([]resolver.Endpoint, len(u.addresses))
		for i, addr := range u.addresses {
			endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{{Addr: addr}}}
		}
		u.servers = manual.NewBuilderWithScheme(serverListScheme)
		u.servers.InitialState(resolver.State{Endpoints: endpoints})
		u.target = serverListScheme + ":///" + strings.Join(u.addresses, ",")
	}
	return u, nil
}

// parseSchemeTarget takes a target with a scheme as it is; a dns target
// must name its port, which /healthz needs to check each address.
func parseSchemeTarget(spec string) (*upstream, error) {
	if strings.Contains(spec, ",") {
		return nil, fmt.Errorf("%q: a list of servers is host:port pairs; a target with a scheme names one service", spec)
	}
	parsed, err := url.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", spec, err)
	}
	u := &upstream{target: spec}
	if parsed.Scheme == "dns" {
		endpoint := strings.TrimPrefix(parsed.Path, "/")
		host, port, err := net.SplitHostPort(endpoint)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("target %q: a dns target is dns:///name:port", spec)
		}
		u.lookupHost, u.lookupPort = host, port
	}
	return u, nil
}

// dialOptions are the options the connection needs besides DialOptions:
// the round_robin policy and, for a list, its resolver.
func (u *upstream) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithDefaultServiceConfig(roundRobinServiceConfig),
		grpc.WithConnectParams(reconnectParams),
	}
	if u.servers != nil {
		opts = append(opts, grpc.WithResolvers(u.servers))
	}
	return opts
}
