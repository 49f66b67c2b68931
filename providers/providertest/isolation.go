package providertest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/providers"
)

// poisons are, per kind, a value no mock holds and the forms it can take
// on the wire (vendors re-format MACs), for the rejection check.
var poisons = map[providers.Kind][]string{
	providers.KindSerial:   {"REJECTED0SERIAL42"},
	providers.KindMAC:      {"02:52:45:4a:45:43", "02-52-45-4a-45-43", "0252454a4543"},
	providers.KindHostname: {"rejected-host-42"},
	providers.KindEmail:    {"rejected42@example.com"},
}

// checkIsolation: a value the vendor refuses (400 to any request carrying
// it: a filter error, an over-long statement) fails only itself. The lookup
// returns every other value's records with a *providers.PartialError naming
// just that value, so one odd identifier cannot fail a batch of 1000.
func checkIsolation(t *testing.T, h Harness) {
	for _, k := range h.Kinds {
		t.Run(k.String(), func(t *testing.T) {
			f := start(t, h, bulk)
			forms := poisons[k]
			poison, _ := providers.Normalize(k, forms[0])
			idents := f.known(k)
			raw := []string{forms[0]}
			for _, id := range idents {
				raw = append(raw, id.Value)
			}
			f.rec.reject(forms...)
			recs, err := f.lookup(t, t.Context(), k, raw...)
			var pe *providers.PartialError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *providers.PartialError", err)
			}
			if !slices.Equal(pe.Values, []string{poison}) {
				t.Errorf("failed values %q, want only %q", pe.Values, poison)
			}
			missing := 0
			for _, id := range idents {
				if !hasID(recs, id.ID) {
					missing++
				}
			}
			if missing > 0 {
				t.Errorf("%d of %d known %s records lost with the rejected value", missing, len(idents), k)
			}
			for _, r := range recs {
				if r.Has(k, poison) || strings.Contains(strings.ToLower(r.ID), "rejected") {
					t.Errorf("record %s answers the rejected value", r.ID)
				}
			}
			if f.rec.refusals() == 0 {
				t.Error("the provider never sent the rejected value")
			}
		})
	}
}
