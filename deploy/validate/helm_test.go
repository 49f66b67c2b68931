package validate

// The Helm chart, linted and rendered by Helm's own Go packages (what
// `helm lint` and `helm template` run) with its default values and others,
// and every rendering checked as a workload (workload_test.go).

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
)

const chartDir = "deploy/helm/postured"

// kubeVersion is the cluster version rendered for (`helm template
// --kube-version`): without one Helm assumes the Kubernetes its own build
// was stamped with, v1.20 for a library build, below the chart's minimum.
func kubeVersion(t *testing.T) *chartutil.KubeVersion {
	t.Helper()
	v, err := chartutil.ParseKubeVersion("v1.34.0")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func loadChart(t *testing.T) (*chart.Chart, string) {
	t.Helper()
	dir := filepath.Join(composeRepoRoot(t), chartDir)
	c, err := loader.Load(dir)
	if err != nil {
		t.Fatalf("%s: %v", chartDir, err)
	}
	return c, dir
}

// helmTemplate renders the chart as `helm template` does: client only, no
// cluster, default capabilities.
func helmTemplate(t *testing.T, c *chart.Chart, release string, values map[string]any) (string, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{Log: t.Logf})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.ReleaseName = release
	install.Namespace = "posture"
	install.KubeVersion = kubeVersion(t)
	rel, err := install.RunWithContext(t.Context(), c, values)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// helmObjects renders and decodes the chart's manifests.
func helmObjects(t *testing.T, c *chart.Chart, release string, values map[string]any) objects {
	t.Helper()
	out, err := helmTemplate(t, c, release, values)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var docs [][]byte
	m := releaseutil.SplitManifests(out)
	for _, name := range slices.Sorted(maps.Keys(m)) {
		docs = append(docs, splitYAML(t, name, []byte(m[name]))...)
	}
	return decodeObjects(t, "helm template", docs)
}

func TestHelmChart(t *testing.T) {
	c, dir := loadChart(t)
	falconOnly := map[string]any{
		"access":    map[string]any{"team_domain": "acme.cloudflareaccess.com", "audience": []any{"aud-1"}},
		"posture":   map[string]any{"s2s_id_from": []any{"falcon"}, "deadline": "3s"},
		"providers": []any{map[string]any{"name": "falcon", "type": "crowdstrike", "weight": 1, "base_url": "https://api.eu-1.crowdstrike.com", "client_id": "${FALCON_CLIENT_ID}", "client_secret": "${FALCON_CLIENT_SECRET}"}},
		"cache":     map[string]any{"backend": "memory", "ttl": "2m", "max_entries": 2000000},
	}
	for _, tc := range []struct {
		name   string
		values map[string]any
		// check is what this rendering must show beyond a sound workload.
		check func(t *testing.T, o objects, w workload)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, o objects, w workload) {
				if r := w.deployment.Spec.Replicas; r == nil || *r != 2 {
					t.Errorf("replicas %v, want 2", r)
				}
				if w.config.Cache.Backend != "memory" || w.config.AdminListen != ":9090" {
					t.Errorf("cache %q, admin_listen %q: want memory and :9090", w.config.Cache.Backend, w.config.AdminListen)
				}
				if len(o.pdbs) != 1 || len(o.serviceMonitors) != 0 || len(o.services) != 1 {
					t.Errorf("%d PDBs, %d ServiceMonitors, %d Services: want 1, 0, 1", len(o.pdbs), len(o.serviceMonitors), len(o.services))
				}
				if got := w.container.Image; got != "postured:0.1.0" {
					t.Errorf("image %q, want postured:<appVersion>", got)
				}
				if got := len(secretEnv(w)); got != 7 {
					t.Errorf("%d variables from the Secret, want the 7 vendor credentials", got)
				}
			},
		},
		{
			name: "redis url, ServiceMonitor, three replicas, one vendor",
			values: map[string]any{
				"replicaCount":   3,
				"image":          map[string]any{"repository": "registry.example.com/postured", "tag": "1.2.3"},
				"redis":          map[string]any{"url": "redis://redis-master.cache.svc:6379/0"},
				"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
				"secrets":        map[string]any{"existingSecret": "falcon-api", "keys": []any{"FALCON_CLIENT_ID", "FALCON_CLIENT_SECRET"}},
				"resources":      map[string]any{"requests": map[string]any{"cpu": "250m", "memory": "256Mi"}, "limits": map[string]any{"memory": "1Gi"}},
				"config":         falconOnly,
			},
			check: func(t *testing.T, o objects, w workload) {
				if r := w.deployment.Spec.Replicas; r == nil || *r != 3 {
					t.Errorf("replicas %v, want 3", r)
				}
				if w.config.Cache.Backend != "redis" || w.config.Cache.RedisURL.Reveal() != "redis://redis-master.cache.svc:6379/0" {
					t.Errorf("cache backend %q: want redis at the values' URL", w.config.Cache.Backend)
				}
				// The chart sets backend and URL and keeps the rest.
				if ttl := w.config.Cache.TTL.String(); ttl != "2m0s" || w.config.Cache.MaxEntries != 2000000 {
					t.Errorf("cache ttl %s, max_entries %d: the values' cache section was lost", ttl, w.config.Cache.MaxEntries)
				}
				if len(w.config.Providers.Configs) != 1 || w.config.Providers.Configs[0].Base().Name != "falcon" {
					t.Errorf("providers %+v, want the values' falcon alone", w.config.Providers.Configs)
				}
				if len(o.serviceMonitors) != 1 || o.serviceMonitors[0].Labels["release"] != "kube-prometheus-stack" {
					t.Errorf("ServiceMonitors %+v: want one with the values' labels", o.serviceMonitors)
				}
				if got := w.container.Image; got != "registry.example.com/postured:1.2.3" {
					t.Errorf("image %q", got)
				}
				if lim := w.container.Resources.Limits.Memory(); lim.Cmp(quantity(t, "1Gi")) != 0 {
					t.Errorf("memory limit %s, want the values' 1Gi", lim)
				}
				for name, e := range secretEnv(w) {
					if e.fromSecret.Name != "falcon-api" {
						t.Errorf("%s from Secret %s, want falcon-api", name, e.fromSecret.Name)
					}
				}
			},
		},
		{
			name: "no admin port, Redis URL from the Secret, no PDB, one replica",
			values: map[string]any{
				"replicaCount":        1,
				"fullnameOverride":    "posture-api",
				"adminPort":           0,
				"redis":               map[string]any{"existingSecretKey": "REDIS_URL"},
				"podDisruptionBudget": map[string]any{"enabled": false},
				"serviceMonitor":      map[string]any{"enabled": true},
			},
			check: func(t *testing.T, o objects, w workload) {
				if w.config.AdminListen != "" {
					t.Errorf("admin_listen %q with adminPort 0", w.config.AdminListen)
				}
				if e := w.env["REDIS_URL"]; e.fromSecret == nil || e.fromSecret.Key != "REDIS_URL" || w.config.Cache.Backend != "redis" {
					t.Errorf("REDIS_URL %+v, cache %q: want redis with the URL from the Secret", e, w.config.Cache.Backend)
				}
				if len(o.pdbs) != 0 || len(o.services) != 1 || o.services[0].Name != "posture-api" {
					t.Errorf("%d PDBs, Services %d: want none and posture-api alone", len(o.pdbs), len(o.services))
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			linter := lint.AllWithKubeVersion(dir, tc.values, "posture", kubeVersion(t))
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				}
			}
			o := helmObjects(t, c, "postured", tc.values)
			w := checkWorkload(t, "helm template "+tc.name, o)
			tc.check(t, o, w)
		})
	}
}

// secretEnv is the container's variables read from a Secret.
func secretEnv(w workload) map[string]envVar {
	out := map[string]envVar{}
	for k, e := range w.env {
		if e.fromSecret != nil {
			out[k] = e
		}
	}
	return out
}

// TestHelmRefuses: values that would run postured wrong fail the render
// with a message saying why.
func TestHelmRefuses(t *testing.T) {
	c, _ := loadChart(t)
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"keys without a Secret", map[string]any{"secrets": map[string]any{"existingSecret": ""}}, "the chart holds no secret values"},
		{"both Redis URLs", map[string]any{"redis": map[string]any{"url": "redis://r:6379/0", "existingSecretKey": "REDIS_URL"}}, "not both"},
		{"admin port on the posture port", map[string]any{"adminPort": 8080}, "adminPort must differ from port"},
		{"a misspelt value", map[string]any{"replicas": 3}, "replicas"},
		{"listen in config", map[string]any{"config": map[string]any{"listen": ":9999"}}, "config"},
		{"a Redis URL that is not one", map[string]any{"redis": map[string]any{"url": "redis-master:6379"}}, "/redis/url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := helmTemplate(t, c, "postured", tc.values)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestHelmMatchesKubernetes: the chart's default config is the one
// deploy/kubernetes ships, so the two do not drift apart.
func TestHelmMatchesKubernetes(t *testing.T) {
	c, _ := loadChart(t)
	h := checkWorkload(t, "helm template", helmObjects(t, c, "postured", nil))
	k := checkWorkload(t, kubernetesDir, kubernetesObjects(t))
	hc, kc := marshalConfig(t, h), marshalConfig(t, k)
	if hc != kc {
		t.Errorf("the chart's default config differs from %s's:\nhelm:\n%s\nkubernetes:\n%s", kubernetesDir, hc, kc)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(secretEnv(h))), slices.Sorted(maps.Keys(secretEnv(k)))) {
		t.Errorf("secret variables differ: helm %v, kubernetes %v", slices.Sorted(maps.Keys(secretEnv(h))), slices.Sorted(maps.Keys(secretEnv(k))))
	}
}

// marshalConfig is the parsed config as check-config prints it.
func marshalConfig(t *testing.T, w workload) string {
	t.Helper()
	out, err := yaml.Marshal(w.config)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
