"""The OpenAPI 3.1 description of every endpoint (served at ``/openapi.json``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from driftloop import __version__
from driftloop.serving._validation import RowSpec

__all__ = ["openapi"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "The body is not JSON."),
    "404": _json(_ref("Error"), "Unknown model."),
    "413": _json(_ref("Error"), "The body is larger than serving.max_body_bytes."),
    "422": _json(_ref("Error"), "A value breaks a rule; violations name instance, field, rule."),
    "503": _json(_ref("Error"), "The model is not loaded yet."),
}


def _op(summary: str, ok: dict[str, Any], *, body: str | None = None, name: bool = False,
        errors: bool = False) -> dict[str, Any]:  # fmt: skip
    op: dict[str, Any] = {"summary": summary, "responses": {"200": ok}}
    if name:
        op["parameters"] = [
            {"name": "name", "in": "path", "required": True, "schema": _NAME_SCHEMA}
        ]
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    if errors:
        op["responses"].update(_ERRORS)
    return op


_VALUE = {"type": ["number", "boolean", "string", "null"]}
_NAME_SCHEMA: dict[str, Any] = {"type": "string"}
_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "violations": {"type": "array", "items": {"type": "object"}},
                },
            }
        },
    },
    "PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "object", "additionalProperties": _VALUE},
            },
            "event_time": {"type": ["string", "number"], "format": "date-time"},
            "options": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "explain": {"type": "boolean"},
                    "top_k": {"type": "integer", "minimum": 1},
                },
            },
        },
    },
    "PredictResponse": {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "string"},
            "route": {
                "type": "object",
                "description": "How the request was routed: the traffic arm, the link of "
                "the fallback chain that answered (model, champion, rules, default), the "
                "arm's breaker state, why the answer is degraded, the policy revision.",
                "properties": {
                    "arm": {"type": "string"},
                    "link": {"enum": ["model", "champion", "rules", "default"]},
                    "breaker": {"enum": ["closed", "half_open", "open"]},
                    "degraded": {"type": "string"},
                    "policy_revision": {"type": "integer"},
                },
            },
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "prediction_id": {"type": "string"},
                        "score": {"type": "number"},
                        "class": {"type": "string"},
                        "probabilities": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                        "value": {"type": "number"},
                        "decision": {"type": "string"},
                        "missing": {"type": "array", "items": {"type": "string"}},
                        "unseen": {"type": "array", "items": {"type": "string"}},
                        "explanation": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                        },
                    },
                },
            },
        },
    },
    "TrafficRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "arms": {
                "type": "object",
                "description": "Alias or version -> weight (relative).",
                "additionalProperties": {"type": "number", "minimum": 0},
            },
            "sticky_key": {"type": ["string", "null"]},
            "shadow": {"type": ["string", "null"]},
            "shadow_sample": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "clear": {"type": "boolean", "description": "Back to the settings file's policy."},
            "reason": {"type": "string", "maxLength": 1000},
        },
    },
    "FeedbackRequest": {
        "type": "object",
        "required": ["labels"],
        "properties": {
            "labels": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["prediction_id", "label"],
                    "additionalProperties": False,
                    "properties": {
                        "prediction_id": {"type": "string", "minLength": 1},
                        "label": {"type": ["string", "boolean", "number"]},
                        "ts": {"type": "string", "format": "date-time"},
                    },
                },
            },
            "relabel": {
                "type": "boolean",
                "description": "Replace labels that differ from the stored ones (audited); "
                "without it such a label is a 409.",
            },
        },
    },
    "FeedbackResponse": {
        "type": "object",
        "required": ["accepted", "unknown_count"],
        "properties": {
            "accepted": {"type": "integer"},
            "unknown_count": {"type": "integer"},
            "unknown": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The unknown ids: only to a caller that showed a token.",
            },
            "relabelled": {"type": "integer"},
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _ref("Tensor")},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    },
    "InferResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("Tensor")},
        },
    },
    "ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "parameters": {"type": "object"},
        },
    },
}


_KIND_SCHEMA: dict[str, dict[str, Any]] = {
    "number": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "category": {"type": ["string", "integer", "null"]},
}
_TIME = {"type": ["string", "number", "null"], "format": "date-time"}


def _instance(spec: RowSpec) -> dict[str, Any]:
    """The JSON schema of one instance of a model: its inputs by kind (a category lists
    the categories seen in training), entity keys, id and event time."""
    properties: dict[str, Any] = {}
    for name in spec.inputs:
        encoder = spec.slots[name].encoder
        if encoder is None:
            properties[name] = {**_TIME, "description": "A time; its parts are features."}
        else:
            schema = dict(_KIND_SCHEMA[encoder.spec.kind])
            if encoder.spec.categories:
                schema["examples"] = list(encoder.spec.categories[:20])
            properties[name] = schema
    for key in (*spec.entity_keys, *spec.keys, *([spec.id_field] if spec.id_field else [])):
        properties[key] = {"type": ["string", "integer"]}
    properties.setdefault(spec.event_field, {**_TIME, "description": "The event time."})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def openapi(
    model_names: Sequence[str] = (), specs: Mapping[str, RowSpec] | None = None
) -> dict[str, Any]:
    """The document; ``{name}`` is one of ``model_names`` (public names and ``name@alias``).
    ``specs`` (public name to a loaded model's :class:`RowSpec`) add one predict path per
    model whose body schema types every field."""
    obj = {"type": "object"}
    text = {"description": "Prometheus text format.", "content": {"text/plain": {}}}
    paths = {
        "/v1/models": {"get": _op("Served models, versions, runtimes.", _json(obj, "Models."))},
        "/v1/models/{name}/predict": {
            "post": _op(
                "Score instances; every prediction is audited before the answer.",
                _json(_ref("PredictResponse"), "Predictions."),
                body="PredictRequest",
                name=True,
                errors=True,
            )
        },
        "/v1/feedback": {
            "post": _op(
                "Labels for earlier predictions, by prediction id.",
                _json(_ref("FeedbackResponse"), "Accepted and unknown ids."),
                body="FeedbackRequest",
                errors=True,
            )
        },
        "/v1/models/{name}/traffic": {
            "get": _op(
                "The model's traffic policy: arms, versions, weights, breakers, shadow "
                "(admin token).",
                _json(obj, "The policy."),
                name=True,
                errors=True,
            ),
            "put": _op(
                "Change the traffic policy at run time (admin token; every worker follows).",
                _json(obj, "The policy now."),
                body="TrafficRequest",
                name=True,
                errors=True,
            ),
        },
        "/v2": {"get": _op("KServe v2 server metadata.", _json(obj, "Metadata."))},
        "/v2/health/live": {"get": _op("KServe v2 liveness.", _json(obj, "Live."))},
        "/v2/health/ready": {"get": _op("KServe v2 readiness.", _json(obj, "Ready."))},
        "/v2/models/{name}": {
            "get": _op(
                "KServe v2 model metadata, with the runtime in parameters.",
                _json(_ref("ModelMetadata"), "Metadata."),
                name=True,
                errors=True,
            )
        },
        "/v2/models/{name}/ready": {
            "get": _op("KServe v2 model readiness.", _json(obj, "Ready."), name=True, errors=True)
        },
        "/v2/models/{name}/infer": {
            "post": _op(
                "KServe v2 inference.",
                _json(_ref("InferResponse"), "Outputs."),
                body="InferRequest",
                name=True,
                errors=True,
            )
        },
        "/metrics": {"get": _op("Prometheus metrics, summed over workers.", text)},
        "/healthz": {"get": _op("Liveness.", _json(obj, "Alive."))},
        "/readyz": {"get": _op("Readiness: every model loaded.", _json(obj, "Ready."))},
        "/openapi.json": {"get": _op("This document.", _json(obj, "OpenAPI."))},
    }
    schemas = dict(_SCHEMAS)
    for public, spec in sorted((specs or {}).items()):
        request = copy.deepcopy(_SCHEMAS["PredictRequest"])
        request["properties"]["instances"]["items"] = _instance(spec)
        schemas[f"PredictRequest.{public}"] = request
        paths[f"/v1/models/{public}/predict"] = {
            "post": _op(
                f"Score instances of {public}; every prediction is audited before the answer.",
                _json(_ref("PredictResponse"), "Predictions."),
                body=f"PredictRequest.{public}",
                errors=True,
            )
        }
    document = {
        "openapi": "3.1.0",
        "info": {"title": "driftloop model server", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if model_names:
        names = sorted(model_names)
        for item in paths.values():
            for op in item.values():
                for param in op.get("parameters", []):
                    param["schema"] = {"type": "string", "enum": names}
    return document
