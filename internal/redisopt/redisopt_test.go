package redisopt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for success
	}{
		{"plain", Config{URL: "redis://user:hunter2@127.0.0.1:6379/1"}, ""},
		{"tls", Config{URL: "rediss://user:hunter2@127.0.0.1:6380/0"}, ""},
		{"unix", Config{URL: "unix:///run/redis.sock"}, ""},
		{"not a URL", Config{URL: "http://user:hunter2@x"}, "not a valid"},
		{"ca without tls", Config{URL: "redis://:hunter2@x:6379/0", TLSCAFile: notPEM}, "not rediss://"},
		{"ca missing", Config{URL: "rediss://:hunter2@x:6379/0", TLSCAFile: "/nonexistent/ca.pem"}, "tls_ca_file"},
		{"ca not PEM", Config{URL: "rediss://:hunter2@x:6379/0", TLSCAFile: notPEM}, "holds no PEM certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := Options(tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tls := strings.HasPrefix(tc.cfg.URL, "rediss://"); (opts.TLSConfig != nil) != tls || (tls && opts.TLSConfig.InsecureSkipVerify) {
					t.Errorf("TLS config %+v for %s", opts.TLSConfig, tc.name)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Error("the password leaked into the error")
			}
		})
	}
}
