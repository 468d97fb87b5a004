{{/* Common names and labels. */}}
{{- define "jestmesh.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "jestmesh.labels" -}}
app.kubernetes.io/part-of: jestmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "jestmesh.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{- define "jestmesh.image" -}}
{{- $reg := .root.Values.image.registry -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if $reg -}}{{ printf "%s/%s/%s:%s" $reg .root.Values.image.repository .component $tag }}{{- else -}}{{ printf "%s/%s:%s" .root.Values.image.repository .component $tag }}{{- end -}}
{{- end -}}

{{/* Environment every service shares: broker URI from the Secret, telemetry, Kestrel h2c. */}}
{{- define "jestmesh.commonEnv" -}}
- name: Messaging__Uri
  valueFrom:
    secretKeyRef:
      name: {{ .Values.rabbitmq.existingSecret }}
      key: {{ .Values.rabbitmq.uriKey }}
- {name: Messaging__QueuePrefix, value: {{ .Values.rabbitmq.queuePrefix | quote }}}
- {name: Messaging__Prefetch, value: {{ .Values.rabbitmq.prefetch | quote }}}
- {name: Messaging__InputQueueMaxLength, value: {{ .Values.rabbitmq.inputQueueMaxLength | quote }}}
- {name: Messaging__DeliveryLimit, value: {{ .Values.rabbitmq.deliveryLimit | quote }}}
- {name: ASPNETCORE_URLS, value: "http://+:8080"}
- {name: Kestrel__EndpointDefaults__Protocols, value: Http2}
{{- if .Values.otel.endpoint }}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ .Values.otel.endpoint | quote }}}
- {name: OTEL_EXPORTER_OTLP_PROTOCOL, value: {{ .Values.otel.protocol | quote }}}
{{- end }}
{{- end -}}

{{- define "jestmesh.extraEnv" -}}
{{- range $k, $v := . }}
- {name: {{ $k }}, value: {{ $v | quote }}}
{{- end }}
{{- end -}}

{{/* gRPC health probes: separate liveness and readiness service names. */}}
{{- define "jestmesh.probes" -}}
livenessProbe:
  grpc: {port: 8080, service: liveness}
  periodSeconds: 10
readinessProbe:
  grpc: {port: 8080, service: readiness}
  periodSeconds: 5
startupProbe:
  grpc: {port: 8080, service: liveness}
  periodSeconds: 5
  failureThreshold: 60
{{- end -}}

{{- define "jestmesh.referenceClaim" -}}
{{- default (printf "%s-reference" (include "jestmesh.fullname" .)) .Values.reference.existingClaim -}}
{{- end -}}
