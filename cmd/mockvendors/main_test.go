package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/internal/mockset"
)

func TestWriteConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "demo.yaml")
	if err := run(t.Context(), []string{"--write-config", path}, &bytes.Buffer{}, &bytes.Buffer{}, realTicker); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("--write-config wrote\n%s\nwant\n%s", got, want)
	}
}

// TestVendorListenFlags: every vendor in the mock set gets its
// --<name>-listen flag, and only those exist.
func TestVendorListenFlags(t *testing.T) {
	var usage bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &bytes.Buffer{}, &usage, realTicker); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var flags []string
	for _, line := range strings.Split(usage.String(), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok && strings.Contains(name, "-listen") {
			flags = append(flags, strings.Fields(name)[0])
		}
	}
	var want []string
	for _, name := range mockset.Names() {
		want = append(want, name+"-listen")
	}
	slices.Sort(want) // flag prints its usage sorted
	if !slices.Equal(flags, want) {
		t.Errorf("per-vendor flags %q, want %q", flags, want)
	}
}
