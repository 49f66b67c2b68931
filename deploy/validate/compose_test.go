package validate

// docker-compose.yml and the Dockerfile, checked without a Docker engine:
// the compose file is loaded and validated by compose-spec/compose-go (the
// loader docker compose itself uses), then cross-checked against the
// Dockerfile (read by BuildKit's own parser, see dockerfile_test.go), the
// config it mounts (validated by postured's own Parse), the ports the
// binaries listen on, and the README's curl commands.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/postured/postured/internal/app"
	"github.com/sirupsen/logrus"
)

const composeFile = "docker-compose.yml"

// composeRepoRoot is postured's repo root: tests run in deploy/validate.
func composeRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, composeFile)); err != nil {
		t.Fatalf("repo root: %v", err)
	}
	return root
}

// loadCompose loads docker-compose.yml as `docker compose [--profile p] up`
// would from the repo root: schema validation, interpolation, path
// resolution, consistency checks, service environments resolved. The
// environment is empty rather than the test's, so that nothing in the
// compose file silently depends on the caller's shell. Any warning
// compose-go logs (an obsolete `version:`, a YAML 1.1 boolean...) fails
// the test.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	return loadComposeEnv(t, nil, profiles...)
}

// loadComposeEnv is loadCompose with env as the caller's environment.
func loadComposeEnv(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	root := composeRepoRoot(t)
	var logged bytes.Buffer
	// compose-go warns through logrus' standard logger.
	std := logrus.StandardLogger()
	out, level := std.Out, std.GetLevel()
	std.SetOutput(&logged)
	std.SetLevel(logrus.WarnLevel)
	t.Cleanup(func() { std.SetOutput(out); std.SetLevel(level) })

	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, composeFile)},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(envList(env)),
		cli.WithProfiles(profiles),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("%s (profiles %q): %v", composeFile, profiles, err)
	}
	if p, err = p.WithServicesEnvironmentResolved(true); err != nil {
		t.Fatalf("%s: environment: %v", composeFile, err)
	}
	if err := p.CheckContainerNameUnicity(); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	// LoadProject already refuses a required dependency on a service the
	// profiles leave out; optional ones are dropped, as docker compose does.
	p = p.WithoutUnresolvedOptionalDependencies()
	if logged.Len() > 0 {
		t.Errorf("compose-go warned loading %s:\n%s", composeFile, logged.String())
	}
	return p
}

// composeGoDirective is the version in go.mod's go line.
func composeGoDirective(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return s
}

// composeEnv is a service's resolved environment as a getenv func.
func composeEnv(s types.ServiceConfig) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := s.Environment[k]
		if !ok || v == nil {
			return "", false
		}
		return *v, true
	}
}

// composeFlag finds -name/--name in a command line, as value or =value.
func composeFlag(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == "--" {
			break
		}
		trimmed := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if trimmed == a {
			continue
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// composePort is the port of a listen address (":8080", "0.0.0.0:9000") or URL.
func composePort(t *testing.T, what, addr string) uint32 {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
		if u.Port() == "" {
			t.Fatalf("%s: %q has no explicit port", what, addr)
		}
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %q: %v", what, addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatalf("%s: %q: port %v", what, addr, err)
	}
	return uint32(n)
}

// composePublished is the host port a service publishes for container port
// target, and the host IP it binds ("" for all).
func composePublished(t *testing.T, s types.ServiceConfig, target uint32) (string, string) {
	t.Helper()
	for _, p := range s.Ports {
		if p.Target == target && (p.Protocol == "" || p.Protocol == "tcp") {
			return p.Published, p.HostIP
		}
	}
	t.Fatalf("%s: service %s publishes no port for container port %d (ports: %+v)", composeFile, s.Name, target, s.Ports)
	return "", ""
}

// composeNetHost is the service whose network namespace s lives in: s
// itself, or the one its network_mode: service:NAME names. Its name is the
// host other services reach s by, and s's ports are published on it.
func composeNetHost(t *testing.T, p *types.Project, s types.ServiceConfig) types.ServiceConfig {
	t.Helper()
	name, ok := strings.CutPrefix(s.NetworkMode, "service:")
	if !ok {
		return s
	}
	return composeService(t, p, name)
}

// composeBuiltFrom is the Dockerfile and stage a service with build: uses, checked
// to exist in the repo.
func composeBuiltFrom(t *testing.T, root string, s types.ServiceConfig) (*composeDockerfile, *composeStage) {
	t.Helper()
	b := s.Build
	if b.DockerfileInline != "" {
		t.Fatalf("service %s: inline Dockerfile; build from one in the repo", s.Name)
	}
	ctxDir := b.Context
	if !filepath.IsAbs(ctxDir) {
		ctxDir = filepath.Join(root, ctxDir)
	}
	if rel, err := filepath.Rel(root, ctxDir); err != nil || rel != "." {
		t.Errorf("service %s: build context %s, want the repo root (go.mod is there)", s.Name, b.Context)
	}
	name := b.Dockerfile
	if name == "" {
		name = "Dockerfile"
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(ctxDir, name)
	}
	if rel, err := filepath.Rel(root, path); err != nil || strings.HasPrefix(rel, "..") {
		t.Fatalf("service %s: Dockerfile %s is outside the repo", s.Name, path)
	}
	d, err := parseComposeDockerfile(path)
	if err != nil {
		t.Fatalf("service %s: %v", s.Name, err)
	}
	st := d.stages[len(d.stages)-1] // no target: the last stage
	if b.Target != "" {
		if st = d.stage(b.Target); st == nil {
			t.Fatalf("service %s: target %q is not a stage of %s", s.Name, b.Target, path)
		}
	}
	return d, st
}

func TestComposeLoads(t *testing.T) {
	root := composeRepoRoot(t)
	// Default discovery must find this file: compose.yaml and friends
	// would win over docker-compose.yml.
	for _, name := range cli.DefaultFileNames {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil {
			if name != composeFile {
				t.Errorf("%s in the repo root shadows %s for `docker compose up`", name, composeFile)
			}
			break
		}
	}
	for _, tc := range []struct {
		profiles []string
		services []string
	}{
		{nil, []string{"cloudflare", "mockvendors", "postured"}},
		{[]string{"redis"}, []string{"cloudflare", "mockvendors", "postured", "redis"}},
		{[]string{"cloudflared"}, []string{"cloudflare", "cloudflared", "mockvendors", "postured"}},
	} {
		t.Run(fmt.Sprintf("profiles=%q", tc.profiles), func(t *testing.T) {
			p := loadCompose(t, tc.profiles...)
			if got := p.ServiceNames(); !slices.Equal(got, tc.services) {
				t.Errorf("services %q, want %q", got, tc.services)
			}
			if p.Name != "postured" {
				t.Errorf("project name %q, want postured (fixed, not the checkout's directory name)", p.Name)
			}
			// Every healthy-condition dependency must have a healthcheck,
			// or `up` waits for it forever.
			for name, s := range p.Services {
				for dep, d := range s.DependsOn {
					if d.Condition != types.ServiceConditionHealthy {
						continue
					}
					if hc := p.Services[dep].HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 {
						t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
					}
				}
			}
		})
	}
}

func TestComposeBuildsFromRepoDockerfile(t *testing.T) {
	root := composeRepoRoot(t)
	p := loadCompose(t, "redis")
	goVersion := composeGoDirective(t, root)
	for _, tc := range []struct {
		service, binary string
		port            uint32
	}{
		{"mockvendors", "/mockvendors", 9000},
		{"postured", "/postured", 8080},
	} {
		t.Run(tc.service, func(t *testing.T) {
			s := composeService(t, p, tc.service)
			if s.Build == nil {
				t.Fatalf("service %s has no build:", tc.service)
			}
			d, st := composeBuiltFrom(t, root, s)
			if st.name != tc.service {
				t.Errorf("service %s builds stage %q", tc.service, st.name)
			}
			if !slices.Contains(st.files, tc.binary) {
				t.Errorf("stage %s copies %q, not %s", st.name, st.files, tc.binary)
			}
			if !slices.Equal(st.entrypoint, []string{tc.binary}) {
				t.Errorf("stage %s ENTRYPOINT %q, want [%q]", st.name, st.entrypoint, tc.binary)
			}
			if want := strconv.Itoa(int(tc.port)); !slices.Contains(st.expose, want) && !slices.Contains(st.expose, want+"/tcp") {
				t.Errorf("stage %s EXPOSE %q, want %s", st.name, st.expose, want)
			}
			if st.base != "gcr.io/distroless/static-debian12:nonroot" {
				t.Errorf("stage %s FROM %s, want gcr.io/distroless/static-debian12:nonroot", st.name, st.base)
			}
			if u, _, _ := strings.Cut(st.user, ":"); u == "" || u == "0" || u == "root" {
				t.Errorf("stage %s USER %q: run as non-root", st.name, st.user)
			}
			if got := d.args["GO_VERSION"]; got != goVersion {
				t.Errorf("Dockerfile GO_VERSION=%q, go.mod says go %s", got, goVersion)
			}
			if s.Image != "" {
				t.Errorf("service %s sets image %q as well as build: compose would try to pull it", tc.service, s.Image)
			}
		})
	}
}

func TestComposeHealthchecks(t *testing.T) {
	root := composeRepoRoot(t)
	p := loadCompose(t, "redis")
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		hc := s.HealthCheck
		if hc == nil || hc.Disable {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if len(hc.Test) < 2 || hc.Test[0] != "CMD" {
				t.Fatalf("healthcheck %q: want exec form [CMD, binary, args...]", hc.Test)
			}
			if s.Build == nil {
				return // someone else's image (redis: redis-cli)
			}
			// distroless: no shell, so the binary must be in the image.
			_, st := composeBuiltFrom(t, root, s)
			if !slices.Contains(st.files, hc.Test[1]) {
				t.Errorf("healthcheck runs %s, but stage %s only has %q", hc.Test[1], st.name, st.files)
			}
		})
	}
}

func TestComposeMockvendors(t *testing.T) {
	p := loadCompose(t)
	mv := composeService(t, p, "mockvendors")
	listen, ok := composeFlag(mv.Command, "listen")
	if !ok {
		t.Fatalf("mockvendors command %q has no --listen", mv.Command)
	}
	lport := composePort(t, "mockvendors --listen", listen)
	if pub, _ := composePublished(t, mv, lport); pub != strconv.Itoa(int(lport)) {
		t.Errorf("mockvendors listens on %d, published on host port %s; the README curls localhost:%d", lport, pub, lport)
	}
	if hc := mv.HealthCheck; hc != nil && len(hc.Test) >= 2 {
		u, ok := composeFlag(hc.Test[2:], "healthcheck")
		if !ok {
			t.Fatalf("mockvendors healthcheck %q has no --healthcheck URL", hc.Test)
		}
		if got := composePort(t, "mockvendors healthcheck", u); got != lport {
			t.Errorf("mockvendors healthcheck asks port %d, it listens on %d", got, lport)
		}
	} else {
		t.Error("mockvendors has no healthcheck (postured waits for it)")
	}

	pd := composeService(t, p, "postured")
	raw, ok := composeEnv(pd)("MOCKVENDORS_URL")
	if !ok {
		t.Fatal("postured has no MOCKVENDORS_URL")
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("MOCKVENDORS_URL %q: %v", raw, err)
	}
	// postured refuses plain http to vendors and Access except on loopback
	// (issue 10), so it shares mockvendors' network namespace and calls it
	// on 127.0.0.1.
	if pd.NetworkMode != "service:mockvendors" {
		t.Errorf("postured network_mode %q, want service:mockvendors (it reaches the mocks over loopback)", pd.NetworkMode)
	}
	if host := u.Hostname(); host != "127.0.0.1" {
		t.Errorf("MOCKVENDORS_URL host %q, want 127.0.0.1 (postured allows plain http only to loopback)", host)
	}
	if got := composePort(t, "MOCKVENDORS_URL", raw); got != lport {
		t.Errorf("MOCKVENDORS_URL port %d, mockvendors listens on %d (container port, not the published one)", got, lport)
	}
	if d, ok := pd.DependsOn["mockvendors"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("postured depends_on mockvendors = %+v, want condition service_healthy", d)
	}
}

// TestComposeCloudflare checks the service that plays Cloudflare's polling:
// the mockvendors image running `poll` against postured's posture URL,
// with tokens from the Access stand-in postured trusts, over the same fleet
// mockvendors serves, often enough that cycles show in the first minute;
// and the fleet it polls drifts.
func TestComposeCloudflare(t *testing.T) {
	root := composeRepoRoot(t)
	p := loadCompose(t)
	cf := composeService(t, p, "cloudflare")
	mv := composeService(t, p, "mockvendors")
	pd := composeService(t, p, "postured")
	if cf.Build == nil {
		t.Fatal("cloudflare has no build:")
	}
	if _, st := composeBuiltFrom(t, root, cf); st.name != "mockvendors" {
		t.Errorf("cloudflare builds stage %q, want mockvendors (the poller is `mockvendors poll`)", st.name)
	}
	if len(cf.Command) == 0 || cf.Command[0] != "poll" {
		t.Fatalf("cloudflare command %q, want poll ...", cf.Command)
	}
	args := cf.Command[1:]
	flag := func(name string) string {
		t.Helper()
		v, ok := composeFlag(args, name)
		if !ok {
			t.Fatalf("cloudflare command %q has no --%s", cf.Command, name)
		}
		return v
	}
	postured, _ := composeEnv(pd)("POSTURED_LISTEN")
	posturedHost := composeNetHost(t, p, pd).Name
	mvListen, _ := composeFlag(mv.Command, "listen")
	for _, tc := range []struct {
		flag, host, path string
		port             uint32
	}{
		{"target", posturedHost, "/posture", composePort(t, "POSTURED_LISTEN", postured)},
		{"ready", posturedHost, "/readyz", composePort(t, "POSTURED_LISTEN", postured)},
		{"token-url", "mockvendors", "/access/token", composePort(t, "mockvendors --listen", mvListen)},
	} {
		raw := flag(tc.flag)
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != tc.host || u.Path != tc.path || composePort(t, "--"+tc.flag, raw) != tc.port {
			t.Errorf("cloudflare --%s %q, want http://%s:%d%s", tc.flag, raw, tc.host, tc.port, tc.path)
		}
	}
	if d, err := time.ParseDuration(flag("interval")); err != nil || d <= 0 || d > 30*time.Second {
		t.Errorf("cloudflare --interval %q: want a duration up to 30s, so cycles show in the first minute", flag("interval"))
	}
	for _, name := range []string{"devices", "seed"} {
		if got, want := flag(name), composeFlagOr(mv.Command, name, map[string]string{"devices": "5000", "seed": "1"}[name]); got != want {
			t.Errorf("cloudflare --%s %s, mockvendors --%s %s: it would poll another fleet", name, got, name, want)
		}
	}
	if d, ok := cf.DependsOn["postured"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("cloudflare depends_on postured = %+v, want condition service_healthy", d)
	}
	if len(cf.Ports) > 0 {
		t.Errorf("cloudflare publishes %+v: it only calls out", cf.Ports)
	}
	if v, ok := composeFlag(mv.Command, "drift"); !ok {
		t.Errorf("mockvendors command %q has no --drift: scores would never move between polls", mv.Command)
	} else if pct, err := strconv.ParseFloat(v, 64); err != nil || pct <= 0 || pct > 100 {
		t.Errorf("mockvendors --drift %q, want a percentage > 0", v)
	}
}

// composeFlagOr is composeFlag with the flag's default when absent.
func composeFlagOr(args []string, name, def string) string {
	if v, ok := composeFlag(args, name); ok {
		return v
	}
	return def
}

func TestComposePosturedConfig(t *testing.T) {
	root := composeRepoRoot(t)
	p := loadCompose(t)
	s := composeService(t, p, "postured")
	getenv := composeEnv(s)

	if len(s.Command) == 0 || s.Command[0] != "serve" {
		t.Fatalf("postured command %q, want serve -c FILE", s.Command)
	}
	cfgPath, ok := composeFlag(s.Command[1:], "c")
	if !ok {
		t.Fatalf("postured command %q has no -c FILE", s.Command)
	}
	var mount *types.ServiceVolumeConfig
	for i, v := range s.Volumes {
		if v.Target == cfgPath {
			mount = &s.Volumes[i]
		}
	}
	if mount == nil {
		t.Fatalf("postured reads %s but no volume is mounted there (volumes: %+v)", cfgPath, s.Volumes)
	}
	if mount.Type != types.VolumeTypeBind || !mount.ReadOnly {
		t.Errorf("config mount %+v: want a read-only bind mount", mount)
	}
	rel, err := filepath.Rel(root, mount.Source)
	if err != nil || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
		t.Fatalf("config mount source %s is not in the repo", mount.Source)
	}
	// A missing source would be created by Docker as a directory.
	fi, err := os.Stat(mount.Source)
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("config mount source %s: not a file in the repo (%v)", rel, err)
	}
	data, err := os.ReadFile(mount.Source)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := app.Parse(data, app.Registry(), getenv)
	if err != nil {
		t.Fatalf("%s with the compose environment: %v", rel, err)
	}

	listen, ok := getenv("POSTURED_LISTEN")
	if !ok {
		t.Fatal("postured has no POSTURED_LISTEN")
	}
	if cfg.Listen != listen {
		t.Errorf("%s listens on %q, POSTURED_LISTEN is %q", rel, cfg.Listen, listen)
	}
	if h, _, err := net.SplitHostPort(cfg.Listen); err != nil || (h != "" && h != "0.0.0.0" && h != "::") {
		t.Errorf("listen %q: must be all interfaces for the published port to reach it", cfg.Listen)
	}
	lport := composePort(t, "POSTURED_LISTEN", listen)
	if pub, _ := composePublished(t, composeNetHost(t, p, s), lport); pub != strconv.Itoa(int(lport)) {
		t.Errorf("postured listens on %d, published on host port %s; the README curls localhost:%d", lport, pub, lport)
	}
	if s.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("postured restart %q, want %s", s.Restart, types.RestartPolicyUnlessStopped)
	}
	if cfg.Access.InsecureSkipVerify {
		t.Errorf("%s disables Access token checks; the demo uses the mock's tokens", rel)
	}
	// docker stop sends SIGTERM, then SIGKILL after stop_grace_period
	// (10s by default): in-flight batches need server.shutdown_timeout.
	grace := 10 * time.Second
	if s.StopGracePeriod != nil {
		grace = time.Duration(*s.StopGracePeriod)
	}
	if st := time.Duration(cfg.Server.ShutdownTimeout); grace <= st {
		t.Errorf("stop_grace_period %v <= server.shutdown_timeout %v: Docker would kill in-flight batches", grace, st)
	}
}

func TestComposeRedisProfile(t *testing.T) {
	p := loadCompose(t, "redis")
	r := composeService(t, p, "redis")
	if !slices.Equal(r.Profiles, []string{"redis"}) {
		t.Errorf("redis profiles %q, want [redis] (off by default)", r.Profiles)
	}
	// The Redis has no password: never on the host's other interfaces.
	if _, ip := composePublished(t, r, 6379); ip != "127.0.0.1" {
		t.Errorf("redis published on %q, want 127.0.0.1 only", ip)
	}
	raw, ok := composeEnv(composeService(t, p, "postured"))("REDIS_URL")
	if !ok {
		t.Fatal("postured has no REDIS_URL for the redis profile")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "redis" || u.Hostname() != "redis" || u.Port() != "6379" {
		t.Errorf("REDIS_URL %q: want redis://redis:6379/...", raw)
	}
}

func TestComposeHardening(t *testing.T) {
	p := loadCompose(t, "redis", "cloudflared")
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		t.Run(name, func(t *testing.T) {
			if s.Privileged {
				t.Error("privileged")
			}
			if s.NetworkMode == "host" || s.Pid == "host" || s.Ipc == "host" {
				t.Errorf("shares the host's namespaces (network %q, pid %q, ipc %q)", s.NetworkMode, s.Pid, s.Ipc)
			}
			if len(s.CapAdd) > 0 {
				t.Errorf("cap_add %q", s.CapAdd)
			}
			if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") && !slices.Contains(s.SecurityOpt, "no-new-privileges") {
				t.Errorf("security_opt %q: want no-new-privileges:true", s.SecurityOpt)
			}
			if u, _, _ := strings.Cut(s.User, ":"); u == "0" || u == "root" {
				t.Errorf("user %q", s.User)
			}
			if s.Build == nil {
				return
			}
			// Ours: static binaries that write nothing to disk.
			if !s.ReadOnly {
				t.Error("read_only is not set")
			}
			if !slices.Contains(s.CapDrop, "ALL") {
				t.Errorf("cap_drop %q, want ALL", s.CapDrop)
			}
		})
	}
}

// TestComposeReadme checks that the README's Docker curl commands hit the
// ports compose publishes.
func TestComposeReadme(t *testing.T) {
	root := composeRepoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t)
	for _, tc := range []struct {
		service string
		target  uint32
		path    string
	}{
		{"mockvendors", 9000, "/access/token"},
		{"mockvendors", 9000, "/cloudflare/batch.json"},
		{"postured", 8080, "/posture"},
	} {
		pub, _ := composePublished(t, composeNetHost(t, p, composeService(t, p, tc.service)), tc.target)
		if want := "localhost:" + pub + tc.path; !bytes.Contains(readme, []byte(want)) {
			t.Errorf("README.md does not curl %s (compose publishes %s on %s)", want, tc.service, pub)
		}
	}
}

// envList is env as KEY=VALUE entries.
func envList(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// TestComposeCloudflared checks the profile that runs a real Cloudflare
// Tunnel to postured: off by default, Cloudflare's image running a
// remotely managed tunnel, its token only ever from the caller's
// environment, and documented where the README and the compose header say
// how to start it.
func TestComposeCloudflared(t *testing.T) {
	root := composeRepoRoot(t)
	if p := loadCompose(t); slices.Contains(p.ServiceNames(), "cloudflared") {
		t.Error("cloudflared runs without its profile; it needs a tunnel token")
	}
	for _, tc := range []struct {
		name  string
		env   map[string]string
		token *string
	}{
		{"no token set", nil, nil},
		{"token from the environment", map[string]string{"TUNNEL_TOKEN": "eyJhIjoiMSJ9"}, new("eyJhIjoiMSJ9")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadComposeEnv(t, tc.env, "cloudflared")
			s := composeService(t, p, "cloudflared")
			if !slices.Equal(s.Profiles, []string{"cloudflared"}) {
				t.Errorf("profiles %q, want [cloudflared]", s.Profiles)
			}
			if !strings.HasPrefix(s.Image, "cloudflare/cloudflared:") || s.Build != nil {
				t.Errorf("image %q (build %v), want Cloudflare's cloudflare/cloudflared", s.Image, s.Build)
			}
			if i := slices.Index(s.Command, "tunnel"); i < 0 || !slices.Contains(s.Command[i:], "run") {
				t.Errorf("command %q, want tunnel ... run", s.Command)
			}
			if !slices.Contains(s.Command, "--no-autoupdate") {
				t.Errorf("command %q: a container cannot update itself; want --no-autoupdate", s.Command)
			}
			for _, a := range s.Command {
				if strings.HasPrefix(a, "--token") || strings.HasPrefix(a, "--url") {
					t.Errorf("command %q: %s; the token comes from TUNNEL_TOKEN and the routes from the tunnel's config in Zero Trust", s.Command, a)
				}
			}
			got, ok := s.Environment["TUNNEL_TOKEN"]
			if !ok {
				t.Fatal("no TUNNEL_TOKEN in the environment")
			}
			if (got == nil) != (tc.token == nil) || got != nil && *got != *tc.token {
				t.Errorf("TUNNEL_TOKEN = %v, want %v: only ever the caller's", got, tc.token)
			}
			if d, ok := s.DependsOn["postured"]; !ok || d.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on postured = %+v, want condition service_healthy", d)
			}
			if len(s.Ports) > 0 {
				t.Errorf("publishes %+v: a tunnel only connects out", s.Ports)
			}
		})
	}
	raw, err := os.ReadFile(filepath.Join(root, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string][]byte{composeFile: raw, "README.md": readme} {
		if !bytes.Contains(text, []byte("--profile cloudflared up")) {
			t.Errorf("%s does not say how to start the cloudflared profile", name)
		}
	}
}
