// Package auditlog connects the audit log to postured: an Observer that
// appends one record per answered device of every /posture batch, and
// Replay, which recomputes a recorded answer with the fold that gave it.
//
// A failed write does not fail the batch: the answer is still sent (a full
// disk must not lock every user out), the failure is logged once per
// batch, counted in postured_audit_errors_total, and shown in /readyz under
// "audit_log" until a write succeeds again. The next batch reopens the log,
// which resumes the chain from what is on disk.
package auditlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/audit"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server"
)

// Policy is what the fold applied that a result does not carry: the
// posture policy and each provider's, by provider name.
type Policy struct {
	UnmatchedScore int
	S2SIDFrom      []string
	Providers      map[string]ProviderPolicy
}

// ProviderPolicy is one provider's policies.
type ProviderPolicy struct {
	Required    bool
	OnError     providers.OnError
	MaxLastSeen time.Duration
}

// Appender is the log, as the Observer writes it.
type Appender interface {
	Append(ctx context.Context, records ...audit.Record) error
	Head() (seq uint64, hash string)
	Close() error
}

// Config configures an Observer.
type Config struct {
	// Log configures the audit log; Open, if set, opens it instead (tests).
	Log  audit.Config
	Open func() (Appender, error)
	// ConfigHash is the hex SHA-256 of the effective config (secrets
	// excluded), written in every record.
	ConfigHash string
	Policy     Policy
	Logger     *slog.Logger
	// Registerer takes postured_audit_errors_total.
	Registerer prometheus.Registerer
	// Now is the clock for the status; nil means time.Now.
	Now func() time.Time
}

// Observer records every answered batch in the audit log. It is a
// server.BatchObserver.
type Observer struct {
	open   func() (Appender, error)
	hash   string
	policy Policy
	logger *slog.Logger
	errs   prometheus.Counter
	now    func() time.Time

	mu sync.Mutex
	w  Appender // nil after a failure, until the next batch reopens it
	// lastOK is the last successful write; failing the error of the last
	// attempt, if it failed.
	lastOK  time.Time
	failing error
}

var _ server.BatchObserver = (*Observer)(nil)

// New opens the log. A log that cannot be opened at start is an error:
// a wrong path or permission is a deployment mistake to fix before
// serving, not a failure to ride out.
func New(cfg Config) (*Observer, error) {
	o := &Observer{open: cfg.Open, hash: cfg.ConfigHash, policy: cfg.Policy, logger: logging.OrDiscard(cfg.Logger), now: cfg.Now}
	if o.open == nil {
		logCfg := cfg.Log
		if logCfg.Logger == nil {
			logCfg.Logger = o.logger
		}
		o.open = func() (Appender, error) { return audit.New(logCfg) }
	}
	if o.now == nil {
		o.now = time.Now
	}
	o.errs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "postured_audit_errors_total",
		Help: "Posture batches answered without an audit record because the audit log could not be written.",
	})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(o.errs); err != nil {
			return nil, fmt.Errorf("auditlog: metrics: %w", err)
		}
	}
	w, err := o.open()
	if err != nil {
		return nil, fmt.Errorf("auditlog: %w", err)
	}
	o.w = w
	return o, nil
}

// ObserveBatch appends one record per answered device, in one write. It
// runs before the answer is sent; a failure is logged and counted, and the
// answer goes out regardless.
func (o *Observer) ObserveBatch(ctx context.Context, b server.Batch) {
	records := make([]audit.Record, len(b.Results))
	for i, r := range b.Results {
		var d aggregate.Device
		if i < len(b.Devices) {
			d = b.Devices[i]
		}
		records[i] = o.record(b.RequestID, d, r)
	}
	// The answer is computed: record it even if the caller has gone, as
	// its replay may still be asked for.
	err := o.append(context.WithoutCancel(ctx), records)
	if err != nil {
		o.errs.Inc()
		o.logger.Error("audit log write failed: batch answered without an audit record",
			"request_id", b.RequestID, "devices", len(records), "error", err)
	}
}

func (o *Observer) append(ctx context.Context, records []audit.Record) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	err := o.appendLocked(ctx, records)
	if err != nil {
		o.failing = err
		return err
	}
	o.lastOK, o.failing = o.now(), nil
	return nil
}

func (o *Observer) appendLocked(ctx context.Context, records []audit.Record) error {
	if o.w == nil {
		w, err := o.open()
		if err != nil {
			return fmt.Errorf("reopen: %w", err)
		}
		o.w = w
	}
	err := o.w.Append(ctx, records...)
	if err == nil {
		return nil
	}
	// Whatever failed, the next batch starts from what is on disk.
	cerr := o.w.Close()
	o.w = nil
	return errors.Join(err, cerr)
}

// Status is the log's health for /readyz: always ready (a failing log does
// not stop answers), with the error while the last write failed.
func (o *Observer) Status() aggregate.Status {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := aggregate.Status{Ready: true, LastSuccess: o.lastOK}
	if o.failing != nil {
		st.LastError = "audit log write failed: " + o.failing.Error()
	}
	if o.w != nil {
		seq, _ := o.w.Head()
		st.Records = int(seq) // #nosec G115 -- a line count
	}
	return st
}

// Close closes the log. Every write has already been synced.
func (o *Observer) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.w == nil {
		return nil
	}
	err := o.w.Close()
	o.w = nil
	if err != nil {
		return fmt.Errorf("auditlog: %w", err)
	}
	return nil
}

// record is one device's answer and what it was folded from.
func (o *Observer) record(requestID string, d aggregate.Device, r aggregate.Result) audit.Record {
	ex := r.Explain() // the audit log keeps whole explanations
	rec := audit.Record{
		Time: r.At, RequestID: requestID, ConfigHash: o.hash,
		DeviceID: r.DeviceID, Identifiers: identifiers(d),
		S2SID: r.S2SID, Score: r.Score, S2SIDFrom: ex.S2SIDFrom, Decision: ex.Decision,
		Policy:    audit.Policy{UnmatchedScore: o.policy.UnmatchedScore, S2SIDFrom: o.policy.S2SIDFrom},
		Providers: make([]audit.Provider, len(ex.Providers)),
	}
	for i, p := range ex.Providers {
		pol := o.policy.Providers[p.Provider]
		var maxLastSeen string
		if pol.MaxLastSeen > 0 {
			maxLastSeen = pol.MaxLastSeen.String()
		}
		rec.Providers[i] = audit.Provider{
			Name: p.Provider, Weight: p.Weight, Required: pol.Required, OnError: string(pol.OnError), MaxLastSeen: maxLastSeen,
			Outcome: string(p.Outcome), MatchedOn: p.MatchedOn, MatchedValue: p.MatchedValue, RecordID: p.RecordID,
			RecordScore: p.RecordScore, Score: p.Score, Counted: p.Counted, LastSeen: p.LastSeen, Reason: p.Reason, Error: p.Error, Note: p.Note,
			Contained: p.Contained,
		}
	}
	for _, a := range ex.Adjustments {
		rec.Adjustments = append(rec.Adjustments, audit.Adjustment{Kind: a.Kind, From: a.From, To: a.To, Note: a.Note})
	}
	return rec
}

// identifiers normalises a device's identifiers as matching does.
func identifiers(d aggregate.Device) audit.Identifiers {
	var id audit.Identifiers
	id.Serial, _ = providers.NormalizeSerial(d.Serial)
	id.MAC, _ = providers.NormalizeMAC(d.MAC)
	id.Hostname, _ = providers.NormalizeHostname(d.Hostname)
	id.Email, _ = providers.NormalizeEmail(d.Email)
	return id
}
