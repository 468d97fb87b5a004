{{/* Common names and labels. */}}
{{- define "jestmesh.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "jestmesh.labels" -}}
app.kubernetes.io/part-of: jestmesh
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "jestmesh.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{/* Pod labels: the selector plus part-of (the broker's NetworkPolicy admits part-of=jestmesh). */}}
{{- define "jestmesh.podLabels" -}}
{{ include "jestmesh.selector" . }}
app.kubernetes.io/part-of: jestmesh
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end -}}

{{- define "jestmesh.image" -}}
{{- $reg := .root.Values.image.registry -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if $reg -}}{{ printf "%s/%s/%s:%s" $reg .root.Values.image.repository .component $tag }}{{- else -}}{{ printf "%s/%s:%s" .root.Values.image.repository .component $tag }}{{- end -}}
{{- end -}}

{{- define "jestmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "jestmesh.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* Pod-level settings every JestMesh pod shares: identity without token, restricted security. */}}
{{- define "jestmesh.podSpec" -}}
serviceAccountName: {{ include "jestmesh.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "jestmesh.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end -}}

{{/* Where a host listens: h2c on 8080, or for Selection with tls.enabled, HTTPS (its certificate comes
     from Selection:Tls; HTTP/1.1 too, for the kubelet's HTTPS probes; gRPC negotiates h2 by ALPN). */}}
{{- define "jestmesh.listenEnv" -}}
{{- if .tls }}
- {name: ASPNETCORE_URLS, value: "https://+:8080"}
- {name: Kestrel__EndpointDefaults__Protocols, value: Http1AndHttp2}
{{- else }}
- {name: ASPNETCORE_URLS, value: "http://+:8080"}
- {name: Kestrel__EndpointDefaults__Protocols, value: Http2}
{{- end }}
{{- end -}}

{{/* Host settings every service reads (the trainer included): telemetry and identity. */}}
{{- define "jestmesh.hostEnv" -}}
{{- $endpoint := .Values.otel.endpoint }}
{{- if .Values.otel.collector.enabled }}{{- $endpoint = printf "http://%s-otel-collector:4317" (include "jestmesh.fullname" .) }}{{- end }}
{{- if $endpoint }}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ $endpoint | quote }}}
- {name: OTEL_EXPORTER_OTLP_PROTOCOL, value: {{ ternary "grpc" .Values.otel.protocol .Values.otel.collector.enabled | quote }}}
- {name: OTEL_TRACES_SAMPLER, value: {{ .Values.otel.sampler | quote }}}
- {name: OTEL_TRACES_SAMPLER_ARG, value: {{ .Values.otel.samplerArg | quote }}}
{{- end }}
{{ include "jestmesh.identityEnv" . }}
{{- end -}}

{{/* Pod, namespace and version as OpenTelemetry resource attributes (downward API). */}}
{{- define "jestmesh.identityEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef: {fieldPath: metadata.name}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.version=%s" .Chart.AppVersion | quote }}
{{- end -}}

{{/* The broker: URI from the Secret, topology shared by Scoring and Selection (not the trainer). */}}
{{- define "jestmesh.messagingEnv" -}}
- name: Messaging__Uri
  valueFrom:
    secretKeyRef:
      name: {{ .Values.rabbitmq.existingSecret }}
      key: {{ .Values.rabbitmq.uriKey }}
- {name: Messaging__QueuePrefix, value: {{ .Values.rabbitmq.queuePrefix | quote }}}
- {name: Messaging__InputQueueMaxLength, value: {{ .Values.rabbitmq.inputQueueMaxLength | quote }}}
- {name: Messaging__DeliveryLimit, value: {{ .Values.rabbitmq.deliveryLimit | quote }}}
{{- end -}}

{{/* libtorch's intra-op threads: the container's CPU request, not every core of the node. */}}
{{- define "jestmesh.ompEnv" -}}
- name: OMP_NUM_THREADS
  valueFrom:
    resourceFieldRef: {resource: requests.cpu, divisor: "1"}
{{- end -}}

{{- define "jestmesh.extraEnv" -}}
{{- range $k, $v := . }}
- {name: {{ $k }}, value: {{ $v | quote }}}
{{- end }}
{{- end -}}

{{/* gRPC health probes with explicit timeouts: separate liveness and readiness service names.
     The kubelet's gRPC probe has no TLS: a TLS listener is probed over HTTPS (/health/live, /health/ready). */}}
{{- define "jestmesh.probes" -}}
{{- if .tls }}
livenessProbe:
  httpGet: {path: /health/live, port: 8080, scheme: HTTPS}
  periodSeconds: 10
  timeoutSeconds: 3
readinessProbe:
  httpGet: {path: /health/ready, port: 8080, scheme: HTTPS}
  periodSeconds: 5
  timeoutSeconds: 3
startupProbe:
  httpGet: {path: /health/live, port: 8080, scheme: HTTPS}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 60
{{- else }}
livenessProbe:
  grpc: {port: 8080, service: liveness}
  periodSeconds: 10
  timeoutSeconds: 3
readinessProbe:
  grpc: {port: 8080, service: readiness}
  periodSeconds: 5
  timeoutSeconds: 3
startupProbe:
  grpc: {port: 8080, service: liveness}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 60
{{- end }}
{{- end -}}

{{/* The CA of Selection's TLS (tls.caSecretName), mounted at /tls-ca: the trainer trusts it
     (Trainer:Tls:CaFile), and with tls.clientAuth.enabled Selection takes client certificates from it. */}}
{{- define "jestmesh.caMount" -}}
{{- if .Values.tls.caSecretName }}
- {name: tls-ca, mountPath: /tls-ca, readOnly: true}
{{- end }}
{{- end -}}
{{- define "jestmesh.caVolume" -}}
{{- if .Values.tls.caSecretName }}
- name: tls-ca
  secret: {secretName: {{ .Values.tls.caSecretName }}, items: [{key: {{ .Values.tls.caKey }}, path: ca.crt}]}
{{- end }}
{{- end -}}

{{/* The broker's CA for an amqps:// URI (rabbitmq.caSecretName), mounted at /broker-ca: Scoring and
     Selection read it as Messaging:Tls:CaFile; the ingest Job's CLI takes it as SSL_CERT_FILE. */}}
{{- define "jestmesh.brokerCaEnv" -}}
{{- if .Values.rabbitmq.caSecretName }}
- {name: Messaging__Tls__CaFile, value: /broker-ca/ca.crt}
{{- end }}
{{- end -}}
{{- define "jestmesh.brokerCaMount" -}}
{{- if .Values.rabbitmq.caSecretName }}
- {name: broker-ca, mountPath: /broker-ca, readOnly: true}
{{- end }}
{{- end -}}
{{- define "jestmesh.brokerCaVolume" -}}
{{- if .Values.rabbitmq.caSecretName }}
- name: broker-ca
  secret: {secretName: {{ .Values.rabbitmq.caSecretName }}, items: [{key: {{ .Values.rabbitmq.caKey }}, path: ca.crt}]}
{{- end }}
{{- end -}}

{{- define "jestmesh.tmpVolume" -}}
- name: tmp
  emptyDir: {sizeLimit: 256Mi}
{{- end -}}

{{- define "jestmesh.referenceClaim" -}}
{{- default (printf "%s-reference" (include "jestmesh.fullname" .)) .Values.reference.existingClaim -}}
{{- end -}}

{{/* A directory inside a mounted claim: the mount path, then the value's path when it has one. */}}
{{- define "jestmesh.claimDir" -}}
{{- if .path }}{{ printf "%s/%s" .mount (trimSuffix "/" .path) }}{{ else }}{{ .mount }}{{ end -}}
{{- end -}}

{{/* True (non-empty) when Scoring runs a reference bundle from a PVC instead of the built-in reference. */}}
{{- define "jestmesh.usesBundle" -}}
{{- if .Values.scoring.bundle.existingClaim }}true{{ end -}}
{{- end -}}
