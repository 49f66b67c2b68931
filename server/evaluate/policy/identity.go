package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Identity is the identity object Access puts in the incoming token (the
// get-identity shape, cloudflare-protocols.md B.2). Fields vary by identity
// provider, so it is kept as decoded JSON (numbers as json.Number) and read
// leniently: a missing or oddly typed field is "unknown", never a panic.
type Identity struct {
	m map[string]any
}

// parseIdentity decodes an identity object, as /cdn-cgi/access/get-identity
// prints it. A whole token payload ({"identity": {...}, "nonce": ...}) is
// accepted too; its identity object is used.
func parseIdentity(b []byte) (Identity, error) {
	v, err := decodeJSON(b)
	if err != nil {
		return Identity{}, fmt.Errorf("identity: %w", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Identity{}, errors.New("identity: not a JSON object")
	}
	if inner, ok := m["identity"].(map[string]any); ok {
		m = inner
	}
	return Identity{m: m}, nil
}

// IdentityFromClaim reads the identity claim of a verified token; a missing
// or non-object claim gives an empty identity, whose every field is unknown.
func IdentityFromClaim(raw json.RawMessage) Identity {
	if len(raw) == 0 {
		return Identity{}
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return Identity{}
	}
	m, _ := v.(map[string]any)
	return Identity{m: m}
}

func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: data after the value")
	}
	return v, nil
}

// lookup walks nested objects: lookup("idp", "type").
func (id Identity) lookup(path ...string) (any, bool) {
	var cur any = id.m
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// str returns a string field; absent, null, non-string or empty is unknown.
func (id Identity) str(path ...string) (string, bool) {
	v, _ := id.lookup(path...)
	s, ok := v.(string)
	return s, ok && s != ""
}

// email is identity.email, "" if absent.
func (id Identity) email() string {
	s, _ := id.str("email")
	return s
}

// deviceID is identity.device_id, "" if absent.
func (id Identity) deviceID() string {
	s, _ := id.str("device_id")
	return s
}

// groups reads identity.groups: an array of strings or of objects (the
// group's name, else its id). ok is false when groups is absent or not an
// array; entries that are neither are skipped.
func (id Identity) groups() ([]string, bool) {
	v, _ := id.lookup("groups")
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		switch g := e.(type) {
		case string:
			out = append(out, g)
		case map[string]any:
			if s, ok := g["name"].(string); ok && s != "" {
				out = append(out, s)
			} else if s := scalarString(g["id"]); s != "" {
				out = append(out, s)
			}
		}
	}
	return out, true
}

// bool reads a boolean field; "true"/"false" strings are accepted.
func (id Identity) bool(path ...string) (value, ok bool) {
	v, _ := id.lookup(path...)
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		switch strings.ToLower(b) {
		case "true":
			return true, true
		case "false":
			return false, true
		}
	}
	return false, false
}

func scalarString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	}
	return ""
}
