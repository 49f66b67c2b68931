package graph

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/postured/postured/providers/intune/intunemock"
)

// fixture is n devices with distinct ids, names, serials and MACs, and a
// sync time with Graph's 7-digit fraction.
func fixture(n int) []intunemock.ManagedDevice {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 123456700, time.UTC)
	out := make([]intunemock.ManagedDevice, n)
	for i := range out {
		out[i] = intunemock.ManagedDevice{
			ID:                 fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			DeviceName:         fmt.Sprintf("DESKTOP-%05d", i),
			SerialNumber:       fmt.Sprintf("PF%08d", i),
			UserPrincipalName:  fmt.Sprintf("user%d@example.com", i),
			OperatingSystem:    "Windows",
			ComplianceState:    intunemock.ComplianceStates[i%len(intunemock.ComplianceStates)],
			LastSyncDateTime:   t0.Add(-time.Duration(i) * time.Hour),
			WiFiMacAddress:     fmt.Sprintf("02AABBCC%04X", i),
			EthernetMacAddress: fmt.Sprintf("02DDEEFF%04X", i),
			IsEncrypted:        i%2 == 0,
		}
	}
	return out
}

// env is the Intune mock behind TLS and Microsoft's client pointed at it.
type env struct {
	mock    *intunemock.Server
	ts      *httptest.Server
	client  *msgraphsdk.GraphServiceClient
	adapter *msgraphsdk.GraphRequestAdapter
	batches *encodings
}

func newEnv(t *testing.T, opts intunemock.Options) *env {
	t.Helper()
	e := &env{mock: intunemock.New(opts), batches: &encodings{}}
	// TLS because MSAL accepts only https authorities.
	e.ts = httptest.NewTLSServer(withOpenIDConfig(e.batches.record(e.mock)))
	t.Cleanup(e.ts.Close)
	cred := credential(t, e.ts.Client().Transport, e.ts.URL, intunemock.DefaultTenantID, intunemock.DefaultClientSecret)
	e.client, e.adapter = graphClient(t, e.ts.Client().Transport, cred, e.ts.URL+"/v1.0", []string{"127.0.0.1"})
	return e
}

// withOpenIDConfig serves the tenant discovery document MSAL reads before
// it asks for a token; the mock only has the token endpoint itself.
func withOpenIDConfig(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host + "/" + r.PathValue("tenant")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"token_endpoint":         base + "/oauth2/v2.0/token",
			"authorization_endpoint": base + "/oauth2/v2.0/authorize",
			"issuer":                 base + "/v2.0",
		})
	})
	mux.Handle("/", next)
	return mux
}

// encodings records the Content-Encoding of every $batch request.
type encodings struct {
	mu   sync.Mutex
	seen []string
}

func (e *encodings) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/$batch") {
			e.mu.Lock()
			e.seen = append(e.seen, r.Header.Get("Content-Encoding"))
			e.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

func (e *encodings) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

// credential is azidentity's client secret credential with its authority
// moved to authority (an https URL) and its requests sent through rt.
func credential(t *testing.T, rt http.RoundTripper, authority, tenant, secret string) *azidentity.ClientSecretCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(tenant, intunemock.DefaultClientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: authority + "/"},
			Transport: &http.Client{Transport: rt},
		},
		// Instance discovery asks login.microsoftonline.com whether the
		// authority is genuine; the mock is not.
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// graphClient builds the Graph client the way NewGraphServiceClientWithCredentials
// does (default middleware: retry, compression, redirect, telemetry), but
// over rt and at baseURL.
func graphClient(t *testing.T, rt http.RoundTripper, cred azcore.TokenCredential, baseURL string, hosts []string) (*msgraphsdk.GraphServiceClient, *msgraphsdk.GraphRequestAdapter) {
	t.Helper()
	auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{intunemock.Scope}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	opts := msgraphsdk.GetDefaultClientOptions()
	hc := msgraphcore.GetDefaultClient(&opts)
	hc.Transport = khttp.NewCustomTransportWithParentTransport(rt, msgraphcore.GetDefaultMiddlewaresWithOptions(&opts)...)
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(baseURL)
	return msgraphsdk.NewGraphServiceClient(adapter), adapter
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// checkDevice compares a parsed device with the fixture on the default
// (list) properties.
func checkDevice(t *testing.T, got models.ManagedDeviceable, want intunemock.ManagedDevice) {
	t.Helper()
	state := ""
	if s := got.GetComplianceState(); s != nil {
		state = s.String()
	}
	if deref(got.GetId()) != want.ID || deref(got.GetDeviceName()) != want.DeviceName ||
		deref(got.GetSerialNumber()) != want.SerialNumber || deref(got.GetWiFiMacAddress()) != want.WiFiMacAddress ||
		deref(got.GetUserPrincipalName()) != want.UserPrincipalName || deref(got.GetIsEncrypted()) != want.IsEncrypted ||
		state != want.ComplianceState || !deref(got.GetLastSyncDateTime()).Equal(want.LastSyncDateTime) {
		t.Errorf("device %s parsed as id=%q name=%q serial=%q wifi=%q upn=%q encrypted=%v state=%q lastSync=%v",
			want.ID, deref(got.GetId()), deref(got.GetDeviceName()), deref(got.GetSerialNumber()), deref(got.GetWiFiMacAddress()),
			deref(got.GetUserPrincipalName()), deref(got.GetIsEncrypted()), state, deref(got.GetLastSyncDateTime()))
	}
}
