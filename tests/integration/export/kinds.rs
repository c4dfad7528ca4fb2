//! Schemas of the built-in kinds the export writes (Secret, ConfigMap, Service, Deployment,
//! DaemonSet), written here from the Kubernetes API reference (v1.33: ObjectMeta, Secret,
//! ConfigMap, ServiceSpec/ServicePort, DeploymentSpec, DaemonSetSpec, PodSpec, Container, EnvVar,
//! EnvVarSource, ContainerPort, VolumeMount, Volume/SecretVolumeSource/ConfigMapVolumeSource,
//! PodSecurityContext, Affinity/PodAntiAffinity/PodAffinityTerm). Only the fields the export may
//! use are declared, so anything else is reported as unknown: strict on purpose.

use serde_json::{Value, json};

/// RFC 1123 subdomain (object names).
const DNS_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// RFC 1123 label (container names, volume names, Service names).
const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// IANA service name (port names): lowercase letters, digits and '-', at least one letter.
const PORT_NAME: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Label values: 63 characters at most, alphanumeric at both ends.
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
/// A C identifier (env names as the kubelet accepts them without warning).
const C_IDENTIFIER: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// Standard base64 (Secret `data` values).
const BASE64: &str = r"^[A-Za-z0-9+/]*={0,2}$";

fn string() -> Value {
    json!({"type": "string"})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn labels() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63}})
}

fn port_number() -> Value {
    json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535})
}

fn protocol() -> Value {
    json!({"type": "string", "enum": ["TCP", "UDP", "SCTP"]})
}

fn object_meta() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253},
            "namespace": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
            "labels": labels(),
            "annotations": string_map(),
        },
    })
}

fn top(api_version: &str, kind: &str, extra: Value) -> Value {
    let mut properties = json!({
        "apiVersion": {"type": "string", "enum": [api_version]},
        "kind": {"type": "string", "enum": [kind]},
        "metadata": object_meta(),
    });
    for (k, v) in extra.as_object().unwrap() {
        properties[k] = v.clone();
    }
    json!({"type": "object", "required": ["apiVersion", "kind", "metadata"], "properties": properties})
}

fn env_var() -> Value {
    let key_ref = |name_required: bool| {
        let mut s = json!({
            "type": "object",
            "required": ["key"],
            "properties": {"name": string(), "key": string(), "optional": {"type": "boolean"}},
        });
        if name_required {
            s["required"] = json!(["key", "name"]);
        }
        s
    };
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": C_IDENTIFIER},
            "value": string(),
            "valueFrom": {
                "type": "object",
                "properties": {
                    "secretKeyRef": key_ref(true),
                    "configMapKeyRef": key_ref(true),
                    "fieldRef": {
                        "type": "object",
                        "required": ["fieldPath"],
                        "properties": {
                            "apiVersion": string(),
                            "fieldPath": {"type": "string", "enum": [
                                "metadata.name", "metadata.namespace", "metadata.uid",
                                "spec.nodeName", "spec.serviceAccountName",
                                "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"
                            ]},
                        },
                    },
                },
            },
        },
    })
}

fn container() -> Value {
    json!({
        "type": "object",
        "required": ["name", "image"],
        "properties": {
            "name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
            "image": {"type": "string", "minLength": 1},
            "command": {"type": "array", "items": string()},
            "args": {"type": "array", "items": string()},
            "env": {"type": "array", "items": env_var()},
            "ports": {"type": "array", "items": {
                "type": "object",
                "required": ["containerPort"],
                "properties": {
                    "name": {"type": "string", "pattern": PORT_NAME, "maxLength": 15},
                    "containerPort": port_number(),
                    "hostPort": port_number(),
                    "protocol": protocol(),
                },
            }},
            "volumeMounts": {"type": "array", "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "properties": {
                    "name": string(),
                    "mountPath": {"type": "string", "pattern": "^/"},
                    "subPath": string(),
                    "readOnly": {"type": "boolean"},
                },
            }},
        },
    })
}

fn pod_template() -> Value {
    let mode = json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 511});
    json!({
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "properties": {"labels": labels(), "annotations": string_map()}},
            "spec": {
                "type": "object",
                "required": ["containers"],
                "properties": {
                    "hostNetwork": {"type": "boolean"},
                    "dnsPolicy": {"type": "string", "enum": ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]},
                    "containers": {"type": "array", "items": container()},
                    "securityContext": {"type": "object", "properties": {
                        "runAsUser": {"type": "integer", "minimum": 0},
                        "runAsGroup": {"type": "integer", "minimum": 0},
                        "fsGroup": {"type": "integer", "minimum": 0},
                        "runAsNonRoot": {"type": "boolean"},
                    }},
                    "volumes": {"type": "array", "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "pattern": DNS_LABEL},
                            "secret": {"type": "object", "properties": {"secretName": string(), "defaultMode": mode, "optional": {"type": "boolean"}}},
                            "configMap": {"type": "object", "properties": {"name": string(), "defaultMode": mode, "optional": {"type": "boolean"}}},
                        },
                    }},
                    "affinity": {"type": "object", "properties": {
                        "podAntiAffinity": {"type": "object", "properties": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {"type": "array", "items": {
                                "type": "object",
                                "required": ["topologyKey"],
                                "properties": {
                                    "labelSelector": {"type": "object", "properties": {"matchLabels": labels()}},
                                    "topologyKey": {"type": "string", "minLength": 1},
                                },
                            }},
                        }},
                    }},
                },
            },
        },
    })
}

fn selector() -> Value {
    json!({"type": "object", "required": ["matchLabels"], "properties": {"matchLabels": labels()}})
}

/// The schema of `kind`, or `None` for a kind the export should not write.
pub fn schema(kind: &str) -> Option<Value> {
    Some(match kind {
        "Secret" => top(
            "v1",
            "Secret",
            json!({
                "type": {"type": "string", "enum": ["Opaque", "kubernetes.io/tls"]},
                "data": {"type": "object", "additionalProperties": {"type": "string", "pattern": BASE64}},
                "stringData": string_map(),
                "immutable": {"type": "boolean"},
            }),
        ),
        "ConfigMap" => top(
            "v1",
            "ConfigMap",
            json!({
                "data": string_map(),
                "immutable": {"type": "boolean"},
            }),
        ),
        "Service" => top(
            "v1",
            "Service",
            json!({
                "spec": {"type": "object", "required": ["ports"], "properties": {
                    "clusterIP": string(),
                    "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"]},
                    "selector": labels(),
                    "ports": {"type": "array", "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "name": {"type": "string", "pattern": DNS_LABEL},
                            "port": port_number(),
                            "targetPort": {"x-kubernetes-int-or-string": true},
                            "protocol": protocol(),
                        },
                    }},
                }},
            }),
        ),
        "Deployment" => top(
            "apps/v1",
            "Deployment",
            json!({
                "spec": {"type": "object", "required": ["selector", "template"], "properties": {
                    "replicas": {"type": "integer", "format": "int32", "minimum": 0},
                    "selector": selector(),
                    "template": pod_template(),
                }},
            }),
        ),
        "DaemonSet" => top(
            "apps/v1",
            "DaemonSet",
            json!({
                "spec": {"type": "object", "required": ["selector", "template"], "properties": {
                    "selector": selector(),
                    "template": pod_template(),
                }},
            }),
        ),
        _ => return None,
    })
}
