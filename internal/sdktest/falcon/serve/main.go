// Command serve runs the CrowdStrike Falcon mock over a generated fleet for
// check.mjs, the falconjs SDK check. It prints one JSON line, the mock's URL
// and credentials and the hosts and assessments it serves, then serves until
// stdin closes (its parent died) or it is signalled.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
)

// Credentials the mock accepts (its defaults, set here for the check).
const (
	clientID     = "falcon-client"
	clientSecret = "falcon-secret"
)

// fixture is what check.mjs expects the SDK to parse back.
type fixture struct {
	URL          string                       `json:"url"`
	ClientID     string                       `json:"client_id"`
	ClientSecret string                       `json:"client_secret"`
	Hosts        []crowdstrikemock.Host       `json:"hosts"`
	Assessments  []crowdstrikemock.Assessment `json:"assessments"`
}

func main() {
	if err := run(); err != nil {
		slog.Error("falcon mock", "err", err)
		os.Exit(1)
	}
}

func run() error {
	f := fleet.Generate(150, 7, time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	fx := fixture{ClientID: clientID, ClientSecret: clientSecret, Hosts: crowdstrikemock.FleetHosts(f), Assessments: crowdstrikemock.FleetAssessments(f)}
	mock := crowdstrikemock.New(crowdstrikemock.Options{
		Devices: fx.Hosts, Assessments: fx.Assessments,
		ClientID: clientID, ClientSecret: clientSecret,
		Now: func() time.Time { return f.Now },
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mock, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	fx.URL = "http://" + ln.Addr().String()
	// #nosec G117 -- prints the mock's test-only credentials for check.mjs on purpose
	if err := json.NewEncoder(os.Stdout).Encode(fx); err != nil {
		return errors.Join(err, srv.Close())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
