{{/* The chart's name. */}}
{{- define "secretpatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every object: the release name, with the chart's added unless it is in it. */}}
{{- define "secretpatch.fullname" -}}
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

{{/* The labels the pods are selected by. */}}
{{- define "secretpatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "secretpatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object. */}}
{{- define "secretpatch.labels" -}}
{{ include "secretpatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "secretpatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "secretpatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name: name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret with tls.crt, tls.key and ca.crt. */}}
{{- define "secretpatch.secretName" -}}
{{- default (printf "%s-tls" (include "secretpatch.fullname" .)) .Values.certificates.secretName }}
{{- end }}

{{- define "secretpatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The DNS names the API server may use for the Service. */}}
{{- define "secretpatch.dnsNames" -}}
{{- $svc := include "secretpatch.fullname" . }}
{{- list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) | toJson }}
{{- end }}

{{/* A template path as a ConfigMap key ("/" cannot be in one). */}}
{{- define "secretpatch.fileKey" -}}
{{- if not (regexMatch "^[-._a-zA-Z0-9/]+$" .) }}
{{- fail (printf "templates: %q is not a template path (letters, digits, '.', '-', '_' and '/')" .) }}
{{- end }}
{{- replace "/" "__" . }}
{{- end }}

{{/* The fewest replicas there will be: a PodDisruptionBudget is safe only from two. */}}
{{- define "secretpatch.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* The configuration file: the values' config, with the folders the chart mounts. */}}
{{- define "secretpatch.configFile" -}}
{{- $own := deepCopy (default dict .Values.config.secretpatch) }}
{{- if or .Values.rules .Values.existingRulesConfigMap }}
{{- $_ := set $own "rules" "/etc/secretpatch/rules" }}
{{- end }}
{{- if or .Values.templates .Values.existingTemplatesConfigMaps }}
{{- $_ := set $own "templates" "/etc/secretpatch/templates" }}
{{- end }}
{{- $config := dict "webhook" .Values.config.webhook }}
{{- if $own }}
{{- $_ := set $config "secretpatch" $own }}
{{- end }}
{{- toYaml $config }}
{{- end }}
