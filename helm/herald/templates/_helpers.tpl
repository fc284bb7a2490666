{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, or the release name if it contains the chart name. */}}
{{- define "herald.fullname" -}}
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

{{- define "herald.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ include "herald.chart" . }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* Container ports follow the listeners in herald.json ("host:port"). */}}
{{- define "herald.httpPort" -}}
{{- $listen := dig "http" "listen" "0.0.0.0:8080" .Values.config }}
{{- regexReplaceAll "^.*:" $listen "" }}
{{- end }}

{{- define "herald.wsPort" -}}
{{- $listen := dig "ws" "listen" "0.0.0.0:8081" .Values.config }}
{{- regexReplaceAll "^.*:" $listen "" }}
{{- end }}

{{/*
Grace period: herald drains within shutdown_timeout_s after SIGTERM, which
comes after the preStop sleep; leave 5 s of margin before SIGKILL.
*/}}
{{- define "herald.terminationGracePeriodSeconds" -}}
{{- $shutdown := int (dig "shutdown_timeout_s" 10 .Values.config) }}
{{- $needed := add $shutdown (int .Values.preStopSleepSeconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $needed 5 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be larger than config.shutdown_timeout_s + preStopSleepSeconds (%d)" (int .Values.terminationGracePeriodSeconds) $needed) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}
