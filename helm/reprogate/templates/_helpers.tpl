{{- define "reprogate.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "reprogate.labels" -}}
app.kubernetes.io/name: reprogate
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "reprogate.selector" -}}
app.kubernetes.io/name: reprogate
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reprogate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}
{{- end -}}

{{- define "reprogate.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}{{ .Values.tls.existingSecret }}{{- else -}}{{ include "reprogate.fullname" . }}-tls{{- end -}}
{{- end -}}
