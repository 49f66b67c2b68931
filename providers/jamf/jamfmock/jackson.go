package jamfmock

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// Jamf Pro is a Java service: its JSON comes out of Jackson's default pretty
// printer (`"key" : value`, two-space indent for objects, arrays kept on the
// opening line as `[ {`) with Content-Type application/json;charset=UTF-8.
// Clients must not depend on the layout; the mock reproduces it so they are
// tested against the real bytes' shape.
const contentType = "application/json;charset=UTF-8"

// field is one member of an ordered object.
type field struct {
	key string
	val any
}

// object is a JSON object that keeps its member order.
type object []field

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		v, err := marshalCompact(f.val)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalCompact is json.Marshal without HTML escaping, as Jackson does not
// escape <, > and &.
func marshalCompact(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// jackson re-indents compact JSON the way Jackson's DefaultPrettyPrinter
// writes it.
func jackson(src []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(src) + len(src)/2)
	var stack []byte
	level := 0
	newline := func() {
		out.WriteByte('\n')
		for range level {
			out.WriteString("  ")
		}
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				if src[j] == '\\' {
					j++
				}
			}
			out.Write(src[i:min(j+1, len(src))])
			i = j
		case '{':
			if i+1 < len(src) && src[i+1] == '}' {
				out.WriteString("{ }")
				i++
				continue
			}
			stack = append(stack, c)
			level++
			out.WriteByte('{')
			newline()
		case '}':
			stack = stack[:len(stack)-1]
			level--
			newline()
			out.WriteByte('}')
		case '[':
			if i+1 < len(src) && src[i+1] == ']' {
				out.WriteString("[ ]")
				i++
				continue
			}
			stack = append(stack, c)
			out.WriteString("[ ")
		case ']':
			stack = stack[:len(stack)-1]
			out.WriteString(" ]")
		case ',':
			if stack[len(stack)-1] == '{' {
				out.WriteByte(',')
				newline()
			} else {
				out.WriteString(", ")
			}
		case ':':
			out.WriteString(" : ")
		default:
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// writeJSON writes v pretty-printed the Jamf way.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := marshalCompact(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"httpStatus":500,"errors":[]}`)
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(jackson(b))
}

// apiError is one entry of the errors array Jamf Pro API errors carry.
type apiError struct {
	Code        *string `json:"code"`
	Description string  `json:"description"`
	ID          string  `json:"id"`
	Field       *string `json:"field"`
}

// writeError writes {"httpStatus":N,"errors":[...]}.
func writeError(w http.ResponseWriter, status int, errs ...apiError) {
	if errs == nil {
		errs = []apiError{}
	}
	writeJSON(w, status, object{{"httpStatus", status}, {"errors", errs}})
}

func code(s string) *string { return &s }
