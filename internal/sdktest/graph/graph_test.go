package graph

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	abstractions "github.com/microsoft/kiota-abstractions-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/devicemanagement"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/postured/postured/providers/intune/intunemock"
)

func TestToken(t *testing.T) {
	tests := []struct {
		name   string
		tenant string
		secret string
		err    string // in the error; "" = a token
	}{
		{name: "tenant id", tenant: intunemock.DefaultTenantID, secret: intunemock.DefaultClientSecret},
		{name: "tenant domain", tenant: intunemock.DefaultTenantDomain, secret: intunemock.DefaultClientSecret},
		{name: "wrong secret", tenant: intunemock.DefaultTenantID, secret: "wrong", err: "AADSTS7000215"},
		{name: "unknown tenant", tenant: "nosuch.onmicrosoft.com", secret: intunemock.DefaultClientSecret, err: "AADSTS90002"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, intunemock.Options{Devices: fixture(3)})
			cred := credential(t, e.ts.Client().Transport, e.ts.URL, tc.tenant, tc.secret)
			tok, err := cred.GetToken(t.Context(), policy.TokenRequestOptions{Scopes: []string{intunemock.Scope}})
			if tc.err != "" {
				var af *azidentity.AuthenticationFailedError
				if !errors.As(err, &af) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want an AuthenticationFailedError with %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Token == "" || !tok.ExpiresOn.After(tok.RefreshOn) {
				t.Errorf("token %+v", tok)
			}
			if got := e.mock.Calls.Get("token"); got != 1 {
				t.Errorf("%d token calls, want 1", got)
			}
		})
	}
}

func TestListPaging(t *testing.T) {
	tests := []struct {
		name  string
		opts  intunemock.Options
		n     int
		pages int
	}{
		{name: "several pages", opts: intunemock.Options{PageSize: 7}, n: 25, pages: 4},
		{name: "empty first page", opts: intunemock.Options{PageSize: 10, EmptyFirstPage: true}, n: 25, pages: 4},
		{name: "one page", opts: intunemock.Options{}, n: 25, pages: 1},
		{name: "no devices", opts: intunemock.Options{}, n: 0, pages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			devs := fixture(tc.n)
			tc.opts.Devices = devs
			e := newEnv(t, tc.opts)
			resp, err := e.dm.ManagedDevices().Get(t.Context(), nil)
			if err != nil {
				t.Fatal(err)
			}
			it, err := msgraphcore.NewPageIterator[models.ManagedDeviceable](resp, e.adapter, models.CreateManagedDeviceCollectionResponseFromDiscriminatorValue)
			if err != nil {
				t.Fatal(err)
			}
			var got []models.ManagedDeviceable
			if err := it.Iterate(t.Context(), func(d models.ManagedDeviceable) bool {
				got = append(got, d)
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(devs) {
				t.Fatalf("%d devices, want %d", len(got), len(devs))
			}
			for i, d := range got {
				checkDevice(t, d, devs[i])
				// Graph leaves non-default properties empty in listings.
				if d.GetEthernetMacAddress() != nil {
					t.Errorf("device %d: ethernetMacAddress %q in a listing", i, *d.GetEthernetMacAddress())
				}
			}
			if p := e.mock.Calls.Get("managedDevices"); p != tc.pages {
				t.Errorf("%d pages fetched, want %d", p, tc.pages)
			}
			if c := e.mock.Calls.Get("token"); c != 1 {
				t.Errorf("%d token calls, want 1 (the SDK caches the token)", c)
			}
		})
	}
}

func TestFilterSelect(t *testing.T) {
	devs := fixture(12)
	sel := []string{"id", "deviceName", "serialNumber", "wiFiMacAddress", "complianceState"}
	tests := []struct {
		name   string
		filter string
		sel    []string
		want   []int // fixture indexes
	}{
		{name: "serial", filter: "serialNumber eq '" + devs[4].SerialNumber + "'", sel: sel, want: []int{4}},
		{name: "serial in another case", filter: "serialNumber eq '" + strings.ToLower(devs[4].SerialNumber) + "'", sel: sel, want: []int{4}},
		{name: "device name", filter: "deviceName eq '" + devs[7].DeviceName + "'", sel: sel, want: []int{7}},
		{name: "device name prefix", filter: "startswith(deviceName,'DESKTOP-0001')", sel: sel, want: []int{10, 11}},
		{name: "no match", filter: "serialNumber eq 'NOSUCH'", sel: sel, want: nil},
		{name: "serial without select", filter: "serialNumber eq '" + devs[2].SerialNumber + "'", want: []int{2}},
	}
	e := newEnv(t, intunemock.Options{Devices: devs})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.dm.ManagedDevices().Get(t.Context(), &devicemanagement.ManagedDevicesRequestBuilderGetRequestConfiguration{
				QueryParameters: &devicemanagement.ManagedDevicesRequestBuilderGetQueryParameters{Filter: &tc.filter, Select: tc.sel},
			})
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, d := range resp.GetValue() {
				i := slices.IndexFunc(devs, func(f intunemock.ManagedDevice) bool { return f.ID == deref(d.GetId()) })
				got = append(got, i)
				if i < 0 {
					continue
				}
				want := devs[i]
				state := ""
				if s := d.GetComplianceState(); s != nil {
					state = s.String()
				}
				if deref(d.GetSerialNumber()) != want.SerialNumber || deref(d.GetDeviceName()) != want.DeviceName ||
					deref(d.GetWiFiMacAddress()) != want.WiFiMacAddress || state != want.ComplianceState {
					t.Errorf("device %d parsed as %q %q %q %q", i, deref(d.GetSerialNumber()), deref(d.GetDeviceName()), deref(d.GetWiFiMacAddress()), state)
				}
				// Properties outside $select stay unset.
				if tc.sel != nil && (d.GetUserPrincipalName() != nil || d.GetLastSyncDateTime() != nil) {
					t.Errorf("device %d: unselected properties parsed: upn %v lastSync %v", i, d.GetUserPrincipalName(), d.GetLastSyncDateTime())
				}
				if tc.sel == nil {
					checkDevice(t, d, want)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("devices %v, want %v", got, tc.want)
			}
		})
	}
}

func TestGetByID(t *testing.T) {
	devs := fixture(5)
	devs[3].PhysicalMemoryInBytes = 17179869184
	tests := []struct {
		name string
		sel  []string
		full bool // every default property parsed
	}{
		{name: "full object", full: true},
		{name: "select", sel: []string{"id", "serialNumber", "ethernetMacAddress", "physicalMemoryInBytes"}},
	}
	e := newEnv(t, intunemock.Options{Devices: devs})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.dm.ManagedDevices().ByManagedDeviceId(devs[3].ID).Get(t.Context(),
				&devicemanagement.ManagedDevicesManagedDeviceItemRequestBuilderGetRequestConfiguration{
					QueryParameters: &devicemanagement.ManagedDevicesManagedDeviceItemRequestBuilderGetQueryParameters{Select: tc.sel},
				})
			if err != nil {
				t.Fatal(err)
			}
			if got := deref(d.GetEthernetMacAddress()); got != devs[3].EthernetMacAddress {
				t.Errorf("ethernetMacAddress %q, want %q", got, devs[3].EthernetMacAddress)
			}
			if got := deref(d.GetPhysicalMemoryInBytes()); got != devs[3].PhysicalMemoryInBytes {
				t.Errorf("physicalMemoryInBytes %d", got)
			}
			if tc.full {
				checkDevice(t, d, devs[3])
			} else if deref(d.GetSerialNumber()) != devs[3].SerialNumber || d.GetDeviceName() != nil {
				t.Errorf("selected get parsed serial %q, name %v", deref(d.GetSerialNumber()), d.GetDeviceName())
			}
		})
	}
}

// TestBatch sends 20 lookups, the most Graph takes, through the SDK's batch
// support: gzip-compressed, with "body": null items, answered out of order.
func TestBatch(t *testing.T) {
	devs := fixture(30)
	e := newEnv(t, intunemock.Options{Devices: devs})
	// Without a registered mapping the SDK reports a failed item as a bare
	// ApiError; Graph's batch errors are OData errors.
	if err := msgraphcore.RegisterError(msgraphcore.BatchRequestErrorRegistryKey, abstractions.ErrorMappings{
		"4XX": odataerrors.CreateODataErrorFromDiscriminatorValue,
		"5XX": odataerrors.CreateODataErrorFromDiscriminatorValue,
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = msgraphcore.DeRegisterError(msgraphcore.BatchRequestErrorRegistryKey) })

	md := e.dm.ManagedDevices()
	sel := []string{"id", "deviceName", "serialNumber", "wiFiMacAddress", "complianceState", "userPrincipalName", "isEncrypted", "lastSyncDateTime"}
	type step struct {
		id      string
		want    int  // fixture index, -1 for none
		single  bool // a GET by id rather than a filtered listing
		missing bool // GET of an unknown id
	}
	batch := msgraphcore.NewBatchRequest(e.adapter)
	var steps []step
	add := func(info *abstractions.RequestInformation, s step) {
		t.Helper()
		item, err := batch.AddBatchRequestStep(*info)
		if err != nil {
			t.Fatal(err)
		}
		s.id = *item.GetId()
		steps = append(steps, s)
	}
	for i := range 20 {
		var (
			info *abstractions.RequestInformation
			err  error
			s    = step{want: i}
		)
		switch {
		case i < 10:
			f := "serialNumber eq '" + devs[i].SerialNumber + "'"
			info, err = md.ToGetRequestInformation(t.Context(), &devicemanagement.ManagedDevicesRequestBuilderGetRequestConfiguration{
				QueryParameters: &devicemanagement.ManagedDevicesRequestBuilderGetQueryParameters{Filter: &f, Select: sel},
			})
		case i < 15:
			f := "deviceName eq '" + devs[i].DeviceName + "'"
			info, err = md.ToGetRequestInformation(t.Context(), &devicemanagement.ManagedDevicesRequestBuilderGetRequestConfiguration{
				QueryParameters: &devicemanagement.ManagedDevicesRequestBuilderGetQueryParameters{Filter: &f, Select: sel},
			})
		case i < 19:
			s.single = true
			info, err = md.ByManagedDeviceId(devs[i].ID).ToGetRequestInformation(t.Context(), nil)
		default:
			s = step{want: -1, single: true, missing: true}
			info, err = md.ByManagedDeviceId("00000000-0000-4000-8000-999999999999").ToGetRequestInformation(t.Context(), nil)
		}
		if err != nil {
			t.Fatal(err)
		}
		add(info, s)
	}

	resp, err := batch.Send(t.Context(), e.adapter)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetResponses()); n != 20 {
		t.Fatalf("%d responses, want 20", n)
	}
	for _, s := range steps {
		switch {
		case s.missing:
			_, err := msgraphcore.GetBatchResponseById[models.ManagedDeviceable](resp, s.id, models.CreateManagedDeviceFromDiscriminatorValue)
			var oe *odataerrors.ODataError
			if !errors.As(err, &oe) || deref(oe.GetErrorEscaped().GetCode()) != "ResourceNotFound" {
				t.Errorf("unknown id: err = %v, want an ODataError ResourceNotFound", err)
			}
		case s.single:
			d, err := msgraphcore.GetBatchResponseById[models.ManagedDeviceable](resp, s.id, models.CreateManagedDeviceFromDiscriminatorValue)
			if err != nil {
				t.Fatalf("item %d: %v", s.want, err)
			}
			checkDevice(t, d, devs[s.want])
			if deref(d.GetEthernetMacAddress()) != devs[s.want].EthernetMacAddress {
				t.Errorf("item %d: ethernetMacAddress %v", s.want, d.GetEthernetMacAddress())
			}
		default:
			page, err := msgraphcore.GetBatchResponseById[models.ManagedDeviceCollectionResponseable](resp, s.id, models.CreateManagedDeviceCollectionResponseFromDiscriminatorValue)
			if err != nil {
				t.Fatalf("item %d: %v", s.want, err)
			}
			if v := page.GetValue(); len(v) != 1 {
				t.Errorf("item %d: %d devices", s.want, len(v))
			} else {
				checkDevice(t, v[0], devs[s.want])
			}
		}
	}
	// One $batch call, gzip-compressed: the mock read the compressed body
	// rather than making the SDK fall back to a plain one.
	if got := e.batches.get(); !slices.Equal(got, []string{"gzip"}) {
		t.Errorf("$batch requests with Content-Encoding %q, want one gzip", got)
	}
	if got := e.mock.Calls.Get("batchItem"); got != 20 {
		t.Errorf("%d batch items served, want 20", got)
	}
}

func TestODataErrors(t *testing.T) {
	devs := fixture(3)
	list := func(t *testing.T, e *env, opts ...abstractions.RequestOption) error {
		_, err := e.dm.ManagedDevices().Get(t.Context(), &devicemanagement.ManagedDevicesRequestBuilderGetRequestConfiguration{Options: opts})
		return err
	}
	noRetry := &khttp.RetryHandlerOptions{ShouldRetry: func(time.Duration, int, *http.Request, *http.Response) bool { return false }}
	tests := []struct {
		name       string
		opts       intunemock.Options
		call       func(t *testing.T, e *env) error
		status     int
		code       string
		msg        string // in the message
		retryAfter string // Retry-After header of the answer
	}{
		{name: "401 expired token", status: 401, code: "InvalidAuthenticationToken", msg: "the token is expired",
			call: func(t *testing.T, e *env) error {
				// The SDK holds the token it got first and does not refresh
				// it on a 401.
				if err := list(t, e); err != nil {
					t.Fatal(err)
				}
				e.mock.ExpireTokens()
				return list(t, e)
			}},
		{name: "403 missing permission", opts: intunemock.Options{DenyPermission: true}, status: 403, code: "Forbidden", msg: "DeviceManagementManagedDevices.Read.All",
			call: func(t *testing.T, e *env) error { return list(t, e) }},
		{name: "404 unknown id", status: 404, code: "ResourceNotFound", msg: "Resource not found",
			call: func(t *testing.T, e *env) error {
				_, err := e.dm.ManagedDevices().ByManagedDeviceId("00000000-0000-4000-8000-999999999999").Get(t.Context(), nil)
				return err
			}},
		{name: "400 unknown property", status: 400, code: "BadRequest", msg: "Could not find a property named 'nosuch'",
			call: func(t *testing.T, e *env) error {
				_, err := e.dm.ManagedDevices().Get(t.Context(), &devicemanagement.ManagedDevicesRequestBuilderGetRequestConfiguration{
					QueryParameters: &devicemanagement.ManagedDevicesRequestBuilderGetQueryParameters{Select: []string{"id", "nosuch"}},
				})
				return err
			}},
		{name: "429 throttled", status: 429, code: "TooManyRequests", msg: "Please retry again later.", retryAfter: "2",
			call: func(t *testing.T, e *env) error {
				e.mock.Faults.RateLimit(1, 1500*time.Millisecond)
				return list(t, e, noRetry)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Devices = devs
			e := newEnv(t, tc.opts)
			err := tc.call(t, e)
			var oe *odataerrors.ODataError
			if !errors.As(err, &oe) {
				t.Fatalf("err = %v (%T), want an ODataError", err, err)
			}
			main := oe.GetErrorEscaped()
			if oe.GetStatusCode() != tc.status || main == nil || deref(main.GetCode()) != tc.code || !strings.Contains(deref(main.GetMessage()), tc.msg) {
				t.Fatalf("status %d, error %v; want %d %s %q", oe.GetStatusCode(), err, tc.status, tc.code, tc.msg)
			}
			if inner := main.GetInnerError(); inner == nil || deref(inner.GetRequestId()) == "" || inner.GetDate() == nil {
				t.Errorf("innerError without request-id or date: %+v", inner)
			}
			if tc.retryAfter != "" {
				if got := oe.GetResponseHeaders().Get("Retry-After"); !slices.Equal(got, []string{tc.retryAfter}) {
					t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
				}
			}
		})
	}
}
