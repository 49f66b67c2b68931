package providertest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/mockkit"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/providertest"
)

// The toy vendor is the smallest vendor that passes the suite: a mock
// serving a client-credentials token endpoint and one filterable device
// listing, and a provider built the way the real ones are. Its flaws each
// remove one behaviour the suite checks, to prove the check notices.

const (
	toyClient = "toy-client"
	toySecret = "toy~Secret/with+escapes=42"
	toyChunk  = 50 // values per listing call
)

type toyDevice struct {
	ID       string `json:"id"`
	Serial   string `json:"serial"`
	Hostname string `json:"hostname"`
}

type toyMock struct {
	faults  *mockkit.Faults
	tokens  *mockkit.Tokens
	devices []toyDevice
}

func (m *toyMock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/token":
		if r.ParseForm() != nil || r.PostForm.Get("client_id") != toyClient || r.PostForm.Get("client_secret") != toySecret {
			toyJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
			return
		}
		tok, ttl := m.tokens.Issue()
		toyJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(ttl.Seconds())})
	case "/devices":
		if ok, _ := m.tokens.Check(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")); !ok {
			toyJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid token"})
			return
		}
		switch f, wait := m.faults.Next(false); f {
		case mockkit.RateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			toyJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow down"})
			return
		case mockkit.ServerError:
			toyJSON(w, http.StatusInternalServerError, map[string]string{"error": "oops"})
			return
		case mockkit.Malformed:
			_, _ = w.Write([]byte(`{"devices":[`))
			return
		}
		q := r.URL.Query()
		var out []toyDevice
		for _, d := range m.devices {
			field := map[string]string{"serial": d.Serial, "hostname": d.Hostname}[q.Get("field")]
			if !q.Has("field") || slices.ContainsFunc(q["v"], func(v string) bool { return strings.EqualFold(v, field) }) {
				out = append(out, d)
			}
		}
		toyJSON(w, http.StatusOK, map[string]any{"devices": out})
	default:
		http.NotFound(w, r)
	}
}

func toyJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// flaw names one behaviour a toy provider lacks; "" is none.
type flaw string

const (
	noRefresh          flaw = "never refreshes its token"
	refreshLoop        flaw = "refreshes its token forever"
	logsSecret         flaw = "logs its client secret"
	unwrappedCancel    flaw = "hides context.Canceled"
	leaksGoroutine     flaw = "leaves a goroutine behind on cancel"
	noRetries          flaw = "never retries"
	ignoresRetryAfter  flaw = "ignores Retry-After"
	takesMalformed     flaw = "takes a malformed answer for no devices"
	silentlyUnsupports flaw = "answers unsupported kinds with nothing"
	callPerValue       flaw = "makes one call per value"
	wrongIDs           flaw = "returns serials as record ids"
	failsWholeChunk    flaw = "fails every value of a request the vendor refuses"
)

type toyProvider struct {
	base   string
	flaw   flaw
	client *providers.Client
	fetch  func(context.Context) (providers.Token, error) // noRefresh and refreshLoop: their own token handling
	token  string
	logger *slog.Logger
	chunk  int
}

var toyFields = map[providers.Kind]string{providers.KindSerial: "serial", providers.KindHostname: "hostname"}

func newToy(base string, fl flaw, opts providertest.Options) (*toyProvider, error) {
	h := opts.HTTP
	if fl == noRetries {
		h.RetryMax = 0
	}
	fetch := providers.ClientCredentials(base+"/token", toyClient, toySecret, nil, nil, h)
	co := providers.ClientOptions{Provider: "toy", HTTP: h, OnRetry: opts.OnRetry, Logger: opts.Logger}
	p := &toyProvider{base: base, flaw: fl, logger: opts.Logger, chunk: toyChunk}
	switch fl {
	case noRefresh, refreshLoop:
		p.fetch = fetch
	default:
		co.Token = providers.NewTokenSource(fetch, time.Minute)
	}
	if fl == ignoresRetryAfter {
		co.RetryAfter = func(*http.Response) (time.Duration, bool) { return 0, false }
	}
	if fl == callPerValue {
		p.chunk = 1
	}
	var err error
	p.client, err = providers.NewClient(co)
	return p, err
}

// Supports is honest unless the toy's flaw is to claim every kind.
func (p *toyProvider) Supports(k providers.Kind) bool {
	_, ok := toyFields[k]
	return ok || p.flaw == silentlyUnsupports
}

func (p *toyProvider) Lookup(ctx context.Context, q providers.Query) ([]providers.Record, error) {
	field, ok := toyFields[q.Kind]
	if !ok {
		if p.flaw == silentlyUnsupports {
			return nil, nil
		}
		return nil, fmt.Errorf("toy: lookup %s: %w", q.Kind, providers.ErrUnsupportedKind)
	}
	if p.flaw == logsSecret {
		p.logger.Debug("looking up", "client_secret", toySecret)
	}
	var out []providers.Record
	var errs []error
	for chunk := range slices.Chunk(q.Values, p.chunk) {
		get := func(ctx context.Context, vals []string) ([]providers.Record, error) {
			return p.get(ctx, url.Values{"field": {field}, "v": vals})
		}
		var recs []providers.Record
		var err error
		if p.flaw == failsWholeChunk {
			recs, err = get(ctx, chunk)
		} else {
			recs, err = providers.Isolate(ctx, chunk, get)
		}
		out = append(out, recs...)
		errs = append(errs, err)
	}
	if err := providers.JoinPartial(errs...); err != nil {
		var pe *providers.PartialError
		if !errors.As(err, &pe) {
			return nil, err
		}
		return out, err
	}
	return out, nil
}

func (p *toyProvider) List(ctx context.Context) ([]providers.Record, error) {
	return p.get(ctx, nil)
}

func (p *toyProvider) get(ctx context.Context, q url.Values) ([]providers.Record, error) {
	if p.flaw == leaksGoroutine {
		ch := make(chan error) // nobody reads it after a cancel
		go func() {
			_, err := p.call(context.WithoutCancel(ctx), q)
			ch <- err
		}()
		select {
		case err := <-ch:
			if err != nil {
				return nil, err
			}
			return nil, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("toy: list devices: %w", ctx.Err())
		}
	}
	recs, err := p.call(ctx, q)
	if err != nil && ctx.Err() != nil && p.flaw == unwrappedCancel {
		return nil, errors.New("toy: list devices: gave up")
	}
	return recs, err
}

func (p *toyProvider) call(ctx context.Context, q url.Values) ([]providers.Record, error) {
	const op = "list devices"
	req := providers.Request{Method: http.MethodGet, URL: p.base + "/devices?" + q.Encode()}
	var resp *providers.Response
	var err error
	for {
		if p.fetch != nil && p.token == "" {
			tok, err := p.fetch(ctx)
			if err != nil {
				return nil, fmt.Errorf("toy: fetch token: %w", err)
			}
			p.token = tok.Value
		}
		if p.fetch != nil {
			req.Header = http.Header{"Authorization": {"Bearer " + p.token}}
		}
		resp, err = p.client.Do(ctx, op, req)
		var se *providers.StatusError
		if p.flaw == refreshLoop && errors.As(err, &se) && se.Status == http.StatusUnauthorized && ctx.Err() == nil {
			p.token = ""
			continue
		}
		break
	}
	if err != nil {
		return nil, err
	}
	var body struct {
		Devices []toyDevice `json:"devices"`
	}
	if err := p.client.DecodeJSON(op, resp.Body, &body); err != nil {
		if p.flaw == takesMalformed {
			return nil, nil
		}
		return nil, err
	}
	var out []providers.Record
	for _, d := range body.Devices {
		r := providers.Record{ID: d.ID, Serials: []string{d.Serial}, Hostnames: []string{d.Hostname}}
		if p.flaw == wrongIDs {
			r.ID = d.Serial
		}
		out = append(out, *r.Normalize())
	}
	return out, nil
}

func toyHarness(fl flaw) providertest.Harness {
	return providertest.Harness{
		TokenPath: "/token",
		Kinds:     []providers.Kind{providers.KindSerial, providers.KindHostname},
		CallBound: func(_ providers.Kind, n int) int { return 1 + (n+toyChunk-1)/toyChunk },
		Setup: func(t *testing.T, opts providertest.Options) *providertest.Env {
			m := &toyMock{faults: &mockkit.Faults{}, tokens: mockkit.NewTokens(time.Hour), devices: []toyDevice{
				{ID: "t-1", Serial: "C02TOY1", Hostname: "toy-one"},
				{ID: "t-2", Serial: "C02TOY2", Hostname: "Toy-Two"},
			}}
			known := []providertest.Ident{
				{Kind: providers.KindSerial, Value: "c02toy1", ID: "t-1"},
				{Kind: providers.KindSerial, Value: "C02TOY2", ID: "t-2"},
				{Kind: providers.KindHostname, Value: "TOY-ONE", ID: "t-1"},
				{Kind: providers.KindHostname, Value: "toy-two.corp.example", ID: "t-2"},
			}
			for i := range opts.Bulk {
				d := toyDevice{ID: fmt.Sprintf("b-%d", i), Serial: fmt.Sprintf("BULK%05d", i), Hostname: fmt.Sprintf("bulk-%05d", i)}
				m.devices = append(m.devices, d)
				known = append(known,
					providertest.Ident{Kind: providers.KindSerial, Value: d.Serial, ID: d.ID},
					providertest.Ident{Kind: providers.KindHostname, Value: d.Hostname, ID: d.ID})
			}
			p, err := newToy(opts.Serve(m), fl, opts)
			if err != nil {
				t.Fatal(err)
			}
			return &providertest.Env{Provider: p, Faults: m.faults, Revoke: m.tokens.ExpireAll, Secrets: []string{toySecret}, Known: known}
		},
	}
}
