{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "mailpulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or the release name alone when it already holds the chart name.
*/}}
{{- define "mailpulse.fullname" -}}
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

{{- define "mailpulse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "mailpulse.labels" -}}
helm.sh/chart: {{ include "mailpulse.chart" . }}
{{ include "mailpulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mailpulse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (add app.kubernetes.io/component per workload).
*/}}
{{- define "mailpulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mailpulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "mailpulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "mailpulse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "mailpulse.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Names of the workloads' resources. */}}
{{- define "mailpulse.connect.fullname" -}}
{{- printf "%s-connect" (include "mailpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "mailpulse.worker.fullname" -}}
{{- printf "%s-worker" (include "mailpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "mailpulse.worker.headless" -}}
{{- printf "%s-worker-peers" (include "mailpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "mailpulse.configMapName" -}}
{{- printf "%s-config" (include "mailpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the pods find the config file and the worker its state. */}}
{{- define "mailpulse.configDir" -}}/etc/mailpulse{{- end }}
{{- define "mailpulse.configPath" -}}/etc/mailpulse/mailpulse.yaml{{- end }}
{{- define "mailpulse.dataDir" -}}/var/lib/mailpulse{{- end }}

{{/*
The mailpulse config file, from .Values.config plus the keys the chart owns.
Secrets are never written here: the checks below refuse a literal sasl_password
or provider key, and every ${VAR} without a default must come from secretEnv,
extraEnv or the chart's own MAILPULSE_ADVERTISED_HOST.
*/}}
{{- define "mailpulse.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $kafka := default dict $config.kafka }}
{{- with .Values.kafkaTls }}
{{- if .existingSecret }}
{{- if .caKey }}{{ $_ := set $kafka "ssl_cafile" (printf "%s/%s" .mountPath .caKey) }}{{ end }}
{{- if .certKey }}{{ $_ := set $kafka "ssl_certfile" (printf "%s/%s" .mountPath .certKey) }}{{ end }}
{{- if .keyKey }}{{ $_ := set $kafka "ssl_keyfile" (printf "%s/%s" .mountPath .keyKey) }}{{ end }}
{{- end }}
{{- end }}
{{- $worker := default dict $config.worker }}
{{- $_ := set $worker "web_port" (int .Values.worker.port) }}
{{- $_ := set $worker "web_host" "0.0.0.0" }}
{{- $_ := set $worker "data_dir" (include "mailpulse.dataDir" .) }}
{{- $_ := set $worker "advertised_host" "${MAILPULSE_ADVERTISED_HOST}" }}
{{- $connect := default dict $config.connect }}
{{- $_ := set $connect "metrics_port" (int .Values.connect.metricsPort) }}
{{- $file := dict "kafka" $kafka "worker" $worker "connect" $connect "sources" (default list $config.sources) }}
{{- include "mailpulse.checkSecrets" (dict "file" $file "root" .) }}
{{- toYaml $file }}
{{- end }}

{{- define "mailpulse.checkSecrets" -}}
{{- $ref := "^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$" }}
{{- with .file.kafka.sasl_password }}
{{- if not (regexMatch $ref (toString .)) }}
{{- fail "config.kafka.sasl_password must be a ${VAR} reference to a secretEnv variable (e.g. ${KAFKA_PASSWORD}), never the password itself" }}
{{- end }}
{{- end }}
{{- range $i, $source := .file.sources }}
{{- range $key := list "api_key" "access_token" }}
{{- with (get $source $key) }}
{{- if not (regexMatch $ref (toString .)) }}
{{- fail (printf "config.sources[%d].%s must be a ${VAR} reference to a secretEnv variable, never the secret itself" $i $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $known := list "MAILPULSE_ADVERTISED_HOST" }}
{{- range $name, $_ := .root.Values.secretEnv }}{{ $known = append $known $name }}{{ end }}
{{- range .root.Values.extraEnv }}{{ $known = append $known .name }}{{ end }}
{{- range (regexFindAll "\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}" (toYaml .file) -1) }}
{{- $name := trimSuffix "}" (trimPrefix "${" .) }}
{{- if not (has $name $known) }}
{{- fail (printf "the config reads ${%s}, but no secretEnv (or extraEnv) entry sets %s" $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Environment of every mailpulse container: the secret variables (secretKeyRef
into existingSecret), then extraEnv.
*/}}
{{- define "mailpulse.env" -}}
{{- if and .Values.secretEnv (not .Values.existingSecret) }}
{{- fail "secretEnv names variables of existingSecret: set existingSecret to the name of your Secret" }}
{{- end }}
{{- range $name, $key := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Volumes every mailpulse pod has: the config, /tmp, the Kafka TLS files. */}}
{{- define "mailpulse.volumes" -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .root.Values.tmpSizeLimit }}
{{- with .root.Values.kafkaTls }}
{{- if .existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}
{{- end }}

{{- define "mailpulse.volumeMounts" -}}
- name: config
  mountPath: {{ include "mailpulse.configDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafkaTls.existingSecret }}
- name: kafka-tls
  mountPath: {{ .Values.kafkaTls.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Worker grace period vs session_timeout, for the simple forms (Ns, Nm); the test
suite checks every form with mailpulse's own parser.
*/}}
{{- define "mailpulse.checkGracePeriod" -}}
{{- $timeout := toString (default "30s" .Values.config.worker.session_timeout) }}
{{- $seconds := 0 }}
{{- if regexMatch "^[0-9]+s$" $timeout }}{{ $seconds = int (trimSuffix "s" $timeout) }}
{{- else if regexMatch "^[0-9]+m$" $timeout }}{{ $seconds = mul 60 (int (trimSuffix "m" $timeout)) }}
{{- end }}
{{- if le (int .Values.worker.terminationGracePeriodSeconds) $seconds }}
{{- fail (printf "worker.terminationGracePeriodSeconds (%d) must be longer than config.worker.session_timeout (%s): a worker needs that long to leave its group cleanly" (int .Values.worker.terminationGracePeriodSeconds) $timeout) }}
{{- end }}
{{- end }}
