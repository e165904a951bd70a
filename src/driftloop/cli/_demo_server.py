"""The demo's model server: the real ASGI app under uvicorn on 127.0.0.1 (a free port, a
background thread), and the client side the story drives it with (httpx, a few threads).

The server follows the registry: its aliases and the traffic policy the loop controller
sets. The client only counts what it was answered: every status, and the rows each
version answered per route.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from driftloop.audit import open_audit_log
from driftloop.core.config import Settings
from driftloop.core.errors import BackendUnavailableError
from driftloop.registry import Registry

__all__ = ["Answers", "StoryServer", "serving"]

START_BOUND_S = 60.0  # a bound for a server that never starts, not a timing assertion
SYNC_BOUND_S = 30.0


@dataclass
class Answers:
    """What the clients were answered: statuses, and rows by (version, route)."""

    statuses: Counter[int] = field(default_factory=Counter)
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Responses that were not 2xx."""
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


class StoryServer:
    """Client side of the running server at ``base`` (see :func:`serving`)."""

    def __init__(self, base: str, model: str, feedback: str, admin: str, threads: int) -> None:
        self.base = base
        self.model = model
        self.feedback_token = feedback
        self.admin_token = admin
        self.answers = Answers()
        self.shadowing = False  # the policy the server follows now copies to a shadow
        self.copies = 0  # requests answered while shadowing: each was copied
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="demo-client")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clients: list[httpx.Client] = []

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self.base, timeout=60.0)
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _predict(self, instances: list[dict[str, Any]]) -> list[str | None]:
        response = self._client().post(
            f"/v1/models/{self.model}/predict", json={"instances": instances}
        )
        with self._lock:
            self.answers.statuses[response.status_code] += 1
            if response.status_code != 200:
                return [None] * len(instances)
            body = response.json()
            self.copies += self.shadowing
            self.answers.rows[(str(body["version"]), str(body["route"]))] += len(instances)
        return [p["prediction_id"] for p in body["predictions"]]

    def predict(self, instances: Sequence[dict[str, Any]], per_request: int) -> list[str | None]:
        """Send ``instances`` in requests of ``per_request`` rows from the client threads;
        the prediction id of each (None where the request failed), in order."""
        chunks = [
            list(instances[i : i + per_request]) for i in range(0, len(instances), per_request)
        ]
        return [pid for ids in self._pool.map(self._predict, chunks) for pid in ids]

    def feedback(self, labels: list[dict[str, Any]]) -> None:
        """Send labels through ``/v1/feedback`` (the feedback token), 500 at a time."""
        for start in range(0, len(labels), 500):
            self._client().post(
                "/v1/feedback",
                json={"labels": labels[start : start + 500]},
                headers={"Authorization": f"Bearer {self.feedback_token}"},
            ).raise_for_status()

    def follows(self, revision: int) -> None:
        """Wait until the server routes by traffic revision ``revision`` or a later one
        (it polls the registry), so traffic stamped after a loop decision follows it."""
        deadline = time.monotonic() + SYNC_BOUND_S
        while True:
            seen = self._client().get(
                f"/v1/models/{self.model}/traffic",
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
            seen.raise_for_status()
            if int(seen.json().get("revision") or 0) >= revision:
                return
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"The demo's server still routes {self.model} by traffic revision "
                    f"{seen.json().get('revision')} after {SYNC_BOUND_S:.0f} s; the loop set "
                    f"{revision}."
                )
            time.sleep(0.02)

    def shadow_settled(self) -> None:
        """Wait until the shadow has finished every copy it was offered (scored, failed
        or dropped, as ``/metrics`` counts them): the loop then judges the shadow on all
        of its rows, not on the ones whose turn came first."""
        deadline = time.monotonic() + SYNC_BOUND_S
        while (seen := self._shadow_outcomes()) < self.copies:
            if time.monotonic() > deadline:
                raise BackendUnavailableError(
                    f"The demo's server finished {seen} of {self.copies} shadow copies of "
                    f"{self.model} in {SYNC_BOUND_S:.0f} s."
                )
            time.sleep(0.02)

    def _shadow_outcomes(self) -> int:
        text = self._client().get("/metrics").text
        prefix, mine = "driftloop_shadow_total{", f'model="{self.model}"'
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith(prefix) and mine in line
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for client in self._clients:
            client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(settings: Settings, model: str, *, threads: int = 4) -> Iterator[StoryServer]:
    """The project's server for ``model`` on 127.0.0.1, started in a thread, stopped on
    exit; its audit log is the project's, its feedback and admin tokens made here."""
    from driftloop.serving import RegistryModelSource, ServedModel, create_app, token_digest

    config = settings.model(model)
    registry = Registry.from_settings(settings)
    audit = open_audit_log(settings.audit.url, root=settings.root)
    feedback, admin = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    app = create_app(
        [ServedModel(model, decision=config.decision, missing=config.missing)],
        RegistryModelSource(registry),
        settings=settings.serving,
        audit=audit,
        close_audit=True,
        traffic=registry.traffic,
        refresh_s=0.05,
        feedback_digest=token_digest(feedback),
        admin_digest=token_digest(admin),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="demo-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_BOUND_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            registry.close()
            raise BackendUnavailableError(f"The demo's server did not start on port {port}.")
        time.sleep(0.02)
    client = StoryServer(f"http://127.0.0.1:{port}", model, feedback, admin, threads)
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(30)
        registry.close()
