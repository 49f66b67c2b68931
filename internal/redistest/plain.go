package redistest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// Server is a plain redis-server on a loopback port that a test can stop
// to simulate an outage.
type Server struct {
	// URL is redis://127.0.0.1:port/0.
	URL string

	cmd      *exec.Cmd
	stopOnce sync.Once
	exited   chan struct{}
}

// Start runs a throwaway redis-server with no persistence. It skips the
// test when redis-server is absent (failing under CI, which installs it).
func Start(t *testing.T) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (scripts/test installs it)")
		}
		t.Skip("redis-server not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // only a free port was wanted
	// #nosec G204 -- bin is redis-server found on PATH; the arguments are the test's own
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir())
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close() // the child holds its own copy
	s := &Server{cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		_ = out.Close()
		close(s.exited)
	}()
	t.Cleanup(s.Stop)
	waitForReady(t, out, "")
	s.URL = (&url.URL{Scheme: "redis", Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/0"}).String()
	return s
}

// Stop kills the server and waits for it to exit; connections to URL are
// refused from then on. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}
