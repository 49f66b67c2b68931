package conf

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

// Secret is a credential read from configuration. Every way of printing it
// (fmt, slog, JSON, YAML) yields Redacted; use Reveal where the value is
// actually sent to a vendor.
type Secret string

// Redacted is what a non-empty Secret prints as. Code that scrubs a secret
// out of foreign text (an echoing token endpoint) uses it too, so every
// redaction reads the same.
const Redacted = "<redacted>"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// Format prints the redacted form for every verb, including the ones fmt
// would otherwise report with the raw value (%d, %x, %t...).
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }
