package keyring

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// t0 is the fixed clock's start.
var t0 = time.Date(2026, 11, 24, 8, 30, 0, 0, time.UTC)

func pemOf(t *testing.T, typ string, der []byte, headers map[string]string) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der})
}

// TestKeyFileRefused: a key file that is unsafe or not a ring of RSA keys
// fails the load, and is left as it is.
func TestKeyFileRefused(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good, err := generateKey(t0, t0)
	if err != nil {
		t.Fatal(err)
	}
	goodPEM, _ := encodeRing(Ring{Keys: []SigningKey{good}}, nil)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ec)
	goodDER, _ := x509.MarshalPKCS8PrivateKey(good.Private)
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		want string
	}{
		{"readable by group", goodPEM, 0o640, "mode 0640"},
		{"readable by others", goodPEM, 0o604, "mode 0604"},
		{"1024-bit key", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small), nil), 0o600, "1024 bits; at least 2048"},
		{"EC key", pemOf(t, "PRIVATE KEY", ecDER, nil), 0o600, "only RSA keys"},
		{"encrypted key", pemOf(t, "ENCRYPTED PRIVATE KEY", []byte{1}, nil), 0o600, "encrypted keys are not supported"},
		{"certificate only", pemOf(t, "CERTIFICATE", []byte{1}, nil), 0o600, `unexpected "CERTIFICATE" block`},
		{"not PEM", []byte("hello"), 0o600, "not a PEM block"},
		{"truncated", goodPEM[:len(goodPEM)/2], 0o600, "not a PEM block"},
		{"kid header lies", pemOf(t, "PRIVATE KEY", goodDER, map[string]string{"Kid": strings.Repeat("0", 64)}), 0o600, "does not match the key"},
		{"bad schedule", pemOf(t, "PRIVATE KEY", goodDER, map[string]string{"Signs-From": "tomorrow"}), 0o600, "not an RFC 3339 time"},
		{"same key twice", append(slices.Clone(goodPEM), goodPEM...), 0o600, "appears twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.pem")
			if err := os.WriteFile(path, tc.data, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // umask
				t.Fatal(err)
			}
			_, err := Load(t.Context(), Config{KeyFile: path}, t0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, tc.data) {
				t.Error("a refused key file was overwritten")
			}
		})
	}
}

// TestRotateEmptyRing: `postured keys rotate` before any start makes a key
// that signs at once, there being nothing to overlap with.
func TestRotateEmptyRing(t *testing.T) {
	store := newFileStore(filepath.Join(t.TempDir(), "k.pem"))
	r, err := Rotate(t.Context(), store, t0, time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := r.signer(t0); len(r.Keys) != 1 || !ok || !r.Keys[0].SignsFrom.Equal(t0) || s.ID != r.Keys[0].ID {
		t.Errorf("ring %+v", r.Describe(t0, time.Hour))
	}
	if _, err := Rotate(t.Context(), store, t0, -time.Second, time.Hour); err == nil {
		t.Error("negative overlap accepted")
	}
}

func TestRingSchedule(t *testing.T) {
	k := func(id string, from, retired time.Duration) SigningKey {
		sk := SigningKey{ID: id, SignsFrom: t0.Add(from)}
		if retired != 0 {
			sk.RetiredAt = t0.Add(retired)
		}
		return sk
	}
	grace := 24 * time.Hour
	tests := []struct {
		name      string
		ring      Ring
		at        time.Duration
		signer    string
		published []string
	}{
		{"single", Ring{Keys: []SigningKey{k("a", 0, 0)}}, 0, "a", []string{"a"}},
		{"overlap", Ring{Keys: []SigningKey{k("a", 0, time.Hour), k("b", time.Hour, 0)}}, time.Minute, "a", []string{"a", "b"}},
		{"switch instant", Ring{Keys: []SigningKey{k("a", 0, time.Hour), k("b", time.Hour, 0)}}, time.Hour, "b", []string{"a", "b"}},
		{"grace end", Ring{Keys: []SigningKey{k("a", 0, time.Hour), k("b", time.Hour, 0)}}, time.Hour + grace, "b", []string{"b"}},
		{"two pending", Ring{Keys: []SigningKey{k("a", 0, time.Hour), k("b", time.Hour, 2*time.Hour), k("c", 2*time.Hour, 0)}}, 90 * time.Minute, "b", []string{"a", "b", "c"}},
		{"clock behind every key", Ring{Keys: []SigningKey{k("a", time.Hour, 2*time.Hour), k("b", 2*time.Hour, 0)}}, 0, "a", []string{"a", "b"}},
		{"only retired keys: newest signs, stays published", Ring{Keys: []SigningKey{k("a", 0, time.Hour), k("b", time.Hour, 2*time.Hour)}}, 3 * grace, "b", []string{"b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.at)
			s, ok := tc.ring.signer(now)
			if !ok || s.ID != tc.signer {
				t.Errorf("signer %q, want %q", s.ID, tc.signer)
			}
			var got []string
			for _, p := range tc.ring.published(now, grace) {
				got = append(got, p.ID)
			}
			if !slices.Equal(got, tc.published) {
				t.Errorf("published %v, want %v", got, tc.published)
			}
		})
	}
}

// TestFileStoreConcurrentWriters: first starts racing on an empty file
// agree on one key, and concurrent rotations lose no update.
func TestFileStoreConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	const n = 4
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := ensureKey(context.Background(), newFileStore(path), t0)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = r.Keys[0].ID
		})
	}
	wg.Wait()
	for _, k := range kids {
		if k != kids[0] {
			t.Fatalf("replicas generated different keys: %v", kids)
		}
	}
	for range n {
		wg.Go(func() {
			if _, err := Rotate(context.Background(), newFileStore(path), t0, time.Hour, 24*time.Hour); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	r, err := newFileStore(path).Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys) != n+1 {
		t.Errorf("ring has %d keys after %d rotations, want %d", len(r.Keys), n, n+1)
	}
}

func TestRingRoundTrip(t *testing.T) {
	a, _ := generateKey(t0, t0)
	b, _ := generateKey(t0.Add(time.Minute), t0.Add(time.Hour))
	a.RetiredAt = b.SignsFrom
	data, err := encodeRing(Ring{Keys: []SigningKey{a, b}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRing(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys) != 2 {
		t.Fatalf("%d keys", len(r.Keys))
	}
	for i, want := range []SigningKey{a, b} {
		got := r.Keys[i]
		if got.ID != want.ID || !got.PublishedAt.Equal(want.PublishedAt) || !got.SignsFrom.Equal(want.SignsFrom) ||
			!got.RetiredAt.Equal(want.RetiredAt) || !got.Private.Equal(want.Private) {
			t.Errorf("key %d: got %s %v %v %v, want %s %v %v %v", i, got.ID, got.PublishedAt, got.SignsFrom, got.RetiredAt,
				want.ID, want.PublishedAt, want.SignsFrom, want.RetiredAt)
		}
	}
	// The schedule is readable in the file.
	if !bytes.Contains(data, []byte("Signs-From: "+b.SignsFrom.Format(time.RFC3339Nano))) {
		t.Errorf("file:\n%s", data)
	}
}

// TestKeyFileDirectoryMissing: a clear error, no key made up in memory.
func TestKeyFileDirectoryMissing(t *testing.T) {
	_, err := Load(t.Context(), Config{KeyFile: filepath.Join(t.TempDir(), "nope", "k.pem")}, t0)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err %v", err)
	}
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"file", Config{KeyStore: StoreFile, KeyFile: "/k.pem"}, ""},
		{"file without a path", Config{KeyStore: StoreFile}, "key_file is required"},
		{"redis", Config{KeyStore: StoreRedis, RedisURL: "redis://127.0.0.1:1/0"}, ""},
		{"redis URL not redis", Config{KeyStore: StoreRedis, RedisURL: "http://user:hunter2@x"}, "redis_url: not a valid"},
		{"unknown", Config{KeyStore: "s3"}, `unknown key_store "s3"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.cfg)
			if err == nil {
				_ = s.Close()
			}
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Error("the Redis password leaked into the error")
			}
		})
	}
}

// TestLoaded follows a rotation through a loaded ring: the new key is
// published at once and signs after the overlap; the old one stays
// published for the grace period; a broken store keeps the ring in use.
func TestLoaded(t *testing.T) {
	cfg := Config{KeyFile: filepath.Join(t.TempDir(), "k.pem")}
	cfg.Defaults()
	l, err := Load(t.Context(), cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	old := l.Ring().Keys[0].ID
	store, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ring, err := Rotate(t.Context(), store, t0, time.Hour, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	next := ring.Keys[1].ID
	if err := l.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name      string
		at        time.Duration
		signer    string
		published []string
	}{
		{"overlap", time.Minute, old, []string{old, next}},
		{"switched", time.Hour, next, []string{old, next}},
		{"grace over", 25 * time.Hour, next, []string{next}},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		signer, published := l.Publish(now)
		var ids []string
		for _, p := range published {
			ids = append(ids, p.ID)
			if p.JWK.KeyID != p.ID || !strings.Contains(p.CertPEM, "CERTIFICATE") {
				t.Errorf("%s: public key %s: JWK kid %q, cert %q", s.name, p.ID, p.JWK.KeyID, p.CertPEM)
			}
		}
		if signer.ID != s.signer || !slices.Equal(ids, s.published) {
			t.Errorf("%s: signer %s, published %v; want %s, %v", s.name, signer.ID, ids, s.signer, s.published)
		}
		tok, kid, err := l.Sign(now, []byte(`{"success":true}`))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := jws.Verify(signer.JWK); err != nil || kid != s.signer || jws.Signatures[0].Protected.KeyID != kid {
			t.Errorf("%s: token by %s (header kid %s) does not verify with the signer's JWK: %v", s.name, kid, jws.Signatures[0].Protected.KeyID, err)
		}
	}
	if err := os.WriteFile(cfg.KeyFile, []byte("oops"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.Reload(t.Context()); err == nil {
		t.Error("a broken key file reloaded")
	}
	_ = os.Remove(cfg.KeyFile)
	if err := l.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("reload of a deleted file: %v", err)
	}
	if got := len(l.Ring().Keys); got != 2 {
		t.Errorf("ring after failed reloads has %d keys, want the 2 loaded before", got)
	}
}
