package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeysInit: `keys init` creates the ring (sealed when seal_key is
// set), refuses to touch an existing one, and check-config never shows the
// seal key.
func TestKeysInit(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	keyFile := filepath.Join(dir, "ee.pem")
	const seal = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	t.Setenv("POSTURED_SEAL_KEY", seal)
	p := writeFile(t, dir, "c.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [a]}\n"+
		"providers:\n  - {name: inv, type: static, weight: 1, file: "+inv+"}\n"+
		"external_evaluation:\n  enabled: true\n  key_file: "+keyFile+"\n  seal_key: ${POSTURED_SEAL_KEY}\n"+
		"  rules: [{name: ok, action: allow, when: {email_domain: {in: [example.com]}}}]\n")
	keys := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"keys"}, append(args, "-c", p)...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := keys("init"); code != 0 || !strings.Contains(out, "signing") {
		t.Fatalf("keys init: exit %d\n%s", code, out)
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "SEALED PRIVATE KEY") || strings.Contains(string(data), "BEGIN PRIVATE KEY") {
		t.Errorf("key ring not sealed:\n%s", data)
	}
	if code, out := keys("init"); code == 0 || !strings.Contains(out, "already holds a key ring") {
		t.Errorf("second keys init: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(after, data) {
		t.Error("second keys init rewrote the ring")
	}
	if code, out := keys("list"); code != 0 || strings.Count(out, "signing") != 1 {
		t.Errorf("keys list: exit %d\n%s", code, out)
	}

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"check-config", "-c", p}, &out, &errb); code != 0 {
		t.Fatalf("check-config: exit %d: %s", code, errb.String())
	}
	if strings.Contains(out.String(), seal) {
		t.Errorf("check-config shows the seal key:\n%s", out.String())
	}
}
