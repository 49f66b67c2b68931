package intune

import (
	"fmt"
	"testing"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/intune/intunemock"
	"github.com/postured/postured/providers/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		Setup:     setupConformance,
		TokenPath: "/" + intunemock.DefaultTenantID + "/oauth2/v2.0/token",
		// Graph cannot filter managed devices by MAC.
		Kinds: []providers.Kind{providers.KindSerial, providers.KindHostname, providers.KindEmail},
		// One $batch per 20 values, plus the token.
		CallBound: func(_ providers.Kind, n int) int { return 1 + (n+maxBatchRequests-1)/maxBatchRequests },
	})
}

func deviceID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// setupConformance serves devices() plus opts.Bulk generated devices.
func setupConformance(t *testing.T, opts providertest.Options) *providertest.Env {
	devs := devices()
	known := []providertest.Ident{
		{Kind: providers.KindSerial, Value: "pf00000001 ", ID: deviceID(1)},
		{Kind: providers.KindSerial, Value: "PF00000001", ID: deviceID(8)}, // re-enrolled
		{Kind: providers.KindSerial, Value: "C020000002A", ID: deviceID(2)},
		{Kind: providers.KindHostname, Value: "desktop-00001", ID: deviceID(1)},
		{Kind: providers.KindHostname, Value: "MBP-00002", ID: deviceID(2)}, // an FQDN in Intune
		{Kind: providers.KindHostname, Value: "mbp-000020", ID: deviceID(3)},
		{Kind: providers.KindHostname, Value: "o'brien-pc", ID: deviceID(4)},
		{Kind: providers.KindEmail, Value: "BOB@example.com", ID: deviceID(2)},
		{Kind: providers.KindEmail, Value: "bob@example.com", ID: deviceID(3)},
		{Kind: providers.KindEmail, Value: "o'brien@example.com", ID: deviceID(4)},
		{Kind: providers.KindMAC, Value: "02:AA:BB:CC:00:07", ID: deviceID(7)}, // sync mode only
		// Stored mixed case in Intune, looked up as Cloudflare sends them.
		{Kind: providers.KindSerial, Value: "VMware-56 4d 1b 2c 3e 4f 5a 6b-7c 8d 9e 0f 1a 2b 3c 4d", ID: deviceID(9)},
		{Kind: providers.KindHostname, Value: "Oskars-Mac-mini-29", ID: deviceID(9)},
		{Kind: providers.KindEmail, Value: "oskar.berg@example.com", ID: deviceID(9)},
		{Kind: providers.KindHostname, Value: "ws-00006", ID: deviceID(6)}, // beside LAB-WS-00006
	}
	for i := range opts.Bulk {
		d := intunemock.ManagedDevice{
			ID:                fmt.Sprintf("bulk-%05d", i),
			SerialNumber:      fmt.Sprintf("BULK%06d", i),
			DeviceName:        fmt.Sprintf("bulk-%05d", i), // fixed width: no name is a prefix of another
			UserPrincipalName: fmt.Sprintf("bulk%05d@example.com", i),
			ComplianceState:   "compliant",
		}
		devs = append(devs, d)
		known = append(known,
			providertest.Ident{Kind: providers.KindSerial, Value: d.SerialNumber, ID: d.ID},
			providertest.Ident{Kind: providers.KindHostname, Value: d.DeviceName, ID: d.ID},
			providertest.Ident{Kind: providers.KindEmail, Value: d.UserPrincipalName, ID: d.ID})
	}
	// Graph as reported: startswith acts like contains.
	srv := intunemock.New(intunemock.Options{Devices: devs, ClientSecret: secret, StartsWithContains: true})
	base := opts.Serve(srv)
	cfg := &Config{
		Common:       providers.Common{Name: "intune", Type: "intune", Weight: 1},
		HTTPConfig:   opts.HTTP,
		TenantID:     intunemock.DefaultTenantID,
		ClientID:     intunemock.DefaultClientID,
		ClientSecret: secret,
		BaseURL:      base,
		TokenURL:     base + "/" + intunemock.DefaultTenantID + "/oauth2/v2.0/token",
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := New(cfg, providers.Deps{Logger: opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	p.onRetry = opts.OnRetry
	return &providertest.Env{
		Provider: p,
		Faults:   srv.Faults,
		Revoke:   srv.ExpireTokens,
		Secrets:  []string{secret},
		Known:    known,
	}
}
