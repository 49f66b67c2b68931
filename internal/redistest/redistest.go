// Package redistest starts throwaway redis-server processes for tests: a
// plain one that a test can stop mid-way to simulate an outage, and one
// with TLS and ACL users, which the plain servers cannot show. It is
// imported by tests only.
package redistest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TLSServer is a redis-server that speaks only TLS and only to one ACL
// user.
type TLSServer struct {
	// URL is rediss://user:password@127.0.0.1:port/0.
	URL string
	// CAFile is the PEM CA that signed the server's certificate.
	CAFile string
	// OtherCAFile is a CA that signed nothing here: verifying against it
	// must fail.
	OtherCAFile string
	// User and Password are the ACL user's; the default user is off.
	User, Password string
}

// StartTLS runs redis-server with TLS on a loopback port and one ACL user
// allowed on keys matching keyPattern (e.g. "postured:ee:*"). It skips
// the test when redis-server is absent (failing under CI, which installs
// it) and fails it when the binary was built without TLS.
func StartTLS(t *testing.T, keyPattern string) TLSServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (scripts/test installs it)")
		}
		t.Skip("redis-server not installed: TLS/ACL test skipped")
	}
	dir := t.TempDir()
	caCert, caKey := newCA(t, "postured test CA")
	other, _ := newCA(t, "unrelated CA")
	srv := TLSServer{
		CAFile:      writePEM(t, dir, "ca.pem", "CERTIFICATE", caCert.Raw),
		OtherCAFile: writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw),
		User:        "postured",
		Password:    "s3cret-" + rand.Text(),
	}
	certDER, keyDER := newServerCert(t, caCert, caKey)
	certFile := writePEM(t, dir, "server.pem", "CERTIFICATE", certDER)
	keyFile := writePEM(t, dir, "server-key.pem", "EC PRIVATE KEY", keyDER)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // only a free port was wanted
	// #nosec G204 -- bin is redis-server found on PATH; the arguments are the test's own
	cmd := exec.Command(bin, "--port", "0", "--tls-port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--tls-ca-cert-file", srv.CAFile,
		"--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--dir", dir,
		"--user", "default", "off",
		"--user", srv.User, "on", ">"+srv.Password, "~"+keyPattern, "+@all")
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close() // the child holds its own copy
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = out.Close()
	})
	waitForReady(t, out, " (built without TLS?)")
	u := url.URL{Scheme: "rediss", User: url.UserPassword(srv.User, srv.Password), Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/0"}
	srv.URL = u.String()
	return srv
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newServerCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (certDER, keyDER []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if certDER, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey); err != nil {
		t.Fatal(err)
	}
	if keyDER, err = x509.MarshalECPrivateKey(key); err != nil {
		t.Fatal(err)
	}
	return certDER, keyDER
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitForReady waits for redis-server to say it is ready on out (its
// stdout), not for a timer, then keeps draining out so the server never
// blocks on a full pipe. hint is added to the error when it exits first.
func waitForReady(t *testing.T, out io.Reader, hint string) {
	t.Helper()
	ready := make(chan error, 1)
	go func() {
		var log strings.Builder
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if strings.Contains(strings.ToLower(sc.Text()), "ready to accept connections") {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("redis-server exited before it was ready%s:\n%s", hint, log.String())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("redis-server did not say it was ready within 30s")
	}
}
