"""``[compute]``: where heavy offline work runs (in process, or on a Ray cluster)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

__all__ = ["ComputeConfig"]


def _ray_address(address: str) -> str:
    """``auto`` (the cluster this machine belongs to), ``local`` (start one in this
    process), ``ray://host:port`` (Ray Client) or ``host:port`` (a head's GCS address)."""
    if address in ("auto", "local"):
        return address
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise ValueError(
            f"expected 'auto', 'local', 'ray://host:port' or 'host:port', got {address!r}"
        )
    return address


class ComputeConfig(BaseModel):
    """Where heavy offline work runs (``[compute]``): training frames, batch scoring,
    hyper-parameter search and distributed training.

    ``engine = "local"`` (the default) runs it in this process; ``"ray"`` on the Ray
    cluster at ``address``: ``"auto"`` (the cluster this machine joined with ``ray
    start``), ``"local"`` (a one-machine cluster started for the command, bounded by
    ``num_cpus``), ``"ray://host:port"`` (Ray Client) or ``"host:port"`` (the head's
    address). ``partitions`` is how many entity-key hash partitions a training frame is
    cut into (unset: one per CPU of the cluster; with the local engine, one).
    ``max_retries`` is how many times a task whose worker died is run again;
    ``max_failures`` how many times distributed training (Ray Train) restarts its group of
    training workers after one died, from its latest checkpoint, taken every
    ``checkpoint_every`` boosting rounds. Ray is an extra: ``pip install 'driftloop[ray]'``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    engine: Literal["local", "ray"] = "local"
    address: Annotated[str, AfterValidator(_ray_address)] = "auto"
    partitions: int | None = Field(default=None, ge=1, le=100_000)
    num_cpus: int | None = Field(default=None, ge=1, le=4_096)
    max_retries: int = Field(default=3, ge=0, le=100)
    max_failures: int = Field(default=2, ge=0, le=100)
    checkpoint_every: int = Field(default=10, ge=1, le=100_000)
