package whatif

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/server"
)

// Evaluator scores devices; a shadow policy's engine is built with Frozen
// sources, so it never calls a vendor.
type Evaluator interface {
	Evaluate(ctx context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats)
}

// ShadowPolicy is one alternative policy scored on every batch.
type ShadowPolicy struct {
	Name   string
	Engine Evaluator
}

// ShadowConfig configures a Shadow.
type ShadowConfig struct {
	Policies []ShadowPolicy
	Registry prometheus.Registerer
	Logger   *slog.Logger
}

// Shadow scores every answered batch under each shadow policy, after the
// answer, in the background: it counts and logs the devices a policy would
// have scored higher or lower, and never changes an answer. When it falls
// behind it skips batches (counted) rather than queue them without bound.
type Shadow struct {
	policies []ShadowPolicy
	logger   *slog.Logger
	jobs     chan shadowJob

	delta   *prometheus.CounterVec
	devices *prometheus.CounterVec
	skipped prometheus.Counter
}

type shadowJob struct {
	devices []aggregate.Device
	scores  []int // what Cloudflare was told, by device
}

// sampleSize is how many example devices a shadow log line names.
const sampleSize = 5

// NewShadow builds a Shadow; Run must be running for it to score.
func NewShadow(cfg ShadowConfig) (*Shadow, error) {
	if len(cfg.Policies) == 0 {
		return nil, errors.New("whatif: shadow: no policies")
	}
	s := &Shadow{
		policies: cfg.Policies,
		logger:   logging.OrDiscard(cfg.Logger),
		jobs:     make(chan shadowJob, 1),
		delta: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_shadow_delta_total",
			Help: "Devices a shadow policy would have scored higher (direction up) or lower (down) than the answer.",
		}, []string{"policy", "direction"}),
		devices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_shadow_devices_total",
			Help: "Devices scored under each shadow policy.",
		}, []string{"policy"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postured_shadow_skipped_batches_total",
			Help: "Batches not scored under the shadow policies because the previous one was still being scored.",
		}),
	}
	if cfg.Registry != nil {
		for _, c := range []prometheus.Collector{s.delta, s.devices, s.skipped} {
			if err := cfg.Registry.Register(c); err != nil {
				return nil, fmt.Errorf("whatif: shadow: register metrics: %w", err)
			}
		}
	}
	for _, p := range cfg.Policies {
		for _, dir := range []string{"up", "down"} {
			s.delta.WithLabelValues(p.Name, dir) // export zeros: "no change" is an answer
		}
		s.devices.WithLabelValues(p.Name)
	}
	return s, nil
}

// ObserveBatch hands the batch to Run without waiting.
func (s *Shadow) ObserveBatch(_ context.Context, b server.Batch) {
	j := shadowJob{devices: make([]aggregate.Device, len(b.Devices)), scores: make([]int, len(b.Results))}
	for i, d := range b.Devices {
		j.devices[i] = cloneDevice(d)
	}
	for i, r := range b.Results {
		j.scores[i] = r.Score
	}
	select {
	case s.jobs <- j:
	default:
		s.skipped.Inc()
	}
}

// Run scores batches until ctx ends.
func (s *Shadow) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-s.jobs:
			s.score(ctx, j)
		}
	}
}

// score runs one batch through every shadow policy.
func (s *Shadow) score(ctx context.Context, j shadowJob) {
	for _, p := range s.policies {
		results, _ := p.Engine.Evaluate(ctx, j.devices)
		var up, down int
		var sample []string
		for i, r := range results {
			answered := j.scores[i]
			if r.Score == answered {
				continue
			}
			if r.Score > answered {
				up++
			} else {
				down++
			}
			if len(sample) < sampleSize {
				sample = append(sample, fmt.Sprintf("%s %d->%d", r.DeviceID, answered, r.Score))
			}
		}
		s.devices.WithLabelValues(p.Name).Add(float64(len(results)))
		s.delta.WithLabelValues(p.Name, "up").Add(float64(up))
		s.delta.WithLabelValues(p.Name, "down").Add(float64(down))
		s.logger.Info("shadow policy", "policy", p.Name, "devices", len(results), "up", up, "down", down,
			"examples", strings.Join(sample, ", "))
	}
}

// cloneDevice copies d's identifiers: a batch's strings point into the
// request body's decode buffers, which a queued job must not pin.
func cloneDevice(d aggregate.Device) aggregate.Device {
	return aggregate.Device{ID: strings.Clone(d.ID), Serial: strings.Clone(d.Serial), MAC: strings.Clone(d.MAC),
		Hostname: strings.Clone(d.Hostname), Email: strings.Clone(d.Email)}
}
