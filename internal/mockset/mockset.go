// Package mockset assembles every vendor mock over one generated fleet and
// serves them under path prefixes, together with a stand-in for the
// Cloudflare side of the demo: an Access certs endpoint and token minter,
// and the posture batch Cloudflare would send for the same fleet. It is
// what cmd/mockvendors serves and what `mockvendors demo` runs in-process.
package mockset

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/localaccess"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
	"github.com/postured/postured/providers/intune/intunemock"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

// Credentials the mocks accept, and the Access team and audience of the
// tokens the stand-in mints. The demo configuration uses exactly these.
const (
	IntuneTenantID     = intunemock.DefaultTenantID
	IntuneClientID     = intunemock.DefaultClientID
	IntuneClientSecret = intunemock.DefaultClientSecret
	JamfClientID       = "postured-demo"
	JamfClientSecret   = "jamf-demo-secret"
	FalconClientID     = "falcon-client"
	FalconClientSecret = "falcon-secret"
	AccessTeam         = "demo.cloudflareaccess.com"
	AccessAudience     = "demo-posture-app-aud"
)

// DemoConfig is the postured configuration for this mock set: the demo runs
// it, compose mounts it, and the end-to-end tests start from it.
// ${MOCKVENDORS_URL} and ${POSTURED_LISTEN} are left for the caller.
//
//go:embed demo.yaml
var DemoConfig []byte

// Path prefixes of each mock on the shared port.
const (
	PrefixIntune      = "/intune"
	PrefixJamf        = "/jamf"
	PrefixCrowdStrike = "/crowdstrike"
	PrefixAccess      = "/access"
)

// Set is the fleet and the mocks serving it.
type Set struct {
	Fleet       *fleet.Fleet
	Intune      *intunemock.Server
	Jamf        *jamfmock.Server
	CrowdStrike *crowdstrikemock.Server
	Access      *localaccess.Issuer
}

// New generates a fleet of n devices from seed and builds the mocks.
func New(n int, seed uint64, now time.Time) (*Set, error) {
	f := fleet.Generate(n, seed, now)
	iss, err := localaccess.New("https://" + AccessTeam)
	if err != nil {
		return nil, err
	}
	return &Set{
		Fleet:  f,
		Intune: intunemock.New(intunemock.Options{Devices: f.IntuneDevices()}),
		Jamf: jamfmock.New(jamfmock.Options{Computers: f.JamfComputers(), MobileDevices: f.JamfMobileDevices(),
			ClientID: JamfClientID, ClientSecret: JamfClientSecret}),
		CrowdStrike: crowdstrikemock.New(crowdstrikemock.Options{Devices: f.FalconHosts(), Assessments: f.FalconAssessments(),
			ClientID: FalconClientID, ClientSecret: FalconClientSecret}),
		Access: iss,
	}, nil
}

// Handler serves every mock under its prefix, plus:
//
//	GET /access/cdn-cgi/access/certs   the stand-in team's certs
//	GET /access/token                  an application token for AccessAudience, valid 1h
//	GET /cloudflare/batch.json         the batch Cloudflare would POST (?offset=&limit=, limit <= 1000)
//	GET /healthz
func (s *Set) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PrefixIntune+"/", http.StripPrefix(PrefixIntune, s.Intune))
	mux.Handle(PrefixJamf+"/", http.StripPrefix(PrefixJamf, s.Jamf))
	mux.Handle(PrefixCrowdStrike+"/", http.StripPrefix(PrefixCrowdStrike, s.CrowdStrike))
	mux.Handle("GET "+PrefixAccess+"/cdn-cgi/access/certs", s.Access)
	mux.HandleFunc("GET "+PrefixAccess+"/token", func(w http.ResponseWriter, _ *http.Request) {
		tok, err := s.Access.AppToken(AccessAudience, time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwt")
		fmt.Fprint(w, tok)
	})
	mux.HandleFunc("GET /cloudflare/batch.json", s.serveBatch)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

func (s *Set) serveBatch(w http.ResponseWriter, r *http.Request) {
	all := s.Fleet.Batch()
	offset, err1 := atoiDefault(r.URL.Query().Get("offset"), 0)
	limit, err2 := atoiDefault(r.URL.Query().Get("limit"), 1000)
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 1000 {
		http.Error(w, "offset must be >= 0 and limit 1..1000", http.StatusBadRequest)
		return
	}
	offset = min(offset, len(all))
	end := min(offset+limit, len(all))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"devices": all[offset:end]})
}

func atoiDefault(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

// Batches splits the fleet's Cloudflare view into batches of at most
// size devices, as Cloudflare does.
func (s *Set) Batches(size int) [][]fleet.CloudflareDevice {
	all := s.Fleet.Batch()
	var out [][]fleet.CloudflareDevice
	for len(all) > 0 {
		n := min(size, len(all))
		out = append(out, all[:n])
		all = all[n:]
	}
	return out
}

// Calls is the total of vendor API calls served so far, per mock.
func (s *Set) Calls() map[string]int {
	return map[string]int{
		"intune":      s.Intune.Calls.Total(),
		"jamf":        s.Jamf.Calls.Total(),
		"crowdstrike": s.CrowdStrike.Calls.Total(),
	}
}
