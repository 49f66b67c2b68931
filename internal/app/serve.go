package app

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// Serve runs postured until ctx ends. ready, if set, receives the listen
// address once the server accepts connections.
func Serve(ctx context.Context, cfg *Config, reg providers.Registry[aggregate.Provider], logw io.Writer, version string, ready func(addr string)) error {
	logger := NewLogger(cfg.Log, logw)
	a, err := Build(cfg, reg, logger)
	if err != nil {
		return err
	}
	srv, closeEval, err := a.NewServer(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := closeEval(); err != nil {
			logger.Warn("closing external evaluation", "error", err)
		}
	}()
	if cfg.Access.InsecureSkipVerify {
		logger.Warn("ACCESS TOKEN VERIFICATION IS DISABLED (access.insecure_skip_verify): anyone who can reach " +
			cfg.Listen + " can read device posture. Never run this way in production.")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.Start(ctx)
	logger.Info("postured listening", "addr", ln.Addr().String(), "version", version,
		"providers", len(cfg.Providers.Configs))
	if ready != nil {
		ready(ln.Addr().String())
	}
	return srv.Run(ctx, ln)
}
