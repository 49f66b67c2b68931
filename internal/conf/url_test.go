package conf

import (
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	tests := []struct {
		raw, wantErr string
	}{
		{"https://example.jamfcloud.com", ""},
		{"https://graph.microsoft.com/", ""},
		{"http://127.0.0.1:9000", ""},
		{"http://127.9.9.9:9000/x", ""},
		{"http://localhost:9000", ""},
		{"http://LOCALHOST", ""},
		{"http://[::1]:9000", ""},
		{"http://mockvendors:9000", `must use https: plain http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), got "http://mockvendors:9000"`},
		{"http://10.0.0.5", "must use https"},
		{"http://localhost.example.com", "must use https"},
		{"http://127.0.0.1.nip.io", "must use https"},
		{"ftp://example.com", `must be an absolute https URL, got "ftp://example.com"`},
		{"example.com", "must be an absolute https URL"},
		{"https://", "must be an absolute https URL"},
		{"https://u:secret@example.com", `must not carry credentials, a query or a fragment, got "https://u:xxxxx@example.com"`},
		{"https://example.com/?a=b", "must not carry credentials"},
		{"https://example.com/#x", "must not carry credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.raw, func(t *testing.T) {
			err := CheckURL(tc.raw)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("CheckURL(%q) = %v, want nil", tc.raw, err)
			case tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr)):
				t.Fatalf("CheckURL(%q) = %v, want %q", tc.raw, err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %v", err)
			}
		})
	}
}
