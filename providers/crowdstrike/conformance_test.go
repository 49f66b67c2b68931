package crowdstrike

import (
	"fmt"
	"testing"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
	"github.com/postured/postured/providers/providertest"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		Setup:     setupConformance,
		TokenPath: tokenPath,
		Kinds:     providers.Kinds[:],
		CallBound: callBound,
	})
}

// callBound: the token, the FQL statements (20 single terms, or 100 MACs
// in two bracket lists; serials 200 in a bracket list, then one statement
// of single terms for the few known serials Falcon stores in another
// case), then the assessments of the hosts found, 100 a call, plus one for
// re-enrolment duplicates spilling into another chunk.
func callBound(k providers.Kind, n int) int {
	ceil := func(a, b int) int { return (a + b - 1) / b }
	pl, _ := planFor(k)
	statements := ceil(n, pl.rest.per)
	if pl.exact != nil {
		statements = ceil(n, pl.exact.per) + 1
	}
	return 1 + statements + ceil(n, maxZTAIDs) + 1
}

// setupConformance serves sampleOpts() plus opts.Bulk generated hosts.
func setupConformance(t *testing.T, opts providertest.Options) *providertest.Env {
	tenant := sampleOpts()
	known := []providertest.Ident{
		{Kind: providers.KindSerial, Value: "c02xk1zzjgh5", ID: aid(0)},
		{Kind: providers.KindSerial, Value: "C02XK1ZZJGH5", ID: aid(4)}, // re-enrolment leftover
		{Kind: providers.KindSerial, Value: "PF000007", ID: aid(1)},
		{Kind: providers.KindSerial, Value: "EC2A1B2C-0000-1111-2222-333344445555", ID: aid(2)}, // lower case in Falcon
		{Kind: providers.KindMAC, Value: "74:1D:3E:23:E0:FE", ID: aid(0)},
		{Kind: providers.KindMAC, Value: "74:1D:3E:23:E0:FE", ID: aid(4)},
		{Kind: providers.KindMAC, Value: "0A-BB-CC-DD-EE-FF", ID: aid(1)}, // connection MAC only
		{Kind: providers.KindMAC, Value: "0200.0000.0002", ID: aid(2)},
		{Kind: providers.KindHostname, Value: "MBP-42", ID: aid(0)},
		{Kind: providers.KindHostname, Value: "desktop-7.corp.example", ID: aid(1)}, // upper case in Falcon
		{Kind: providers.KindHostname, Value: "ws-9", ID: aid(2)},                   // an FQDN in Falcon
		{Kind: providers.KindHostname, Value: "Mixed-Case.corp.example", ID: aid(5)},
		{Kind: providers.KindHostname, Value: "oskars-mac-mini-29", ID: aid(6)}, // mixed case in Falcon
		{Kind: providers.KindHostname, Value: "MacBook-Pro", ID: aid(8)},
		{Kind: providers.KindHostname, Value: "macbook-pro-2", ID: aid(9)},
		{Kind: providers.KindSerial, Value: "VMware-56 4d 9e 3a 1b 2c 3d 4e-5f 6a 7b 8c 9d 0e 1f 2a", ID: aid(6)},
		{Kind: providers.KindSerial, Value: "c02mixed9", ID: aid(8)}, // C02MiXeD9 in Falcon
		{Kind: providers.KindEmail, Value: "JDoe@Example.com", ID: aid(0)},
		{Kind: providers.KindEmail, Value: "oskar.berg@example.com", ID: aid(6)}, // mixed case in Falcon
	}
	for i := range opts.Bulk {
		h := crowdstrikemock.Host{
			DeviceID:     fmt.Sprintf("%032x", 0xb0000000+i),
			SerialNumber: fmt.Sprintf("BULK%06d", i),
			MACAddress:   fmt.Sprintf("02-42-ac-%02x-%02x-%02x", i>>16&0xff, i>>8&0xff, i&0xff),
			Hostname:     fmt.Sprintf("bulk-%05d", i),
			Email:        fmt.Sprintf("bulk%05d@example.com", i),
			Status:       "normal",
			LastSeen:     "2026-11-20T10:00:00Z",
		}
		tenant.Devices = append(tenant.Devices, h)
		tenant.Assessments = append(tenant.Assessments, crowdstrikemock.Assessment{AID: h.DeviceID, Assessment: crowdstrikemock.Scores{Overall: 70}})
		known = append(known,
			providertest.Ident{Kind: providers.KindSerial, Value: h.SerialNumber, ID: h.DeviceID},
			providertest.Ident{Kind: providers.KindMAC, Value: h.MACAddress, ID: h.DeviceID},
			providertest.Ident{Kind: providers.KindHostname, Value: h.Hostname, ID: h.DeviceID},
			providertest.Ident{Kind: providers.KindEmail, Value: h.Email, ID: h.DeviceID})
	}
	tenant.ClientID, tenant.ClientSecret = "falcon-client", testSecret
	mock := crowdstrikemock.New(tenant)
	cfg := testConfig(opts.Serve(mock))
	cfg.HTTPConfig = opts.HTTP
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newProvider(cfg, providers.Deps{Logger: opts.Logger}, opts.OnRetry)
	if err != nil {
		t.Fatal(err)
	}
	return &providertest.Env{
		Provider: p,
		Faults:   mock.Faults,
		Revoke:   mock.ExpireTokens,
		Secrets:  []string{testSecret},
		Known:    known,
	}
}
