package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSecurityTableNamesRealTests: every test the README's security
// table cites exists, in the package it names, so the table cannot drift
// into citing tests that were renamed or never written.
func TestReadmeSecurityTableNamesRealTests(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	start := strings.Index(section, "\n## Security\n")
	if start < 0 {
		t.Fatal("README has no Security section")
	}
	section = section[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	// A cell lists names, then the package in parentheses: `TestA`, `TestB` (server).
	cell := regexp.MustCompile("((?:`(?:Test|Fuzz|Benchmark)[A-Za-z0-9_/]*`(?:, )?)+) \\(([a-z/]+)\\)")
	name := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)[^`]*`")
	cited := 0
	for _, m := range cell.FindAllStringSubmatch(section, -1) {
		dir := filepath.Join(root, filepath.FromSlash(m[2]))
		src := packageTestSource(t, dir)
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			cited++
			if !regexp.MustCompile(`func ` + n[1] + `\(`).MatchString(src) {
				t.Errorf("README cites %s in %s, which has no such test", n[1], m[2])
			}
		}
	}
	if cited < 20 {
		t.Errorf("found only %d cited tests: is the table still in the `Name` (package) form?", cited)
	}
}

// packageTestSource is the text of every _test.go file directly in dir.
func packageTestSource(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("package %s: %v", dir, err)
	}
	for _, e := range entries {
		if e.Type()&fs.ModeType == 0 && strings.HasSuffix(e.Name(), "_test.go") {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
	}
	return b.String()
}
