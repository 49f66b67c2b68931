package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// serveReal runs ts on a loopback listener with the production http.Server
// settings (Run), for checks that need the real connection handling.
func serveReal(t *testing.T, ts *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ln.Addr().String()
}

// rawRequest writes req as is and returns the status line.
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading status line: %v", err)
	}
	return strings.TrimSpace(line)
}

// Unauthenticated clients choose the method and the header size. Neither
// may grow memory: methods map to a fixed label set, and headers beyond
// 64 KiB are refused with 431 before any handler runs.
func TestMethodLabelAndHeaderBound(t *testing.T) {
	ts := newInsecure(t)
	addr := serveReal(t, ts)

	t.Run("header over 64 KiB gets 431", func(t *testing.T) {
		big := strings.Repeat("a", 80<<10)
		got := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+big+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 431") {
			t.Fatalf("status line %q, want 431", got)
		}
	})
	t.Run("header under the limit is served", func(t *testing.T) {
		got := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: "+strings.Repeat("a", 32<<10)+"\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("status line %q, want 200", got)
		}
	})
	t.Run("unknown methods share one label", func(t *testing.T) {
		const n = 50
		for i := range n {
			method := fmt.Sprintf("M%d%s", i, strings.Repeat("X", 4<<10))
			got := rawRequest(t, addr, method+" /posture HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(got, "HTTP/1.1 4") {
				t.Fatalf("status line %q for an unknown method, want 4xx", got)
			}
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "XXXX") {
			t.Fatal("/metrics carries a raw method")
		}
		var other float64
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "postured_http_requests_total{") {
				continue
			}
			method := line[strings.Index(line, `method="`)+8:]
			method = method[:strings.IndexByte(method, '"')]
			switch method {
			case "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS":
			case "other":
				var v float64
				fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
				other += v
			default:
				t.Errorf("method label %q outside the fixed set", method)
			}
		}
		if other != n {
			t.Errorf("method=\"other\" counted %g requests, want %d", other, n)
		}
		if strings.Contains(ts.logs.String(), "XXXX") {
			t.Error("the log carries a raw method")
		}
	})
}
