"""Settings: typed, frozen, one section per part, resolved in one place.

Precedence, highest first: explicit arguments > ``DRIFTLOOP_*`` environment variables >
``driftloop.toml`` > defaults. Environment variables name a setting by its section path
joined with double underscores: ``DRIFTLOOP_SERVING__BATCHING__MAX_WAIT_MS=1``.

A bad value is refused when the settings are loaded, with the key, where it came from
and the expected form:

>>> try:
...     load_settings(environ={"DRIFTLOOP_SERVING__PORT": "eighty"})
... except ConfigError as exc:
...     print(exc)  # doctest: +ELLIPSIS
serving.port (from environment variable DRIFTLOOP_SERVING__PORT): expected a valid integer...

Library code never reads ``os.environ``: entry points pass ``environ=os.environ``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from driftloop.core._compute_config import ComputeConfig
from driftloop.core._loop_config import LoopPolicy, RolloutPlan, Triggers
from driftloop.core._model_config import (
    DecisionPolicy,
    FallbackPolicy,
    MissingPolicy,
    ModelConfig,
)
from driftloop.core._recsys_config import (
    FallbackConfig,
    IndexConfig,
    RecsysConfig,
    RecsysData,
    RecsysRules,
)
from driftloop.core.errors import ConfigError
from driftloop.core.urls import check_url

__all__ = [
    "CONFIG_FILENAME",
    "AuditConfig",
    "BatchingConfig",
    "BreakerConfig",
    "CacheConfig",
    "ComputeConfig",
    "DecisionPolicy",
    "FallbackConfig",
    "FallbackPolicy",
    "FeaturesConfig",
    "GatesConfig",
    "IndexConfig",
    "LoopPolicy",
    "MissingPolicy",
    "ModelConfig",
    "MonitoringConfig",
    "ProjectConfig",
    "RecsysConfig",
    "RecsysData",
    "RecsysRules",
    "RegistryConfig",
    "RolloutPlan",
    "ServingConfig",
    "Settings",
    "TrafficPolicy",
    "Triggers",
    "load_settings",
]

CONFIG_FILENAME = "driftloop.toml"
ENV_PREFIX = "DRIFTLOOP_"
# DRIFTLOOP_* variables that are not settings (no "__" in them are never settings either).
_NON_SETTING_ENV = frozenset(
    {
        "DRIFTLOOP_CONFIG",
        "DRIFTLOOP_REQUIRE_SERVICES",
        "DRIFTLOOP_ADMIN_TOKEN",
        "DRIFTLOOP_FEEDBACK_TOKEN",
    }
)


def _schemes(*allowed: str, plain_path: bool = False) -> AfterValidator:
    return AfterValidator(lambda url: check_url(url, allowed, plain_path=plain_path))


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class ProjectConfig(_Section):
    """What the project is called (shown in the UI, model cards and metrics), and the
    tenant its models are registered under (``driftloop train`` and ``register``)."""

    name: str = "driftloop"
    tenant: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class FeaturesConfig(_Section):
    """Where features live. Relative paths are relative to the project folder."""

    offline_store: Annotated[str, _schemes("duckdb")] = "duckdb:///.driftloop/offline.duckdb"
    online_store: Annotated[str, _schemes("sqlite", "redis")] = "sqlite:///.driftloop/online.db"
    stream: Annotated[str, _schemes("memory", "redis")] = "memory://"


class RegistryConfig(_Section):
    """Model metadata database and artifact storage."""

    url: Annotated[str, _schemes("sqlite", "postgresql", "postgresql+psycopg")] = (
        "sqlite:///.driftloop/registry.db"
    )
    artifact_root: Annotated[str, _schemes("file", "s3", "gs", "memory", plain_path=True)] = (
        ".driftloop/artifacts"
    )


class GatesConfig(_Section):
    """Data-validation and release gates (``[gates]``, overridden per model by
    ``[models.<name>.gates]``); each check reports its numbers (docs/training.md).

    Release: the model's metric must beat the trivial baseline (prior or mean) on the
    held-out rows by ``min_skill`` (the share of the gap to a perfect score it closes),
    stay within ``metric_limits`` (e.g. ``{roc_auc = 0.7, rmse = 12.0}``), not fall
    more than ``champion_tolerance`` (relative) below the champion on the same rows; no
    feature may alone reach ``max_single_feature_skill`` (a leak); fairness across
    ``sensitive_attribute`` (a failure when it is configured but absent); calibration
    (binary); one-row latency (best of several rounds' medians, so a busy machine
    cannot flip it). Data: row count, per-feature null rates (absolute and against the
    previous training set), values outside the previous range, drift (PSI).
    """

    min_skill: float = Field(default=0.05, ge=-1.0, le=1.0)
    metric_limits: dict[str, float] = Field(default_factory=dict)
    champion_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)
    max_single_feature_skill: float = Field(default=0.98, gt=0.0, le=1.0)
    sensitive_attribute: str | None = None
    fairness_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_demographic_parity_difference: float = Field(default=0.1, ge=0.0, le=1.0)
    max_equal_opportunity_difference: float = Field(default=0.2, ge=0.0, le=1.0)
    max_group_metric_gap: float = Field(default=0.1, ge=0.0)
    max_ece: float = Field(default=0.1, ge=0.0, le=1.0)
    max_latency_ms: float = Field(default=5.0, gt=0.0)
    max_null_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    max_null_rate_increase: float = Field(default=0.1, ge=0.0, le=1.0)
    max_out_of_range: float = Field(default=0.5, ge=0.0, le=1.0)
    max_psi: float = Field(default=0.25, ge=0.0)
    min_rows: int = Field(default=100, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """Keys of earlier releases: ``min_auc_ratio`` (now ``champion_tolerance``) and
        ``max_p99_latency_ms`` (now ``max_latency_ms``)."""
        if isinstance(data, Mapping):
            data = dict(data)
            if "min_auc_ratio" in data:
                data.setdefault("champion_tolerance", 1.0 - float(data.pop("min_auc_ratio")))
            if "max_p99_latency_ms" in data:
                data.setdefault("max_latency_ms", data.pop("max_p99_latency_ms"))
        return data


class RetentionConfig(_Section):
    """How much of the audit log its database keeps (``[audit.retention]``).

    Predictions older than ``hot_days``, or beyond the newest ``hot_max_rows``, are
    compacted to Parquet day partitions in the log's archive folder (``audit-archive/``
    beside a SQLite file, or ``?archive=FOLDER`` in ``audit.url``), which windows and
    lookups still read; archived days older than ``archive_days`` are deleted. ``driftloop serve``
    applies it every ``every_s`` seconds, ``driftloop predictions compact`` once. Unset
    limits keep everything (the default).
    """

    hot_max_rows: int | None = Field(default=None, ge=1_000)
    hot_days: float | None = Field(default=None, gt=0.0)
    archive_days: float | None = Field(default=None, gt=0.0)
    every_s: float = Field(default=300.0, ge=1.0)

    @model_validator(mode="after")
    def _archive_outlives_hot(self) -> RetentionConfig:
        hot, kept = self.hot_days, self.archive_days
        if hot is not None and kept is not None and kept < hot:
            raise ValueError(
                f"archive_days ({kept:g}) must be at least hot_days ({hot:g}): rows would be "
                "deleted before they are archived"
            )
        return self

    @property
    def enabled(self) -> bool:
        return (
            self.hot_max_rows is not None
            or self.hot_days is not None
            or (self.archive_days is not None)
        )


class AuditConfig(_Section):
    """The prediction log (and the monitoring tables beside it)."""

    url: Annotated[str, _schemes("sqlite", "postgresql", "postgresql+psycopg")] = (
        "sqlite:///.driftloop/audit.db"
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)


class BatchingConfig(_Section):
    """Dynamic batching: a batch closes at ``max_batch_size`` rows or after ``max_wait_ms``."""

    max_batch_size: int = Field(default=256, ge=1, le=65_536)
    max_wait_ms: float = Field(default=2.0, ge=0.0, le=1_000.0)


class CacheConfig(_Section):
    """Prediction cache (LRU with a time to live)."""

    enabled: bool = True
    max_entries: int = Field(default=100_000, ge=0)
    ttl_s: float = Field(default=60.0, gt=0.0)
    cache_enriched: bool = False


class TrafficPolicy(_Section):
    """How one model's requests are split between versions (``[serving.traffic.<model>]``).

    ``arms`` maps an alias (``champion``, ``challenger``) or a version number (``"7"``) to
    a weight; weights are relative (90 and 10 is a 10% canary). Empty: every request goes
    to the alias the model is served at. ``sticky_key`` is a request field (an account or user id):
    requests carrying it stay on one arm while the weights are unchanged, by weighted
    rendezvous hashing, so a weight change moves only the keys it must; requests without
    it are split at random. ``shadow`` scores a copy of ``shadow_sample`` of the traffic
    off the response path, into the audit log (route ``shadow``), never answered.
    """

    arms: dict[str, float] = Field(default_factory=dict)
    sticky_key: str | None = Field(default=None, min_length=1, max_length=200)
    shadow: str | None = Field(default=None, min_length=1, max_length=200)
    shadow_sample: float = Field(default=1.0, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _weights(self) -> TrafficPolicy:
        for arm, weight in self.arms.items():
            if not arm or len(arm) > 200:
                raise ValueError(f"arms: arm name {arm!r} must have 1 to 200 characters")
            if not weight >= 0.0 or weight == float("inf"):
                raise ValueError(f"arms.{arm}: weight must be a finite number >= 0, got {weight}")
        if self.arms and sum(self.arms.values()) <= 0.0:
            raise ValueError("arms: at least one arm needs a weight above 0")
        return self


class BreakerConfig(_Section):
    """The circuit breaker of each served version.

    It opens when, over the last ``window_s`` seconds and at least ``min_requests``
    calls, the share of errors reaches ``max_error_rate`` or the share of calls slower
    than ``slow_ms`` reaches ``max_slow_rate``; it stays open ``open_s`` seconds (requests
    go to the next link of the fallback chain), then lets ``probes`` calls through
    (half-open) and closes when they all succeed, or opens again on a failure.
    """

    window_s: float = Field(default=30.0, gt=0.0)
    min_requests: int = Field(default=20, ge=1)
    max_error_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    slow_ms: float = Field(default=1_000.0, gt=0.0)
    max_slow_rate: float = Field(default=0.8, gt=0.0, le=1.0)
    open_s: float = Field(default=10.0, gt=0.0)
    probes: int = Field(default=3, ge=1)


class ServingConfig(_Section):
    """The model server.

    ``admin_token_sha256`` is the SHA-256 (hex) of the token that the admin API (traffic
    changes) asks for; the environment variable ``DRIFTLOOP_ADMIN_TOKEN`` gives the token
    itself instead, and the server keeps only its hash. ``feedback_token_sha256`` (or
    ``DRIFTLOOP_FEEDBACK_TOKEN``) is the token feedback asks for (the admin token works
    too); without one feedback is open, for a laptop. ``idempotency_ttl_s`` is how long
    the answer to a request with an ``Idempotency-Key`` is kept. ``feature_timeout_ms``
    bounds one online feature read, ``audit_timeout_s`` one audit commit (past it, the
    rows are spooled to local disk and replayed later), ``shadow_queue`` the requests
    waiting for a shadow (more are dropped and counted).

    ``auth`` says who may call the server: ``"none"`` (the default, for a laptop: one
    implicit tenant; the admin and feedback tokens apply when set), ``"token"`` (the admin
    API and feedback always need their token; the server refuses to start without one) or
    ``"keys"`` (every endpoint but the health probes needs an API key of the model's
    tenant with the endpoint's scope; keys are read from the registry database every
    ``key_refresh_s`` seconds). See docs/serving.md, "Running it exposed".
    ``rate_limit_store`` (``redis://...``) keeps every key's token bucket and every
    tenant's daily request count in that Redis, shared by all server processes; unset,
    the daily counts are shared through the registry's database and each process keeps
    its own buckets (a key limited to 10/s behind 4 workers gets up to 40/s).

    Hostile clients (per worker process, enforced by ``driftloop serve``): a request's
    head (request line and headers) must fit in ``max_header_bytes`` (else 431) and
    arrive within ``header_timeout_s`` of the connection opening or of its first byte;
    its body within ``body_timeout_s`` after the head (else 408 and the connection is
    closed); an idle keep-alive connection is closed after ``keep_alive_s``; at most
    ``max_connections`` connections are open: a new one beyond closes the connection idle
    the longest (a flood of idle or half-sent connections cannot lock clients out), or is
    refused with 503 when every connection has a request in progress.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65_535)
    workers: int = Field(default=1, ge=1, le=64)
    max_body_bytes: int = Field(default=1_048_576, ge=1_024)
    max_instances: int = Field(default=1_000, ge=1)
    batching: BatchingConfig = BatchingConfig()
    cache: CacheConfig = CacheConfig()
    traffic: dict[str, TrafficPolicy] = Field(default_factory=dict)
    breaker: BreakerConfig = BreakerConfig()
    admin_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    feedback_token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0.0, le=31 * 86_400.0)
    feature_timeout_ms: float = Field(default=250.0, gt=0.0)
    audit_timeout_s: float = Field(default=5.0, gt=0.0)
    shadow_queue: int = Field(default=1_000, ge=1)
    auth: Literal["none", "token", "keys"] = "none"
    key_refresh_s: float = Field(default=1.0, gt=0.0, le=60.0)
    rate_limit_store: Annotated[str, _schemes("redis", "rediss")] | None = None
    max_header_bytes: int = Field(default=32_768, ge=1_024, le=1_048_576)
    header_timeout_s: float = Field(default=10.0, gt=0.0, le=600.0)
    body_timeout_s: float = Field(default=30.0, gt=0.0, le=3_600.0)
    keep_alive_s: float = Field(default=5.0, gt=0.0, le=3_600.0)
    max_connections: int = Field(default=1_000, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "decision" in data:
            raise ValueError(
                "serving.decision is gone: decisions are a per-model policy now, "
                "[models.<name>.decision] with threshold or bands and labels "
                "(see docs/serving.md)"
            )
        return data


class MonitoringConfig(_Section):
    """Drift and performance monitoring (see docs/monitoring.md for the statistics).

    Windows are cut ``window_by`` time (``window_size``/``window_step`` durations such as
    ``"1D"``) or count (numbers of records); ``window_step`` defaults to the size (tumbling).
    A feature drifts when its deciding statistic (PSI for numbers, Jensen-Shannon for
    categories) passes its threshold, when more than ``max_missing_rate`` of the window's
    values are categories never seen in training, or when it is missing (the server could
    not fill it) in more than ``max_missing_rate`` of the window's records beyond its share
    of nulls in training. The model has concept drift when its own metric on labelled
    records falls against the reference's by more than a bar and by more than ``drop_z``
    standard errors: ROC AUC by ``max_auc_drop`` and recall at ``decision_threshold`` by
    ``max_recall_drop`` (binary), accuracy by ``max_accuracy_drop`` (absolute), an error
    metric (RMSE, MAE, log loss) rising by ``max_error_increase`` of the reference's value
    (relative). Alert sinks are ``"log"``, ``"file:PATH"`` or a webhook ``"http(s)://..."``.

    ``thresholds = "learned"`` judges drift statistics and realized and estimated metrics
    against bands learned from the reference period (mean ± ``band_sigmas`` standard
    deviations over reference windows of the same size, from ``reference_windows`` windows
    at least) instead of the fixed thresholds above, which stay for anything without a band.
    A learned drift band is never narrower than ``band_floor`` times the statistic's fixed
    threshold (PSI, Jensen-Shannon, KL, Wasserstein), a metric's band never narrower than
    ``drop_z`` standard errors of the window's metric.
    A binary model's performance is estimated from its scores before labels arrive (CBPE),
    with the scores mapped to the share of positives seen at them in ``calibration_bins``
    quantile bins of the reference period when bands were learned from one, else taken as
    probabilities when the held-out expected calibration error is at most
    ``estimation_max_ece``.
    """

    window_by: Literal["time", "count"] = "time"
    window_size: str = "1D"
    window_step: str | None = None
    lookback: str = "14D"
    min_rows: int = Field(default=200, ge=1)
    decision_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    psi_threshold: float = Field(default=0.2, gt=0.0)
    ks_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    ks_method: Literal["auto", "asymp"] = "asymp"
    js_threshold: float = Field(default=0.1, gt=0.0, le=1.0)
    kl_threshold: float = Field(default=0.1, gt=0.0)
    wasserstein_threshold: float = Field(default=0.1, gt=0.0)
    chi_square_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    max_auc_drop: float = Field(default=0.05, gt=0.0, le=1.0)
    max_recall_drop: float = Field(default=0.1, gt=0.0, le=1.0)
    max_accuracy_drop: float = Field(default=0.05, gt=0.0, le=1.0)
    max_error_increase: float = Field(default=0.1, gt=0.0)
    max_missing_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    drop_z: float = Field(default=3.0, ge=0.0)
    min_labelled: int = Field(default=100, ge=1)
    alerts: tuple[str, ...] = ("log",)
    thresholds: Literal["fixed", "learned"] = "fixed"
    band_sigmas: float = Field(default=3.0, gt=0.0)
    reference_windows: int = Field(default=6, ge=2)
    band_floor: float = Field(default=0.1, ge=0.0)
    estimation_max_ece: float = Field(default=0.05, gt=0.0, le=1.0)
    calibration_bins: int = Field(default=20, ge=1)


class Settings(_Section):
    """All settings of one project. Build with :func:`load_settings`."""

    root: Path = Field(default=Path("."), exclude=True)
    project: ProjectConfig = ProjectConfig()
    features: FeaturesConfig = FeaturesConfig()
    registry: RegistryConfig = RegistryConfig()
    gates: GatesConfig = GatesConfig()
    compute: ComputeConfig = ComputeConfig()
    audit: AuditConfig = AuditConfig()
    serving: ServingConfig = ServingConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    loop: dict[str, LoopPolicy] = Field(default_factory=dict)
    recsys: RecsysConfig = RecsysConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _model_gates_are_gates(self) -> Settings:
        for name in self.models:
            self.gates_for(name)
        return self

    def model(self, name: str) -> ModelConfig:
        """The ``[models.<name>]`` section (an empty one when the project has none)."""
        return self.models.get(name, ModelConfig())

    def gates_for(self, name: str, config: ModelConfig | None = None) -> GatesConfig:
        """``[gates]`` with the overrides of ``[models.<name>.gates]`` (or of ``config``)."""
        overrides = (config or self.model(name)).gates
        if not overrides:
            return self.gates
        try:
            return GatesConfig.model_validate({**self.gates.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"models.{name}.gates.{key}: {first['msg']}") from None

    def state_dir(self) -> Path:
        """The folder holding the embedded backends' state (``.driftloop/``)."""
        return self.root / ".driftloop"


def find_config(start: Path) -> Path | None:
    """The nearest ``driftloop.toml`` in ``start`` or its parents, like git finds ``.git``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_settings(
    config_file: str | Path | None = None,
    *,
    root: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve the settings of a project.

    ``config_file`` is the TOML file to read; without it ``DRIFTLOOP_CONFIG`` from
    ``environ``, else the nearest ``driftloop.toml`` from ``root`` (default: the current
    folder) upwards, else none. ``overrides`` are explicit arguments, as nested mappings
    or dotted keys (``{"serving.port": 9000}``), and win over everything.
    """
    environ = environ if environ is not None else {}
    start = Path(root) if root is not None else Path.cwd()
    if config_file is None and environ.get("DRIFTLOOP_CONFIG"):
        config_file = environ["DRIFTLOOP_CONFIG"]
    path = Path(config_file) if config_file is not None else find_config(start)

    merged: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    if path is not None:
        _merge(merged, sources, _read_toml(path), f"file {path}")
        project_root = path.resolve().parent
    else:
        project_root = start.resolve()
    for key, value in sorted(environ.items()):
        dotted = _env_key(key)
        if dotted is not None:
            _merge(merged, sources, _nest({dotted: value}), f"environment variable {key}")
    if overrides:
        _merge(merged, sources, _nest(overrides), "argument")
    merged["root"] = project_root
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, sources, path) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"Settings file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Settings file {path} is not valid TOML: {exc}.") from None


def _env_key(name: str) -> str | None:
    if not name.startswith(ENV_PREFIX) or name in _NON_SETTING_ENV:
        return None
    rest = name[len(ENV_PREFIX) :]
    if "__" not in rest:
        return "log_level" if rest == "LOG_LEVEL" else None
    return ".".join(part.lower() for part in rest.split("__"))


def _nest(flat_or_nested: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat_or_nested.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping):
            node.setdefault(parts[-1], {}).update(_nest(value))
        else:
            node[parts[-1]] = value
    return out


def _merge(
    into: dict[str, Any],
    sources: dict[tuple[str, ...], str],
    new: Mapping[str, Any],
    source: str,
    prefix: tuple[str, ...] = (),
) -> None:
    for key, value in new.items():
        loc = (*prefix, key)
        if isinstance(value, Mapping) and isinstance(into.get(key, {}), dict):
            _merge(into.setdefault(key, {}), sources, value, source, loc)
        else:
            into[key] = value
            sources[loc] = source


def _config_error(
    exc: ValidationError, sources: Mapping[tuple[str, ...], str], path: Path | None
) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(str(part) for part in err["loc"])
        key = ".".join(loc)
        source = _source_of(loc, sources) or (f"file {path}" if path else "defaults")
        if err["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            known = ", ".join(sorted(set(parent.model_fields) - {"root"})) if parent else ""
            what = f"unknown setting. Known here: {known}"
        elif err["type"] == "value_error":
            what = str(err["msg"]).removeprefix("Value error, ")
        else:
            msg = str(err["msg"]).removeprefix("Input should be ").split(", unable to")[0]
            what = f"expected {msg[0].lower()}{msg[1:]}, got {err['input']!r}"
        lines.append(f"{key} (from {source}): {what}." if key else f"{what} (from {source}).")
    return ConfigError("\n".join(lines))


def _source_of(loc: tuple[str, ...], sources: Mapping[tuple[str, ...], str]) -> str | None:
    for n in range(len(loc), 0, -1):
        if loc[:n] in sources:
            return sources[loc[:n]]
    below = sorted({src for key, src in sources.items() if key[: len(loc)] == loc})
    return ", ".join(below) or None


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The settings model at ``loc`` (a key of a ``dict[str, Model]`` field is skipped)."""
    model: type[BaseModel] = Settings
    parts = iter(loc)
    for part in parts:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
            if next(parts, None) is None:
                return None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
