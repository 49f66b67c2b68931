// Package mockkit is the machinery the vendor mocks share: fault injection,
// per-endpoint call counters, an opaque bearer-token store, and Vendor, the
// one shape in which every mock package offers itself to the mock set and
// the end-to-end tests. Each mock renders faults in its own vendor's wire
// format; mockkit only decides which fault a request gets.
package mockkit

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"sync"
	"time"
)

// Fault is what a mock should do to one request.
type Fault int

const (
	// None: answer normally.
	None Fault = iota
	// RateLimited: answer 429 with the vendor's retry-after signal.
	RateLimited
	// ServerError: answer 5xx in the vendor's error shape.
	ServerError
	// Malformed: answer 200 with a body that is not valid JSON.
	Malformed
)

// Faults are the failures a mock injects. Counts are consumed one per
// matching request, so "the next 2 requests fail" is RateLimit(2, ...).
// Safe for concurrent use; tests change it while the mock serves.
type Faults struct {
	mu          sync.Mutex
	latency     time.Duration
	pageLatency time.Duration
	rateLimited int
	retryAfter  time.Duration
	serverErr   int
	malformed   int
}

// SetLatency delays every response by d.
func (f *Faults) SetLatency(d time.Duration) {
	f.mu.Lock()
	f.latency = d
	f.mu.Unlock()
}

// SetPageLatency delays every page after the first of a paged listing by d.
func (f *Faults) SetPageLatency(d time.Duration) {
	f.mu.Lock()
	f.pageLatency = d
	f.mu.Unlock()
}

// RateLimit makes the next n requests answer 429 asking for retryAfter.
func (f *Faults) RateLimit(n int, retryAfter time.Duration) {
	f.mu.Lock()
	f.rateLimited, f.retryAfter = n, retryAfter
	f.mu.Unlock()
}

// FailServer makes the next n requests answer 5xx.
func (f *Faults) FailServer(n int) {
	f.mu.Lock()
	f.serverErr = n
	f.mu.Unlock()
}

// Malform makes the next n successful responses carry broken JSON.
func (f *Faults) Malform(n int) {
	f.mu.Lock()
	f.malformed = n
	f.mu.Unlock()
}

// Reset clears every fault.
func (f *Faults) Reset() {
	f.mu.Lock()
	f.latency, f.pageLatency, f.rateLimited, f.retryAfter, f.serverErr, f.malformed = 0, 0, 0, 0, 0, 0
	f.mu.Unlock()
}

// Next decides the fault for one API request and returns it with the
// retry-after to advertise for RateLimited. It sleeps the configured latency
// first (pageLatency too when laterPage is set).
func (f *Faults) Next(laterPage bool) (Fault, time.Duration) {
	f.mu.Lock()
	delay := f.latency
	if laterPage {
		delay += f.pageLatency
	}
	fault := None
	switch {
	case f.rateLimited > 0:
		f.rateLimited--
		fault = RateLimited
	case f.serverErr > 0:
		f.serverErr--
		fault = ServerError
	case f.malformed > 0:
		f.malformed--
		fault = Malformed
	}
	ra := f.retryAfter
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	return fault, ra
}

// Counter counts calls per endpoint name.
type Counter struct {
	mu sync.Mutex
	m  map[string]int
}

// Inc counts one call to endpoint.
func (c *Counter) Inc(endpoint string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int)
	}
	c.m[endpoint]++
	c.mu.Unlock()
}

// Get returns the calls to endpoint so far.
func (c *Counter) Get(endpoint string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[endpoint]
}

// Total returns the calls to every endpoint so far.
func (c *Counter) Total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.m {
		n += v
	}
	return n
}

// BatchItem is the endpoint name a mock counts each request inside a
// batch envelope (Graph's $batch) under: a unit of the vendor's rate
// budget, but no HTTP request of its own.
const BatchItem = "batchItem"

// Requests returns the HTTP requests so far: every call but batch items.
func (c *Counter) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.m {
		if k != BatchItem {
			n += v
		}
	}
	return n
}

// Snapshot copies the counts.
func (c *Counter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// Reset zeroes every count.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// Tokens issues and checks opaque bearer tokens.
type Tokens struct {
	mu     sync.Mutex
	ttl    time.Duration
	issued map[string]time.Time // token -> expiry
}

// NewTokens issues tokens that live ttl.
func NewTokens(ttl time.Duration) *Tokens {
	return &Tokens{ttl: ttl, issued: make(map[string]time.Time)}
}

// Issue mints a token and returns it with its lifetime.
func (t *Tokens) Issue() (string, time.Duration) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	t.mu.Lock()
	t.issued[tok] = time.Now().Add(t.ttl)
	t.mu.Unlock()
	return tok, t.ttl
}

// Check reports whether tok was issued and has not expired or been revoked.
func (t *Tokens) Check(tok string) (valid, expired bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	exp, ok := t.issued[tok]
	if !ok {
		return false, false
	}
	if time.Now().After(exp) {
		return false, true
	}
	return true, false
}

// ExpireAll makes every token issued so far expired, as a vendor does when
// a token's lifetime runs out mid-run.
func (t *Tokens) ExpireAll() {
	t.mu.Lock()
	past := time.Now().Add(-time.Second)
	for k := range t.issued {
		t.issued[k] = past
	}
	t.mu.Unlock()
}

// Revoke invalidates tok.
func (t *Tokens) Revoke(tok string) {
	t.mu.Lock()
	delete(t.issued, tok)
	t.mu.Unlock()
}

// SetTTL changes the lifetime of tokens issued from now on.
func (t *Tokens) SetTTL(ttl time.Duration) {
	t.mu.Lock()
	t.ttl = ttl
	t.mu.Unlock()
}
