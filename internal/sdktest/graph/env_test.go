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
	abstractions "github.com/microsoft/kiota-abstractions-go"
	absser "github.com/microsoft/kiota-abstractions-go/serialization"
	"github.com/microsoft/kiota-abstractions-go/store"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	formser "github.com/microsoft/kiota-serialization-form-go"
	jsonser "github.com/microsoft/kiota-serialization-json-go"
	multipartser "github.com/microsoft/kiota-serialization-multipart-go"
	textser "github.com/microsoft/kiota-serialization-text-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/devicemanagement"
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
	dm      *devicemanagement.DeviceManagementRequestBuilder
	adapter *msgraphcore.GraphRequestAdapterBase
	batches *encodings
}

func newEnv(t *testing.T, opts intunemock.Options) *env {
	t.Helper()
	e := &env{mock: intunemock.New(opts), batches: &encodings{}}
	// TLS because MSAL accepts only https authorities.
	e.ts = httptest.NewTLSServer(withOpenIDConfig(e.batches.record(e.mock)))
	t.Cleanup(e.ts.Close)
	cred := credential(t, e.ts.Client().Transport, e.ts.URL, intunemock.DefaultTenantID, intunemock.DefaultClientSecret)
	e.dm, e.adapter = graphClient(t, e.ts.Client().Transport, cred, e.ts.URL+"/v1.0", []string{"127.0.0.1"})
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

// graphClient assembles Microsoft's Graph client over rt at baseURL and
// returns its deviceManagement request builder. It repeats what the SDK's
// root package does in NewGraphServiceClientWithCredentials (auth provider,
// default middleware: retry, compression, redirect, telemetry; default
// serialisers; backing store), because importing that package compiles the
// request builders of all of Graph: about 80 packages more, over a minute
// of a cold build, for nothing postured calls.
func graphClient(t *testing.T, rt http.RoundTripper, cred azcore.TokenCredential, baseURL string, hosts []string) (*devicemanagement.DeviceManagementRequestBuilder, *msgraphcore.GraphRequestAdapterBase) {
	t.Helper()
	auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{intunemock.Scope}, hosts)
	if err != nil {
		t.Fatal(err)
	}
	// msgraph-sdk-go v1.89.0 graph_request_adapter.go clientOptions.
	opts := msgraphcore.GraphClientOptions{GraphServiceLibraryVersion: "1.89.0"}
	hc := msgraphcore.GetDefaultClient(&opts)
	hc.Transport = khttp.NewCustomTransportWithParentTransport(rt, msgraphcore.GetDefaultMiddlewaresWithOptions(&opts)...)
	adapter, err := msgraphcore.NewGraphRequestAdapterBaseWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, opts, nil, nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	// graph_base_service_client.go NewGraphBaseServiceClient.
	for _, w := range []func() absser.SerializationWriterFactory{
		func() absser.SerializationWriterFactory { return jsonser.NewJsonSerializationWriterFactory() },
		func() absser.SerializationWriterFactory { return textser.NewTextSerializationWriterFactory() },
		func() absser.SerializationWriterFactory { return formser.NewFormSerializationWriterFactory() },
		func() absser.SerializationWriterFactory { return multipartser.NewMultipartSerializationWriterFactory() },
	} {
		abstractions.RegisterDefaultSerializer(w)
	}
	for _, p := range []func() absser.ParseNodeFactory{
		func() absser.ParseNodeFactory { return jsonser.NewJsonParseNodeFactory() },
		func() absser.ParseNodeFactory { return textser.NewTextParseNodeFactory() },
		func() absser.ParseNodeFactory { return formser.NewFormParseNodeFactory() },
	} {
		abstractions.RegisterDefaultDeserializer(p)
	}
	adapter.SetBaseUrl(baseURL)
	adapter.EnableBackingStore(store.BackingStoreFactoryInstance)
	return devicemanagement.NewDeviceManagementRequestBuilderInternal(map[string]string{"baseurl": baseURL}, adapter), adapter
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
