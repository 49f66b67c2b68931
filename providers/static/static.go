// Package static is the provider backed by an inventory file the operator
// maintains (YAML or CSV): for assets no MDM knows, for tests, and for a
// first deployment before any vendor is wired. The file is read whole, like
// a sync-mode vendor's inventory, and served by the same Syncer: it is
// re-read when it changes, and a broken edit keeps the last good inventory.
package static

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/providers"
)

// Config is the `type: static` provider section.
type Config struct {
	providers.Common `yaml:",inline"`
	// File is the inventory, YAML (any extension but .csv) or CSV.
	File string `yaml:"file"`
	// ReloadInterval is how often the file is checked for changes: the
	// sync interval of the Syncer serving it. Default 5s.
	ReloadInterval conf.Duration `yaml:"reload_interval,omitempty"`
}

// Defaults implements providers.Config.
func (c *Config) Defaults() {
	c.Common.Defaults()
	if c.ReloadInterval == 0 {
		c.ReloadInterval = conf.Duration(5 * time.Second)
	}
}

// Validate implements providers.Config. The file itself is checked by New.
func (c *Config) Validate() error {
	errs := []error{c.Common.Validate()}
	if c.File == "" {
		errs = append(errs, errors.New("file is required"))
	}
	if c.Mode == providers.ModeSync {
		errs = append(errs, errors.New("mode: sync does not apply: the inventory file is always held in memory"))
	}
	if c.ReloadInterval < conf.Duration(100*time.Millisecond) {
		errs = append(errs, errors.New("reload_interval must be at least 100ms"))
	}
	return errors.Join(errs...)
}

// Provider lists the inventory file. It has no Lookup of its own: wrapped
// in a Syncer (see internal/app) it is served from memory, like a
// sync-mode vendor.
type Provider struct {
	file string

	mu sync.Mutex
	// seen is the version of the file last read, parsed or not: List
	// reads it again only when it changes.
	seen fileVersion
	// first is what New parsed, for the first List, so that the file is
	// not read twice at start-up.
	first    []providers.Record
	hasFirst bool
}

// fileVersion tells one state of the file from another without reading it.
type fileVersion struct {
	mtime   int64 // UnixNano: comparable with ==, unlike a time.Time
	size    int64
	statErr string // the file could not be stat'ed (deleted, unreadable)
}

func versionOf(fi os.FileInfo, err error) fileVersion {
	if err != nil {
		return fileVersion{statErr: err.Error()}
	}
	return fileVersion{mtime: fi.ModTime().UnixNano(), size: fi.Size()}
}

// New reads and checks the inventory once: a missing or malformed file is
// an error naming the file and line.
func New(cfg *Config, _ providers.Deps) (*Provider, error) {
	p := &Provider{file: cfg.File}
	recs, err := p.read()
	if err != nil {
		return nil, err
	}
	p.first, p.hasFirst = recs, true
	return p, nil
}

// List returns the inventory, or providers.ErrUnchanged when the file's
// size and modification time are those of the previous List (or of New):
// an unchanged file is neither parsed again nor, if broken, reported again.
func (p *Provider) List(_ context.Context) ([]providers.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first, hasFirst := p.first, p.hasFirst
	p.first, p.hasFirst = nil, false
	if versionOf(os.Stat(p.file)) != p.seen {
		return p.read()
	}
	if hasFirst {
		return first, nil
	}
	return nil, providers.ErrUnchanged
}

// read loads and parses the file, remembering its version as it was before
// the read: an edit landing during the read is a change for the next List.
func (p *Provider) read() ([]providers.Record, error) {
	fi, err := os.Stat(p.file)
	p.seen = versionOf(fi, err)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	data, err := os.ReadFile(p.file)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	recs, err := Parse(p.file, data)
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	return recs, nil
}

// Parse reads an inventory: CSV when name ends in .csv, YAML otherwise.
// Errors name the file and line.
func Parse(name string, data []byte) ([]providers.Record, error) {
	if strings.EqualFold(filepath.Ext(name), ".csv") {
		return parseCSV(name, data)
	}
	return parseYAML(name, data)
}

type yamlDevice struct {
	ID           string    `yaml:"id"`
	SerialNumber string    `yaml:"serial_number"`
	MACAddresses []string  `yaml:"mac_addresses"`
	Hostname     string    `yaml:"hostname"`
	Email        string    `yaml:"email"`
	Score        *int      `yaml:"score"`
	LastSeen     time.Time `yaml:"last_seen"`
}

func parseYAML(name string, data []byte) ([]providers.Record, error) {
	var doc struct {
		Devices []yaml.Node `yaml:"devices"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty inventory file (want a devices: list)", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	recs := make([]providers.Record, 0, len(doc.Devices))
	ids := make(map[string]int)
	for i := range doc.Devices {
		n := &doc.Devices[i]
		var d yamlDevice
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: line %d: each device must be a mapping", name, n.Line)
		}
		if err := checkLastSeen(n); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := conf.DecodeStrict(n, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		rec, err := toRecord(d.ID, d.SerialNumber, d.MACAddresses, d.Hostname, d.Email, d.Score, d.LastSeen)
		if err == nil {
			err = checkDuplicate(ids, strings.TrimSpace(d.ID), n.Line)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, n.Line, err)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// checkLastSeen validates last_seen with its own line: yaml.v3 reports time
// parsing errors without a position.
func checkLastSeen(n *yaml.Node) error {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k, v := n.Content[i], n.Content[i+1]; k.Value == "last_seen" && v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
			if !parsesAsTime(v.Value) {
				return fmt.Errorf("line %d: last_seen %q is not an RFC 3339 time like 2026-11-20T10:00:00Z", v.Line, v.Value)
			}
		}
	}
	return nil
}

// parsesAsTime accepts the timestamp forms yaml.v3 decodes into time.Time.
func parsesAsTime(s string) bool {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

var csvHeader = []string{"id", "serial_number", "mac_addresses", "hostname", "email", "score", "last_seen"}

func parseCSV(name string, data []byte) ([]providers.Record, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // Excel's "CSV UTF-8" BOM
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = len(csvHeader)
	r.TrimLeadingSpace = true
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: line 1: header: %w", name, err)
	}
	for i := range head {
		head[i] = strings.TrimSpace(head[i])
	}
	if strings.Join(head, ",") != strings.Join(csvHeader, ",") {
		return nil, fmt.Errorf("%s: line 1: header must be %s", name, strings.Join(csvHeader, ","))
	}
	var recs []providers.Record
	ids := make(map[string]int)
	for {
		row, err := r.Read()
		if errors.Is(err, io.EOF) {
			return recs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := r.FieldPos(0)
		var score *int
		if s := strings.TrimSpace(row[5]); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				return nil, fmt.Errorf("%s: line %d: score %q is not an integer", name, line, s)
			}
			score = &n
		}
		var seen time.Time
		if s := strings.TrimSpace(row[6]); s != "" {
			if seen, err = time.Parse(time.RFC3339, s); err != nil {
				return nil, fmt.Errorf("%s: line %d: last_seen %q is not RFC 3339", name, line, s)
			}
		}
		var macs []string
		if s := strings.TrimSpace(row[2]); s != "" {
			macs = strings.Split(s, ";")
		}
		rec, err := toRecord(row[0], row[1], macs, row[3], row[4], score, seen)
		if err == nil {
			err = checkDuplicate(ids, strings.TrimSpace(row[0]), line)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", name, line, err)
		}
		recs = append(recs, rec)
	}
}

func checkDuplicate(ids map[string]int, id string, line int) error {
	if prev, dup := ids[id]; dup {
		return fmt.Errorf("id %q already used on line %d", id, prev)
	}
	ids[id] = line
	return nil
}

func toRecord(id, serial string, macs []string, hostname, email string, score *int, lastSeen time.Time) (providers.Record, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return providers.Record{}, errors.New("id is required")
	}
	if score == nil {
		return providers.Record{}, errors.New("score is required")
	}
	if *score < 0 || *score > 100 {
		return providers.Record{}, fmt.Errorf("score must be 0..100, got %d", *score)
	}
	for _, m := range macs {
		// All-zero and broadcast MACs (disabled NICs in MDM exports) are
		// ignored by Normalize; only a malformed one is an error.
		if _, ok := providers.NormalizeMAC(m); !ok && !providers.NullMAC(m) {
			return providers.Record{}, fmt.Errorf("mac address %q is not a usable MAC", m)
		}
	}
	rec := providers.Record{
		ID: id, MACs: macs, LastSeen: lastSeen, Score: *score,
		Reason: "inventory score " + strconv.Itoa(*score),
	}
	if serial != "" {
		rec.Serials = []string{serial}
	}
	if hostname != "" {
		rec.Hostnames = []string{hostname}
	}
	if email != "" {
		rec.Emails = []string{email}
	}
	rec.Normalize()
	if rec.Serials == nil && rec.MACs == nil && rec.Hostnames == nil && rec.Emails == nil {
		return providers.Record{}, errors.New("device has no usable identifier (serial_number, mac_addresses, hostname or email)")
	}
	return rec, nil
}
