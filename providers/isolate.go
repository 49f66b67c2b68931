package providers

import (
	"context"
	"errors"
	"net/http"
)

// Rejected reports whether err is the vendor refusing the request itself
// (a filter, statement or URL it will not take) rather than an outage: a
// 400, 413, 414 or 422. Only such a refusal is worth splitting: the same
// values sent in smaller requests can succeed.
func Rejected(err error) bool {
	var se *StatusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

// Isolate runs lookup for values; when the vendor rejects the request
// (Rejected), it halves the values and tries each half, down to single
// values, so that only the values the vendor refuses fail. It returns the
// records found and, if some values were refused, a *PartialError naming
// them. Any other error fails every value and is returned as is. A refused
// value costs about 2·log2(len(values)) extra requests, paid only when a
// vendor refuses something.
func Isolate(ctx context.Context, values []string, lookup func(context.Context, []string) ([]Record, error)) ([]Record, error) {
	recs, err := lookup(ctx, values)
	if err == nil || !Rejected(err) {
		return recs, err
	}
	if len(values) == 1 {
		return nil, &PartialError{Values: values, Err: err}
	}
	mid := len(values) / 2
	left, lerr := Isolate(ctx, values[:mid], lookup)
	right, rerr := Isolate(ctx, values[mid:], lookup)
	return append(left, right...), JoinPartial(lerr, rerr)
}

// JoinPartial merges the errors of lookups over disjoint values: nil if
// all are nil; the first error that is not a *PartialError if there is one
// (it failed every value of its lookup); else one *PartialError naming
// every refused value.
func JoinPartial(errs ...error) error {
	var joined *PartialError
	for _, err := range errs {
		if err == nil {
			continue
		}
		var pe *PartialError
		if !errors.As(err, &pe) {
			return err
		}
		if joined == nil {
			joined = &PartialError{Err: pe.Err}
		}
		joined.Values = append(joined.Values, pe.Values...)
	}
	if joined == nil {
		return nil
	}
	return joined
}
