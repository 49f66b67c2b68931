package jamf

import (
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/jamf/jamfmock"
	"github.com/postured/postured/providers/providertest"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name      string
		basic     bool
		tokenPath string
	}{
		{"client credentials", false, oauthTokenPath},
		{"basic auth", true, basicTokenPath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			providertest.Run(t, providertest.Harness{
				Setup: func(t *testing.T, opts providertest.Options) *providertest.Env {
					return setupConformance(t, opts, tc.basic)
				},
				TokenPath: tc.tokenPath,
				Kinds:     providers.Kinds[:],
				CallBound: callBound,
			})
		})
	}
}

// callBound: the token, then per inventory (computers and mobile devices)
// one call per =in= list that fits maxRequestURI: at least 100 of the
// harness's serials, MACs or emails, or 50 of its hostnames, which take an
// FQDN pattern each besides their list entry.
func callBound(k providers.Kind, n int) int {
	per := 100
	if k == providers.KindHostname {
		per = 50
	}
	return 1 + 2*((n+per-1)/per)
}

// setupConformance serves smallFleet() plus opts.Bulk generated computers.
func setupConformance(t *testing.T, opts providertest.Options, basic bool) *providertest.Env {
	fleet := smallFleet()
	known := []providertest.Ident{
		{Kind: providers.KindSerial, Value: "C02XK1ZZJGH5", ID: "9"}, // stored lower case
		{Kind: providers.KindSerial, Value: "c02bob", ID: "12"},
		{Kind: providers.KindSerial, Value: "F0007Q", ID: "mobile-12"},
		{Kind: providers.KindMAC, Value: "6a:2c:4b:b7:65:b5", ID: "9"}, // stored upper case
		{Kind: providers.KindMAC, Value: "AA-BB-CC-DD-EE-01", ID: "12"},
		{Kind: providers.KindMAC, Value: "EE:00:7C:F0:E5:FF", ID: "mobile-12"},
		{Kind: providers.KindHostname, Value: "mbp-00042", ID: "9"}, // an upper-case FQDN in Jamf
		{Kind: providers.KindHostname, Value: "BOB-MBP", ID: "12"},
		{Kind: providers.KindHostname, Value: "iphone-7", ID: "mobile-12"},
		{Kind: providers.KindEmail, Value: "alice@example.com", ID: "9"},
		{Kind: providers.KindEmail, Value: "alice@example.com", ID: "mobile-12"},
		{Kind: providers.KindEmail, Value: "Bob@Example.com", ID: "12"},
		// Stored in mixed case at Jamf, sent by Cloudflare as WARP reads
		// them and normalised: Jamf compares case-insensitively.
		{Kind: providers.KindSerial, Value: "VMware-56 4d 9a 0b 3c 11 7e 22-8f 01 aa 6b 3d 55 c0 19", ID: "29"},
		{Kind: providers.KindMAC, Value: "0a-1b-2c-3d-4e-5f", ID: "29"},
		{Kind: providers.KindHostname, Value: "Oskars-Mac-mini-29", ID: "29"},
		{Kind: providers.KindEmail, Value: "oskar.lind@example.com", ID: "29"},
	}
	fleet.Computers = append(fleet.Computers, mockComputer("29", "Oskars-Mac-mini-29",
		"VMware-56 4d 9a 0b 3c 11 7e 22-8f 01 aa 6b 3d 55 c0 19", "0A:1b:2C:3d:4E:5f", "Oskar.Lind@Example.COM",
		jamfmock.FileVaultAllEncrypted, true))
	for i := range opts.Bulk {
		c := mockComputer(fmt.Sprint(1000+i), fmt.Sprintf("bulk-%05d", i), fmt.Sprintf("BULK%06d", i),
			fmt.Sprintf("02:42:ac:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), fmt.Sprintf("bulk%05d@example.com", i),
			jamfmock.FileVaultAllEncrypted, true)
		fleet.Computers = append(fleet.Computers, c)
		known = append(known,
			providertest.Ident{Kind: providers.KindSerial, Value: c.Hardware.SerialNumber, ID: c.ID},
			providertest.Ident{Kind: providers.KindMAC, Value: c.Hardware.MacAddress, ID: c.ID},
			providertest.Ident{Kind: providers.KindHostname, Value: c.General.Name, ID: c.ID},
			providertest.Ident{Kind: providers.KindEmail, Value: c.UserAndLocation.Email, ID: c.ID})
	}
	fleet.ClientID, fleet.ClientSecret, fleet.Username, fleet.Password = testClientID, testSecret, testUser, testPassword
	mock := jamfmock.New(fleet)
	cfg := &Config{
		Common:     providers.Common{Name: "jamf", Type: "jamf", Weight: 2},
		HTTPConfig: opts.HTTP,
		BaseURL:    opts.Serve(mock),
	}
	secrets := []string{testSecret}
	if basic {
		// The password also travels base64-encoded in the Authorization header.
		cfg.Username, cfg.Password = testUser, testPassword
		secrets = []string{testPassword, base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword))}
	} else {
		cfg.ClientID, cfg.ClientSecret = testClientID, testSecret
	}
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
		Secrets:  secrets,
		Known:    known,
	}
}
