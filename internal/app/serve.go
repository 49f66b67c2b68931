package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// Serve runs postured until ctx ends. ready, if set, receives the listen
// address once the server accepts connections.
func Serve(ctx context.Context, cfg *Config, reg providers.Registry[aggregate.Provider], logw io.Writer, version string, ready func(addr string)) error {
	return ServeAddrs(ctx, cfg, reg, logw, version, func(a Addrs) {
		if ready != nil {
			ready(a.Public)
		}
	})
}

// Addrs are the addresses a running postured accepts connections on.
type Addrs struct {
	Public string
	// Admin is empty without admin_listen.
	Admin string
}

// ServeAddrs is Serve telling ready both listeners' addresses, for callers
// that print the admin listener's pages (the demo's status page).
func ServeAddrs(ctx context.Context, cfg *Config, reg providers.Registry[aggregate.Provider], logw io.Writer, version string, ready func(Addrs)) error {
	logger := NewLogger(cfg.Log, logw)
	for _, w := range cfg.Warnings() {
		logger.Warn("config warning", "warning", w.Error())
	}
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
	defer ln.Close()
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			return fmt.Errorf("serve: admin_listen: %w", err)
		}
		defer adminLn.Close()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.Start(ctx)
	var warm sync.WaitGroup
	if a.keys != nil {
		// Readiness reports fetched certs and never fetches itself.
		warm.Go(func() { a.keys.Warm(ctx) })
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx, ln) })
	addrs := Addrs{Public: ln.Addr().String()}
	attrs := []any{"addr", addrs.Public, "version", version, "providers", len(cfg.Providers.Configs)}
	if adminLn != nil {
		g.Go(func() error { return srv.RunAdmin(gctx, adminLn) })
		addrs.Admin = adminLn.Addr().String()
		attrs = append(attrs, "admin_addr", addrs.Admin)
	}
	logger.Info("postured listening", attrs...)
	if ready != nil {
		ready(addrs)
	}
	err = g.Wait()
	cancel()
	warm.Wait()
	return err
}
