{{- define "batch-server.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "batch-server.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "batch-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "batch-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "batch-server.labels" -}}
{{ include "batch-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "batch-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "batch-server.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "batch-server.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- $tag := $image.tag | default (printf "%s%s" .Chart.AppVersion (ternary "-cuda" "" .Values.gpu.enabled)) -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Seconds the kubelet waits after deletion: preStop sleep, then the drain, then a margin. */}}
{{- define "batch-server.terminationGracePeriodSeconds" -}}
{{- $floor := add (int .Values.preStopSleepSeconds) (int .Values.server.exitTimeoutSecs) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (int .Values.terminationGracePeriodSeconds) $floor -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed preStopSleepSeconds + server.exitTimeoutSecs (%d), or the kubelet kills pods still draining" (int .Values.terminationGracePeriodSeconds) $floor) -}}
{{- end -}}
{{- int .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- add $floor 15 -}}
{{- end -}}
{{- end -}}

{{- define "batch-server.httpScheme" -}}
{{- if .Values.tls.http.enabled }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{/* batch-server's command line: only flags BatchServerCommand defines. */}}
{{- define "batch-server.args" -}}
{{- $s := .Values.server -}}
- --model-repository={{ .Values.modelRepository.mountPath }}
- --host=0.0.0.0
- --http-port={{ int $s.httpPort }}
- --grpc-port={{ int $s.grpcPort }}
- --metrics-port={{ int $s.metricsPort }}
- --model-control-mode={{ $s.modelControlMode }}
{{- range $s.loadModels }}
- --load-model={{ . }}
{{- end }}
- --strict-readiness={{ $s.strictReadiness }}
- --exit-timeout-secs={{ int $s.exitTimeoutSecs }}
- --log-format={{ $s.logFormat }}
- --log-verbose={{ int $s.logVerbose }}
{{- with .Values.tls }}
{{- if .http.enabled }}
- --http-use-ssl=true
- --http-server-cert=/etc/batchserver/tls/tls.crt
- --http-server-key=/etc/batchserver/tls/tls.key
{{- end }}
{{- if .grpc.enabled }}
- --grpc-use-ssl=true
- --grpc-server-cert=/etc/batchserver/tls/tls.crt
- --grpc-server-key=/etc/batchserver/tls/tls.key
{{- if .grpc.mutual }}
- --grpc-use-ssl-mutual=true
- --grpc-root-cert=/etc/batchserver/tls/ca.crt
{{- end }}
{{- end }}
{{- if .metrics.enabled }}
- --metrics-use-ssl=true
- --metrics-server-cert=/etc/batchserver/tls/tls.crt
- --metrics-server-key=/etc/batchserver/tls/tls.key
{{- end }}
{{- end }}
{{- if .Values.auth.tokensSecretName }}
- --auth-tokens-file=/etc/batchserver/auth/{{ .Values.auth.tokensKey }}
# The kubelet's probes carry no token.
- --auth-open-health=true
- --audit-log={{ .Values.auth.auditLog }}
{{- end }}
{{- range $s.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* Settings that render valid YAML but cannot work; fail early with the reason. */}}
{{- define "batch-server.validate" -}}
{{- $tls := .Values.tls -}}
{{- if and (or $tls.http.enabled $tls.grpc.enabled $tls.metrics.enabled) (not $tls.secretName) -}}
{{- fail "tls.http.enabled / tls.grpc.enabled / tls.metrics.enabled need tls.secretName" -}}
{{- end -}}
{{- if and $tls.metrics.enabled .Values.serviceMonitor.enabled (not $tls.metrics.serverName) -}}
{{- fail "tls.metrics.enabled with a ServiceMonitor needs tls.metrics.serverName: Prometheus scrapes pod IPs, so it must be told which certificate name to expect" -}}
{{- end -}}
{{- if $tls.http.mutual -}}
{{- fail "tls.http.mutual is not supported: the kubelet's HTTP probes present no client certificate; use mutual TLS on gRPC" -}}
{{- end -}}
{{- if and $tls.grpc.mutual (not $tls.grpc.enabled) -}}
{{- fail "tls.grpc.mutual needs tls.grpc.enabled" -}}
{{- end -}}
{{- $mr := .Values.modelRepository -}}
{{- if and (not $mr.initContainer.enabled) (not $mr.persistentVolumeClaim.claimName) -}}
{{- fail "modelRepository: set persistentVolumeClaim.claimName or enable initContainer" -}}
{{- end -}}
{{- if and $mr.initContainer.enabled (not $mr.initContainer.image) -}}
{{- fail "modelRepository.initContainer.enabled needs modelRepository.initContainer.image" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.auth.tokensSecretName (not .Values.serviceMonitor.bearerTokenSecret.name) -}}
{{- fail "with auth.tokensSecretName, /metrics needs a token: set serviceMonitor.bearerTokenSecret" -}}
{{- end -}}
{{- if and .Values.server.loadModels (ne .Values.server.modelControlMode "explicit") -}}
{{- fail "server.loadModels needs server.modelControlMode: explicit" -}}
{{- end -}}
{{- end -}}
