package evaluate

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the External Evaluation series. Labels are bounded: rule
// names come from the config, the rest are fixed words.
type metrics struct {
	decisions   *prometheus.CounterVec
	revocations *prometheus.CounterVec
	keyReloads  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	var errs []error
	m := &metrics{
		decisions: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_ee_decisions_total",
			Help: "External Evaluation answers: result allow|deny|error, and the rule that decided (default: no rule matched; none: the request was refused).",
		}, []string{"result", "rule"})),
		revocations: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_ee_revocations_total",
			Help: "Access session revocations after a deny: ok, error, skipped (no email), dropped (too many in flight), deduplicated (revoked within revoke.dedup_window).",
		}, []string{"result"})),
		keyReloads: register(reg, &errs, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postured_ee_key_reloads_total",
			Help: "Reloads of the signing key ring from its store, by result.",
		}, []string{"result"})),
	}
	return m, errors.Join(errs...)
}

// register registers c, or returns the collector already registered under
// the same name (a second Handler on one registry, as tests build).
func register[C prometheus.Collector](reg prometheus.Registerer, errs *[]error, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		*errs = append(*errs, err)
	}
	return c
}
