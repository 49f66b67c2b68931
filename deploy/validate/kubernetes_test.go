package validate

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const kubernetesDir = "deploy/kubernetes"

// kubernetesObjects reads every manifest kustomization.yaml lists, and
// checks it lists every manifest in the directory (a file left out would
// silently not be applied).
func kubernetesObjects(t *testing.T) objects {
	t.Helper()
	dir := filepath.Join(composeRepoRoot(t), kubernetesDir)
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Resources  []string
		Labels     []struct {
			Pairs map[string]string `json:"pairs"`
		} `json:"labels"`
	}
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml is %s %s", k.APIVersion, k.Kind)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if n := e.Name(); n != "kustomization.yaml" && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			files = append(files, n)
		}
	}
	if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, files) {
		t.Errorf("kustomization.yaml resources %q, the directory has %q", got, files)
	}
	var docs [][]byte
	for _, f := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, splitYAML(t, f, data)...)
	}
	return decodeObjects(t, kubernetesDir, docs)
}

func TestKubernetesManifests(t *testing.T) {
	o := kubernetesObjects(t)
	w := checkWorkload(t, kubernetesDir, o)
	if len(o.pdbs) != 1 {
		t.Errorf("%d PodDisruptionBudgets, want 1", len(o.pdbs))
	}
	if r := w.deployment.Spec.Replicas; r == nil || *r < 2 {
		t.Errorf("replicas %v: want at least 2, so a rollout or drain keeps one serving", r)
	}
	// The image is set with `kustomize edit set image postured=...`, which
	// matches on the name alone.
	if img := w.container.Image; img != "postured" {
		t.Errorf("image %q, want postured (kustomize's images: name)", img)
	}
	if w.config.AdminListen == "" {
		t.Error("no admin_listen: /metrics and the detailed /readyz would be on the posture port")
	}
	// The one `kubectl create secret` command in kustomization.yaml
	// creates every key the pod reads.
	kust, err := os.ReadFile(filepath.Join(composeRepoRoot(t), kubernetesDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, e := range w.env {
		if e.fromSecret == nil {
			continue
		}
		if e.fromSecret.Name != "postured-vendor-credentials" {
			t.Errorf("env %s from Secret %s, want postured-vendor-credentials", name, e.fromSecret.Name)
		}
		if !strings.Contains(string(kust), "--from-literal="+e.fromSecret.Key+"=") {
			t.Errorf("kustomization.yaml's kubectl create secret lacks key %s", e.fromSecret.Key)
		}
	}
}
