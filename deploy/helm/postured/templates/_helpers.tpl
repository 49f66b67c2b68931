{{/* The chart's name, overridable. */}}
{{- define "postured.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource names: the release name, with the chart's unless it has it. */}}
{{- define "postured.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "postured.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postured.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "postured.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "postured.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Whether the cache is Redis, from either redis value. */}}
{{- define "postured.redis" -}}
{{- if or .Values.redis.url .Values.redis.existingSecretKey }}true{{ end }}
{{- end }}

{{/*
postured.yaml: .Values.config with what the chart owns set from the
values (listen, admin_listen, the Redis cache).
*/}}
{{- define "postured.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "listen" (printf ":%d" (int .Values.port)) }}
{{- if .Values.adminPort }}
{{- $_ := set $cfg "admin_listen" (printf ":%d" (int .Values.adminPort)) }}
{{- else }}
{{- $_ := unset $cfg "admin_listen" }}
{{- end }}
{{- if include "postured.redis" . }}
{{- $cache := deepCopy (default dict $cfg.cache) }}
{{- $_ := set $cache "backend" "redis" }}
{{- $_ := set $cache "redis_url" "${REDIS_URL}" }}
{{- $_ := set $cfg "cache" $cache }}
{{- end }}
{{- toYaml $cfg }}
{{- end }}

{{/* The port /metrics is served on: admin_listen's, else the posture one. */}}
{{- define "postured.metricsPortName" -}}
{{- if .Values.adminPort }}admin{{ else }}http{{ end }}
{{- end }}
