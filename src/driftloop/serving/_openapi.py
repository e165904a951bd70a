"""The OpenAPI 3.1 description of every endpoint (served at ``/openapi.json``)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from driftloop import __version__
from driftloop.serving._recommend_request import MAX_N, MAX_SESSION
from driftloop.serving._v2 import DATATYPES
from driftloop.serving._validation import EARLIEST, LATEST, MAX_DEPTH, MAX_KEY_LENGTH, RowSpec

__all__ = ["openapi"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(error: str, *, body: bool, admin: bool) -> dict[str, Any]:
    """The error answers of an operation, each with the body schema ``error`` (v1's
    ``Error`` or the v2 protocol's ``V2Error``)."""
    out = {
        "404": _json(_ref(error), "Unknown model (or, for an admin call, endpoint)."),
        "422": _json(_ref(error), "A value breaks a rule; violations name instance, field, rule."),
        "500": _json(_ref(error), "The server failed; the failure is logged."),
        "503": _json(_ref(error), "The model is not loaded yet, or a backend is unavailable."),
    }
    if body:
        out["400"] = _json(_ref(error), f"The body is not JSON, or nests deeper than {MAX_DEPTH}.")
        out["413"] = _json(_ref(error), "The body is larger than serving.max_body_bytes.")
        out["415"] = _json(_ref(error), "The body is not declared application/json.")
        out["409"] = _json(_ref(error), "A conflict: an Idempotency-Key whose first request "
                           "is still running, a label differing from the stored one.")  # fmt: skip
    if admin:
        out["401"] = _json(_ref(error), "No token (admin, or feedback when one is set).")
        out["403"] = _json(_ref(error), "A wrong token, or the admin API is off.")
    return dict(sorted(out.items()))


def _op(summary: str, ok: dict[str, Any], *, body: str | None = None, name: bool = False,
        errors: bool = False, v2: bool = False, admin: bool = False) -> dict[str, Any]:  # fmt: skip
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
    if errors or admin:
        error = "V2Error" if v2 else "Error"
        op["responses"].update(_errors(error, body=body is not None, admin=admin))
    return op


_VALUE = {"type": ["number", "boolean", "string", "null"]}
_LENGTH = {"minLength": 1, "maxLength": MAX_KEY_LENGTH}
_KEY_STRING = {"type": "string", **_LENGTH, "pattern": "^[^\\u0000]*$"}
_KEY = {**_KEY_STRING, "type": ["string", "integer"], "minimum": -(2**63) + 1, "maximum": 2**63 - 1}
_NAME_SCHEMA: dict[str, Any] = {"type": "string"}
# Years 1901-2198 (any offset stays within the server's 1900-2199 in UTC), days to the 28th
_YEAR = "(19[0-9][1-9]|19[1-9]0|20[0-9][0-9]|21[0-8][0-9]|219[0-8])"
_DATE_TIME = (
    f"^{_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "([.][0-9]{1,6})?(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9])$"
)
_TIME = {
    "type": ["string", "number", "null"],
    "pattern": _DATE_TIME,
    "minimum": EARLIEST.timestamp(),
    "exclusiveMaximum": LATEST.timestamp(),
    "description": "ISO 8601 date-time, or epoch seconds (UTC, 1900 to 2199); null: none.",
}

_SCHEMAS: dict[str, Any] = {
    "V2Error": {
        "type": "object",
        "description": "An error as the Open Inference Protocol wants it, with driftloop's code.",
        "required": ["error"],
        "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
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
            "event_time": _TIME,
            "options": {
                "type": ["object", "null"],
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
                        "prediction_id": _KEY_STRING,
                        "label": {"type": ["string", "boolean", "number"], **_LENGTH},
                        "ts": {
                            "type": ["string", "null"],
                            "pattern": _DATE_TIME,
                            "description": "When the label was known, ISO 8601 (UTC, 1900 to "
                            "2199); null: now.",
                        },
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
    "InputTensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {"type": "integer", "minimum": 0},
            },
            "datatype": {"enum": sorted(DATATYPES)},
            "data": {"type": "array"},
            "parameters": {"type": ["object", "null"]},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {**_KEY_STRING, "type": ["string", "null"]},
            "parameters": {"type": ["object", "null"]},
            "inputs": {"type": "array", "minItems": 1, "items": _ref("InputTensor")},
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
    "category": {"type": ["string", "integer", "null"], "minimum": 1 - 2**63, "maximum": 2**63 - 1},
}


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
    for key in (*spec.entity_keys, *([spec.id_field] if spec.id_field else [])):
        properties[key] = _KEY
    for key in spec.keys:  # the router's sticky key: any value
        properties[key] = {}
    properties.setdefault(spec.event_field, {**_TIME, "description": "The event time."})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _not_ready(op: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["503"] = _json({"type": "object"}, "Not ready.")
    return op


_OPEN = ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready")  # no key asked


def _with_keys(paths: dict[str, Any]) -> None:
    """The answers of ``serving.auth = "keys"`` on every operation but the health probes:
    401 (no key, or not a valid one), 403 (a key without the scope), 429 (the key's rate
    or its tenant's daily quota, with ``Retry-After``) and, for predictions, 507 (the
    tenant's audit storage quota)."""
    retry = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
    for path, item in paths.items():
        if path in _OPEN:
            continue
        error = _ref("V2Error" if path.startswith("/v2") else "Error")
        for method, op in item.items():
            answers = op["responses"]
            answers["401"] = _json(error, "No API key, or one unknown, revoked or expired.")
            answers["403"] = _json(error, "The API key lacks this endpoint's scope.")
            answers["429"] = {
                **_json(error, "Past the key's rate or its tenant's requests per day."),
                "headers": retry,
            }
            if method == "post" and path.endswith(("/predict", "/infer")):
                answers["507"] = _json(error, "The tenant's audit storage quota is full.")
            op["responses"] = dict(sorted(answers.items()))
            op["security"] = [{"apiKey": []}]


def openapi(
    model_names: Sequence[str] = (),
    specs: Mapping[str, RowSpec] | None = None,
    *,
    keys: bool = False,
    recommenders: Sequence[str] = (),
) -> dict[str, Any]:
    """The document; ``{name}`` is one of ``model_names`` (public names and ``name@alias``).
    ``specs`` (a name to its loaded model's :class:`RowSpec`) add one predict path per name
    whose body schema types every field (the untyped ``{name}`` path goes when every name
    has one). ``keys``: the server asks for API keys (``serving.auth = "keys"``), and
    every operation but the health probes lists 401, 403 and 429 (predictions 507 too).
    ``recommenders``: the names answered at ``/recommend`` and ``/interactions`` (those two
    paths are left out when none is served: every name would answer 404)."""
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
                admin=True,  # the feedback token, when one is set
            )
        },
        "/v1/models/{name}/traffic": {
            "get": _op(
                "The model's traffic policy: arms, versions, weights, breakers, shadow "
                "(admin token).",
                _json(obj, "The policy."),
                name=True,
                admin=True,
            ),
            "put": _op(
                "Change the traffic policy at run time (admin token; every worker follows).",
                _json(obj, "The policy now."),
                body="TrafficRequest",
                name=True,
                admin=True,
            ),
        },
        "/v2": {"get": _op("KServe v2 server metadata.", _json(obj, "Metadata."))},
        "/v2/health/live": {"get": _op("KServe v2 liveness.", _json(obj, "Live."))},
        "/v2/health/ready": {"get": _not_ready(_op("KServe v2 readiness.", _json(obj, "Ready.")))},
        "/v2/models/{name}": {
            "get": _op(
                "KServe v2 model metadata, with the runtime in parameters.",
                _json(_ref("ModelMetadata"), "Metadata."),
                name=True,
                errors=True,
                v2=True,
            )
        },
        "/v2/models/{name}/ready": {
            "get": _op(
                "KServe v2 model readiness.", _json(obj, "Ready."), name=True, errors=True, v2=True
            )
        },
        "/v2/models/{name}/infer": {
            "post": _op(
                "KServe v2 inference.",
                _json(_ref("InferResponse"), "Outputs."),
                body="InferRequest",
                name=True,
                errors=True,
                v2=True,
            )
        },
        "/metrics": {"get": _op("Prometheus metrics, summed over workers.", text)},
        "/healthz": {"get": _op("Liveness.", _json(obj, "Alive."))},
        "/readyz": {"get": _not_ready(_op("Readiness: every model loaded.", _json(obj, "Ready.")))},
        "/openapi.json": {"get": _op("This document.", _json(obj, "OpenAPI."))},
    }
    schemas = dict(_SCHEMAS)
    if specs and set(model_names) <= set(specs):  # every name has its own, typed path
        del paths["/v1/models/{name}/predict"]
    for public, spec in sorted((specs or {}).items()):
        request = copy.deepcopy(_SCHEMAS["PredictRequest"])
        request["properties"]["instances"]["items"] = _instance(spec)
        top_k = request["properties"]["options"]["properties"]["top_k"]
        top_k["maximum"] = max(1, len(spec.features))
        schemas[f"PredictRequest.{public}"] = request
        paths[f"/v1/models/{public}/predict"] = {
            "post": _op(
                f"Score instances of {public}; every prediction is audited before the answer.",
                _json(_ref("PredictResponse"), "Predictions."),
                body=f"PredictRequest.{public}",
                errors=True,
            )
        }
    if recommenders:
        paths.update(_recommender_paths())
        schemas.update(_RECOMMEND_SCHEMAS)
    components: dict[str, Any] = {"schemas": schemas}
    if keys:
        _with_keys(paths)
        components["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."}
        }
    document = {
        "openapi": "3.1.0",
        "info": {"title": "driftloop model server", "version": __version__},
        "paths": paths,
        "components": components,
    }
    if model_names:
        names = sorted(model_names)
        for item in paths.values():
            for op in item.values():
                for param in op.get("parameters", []):
                    param["schema"] = {"type": "string", "enum": names}
    for path in ("/v1/models/{name}/recommend", "/v1/models/{name}/interactions"):
        for op in paths.get(path, {}).values():
            for param in op["parameters"]:
                param["schema"] = {"type": "string", "enum": sorted(recommenders)}
    return document


_ID = {"type": ["string", "integer"], "minLength": 1, "maxLength": 256}
_RECOMMEND_SCHEMAS: dict[str, Any] = {
    "RecommendRequest": {
        "type": "object",
        "required": ["user_id"],
        "additionalProperties": False,
        "properties": {
            "user_id": {**_ID, "description": "An unknown user is answered as cold start."},
            "n": {"type": "integer", "minimum": 1, "maximum": MAX_N, "default": 10},
            "context": {
                "type": ["object", "null"],
                "description": "The user's features (text, number, boolean) and `session`, "
                "the items seen in this session, the most recent last.",
                "properties": {"session": {"type": "array", "items": _ID, "maxItems": MAX_SESSION}},
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
        },
    },
    "RecommendResponse": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "user_id": {"type": "string"},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"item_id": {"type": "string"}, "score": {"type": "number"}},
                },
            },
            "level": {
                "type": "string",
                "description": "Which level answered: personalized, hybrid, cohort or popular.",
            },
            "model": {"type": "string"},
            "version": {"type": "string"},
            "route": {
                "type": "string",
                "description": "recommend: the arm the traffic policy picked answered; "
                "recommend:champion: that arm failed and the champion answered.",
            },
            "confidence": {"type": "number"},
        },
    },
    "InteractionRequest": {
        "type": "object",
        "required": ["user_id", "item_id"],
        "properties": {"user_id": _ID, "item_id": _ID},
    },
}


def _recommender_paths() -> dict[str, Any]:
    return {
        "/v1/models/{name}/recommend": {
            "post": _op(
                "Recommend n items for a user, with the level of the fallback hierarchy that "
                "answered; every list is audited.",
                _json(_ref("RecommendResponse"), "The recommended items."),
                body="RecommendRequest",
                name=True,
                errors=True,
            )
        },
        "/v1/models/{name}/interactions": {
            "post": _op(
                "Record an item the user interacted with now (the session features).",
                _json({"type": "object"}, "Recorded."),
                body="InteractionRequest",
                name=True,
                errors=True,
                admin=True,  # the feedback credential, when one is set
            )
        },
    }
