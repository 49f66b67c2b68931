// Package cfpoll plays Cloudflare's device posture service: it POSTs a
// whole fleet to a custom device posture endpoint in batches of at most
// 1000 devices, with a freshly minted Access token each cycle, and checks
// every answer the way Cloudflare's side of the protocol requires (every
// device of the batch exactly once in result, an integer score 0..100, a
// string s2s_id, nothing else). A Poller remembers the scores of its last
// cycle so each Cycle reports the devices whose score moved.
//
// The protocol is in docs/cloudflare-protocols.md, section A.
package cfpoll

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/postured/postured/internal/fleet"
)

// MaxBatch is the most devices Cloudflare sends in one request
// (https://developers.cloudflare.com/cloudflare-one/integrations/service-providers/custom/).
const MaxBatch = 1000

// maxAnswer bounds the answer read for one batch: a valid one for 1000
// devices is under 100 KiB.
const maxAnswer = 8 << 20

// TokenSource mints the Access application token a cycle presents in
// Cf-Access-Jwt-Assertion, as Access does for the integration's service
// token.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// TokenFunc is a TokenSource from a function, such as a
// localaccess.Issuer's AppToken.
type TokenFunc func(ctx context.Context) (string, error)

// Token calls f.
func (f TokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

// URLToken is a TokenSource that GETs each token from url, as from an
// Access stand-in's token endpoint (mockvendors serves /access/token): the
// poller then needs no signing key of its own, and the tokens verify
// against the certs the stand-in publishes. client nil means
// http.DefaultClient.
func URLToken(url string, client *http.Client) TokenSource {
	if client == nil {
		client = http.DefaultClient
	}
	return TokenFunc(func(ctx context.Context) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if err != nil {
			return "", fmt.Errorf("token: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("token: %s answered %d", url, resp.StatusCode)
		}
		return strings.TrimSpace(string(body)), nil
	})
}

// Config configures a Poller.
type Config struct {
	// Target is the posture endpoint URL, POSTed to exactly as given.
	Target string
	// Tokens mints one token per cycle.
	Tokens TokenSource
	// Devices are the whole fleet as Cloudflare knows it, batched in this
	// order. Device ids must be unique.
	Devices []fleet.CloudflareDevice
	// BatchSize is the most devices per request. Default and at most
	// MaxBatch.
	BatchSize int
	// Concurrency is how many batches of a cycle are in flight at once.
	// Default 1.
	Concurrency int
	// Client sends the batches. Default: a client with a 30s timeout.
	Client *http.Client
	// Now is the clock durations and latencies are measured with. Default
	// time.Now.
	Now func() time.Time
}

// Poller polls one fleet, cycle after cycle. Its methods are safe for
// concurrent use; cycles run one at a time.
type Poller struct {
	cfg     Config
	batches [][]fleet.CloudflareDevice

	mu     sync.Mutex
	cycles int
	scores map[string]int // device id -> score of its last valid answer
}

// New validates cfg, fills its defaults and splits the fleet into batches.
func New(cfg Config) (*Poller, error) {
	switch {
	case cfg.Target == "":
		return nil, errors.New("cfpoll: no target URL")
	case cfg.Tokens == nil:
		return nil, errors.New("cfpoll: no token source")
	case len(cfg.Devices) == 0:
		return nil, errors.New("cfpoll: no devices")
	case cfg.BatchSize < 0 || cfg.BatchSize > MaxBatch:
		return nil, fmt.Errorf("cfpoll: batch size %d: must be 1..%d", cfg.BatchSize, MaxBatch)
	case cfg.Concurrency < 0:
		return nil, fmt.Errorf("cfpoll: concurrency %d: must be >= 1", cfg.Concurrency)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = MaxBatch
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seen := make(map[string]bool, len(cfg.Devices))
	for _, d := range cfg.Devices {
		if d.DeviceID == "" || seen[d.DeviceID] {
			return nil, fmt.Errorf("cfpoll: device id %q empty or repeated", d.DeviceID)
		}
		seen[d.DeviceID] = true
	}
	return &Poller{cfg: cfg, batches: slices.Collect(slices.Chunk(cfg.Devices, cfg.BatchSize)), scores: map[string]int{}}, nil
}

// Cycle is one poll of the whole fleet.
type Cycle struct {
	// N numbers the Poller's cycles from 1.
	N int
	// Devices and Batches are what the cycle sent.
	Devices, Batches int
	// Duration is the whole cycle, token included.
	Duration time.Duration
	// Latencies are per batch, in batch order: request to answer read
	// (0 for a batch that got no answer).
	Latencies []time.Duration
	// Histogram counts the scores of the valid answers by decile: [k]
	// holds 10k..10k+9, and [9] 90..100.
	Histogram [10]int
	// Changed are the devices, sorted, whose score differs from the one
	// in their previous valid answer.
	Changed []string
	// Errors has one entry per failed batch (or the token's failure): an
	// *InvalidAnswerError for an answer Cloudflare would reject, other
	// errors for transport failures and non-200 statuses.
	Errors []error
}

// Err joins the cycle's errors; nil when every batch got a valid answer.
func (c *Cycle) Err() error { return errors.Join(c.Errors...) }

// InvalidAnswerError is an answer Cloudflare would reject.
type InvalidAnswerError struct {
	// Batch numbers the cycle's batches from 1.
	Batch int
	// Problems are the first few violations found; Total counts them all.
	Problems []string
	Total    int
}

// maxProblems is how many violations an InvalidAnswerError keeps.
const maxProblems = 5

func (e *InvalidAnswerError) Error() string {
	msg := fmt.Sprintf("cfpoll: batch %d: invalid answer: %s", e.Batch, strings.Join(e.Problems, "; "))
	if more := e.Total - len(e.Problems); more > 0 {
		msg += fmt.Sprintf(" (and %d more)", more)
	}
	return msg
}

// batchResult is one batch's outcome.
type batchResult struct {
	latency time.Duration
	scores  map[string]int
	err     error
}

// Poll runs one cycle: it mints a token, POSTs every batch (Concurrency
// at a time) and checks every answer. A failed batch does not stop the
// others; its devices keep their previous scores for change detection.
func (p *Poller) Poll(ctx context.Context) Cycle {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cycles++
	start := p.cfg.Now()
	c := Cycle{N: p.cycles, Devices: len(p.cfg.Devices), Batches: len(p.batches)}
	token, err := p.cfg.Tokens.Token(ctx)
	if err != nil {
		c.Errors = []error{fmt.Errorf("cfpoll: %w", err)}
		c.Latencies = make([]time.Duration, len(p.batches))
		c.Duration = p.cfg.Now().Sub(start)
		return c
	}
	results := make([]batchResult, len(p.batches))
	var g errgroup.Group
	g.SetLimit(p.cfg.Concurrency)
	for i, b := range p.batches {
		g.Go(func() error {
			results[i] = p.send(ctx, i+1, b, token)
			return nil
		})
	}
	_ = g.Wait() // batches report through results
	c.Duration = p.cfg.Now().Sub(start)
	for _, r := range results {
		c.Latencies = append(c.Latencies, r.latency)
		if r.err != nil {
			c.Errors = append(c.Errors, r.err)
			continue
		}
		for id, score := range r.scores {
			c.Histogram[min(score/10, 9)]++
			if prev, ok := p.scores[id]; ok && prev != score {
				c.Changed = append(c.Changed, id)
			}
			p.scores[id] = score
		}
	}
	slices.Sort(c.Changed)
	return c
}

// send POSTs batch n and checks its answer.
func (p *Poller) send(ctx context.Context, n int, batch []fleet.CloudflareDevice, token string) batchResult {
	body, err := json.Marshal(struct {
		Devices []fleet.CloudflareDevice `json:"devices"`
	}{batch})
	if err != nil {
		return batchResult{err: fmt.Errorf("cfpoll: batch %d: %w", n, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.Target, bytes.NewReader(body))
	if err != nil {
		return batchResult{err: fmt.Errorf("cfpoll: batch %d: %w", n, err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cf-Access-Jwt-Assertion", token)
	start := p.cfg.Now()
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return batchResult{err: fmt.Errorf("cfpoll: batch %d: %w", n, err)}
	}
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	_ = resp.Body.Close() // the answer is read; a close error changes nothing
	latency := p.cfg.Now().Sub(start)
	if err != nil {
		return batchResult{latency: latency, err: fmt.Errorf("cfpoll: batch %d: read answer: %w", n, err)}
	}
	if resp.StatusCode != http.StatusOK {
		return batchResult{latency: latency, err: fmt.Errorf("cfpoll: batch %d: status %d: %s", n, resp.StatusCode, snippet(answer))}
	}
	if len(answer) > maxAnswer {
		return batchResult{latency: latency, err: &InvalidAnswerError{Batch: n, Problems: []string{fmt.Sprintf("answer larger than %d bytes", maxAnswer)}, Total: 1}}
	}
	scores, problems := check(batch, answer)
	if len(problems) > 0 {
		return batchResult{latency: latency, err: &InvalidAnswerError{Batch: n, Problems: problems[:min(len(problems), maxProblems)], Total: len(problems)}}
	}
	return batchResult{latency: latency, scores: scores}
}

// snippet is the start of an error body, on one line.
func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
