package static

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

const designYAML = `devices:
  - id: "asset-0042"                 # becomes s2s_id when this provider wins
    serial_number: "C02XK1ZZJGH5"
    mac_addresses: ["74:1d:3e:23:e0:fe", "74-1D-3E-23-E0-FF"]
    hostname: "mbp-42"
    email: "jdoe@example.com"
    score: 90                        # 0-100
    last_seen: 2026-11-20T10:00:00Z  # optional; checked against max_last_seen
  - id: desk-7
    hostname: DESK-7.corp.example
    score: 0
  - id: kiosk
    serial_number: "To be filled by O.E.M."
    mac_addresses: ["aabb.ccdd.ee07"]
    score: 100
    last_seen: 2026-11-19
`

const designCSV = `id,serial_number,mac_addresses,hostname,email,score,last_seen
asset-0042,C02XK1ZZJGH5,74:1d:3e:23:e0:fe;74-1D-3E-23-E0-FF,mbp-42,jdoe@example.com,90,2026-11-20T10:00:00Z
desk-7,,,DESK-7.corp.example,,0,

kiosk,To be filled by O.E.M.,aabb.ccdd.ee07,,,100,2026-11-19T00:00:00Z
`

func TestParseValid(t *testing.T) {
	tests := []struct {
		name string
		file string
		data string
	}{
		{"yaml", "inventory.yaml", designYAML},
		{"yml", "inventory.yml", designYAML},
		{"no extension is yaml", "inventory", designYAML},
		{"csv", "inventory.csv", designCSV},
		{"upper-case CSV extension", "INVENTORY.CSV", designCSV},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Parse(tc.file, []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(recs) != 3 {
				t.Fatalf("got %d records", len(recs))
			}
			a, d, k := recs[0], recs[1], recs[2]
			if a.ID != "asset-0042" || a.Score != 90 || !slices.Equal(a.Serials, []string{"C02XK1ZZJGH5"}) ||
				!slices.Equal(a.MACs, []string{"741d3e23e0fe", "741d3e23e0ff"}) || !slices.Equal(a.Hostnames, []string{"mbp-42"}) ||
				!slices.Equal(a.Emails, []string{"jdoe@example.com"}) || !a.LastSeen.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) {
				t.Errorf("asset-0042 = %+v", a)
			}
			if a.Reason != "inventory score 90" {
				t.Errorf("Reason = %q", a.Reason)
			}
			if d.ID != "desk-7" || d.Score != 0 || !slices.Equal(d.Hostnames, []string{"desk-7"}) || d.Serials != nil || d.MACs != nil || !d.LastSeen.IsZero() {
				t.Errorf("desk-7 = %+v", d)
			}
			if k.ID != "kiosk" || k.Serials != nil || !slices.Equal(k.MACs, []string{"aabbccddee07"}) || !k.LastSeen.Equal(time.Date(2026, 11, 19, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("kiosk = %+v (placeholder serial must be dropped)", k)
			}
		})
	}
}

func TestParseYAMLEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		data string
		want int
	}{
		{"empty list", "devices: []\n", 0},
		{"null list", "devices:\n", 0},
		{"quoted timestamp", "devices:\n  - {id: a, hostname: h, score: 5, last_seen: \"2026-11-20T10:00:00Z\"}\n", 1},
		{"flow style", "devices: [{id: a, email: A@B.C, score: 1}, {id: b, email: c@d.e, score: 2}]\n", 2},
		{"no macs key", "devices:\n  - id: a\n    serial_number: X1\n    score: 1\n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Parse("inv.yaml", []byte(tc.data))
			if err != nil || len(recs) != tc.want {
				t.Fatalf("Parse = %d records, %v; want %d", len(recs), err, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	const hdr = "id,serial_number,mac_addresses,hostname,email,score,last_seen\n"
	tests := []struct {
		name string
		file string
		data string
		want []string // every substring must appear
	}{
		// YAML
		{"yaml unknown device key", "inv.yaml", "devices:\n  - id: a\n    hostnme: x\n    score: 1\n",
			[]string{"inv.yaml: ", "line 3", `unknown key "hostnme"`, `did you mean "hostname"`}},
		{"yaml unknown top-level key", "inv.yaml", "devices: []\ndevice:\n  - id: a\n",
			[]string{"inv.yaml: ", "line 2", "device"}},
		{"yaml score not a number", "inv.yaml", "devices:\n  - id: a\n    hostname: h\n    score: high\n",
			[]string{"inv.yaml: ", "line 4", "high"}},
		{"yaml score above range", "inv.yaml", "devices:\n  - id: ok\n    hostname: h0\n    score: 1\n  - id: a\n    hostname: h\n    score: 101\n",
			[]string{"inv.yaml: line 5: score must be 0..100, got 101"}},
		{"yaml score below range", "inv.yaml", "devices:\n  - id: a\n    hostname: h\n    score: -1\n",
			[]string{"inv.yaml: line 2: score must be 0..100, got -1"}},
		{"yaml missing score", "inv.yaml", "devices:\n  - id: a\n    hostname: h\n",
			[]string{"inv.yaml: line 2: score is required"}},
		{"yaml bad MAC", "inv.yaml", "devices:\n  - id: ok\n    hostname: h\n    score: 1\n  - id: b\n    mac_addresses: [\"74:1d:3e:23:e0\"]\n    score: 1\n",
			[]string{"inv.yaml: line 5: ", `mac address "74:1d:3e:23:e0" is not a usable MAC`}},
		{"yaml MACs not a list", "inv.yaml", "devices:\n  - id: b\n    mac_addresses: {a: 1}\n    score: 1\n",
			[]string{"inv.yaml: ", "line 3"}},
		{"yaml last_seen not a scalar", "inv.yaml", "devices:\n  - id: a\n    hostname: h\n    score: 1\n    last_seen: [1]\n",
			[]string{"inv.yaml: ", "line 5", "time.Time"}},
		{"yaml duplicate id", "inv.yaml", "devices:\n  - id: a\n    hostname: h1\n    score: 1\n  - id: a\n    hostname: h2\n    score: 2\n",
			[]string{`inv.yaml: line 5: id "a" already used on line 2`}},
		{"yaml missing id", "inv.yaml", "devices:\n  - hostname: h\n    score: 1\n",
			[]string{"inv.yaml: line 2: id is required"}},
		{"yaml blank id", "inv.yaml", "devices:\n  - id: \"  \"\n    hostname: h\n    score: 1\n",
			[]string{"inv.yaml: line 2: id is required"}},
		{"yaml no identifiers", "inv.yaml", "devices:\n  - id: a\n    score: 1\n",
			[]string{"inv.yaml: line 2: device has no usable identifier"}},
		{"yaml only unusable identifiers", "inv.yaml", "devices:\n  - id: a\n    serial_number: \"0\"\n    hostname: localhost\n    email: nobody\n    score: 1\n",
			[]string{"inv.yaml: line 2: device has no usable identifier"}},
		{"yaml empty file", "inv.yaml", "", []string{"inv.yaml: empty inventory file"}},
		{"yaml whitespace only", "inv.yaml", "\n  \n", []string{"inv.yaml: empty inventory file"}},
		{"yaml comments only", "inv.yaml", "# nothing yet\n", []string{"inv.yaml: empty inventory file"}},
		{"yaml device not a mapping", "inv.yaml", "devices:\n  - just-a-string\n", []string{"inv.yaml: line 2: each device must be a mapping"}},
		{"yaml devices not a list", "inv.yaml", "devices: {id: a}\n", []string{"inv.yaml: ", "line 1"}},
		{"yaml syntax error", "inv.yaml", "devices:\n  - id: a\n   score: [\n", []string{"inv.yaml: ", "line"}},
		{"yaml top level a list", "inv.yaml", "- id: a\n", []string{"inv.yaml: ", "line 1"}},

		// CSV
		{"csv header wrong names", "inv.csv", "id,serial,mac_addresses,hostname,email,score,last_seen\n",
			[]string{"inv.csv: line 1: header must be id,serial_number,mac_addresses,hostname,email,score,last_seen"}},
		{"csv header reordered", "inv.csv", "serial_number,id,mac_addresses,hostname,email,score,last_seen\n",
			[]string{"inv.csv: line 1: header must be"}},
		{"csv header too short", "inv.csv", "id,serial_number\n", []string{"inv.csv: line 1: header"}},
		{"csv empty file", "inv.csv", "", []string{"inv.csv: line 1: header"}},
		{"csv bad score", "inv.csv", hdr + "ok,S1,,,,1,\na,S2,,,,x,\n", []string{`inv.csv: line 3: score "x" is not an integer`}},
		{"csv score above range", "inv.csv", hdr + "a,S1,,,,250,\n", []string{"inv.csv: line 2: score must be 0..100, got 250"}},
		{"csv score below range", "inv.csv", hdr + "a,S1,,,,-3,\n", []string{"inv.csv: line 2: score must be 0..100, got -3"}},
		{"csv missing score", "inv.csv", hdr + "a,S1,,,,,\n", []string{"inv.csv: line 2: score is required"}},
		{"csv bad MAC", "inv.csv", hdr + "ok,S1,,,,1,\nb,,74:1d:3e:23:e0:fe;nope,,,1,\n", []string{`inv.csv: line 3: mac address "nope" is not a usable MAC`}},
		{"csv bad last_seen", "inv.csv", hdr + "a,S1,,,,1,2026-11-20\n", []string{`inv.csv: line 2: last_seen "2026-11-20" is not RFC 3339`}},
		{"csv duplicate id", "inv.csv", hdr + "a,S1,,,,1,\nb,S2,,,,1,\na,S3,,,,1,\n", []string{`inv.csv: line 4: id "a" already used on line 2`}},
		{"csv duplicate id after trimming", "inv.csv", hdr + "a,S1,,,,1,\n\" a \",S2,,,,1,\n", []string{`inv.csv: line 3: id "a" already used on line 2`}},
		{"csv missing id", "inv.csv", hdr + ",S1,,,,1,\n", []string{"inv.csv: line 2: id is required"}},
		{"csv no identifiers", "inv.csv", hdr + "a,,,,,1,\n", []string{"inv.csv: line 2: device has no usable identifier"}},
		{"csv wrong field count", "inv.csv", hdr + "a,S1,,,,1,\nb,S2,1\n", []string{"inv.csv: ", "line 3", "wrong number of fields"}},
		{"csv line after multi-line quoted field", "inv.csv", hdr + "a,S1,,\"multi\nline\",,1,\nb,S2,,,,oops,\n", []string{`inv.csv: line 4: score "oops"`}},
		{"csv bare quote", "inv.csv", hdr + "a,S\"1,,,,1,\n", []string{"inv.csv: ", "line 2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Parse(tc.file, []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", recs)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseYAMLBadLastSeenNamesLine(t *testing.T) {
	for _, v := range []string{"yesterday", "2026-13-01T00:00:00Z", "\"20/11/2026\""} {
		_, err := Parse("inv.yaml", []byte("devices:\n  - id: a\n    hostname: h\n    score: 1\n    last_seen: "+v+"\n"))
		if err == nil || !strings.Contains(err.Error(), "inv.yaml: ") || !strings.Contains(err.Error(), "line 5") {
			t.Errorf("last_seen %s: error %v, want it to name inv.yaml and line 5", v, err)
		}
	}
}

func TestParseYAMLDuplicateIDAfterTrimming(t *testing.T) {
	_, err := Parse("inv.yaml", []byte("devices:\n  - {id: a, hostname: h1, score: 1}\n  - {id: \" a \", hostname: h2, score: 1}\n"))
	if err == nil || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("Parse = %v, want a duplicate id error", err)
	}
}

func TestParseCSVWithByteOrderMark(t *testing.T) {
	recs, err := Parse("inv.csv", []byte("\ufeff"+designCSV))
	if err != nil || len(recs) != 3 {
		t.Fatalf("Parse = %d records, %v", len(recs), err)
	}
}

func TestParseCSVTolerance(t *testing.T) {
	tests := []struct {
		name string
		data string
		want int
	}{
		{"header only", "id,serial_number,mac_addresses,hostname,email,score,last_seen\n", 0},
		{"padded header and fields", " id , serial_number,mac_addresses,hostname,email,score,last_seen\nA1, S1 ,,, , 7 , 2026-11-20T10:00:00Z \n", 1},
		{"CRLF line endings", "id,serial_number,mac_addresses,hostname,email,score,last_seen\r\na,S1,,,,1,\r\nb,S2,,,,2,\r\n", 2},
		{"no trailing newline", "id,serial_number,mac_addresses,hostname,email,score,last_seen\na,S1,,,,1,", 1},
		{"blank lines skipped", "id,serial_number,mac_addresses,hostname,email,score,last_seen\n\n\na,S1,,,,1,\n\n", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Parse("inv.csv", []byte(tc.data))
			if err != nil || len(recs) != tc.want {
				t.Fatalf("Parse = %+v, %v; want %d records", recs, err, tc.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := Config{Common: providers.Common{Name: "inventory", Type: "static", Weight: 1}, File: "inventory.yaml"}
		c.Defaults()
		return c
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string
	}{
		{"valid", func(*Config) {}, nil},
		{"no file", func(c *Config) { c.File = "" }, []string{"file is required"}},
		{"sync mode", func(c *Config) { c.Mode = providers.ModeSync; c.SyncInterval = conf.Duration(time.Minute) }, []string{"mode: sync does not apply"}},
		{"reload too fast", func(c *Config) { c.ReloadInterval = conf.Duration(10 * time.Millisecond) }, []string{"reload_interval must be at least 100ms"}},
		{"common errors included", func(c *Config) { c.Weight = 0; c.Name = "" }, []string{"weight must be > 0", "name is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %v, want %q", err, w)
				}
			}
		})
	}
	t.Run("defaults", func(t *testing.T) {
		var c Config
		c.Defaults()
		if c.ReloadInterval != conf.Duration(5*time.Second) || c.OnError != providers.OnErrorStale || c.Mode != providers.ModeQuery {
			t.Fatalf("Defaults = %+v", c)
		}
		c.ReloadInterval = conf.Duration(time.Minute)
		c.Defaults()
		if c.ReloadInterval != conf.Duration(time.Minute) {
			t.Fatal("Defaults overwrote reload_interval")
		}
	})
}

// writeInventory writes data to path with an explicit, distinct mtime so a
// change is always visible, whatever the filesystem's timestamp resolution.
func writeInventory(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// list calls p.List, failing the test on an error.
func list(t *testing.T, p *Provider) []providers.Record {
	t.Helper()
	recs, err := p.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return recs
}

// lookupIDs are the ids of the records carrying any of raw as a kind k
// identifier once normalised: what a lookup served from recs finds.
func lookupIDs(recs []providers.Record, k providers.Kind, raw ...string) []string {
	var ids []string
	for _, r := range recs {
		if slices.ContainsFunc(raw, func(v string) bool { n, ok := providers.Normalize(k, v); return ok && r.Has(k, n) }) {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

func TestListAcrossKinds(t *testing.T) {
	for _, format := range []struct{ file, data string }{{"inventory.yaml", designYAML}, {"inventory.csv", designCSV}} {
		t.Run(format.file, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), format.file)
			writeInventory(t, path, format.data, time.Now())
			p, err := New(&Config{File: path}, providers.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			recs := list(t, p)
			if len(recs) != 3 {
				t.Fatalf("List = %d records, want 3", len(recs))
			}
			tests := []struct {
				name string
				kind providers.Kind
				raw  []string
				want []string
			}{
				{"serial lower-case", providers.KindSerial, []string{" c02xk1zzjgh5 "}, []string{"asset-0042"}},
				{"placeholder serial never matches", providers.KindSerial, []string{"To be filled by O.E.M."}, nil},
				{"mac cisco notation", providers.KindMAC, []string{"741d.3e23.e0fe"}, []string{"asset-0042"}},
				{"second mac, colon upper", providers.KindMAC, []string{"74:1D:3E:23:E0:FF"}, []string{"asset-0042"}},
				{"both macs dedupe", providers.KindMAC, []string{"741d3e23e0fe", "74-1d-3e-23-e0-ff"}, []string{"asset-0042"}},
				{"kiosk mac", providers.KindMAC, []string{"AA:BB:CC:DD:EE:07"}, []string{"kiosk"}},
				{"hostname fqdn", providers.KindHostname, []string{"MBP-42.corp.example"}, []string{"asset-0042"}},
				{"hostname stored as fqdn", providers.KindHostname, []string{"desk-7"}, []string{"desk-7"}},
				{"email case", providers.KindEmail, []string{"JDOE@EXAMPLE.COM"}, []string{"asset-0042"}},
				{"miss", providers.KindHostname, []string{"nope"}, nil},
				{"several values", providers.KindHostname, []string{"desk-7", "mbp-42"}, []string{"asset-0042", "desk-7"}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					if got := lookupIDs(recs, tc.kind, tc.raw...); !slices.Equal(got, tc.want) {
						t.Fatalf("records carrying %v %q: %v, want %v", tc.kind, tc.raw, got, tc.want)
					}
				})
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		file string
		data *string
		want []string
	}{
		{"missing file", "absent.yaml", nil, []string{"static: ", "absent.yaml"}},
		{"malformed", "bad.yaml", ptr("devices:\n  - id: a\n    score: 1\n    colour: red\n"), []string{"static: ", "bad.yaml", "line 4", `unknown key "colour"`}},
		{"empty", "empty.csv", ptr(""), []string{"static: ", "empty.csv", "line 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if tc.data != nil {
				writeInventory(t, path, *tc.data, time.Now())
			}
			p, err := New(&Config{File: path}, providers.Deps{})
			if err == nil {
				t.Fatalf("New accepted it: %+v", p)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

const v2YAML = "devices:\n  - id: v2\n    serial_number: NEW-1\n    score: 55\n"

// TestListFollowsTheFile edits the file between Lists: the first List
// serves what New read, a change is read and parsed again, an unchanged
// file (broken or not) answers ErrUnchanged, so that the Syncer serving it
// keeps its index and reports a broken edit once.
func TestListFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inventory.yaml")
	base := time.Now().Add(-time.Hour)
	writeInventory(t, path, designYAML, base)
	p, err := New(&Config{File: path}, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// New read the file; the first List serves that read. An edit the
	// file's size and mtime do not show proves it is not read again.
	writeInventory(t, path, strings.Replace(designYAML, "C02XK1ZZJGH5", "C02XK1ZZJGH6", 1), base)
	if got := lookupIDs(list(t, p), providers.KindSerial, "C02XK1ZZJGH5"); !slices.Equal(got, []string{"asset-0042"}) {
		t.Fatalf("first List: serial C02XK1ZZJGH5 on %v, want what New read", got)
	}

	const (
		edit = iota
		remove
		keep
	)
	steps := []struct {
		name    string
		action  int
		data    string
		wantErr []string // nil: success
		want    []string // serials listed on success
	}{
		{"unchanged", keep, "", []string{"inventory unchanged"}, nil},
		{"valid change is read", edit, v2YAML, nil, []string{"NEW-1"}},
		{"unchanged again", keep, "", []string{"inventory unchanged"}, nil},
		{"malformed", edit, "devices:\n  - id: x\n    score: 900\n    serial_number: S9\n",
			[]string{"static: ", "inventory.yaml", "line 2", "score must be 0..100"}, nil},
		{"malformed, unchanged: not reported again", keep, "", []string{"inventory unchanged"}, nil},
		{"emptied", edit, "", []string{"empty inventory file"}, nil},
		{"deleted", remove, "", []string{"static: ", "inventory.yaml"}, nil},
		{"still deleted: not reported again", keep, "", []string{"inventory unchanged"}, nil},
		{"restored", edit, designYAML, nil, []string{"C02XK1ZZJGH5"}},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			switch s.action {
			case edit:
				writeInventory(t, path, s.data, base.Add(time.Duration(i+1)*time.Minute))
			case remove:
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			}
			recs, err := p.List(t.Context())
			if s.wantErr == nil {
				if err != nil {
					t.Fatalf("List = %v", err)
				}
				var serials []string
				for _, r := range recs {
					serials = append(serials, r.Serials...)
				}
				if !slices.Equal(serials, s.want) {
					t.Fatalf("listed serials %v, want %v", serials, s.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("List = %d records, want an error", len(recs))
			}
			if errors.Is(err, providers.ErrUnchanged) != (s.wantErr[0] == "inventory unchanged") {
				t.Fatalf("List = %v: ErrUnchanged where not expected, or missing", err)
			}
			for _, w := range s.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("List error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// MDM exports hold all-zero and broadcast MACs for disabled NICs, and
// placeholder serials for VMs: they are ignored, never an error that stops
// the service, while a malformed MAC still is (TestParseErrors).
func TestParseIgnoresNullMACsAndPlaceholderSerials(t *testing.T) {
	tests := []struct {
		name, file, data string
	}{
		{"yaml", "inv.yaml", "devices:\n  - {id: a1, serial_number: C02X, mac_addresses: [\"00:00:00:00:00:00\", \"FF-FF-FF-FF-FF-FF\", \"74:1d:3e:23:e0:fe\"], score: 90}\n  - {id: a2, serial_number: \"To be filled by O.E.M.\", mac_addresses: [\"000000000000\"], hostname: h2, score: 50}\n"},
		{"csv", "inv.csv", "id,serial_number,mac_addresses,hostname,email,score,last_seen\na1,C02X,00:00:00:00:00:00;ff:ff:ff:ff:ff:ff;74:1d:3e:23:e0:fe,,,90,\na2,To be filled by O.E.M.,0000.0000.0000,h2,,50,\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := Parse(tc.file, []byte(tc.data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if len(recs) != 2 {
				t.Fatalf("%d records, want 2", len(recs))
			}
			for i := range recs {
				recs[i].Normalize()
			}
			if !slices.Equal(recs[0].MACs, []string{"741d3e23e0fe"}) || !slices.Equal(recs[0].Serials, []string{"C02X"}) {
				t.Errorf("a1: MACs %q serials %q, want only the real ones", recs[0].MACs, recs[0].Serials)
			}
			if recs[1].MACs != nil || recs[1].Serials != nil || !slices.Equal(recs[1].Hostnames, []string{"h2"}) {
				t.Errorf("a2: %+v, want only its hostname as a key", recs[1])
			}
		})
	}
}
