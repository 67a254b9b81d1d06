// Command parley-gateway serves Parley's REST API: HTTP/JSON in front of the
// parley.v1 gRPC services. It only parses flags; gateway.Run does the work.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"parley/gateway/internal/gateway"
)

func main() {
	fs := flag.NewFlagSet("parley-gateway", flag.ExitOnError)
	httpAddr := fs.String("http_addr", envOr("PARLEY_HTTP_ADDR", "127.0.0.1:8080"),
		"address the HTTP server listens on; port 0 picks a free port (env PARLEY_HTTP_ADDR)")
	grpcServer := fs.String("grpc_server", envOr("PARLEY_GRPC_SERVER", "127.0.0.1:50051"),
		"address of the Parley gRPC server (env PARLEY_GRPC_SERVER)")
	portFile := fs.String("port_file", envOr("PARLEY_GATEWAY_PORT_FILE", ""),
		"if set, the bound HTTP port is written to this file once listening (env PARLEY_GATEWAY_PORT_FILE)")
	logLevel := fs.String("log_level", envOr("PARLEY_LOG_LEVEL", "info"),
		"debug, info, warn (or warning) or error (env PARLEY_LOG_LEVEL)")
	logFormat := fs.String("log_format", envOr("PARLEY_LOG_FORMAT", "json"),
		"json (one object per line) or text (env PARLEY_LOG_FORMAT)")
	shutdownGrace := fs.Duration("shutdown_grace", 5*time.Second,
		"how long open requests may run on after SIGTERM before they are cancelled")
	healthcheck := fs.Bool("healthcheck", false,
		"instead of serving, probe the /healthz of the gateway at --http_addr (or --port_file) and exit 0 if it is serving, else 1")
	_ = fs.Parse(os.Args[1:])

	var level slog.Level
	// The server spells it "warning"; PARLEY_LOG_LEVEL may serve both.
	if strings.EqualFold(*logLevel, "warning") {
		*logLevel = "warn"
	}
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "parley-gateway: --log_level: %v\n", err)
		os.Exit(2)
	}
	handlerOpts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch strings.ToLower(*logFormat) {
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, handlerOpts)
	case "text":
		handler = slog.NewTextHandler(os.Stderr, handlerOpts)
	default:
		fmt.Fprintf(os.Stderr, "parley-gateway: --log_format must be json or text, not %q\n", *logFormat)
		os.Exit(2)
	}
	logger := slog.New(handler)

	opts := gateway.Options{
		HTTPAddr:      *httpAddr,
		GRPCServer:    *grpcServer,
		PortFile:      *portFile,
		ShutdownGrace: *shutdownGrace,
		Logger:        logger,
	}
	if *healthcheck {
		if err := gateway.Probe(context.Background(), opts); err != nil {
			fmt.Fprintf(os.Stderr, "parley-gateway: unhealthy: %v\n", err)
			os.Exit(1)
		}
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if err := gateway.Run(ctx, opts); err != nil {
		logger.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}
