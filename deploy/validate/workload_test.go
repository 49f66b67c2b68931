package validate

// Kubernetes objects, from deploy/kubernetes or rendered by the Helm
// chart, decoded strictly into the API types (an unknown or misspelt field
// fails) and checked as one workload: the config the pods read passes
// postured's own Parse with the environment the pod gives it, every
// secret in it comes from a Secret, probes and Services reach the ports
// that config listens on, and the pod runs locked down.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/postured/postured/internal/app"
)

// objects is one workload's decoded manifests.
type objects struct {
	deployments     []appsv1.Deployment
	services        []corev1.Service
	configMaps      []corev1.ConfigMap
	pdbs            []policyv1.PodDisruptionBudget
	serviceMonitors []serviceMonitor
}

// serviceMonitor is the part of a prometheus-operator ServiceMonitor
// checked here; its Go types would pull in the operator.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port          string `json:"port"`
			Path          string `json:"path"`
			Interval      string `json:"interval"`
			ScrapeTimeout string `json:"scrapeTimeout"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// splitYAML splits a multi-document YAML stream, dropping documents that
// hold only comments.
func splitYAML(t *testing.T, what string, data []byte) [][]byte {
	t.Helper()
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var n yaml.Node
		if err := yaml.Unmarshal(doc, &n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if len(n.Content) > 0 {
			docs = append(docs, doc)
		}
	}
}

// decodeStrict decodes one YAML document into out, refusing unknown
// fields and duplicate keys as the API server's strict validation does.
func decodeStrict(doc []byte, out any) error {
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// decodeObjects decodes every document; a kind postured does not ship
// (a Secret above all: no secret values in git or in the chart) fails.
func decodeObjects(t *testing.T, what string, docs [][]byte) objects {
	t.Helper()
	var o objects
	for i, doc := range docs {
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("%s: document %d: %v", what, i, err)
		}
		var err error
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			var d appsv1.Deployment
			err = decodeStrict(doc, &d)
			o.deployments = append(o.deployments, d)
		case "v1 Service":
			var s corev1.Service
			err = decodeStrict(doc, &s)
			o.services = append(o.services, s)
		case "v1 ConfigMap":
			var c corev1.ConfigMap
			err = decodeStrict(doc, &c)
			o.configMaps = append(o.configMaps, c)
		case "policy/v1 PodDisruptionBudget":
			var p policyv1.PodDisruptionBudget
			err = decodeStrict(doc, &p)
			o.pdbs = append(o.pdbs, p)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			var m serviceMonitor
			// Not strict: only the fields above are modelled.
			err = sigsyaml.Unmarshal(doc, &m)
			o.serviceMonitors = append(o.serviceMonitors, m)
		default:
			t.Errorf("%s: document %d is %s %s, which postured does not ship", what, i, tm.APIVersion, tm.Kind)
			continue
		}
		if err != nil {
			t.Errorf("%s: document %d (%s): %v", what, i, tm.Kind, err)
		}
	}
	return o
}

// workload is what checkWorkload found, for the caller's own checks.
type workload struct {
	deployment appsv1.Deployment
	container  corev1.Container
	config     *app.Config
	// env is the container's environment: plain values, and a marker for
	// each variable read from a Secret.
	env map[string]envVar
}

type envVar struct {
	value      string
	fromSecret *corev1.SecretKeySelector
}

// secretKeys are config keys whose values are credentials: each must be
// a whole ${NAME} whose NAME the pod reads from a Secret.
var secretKeys = []string{"client_secret", "password", "api_token", "seal_key"}

// checkWorkload checks o as one postured Deployment with its ConfigMap,
// Services, PodDisruptionBudget and ServiceMonitors.
func checkWorkload(t *testing.T, what string, o objects) workload {
	t.Helper()
	if len(o.deployments) != 1 || len(o.configMaps) != 1 {
		t.Fatalf("%s: %d Deployments and %d ConfigMaps, want one of each", what, len(o.deployments), len(o.configMaps))
	}
	w := workload{deployment: o.deployments[0], env: map[string]envVar{}}
	d := &w.deployment
	pod := &d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want postured alone", what, len(pod.Spec.Containers))
	}
	w.container = pod.Spec.Containers[0]
	c := &w.container

	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("%s: Deployment selector %v does not select its own pods %v (%v)", what, d.Spec.Selector, pod.Labels, err)
	}

	// The config file: args, mount, ConfigMap, key.
	if len(c.Args) != 3 || c.Args[0] != "serve" || c.Args[1] != "-c" {
		t.Fatalf("%s: args %q, want serve -c FILE", what, c.Args)
	}
	cfgFile := c.Args[2]
	cm := configMapAt(t, what, pod.Spec, *c, cfgFile, o.configMaps[0])
	data, ok := cm.Data[path.Base(cfgFile)]
	if !ok {
		t.Fatalf("%s: ConfigMap %s has no key %s (keys %v)", what, cm.Name, path.Base(cfgFile), slices.Sorted(maps.Keys(cm.Data)))
	}

	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			w.env[e.Name] = envVar{value: e.Value}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name == "" || ref.Key == "" {
				t.Errorf("%s: env %s: secretKeyRef without name or key", what, e.Name)
			}
			if ref.Optional != nil && *ref.Optional {
				t.Errorf("%s: env %s: optional secret: a missing key would start postured with an empty credential", what, e.Name)
			}
			// A value any field accepts: a host name label, as a tenant id may be.
			w.env[e.Name] = envVar{value: "secret-" + strings.ToLower(strings.ReplaceAll(e.Name, "_", "-")), fromSecret: ref}
		}
		if e.Name == "GOMEMLIMIT" {
			// postured serve sets 90% of the container's limit; a
			// GOMEMLIMIT would override it, at 100% from limits.memory
			// leaving nothing for what is not heap.
			t.Errorf("%s: GOMEMLIMIT set: serve derives the soft limit from the container's", what)
		}
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: no memory limit: serve's soft Go memory limit is 90%% of it", what)
	}
	if len(c.EnvFrom) > 0 {
		t.Errorf("%s: envFrom %v: name every variable, so the config's ${NAME}s can be checked", what, c.EnvFrom)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(data), &root); err != nil {
		t.Fatalf("%s: postured.yaml: %v", what, err)
	}
	// A Redis URL read from a Secret stands in as one.
	walkMappings(&root, func(key, val *yaml.Node) {
		if m := wholeVar.FindStringSubmatch(val.Value); key.Value == "redis_url" && m != nil && w.env[m[1]].fromSecret != nil {
			e := w.env[m[1]]
			e.value = "redis://postured:secret@redis.invalid:6379/0"
			w.env[m[1]] = e
		}
	})
	getenv := func(k string) (string, bool) { v, ok := w.env[k]; return v.value, ok }
	w.config, err = app.Parse([]byte(data), app.Registry(), getenv)
	if err != nil {
		t.Fatalf("%s: postured.yaml fails check-config with the pod's environment: %v\n%s", what, err, data)
	}
	for _, warn := range w.config.Warnings() {
		t.Errorf("%s: postured.yaml: check-config warns: %v", what, warn)
	}
	checkConfigSecrets(t, what, &root, w.env)
	checkConfigHTTPS(t, what, &root, w.env)

	// Ports and probes.
	listen := listenPort(t, what, "listen", w.config.Listen)
	if got := containerPortNamed(*c, "http"); got != listen {
		t.Errorf("%s: container port http is %d, postured listens on %d", what, got, listen)
	}
	metricsPort := listen
	if w.config.AdminListen != "" {
		metricsPort = listenPort(t, what, "admin_listen", w.config.AdminListen)
		if got := containerPortNamed(*c, "admin"); got != metricsPort {
			t.Errorf("%s: container port admin is %d, admin_listen is %d", what, got, metricsPort)
		}
	} else if got := containerPortNamed(*c, "admin"); got != 0 {
		t.Errorf("%s: container port admin %d, but no admin_listen", what, got)
	}
	for _, p := range []struct {
		name, path string
		probe      *corev1.Probe
		required   bool
	}{
		{"liveness", "/healthz", c.LivenessProbe, true},
		{"readiness", "/readyz", c.ReadinessProbe, true},
		{"startup", "/healthz", c.StartupProbe, false},
	} {
		if p.probe == nil {
			if p.required {
				t.Errorf("%s: no %s probe", what, p.name)
			}
			continue
		}
		g := p.probe.HTTPGet
		if g == nil {
			t.Errorf("%s: %s probe is not httpGet", what, p.name)
			continue
		}
		if g.Path != p.path || resolvePort(*c, g.Port) != listen || (g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP) {
			t.Errorf("%s: %s probe GET %s://:%s%s, want http on %d %s", what, p.name, g.Scheme, g.Port.String(), g.Path, listen, p.path)
		}
	}
	if port, ok := pod.Annotations["prometheus.io/port"]; ok && port != strconv.Itoa(int(metricsPort)) {
		t.Errorf("%s: prometheus.io/port %s, /metrics is on %d", what, port, metricsPort)
	}

	checkLockedDown(t, what, pod.Spec, *c)

	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("%s: resources %+v: want cpu and memory requests and a memory limit", what, c.Resources)
	} else if req.Memory().Cmp(*lim.Memory()) > 0 {
		t.Errorf("%s: memory request %s above its limit %s", what, req.Memory(), lim.Memory())
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	if st := time.Duration(w.config.Server.ShutdownTimeout); time.Duration(grace)*time.Second <= st {
		t.Errorf("%s: terminationGracePeriodSeconds %d <= server.shutdown_timeout %v: the kubelet would kill in-flight batches", what, grace, st)
	}

	checkServices(t, what, o, w, listen, metricsPort)
	checkPDBs(t, what, o.pdbs, *d)
	return w
}

// configMapAt finds the ConfigMap volume mounted over the config file's
// directory, read-only, and checks it is cm.
func configMapAt(t *testing.T, what string, spec corev1.PodSpec, c corev1.Container, file string, cm corev1.ConfigMap) corev1.ConfigMap {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.MountPath != path.Dir(file) {
			continue
		}
		if !m.ReadOnly {
			t.Errorf("%s: config mount %s is not readOnly", what, m.MountPath)
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
				t.Fatalf("%s: volume %s is not ConfigMap %s", what, v.Name, cm.Name)
			}
			if len(v.ConfigMap.Items) > 0 {
				t.Fatalf("%s: volume %s maps items; mount the ConfigMap's keys as they are", what, v.Name)
			}
			return cm
		}
		t.Fatalf("%s: mount %s names no volume", what, m.Name)
	}
	t.Fatalf("%s: nothing mounted at %s for %s", what, path.Dir(file), file)
	return cm
}

var wholeVar = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// checkConfigSecrets walks postured.yaml as written: a credential is a
// whole ${NAME} read from a Secret, and a redis_url from a plain variable
// carries no password.
func checkConfigSecrets(t *testing.T, what string, n *yaml.Node, env map[string]envVar) {
	t.Helper()
	walkMappings(n, func(key, val *yaml.Node) {
		switch {
		case slices.Contains(secretKeys, key.Value):
			m := wholeVar.FindStringSubmatch(val.Value)
			if m == nil {
				t.Errorf("%s: postured.yaml line %d: %s is written in the config; want ${NAME} from a Secret", what, val.Line, key.Value)
			} else if env[m[1]].fromSecret == nil {
				t.Errorf("%s: postured.yaml line %d: %s reads ${%s}, which the pod does not take from a Secret", what, val.Line, key.Value, m[1])
			}
		case key.Value == "redis_url":
			m := wholeVar.FindStringSubmatch(val.Value)
			if m == nil {
				t.Errorf("%s: postured.yaml line %d: redis_url is written in the config; want ${NAME}", what, val.Line)
				return
			}
			if e := env[m[1]]; e.fromSecret == nil {
				if u, err := url.Parse(e.value); err != nil || u.User != nil {
					t.Errorf("%s: ${%s} holds a Redis URL with credentials in the pod spec; read it from a Secret", what, m[1])
				}
			}
		}
	})
}

// checkConfigHTTPS: a real tenant's vendor and certs URLs are https.
func checkConfigHTTPS(t *testing.T, what string, n *yaml.Node, env map[string]envVar) {
	t.Helper()
	walkMappings(n, func(key, val *yaml.Node) {
		if !slices.Contains([]string{"base_url", "token_url", "certs_url"}, key.Value) {
			return
		}
		raw := val.Value
		if m := wholeVar.FindStringSubmatch(raw); m != nil {
			raw = env[m[1]].value
		}
		if u, err := url.Parse(raw); err != nil || u.Scheme != "https" || u.Host == "" {
			t.Errorf("%s: postured.yaml line %d: %s %q is not an https URL", what, val.Line, key.Value, val.Value)
		}
	})
}

// walkMappings calls f on every key and value of every mapping under n.
func walkMappings(n *yaml.Node, f func(key, val *yaml.Node)) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			f(n.Content[i], n.Content[i+1])
		}
	}
	for _, c := range n.Content {
		walkMappings(c, f)
	}
}

func listenPort(t *testing.T, what, key, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", what, key, addr, err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		t.Fatalf("%s: %s %q: want a fixed port", what, key, addr)
	}
	return int32(n)
}

func containerPortNamed(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort is the container port a probe or Service targetPort names.
func resolvePort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	return containerPortNamed(c, p.StrVal)
}

// checkLockedDown: non-root, read-only root, no capabilities, no
// privilege escalation, the runtime's seccomp profile, no API token.
func checkLockedDown(t *testing.T, what string, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("%s: container has no securityContext", what)
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(sc.RunAsNonRoot) && (sc.RunAsNonRoot != nil || !isTrue(psc.RunAsNonRoot)) {
		t.Errorf("%s: runAsNonRoot is not true", what)
	}
	uid := psc.RunAsUser
	if sc.RunAsUser != nil {
		uid = sc.RunAsUser
	}
	if uid != nil && *uid == 0 {
		t.Errorf("%s: runAsUser 0", what)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("%s: readOnlyRootFilesystem is not true", what)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", what)
	}
	if isTrue(sc.Privileged) {
		t.Errorf("%s: privileged", what)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", what, sc.Capabilities)
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccompProfile %+v, want RuntimeDefault", what, seccomp)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken is not false: postured needs no API token", what)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: shares the node's namespaces", what)
	}
}

// checkServices: each Service selects the pods and targets a port they
// have; one carries the posture port; none but a ClusterIP carries the
// unauthenticated admin port; each ServiceMonitor scrapes /metrics
// through exactly one Service.
func checkServices(t *testing.T, what string, o objects, w workload, listen, metricsPort int32) {
	t.Helper()
	pod := w.deployment.Spec.Template
	posture := false
	svcLabels := map[string]labels.Set{}
	for _, s := range o.services {
		svcLabels[s.Name] = labels.Set(s.Labels)
		if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: Service %s selector %v does not select the pods %v", what, s.Name, s.Spec.Selector, pod.Labels)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			got := resolvePort(w.container, target)
			switch {
			case got == 0:
				t.Errorf("%s: Service %s port %s targets %s, which the container does not have", what, s.Name, p.Name, target.String())
			case got == listen:
				posture = true
			case got == metricsPort && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP:
				t.Errorf("%s: Service %s (%s) exposes the unauthenticated admin port", what, s.Name, s.Spec.Type)
			}
		}
	}
	if !posture {
		t.Errorf("%s: no Service reaches the posture port %d", what, listen)
	}
	for _, m := range o.serviceMonitors {
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil {
			t.Errorf("%s: ServiceMonitor %s: %v", what, m.Name, err)
			continue
		}
		var picked []corev1.Service
		for _, s := range o.services {
			if !sel.Empty() && sel.Matches(svcLabels[s.Name]) {
				picked = append(picked, s)
			}
		}
		if len(picked) != 1 {
			t.Errorf("%s: ServiceMonitor %s selects %d Services, want 1", what, m.Name, len(picked))
			continue
		}
		if len(m.Spec.Endpoints) == 0 {
			t.Errorf("%s: ServiceMonitor %s has no endpoints", what, m.Name)
		}
		for _, e := range m.Spec.Endpoints {
			var port int32
			for _, p := range picked[0].Spec.Ports {
				if p.Name == e.Port {
					port = resolvePort(w.container, p.TargetPort)
				}
			}
			if port != metricsPort || e.Path != "/metrics" {
				t.Errorf("%s: ServiceMonitor %s scrapes port %q (container port %d) %s, want /metrics on %d", what, m.Name, e.Port, port, e.Path, metricsPort)
			}
		}
	}
}

// checkPDBs: each budget covers the pods and lets a drain evict one.
func checkPDBs(t *testing.T, what string, pdbs []policyv1.PodDisruptionBudget, d appsv1.Deployment) {
	t.Helper()
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	for _, p := range pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: PodDisruptionBudget %s does not select the pods (%v)", what, p.Name, err)
		}
		if p.Spec.MinAvailable == nil || p.Spec.MinAvailable.Type != intstr.Int {
			t.Errorf("%s: PodDisruptionBudget %s: want an integer minAvailable", what, p.Name)
			continue
		}
		if p.Spec.MinAvailable.IntVal >= replicas {
			t.Errorf("%s: PodDisruptionBudget %s minAvailable %d with %d replicas: no node could ever be drained", what, p.Name, p.Spec.MinAvailable.IntVal, replicas)
		}
	}
}

// quantity is a resource quantity, for callers comparing values.
func quantity(t *testing.T, s string) resource.Quantity {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatal(fmt.Errorf("quantity %q: %w", s, err))
	}
	return q
}
