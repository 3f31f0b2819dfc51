"""Serving the sandbox: uvicorn in a background thread, HTTPS from a per-sandbox CA by default.

``Sandbox`` is a context manager for tests and embedding::

    with Sandbox(page_size=3) as sandbox:
        requests.get(f"{sandbox.url}/services/data/v59.0/limits/",
                     headers={"Authorization": f"Bearer {sandbox.access_token}"},
                     verify=sandbox.ca_path)

HTTPS is the default because simple-salesforce only speaks ``https://`` (wire spec §11.1): each
sandbox makes a throwaway CA with trustme, a certificate for ``127.0.0.1`` and ``localhost``
signed by it, and writes the CA's PEM to ``ca_path`` for clients to trust. ``http=True`` serves
plain HTTP instead. ``serve_forever`` runs one in the foreground for ``trueup sandbox``.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import trustme
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from trueup.sandbox.app import DROP_EXTENSION, SandboxState, create_app
from trueup.sandbox.auth import Auth
from trueup.sandbox.bulk2 import IngestJobs
from trueup.sandbox.faults import FaultPlan
from trueup.sandbox.objects import SObject
from trueup.sandbox.org import Org

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


class _DroppingH11(H11Protocol):
    """uvicorn's h11 protocol, offering the app a way to close its connection unanswered."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def drop() -> None:
            transport.abort()
            # Let connection_lost run, so uvicorn knows the client is gone and sends no 500.
            for _ in range(5):
                await asyncio.sleep(0)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[DROP_EXTENSION] = drop
            await inner(scope, receive, send)

        self.app = app

    def shutdown(self) -> None:
        """Close idle connections at once: a TLS goodbye would wait for clients that never read."""
        idle = self.cycle is None or self.cycle.response_complete
        super().shutdown()
        if idle:
            self.transport.abort()


class Sandbox:
    """A running sandbox: its URL, credentials, CA file and state."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        http: bool = False,
        data: Path | None = None,
        faults: Path | FaultPlan | None = None,
        page_size: int = 2000,
        api_limit: int = 15000,
        realistic_bulk: bool = False,
        seconds_per_batch: float = 1.0,
        token_ttl: float = 7200.0,
        jwt_public_key: bytes | None = None,
        ca_out: Path | None = None,
        objects: dict[str, SObject] | None = None,
    ) -> None:
        if isinstance(faults, FaultPlan):
            plan = faults
        else:
            plan = FaultPlan.load(faults) if faults is not None else FaultPlan.none()
        org = Org(objects, rules=plan, path=data)
        self.state = SandboxState(
            org=org,
            auth=Auth.generate(token_ttl=token_ttl, jwt_public_key=jwt_public_key),
            jobs=IngestJobs(org, realistic=realistic_bulk, seconds_per_batch=seconds_per_batch),
            faults=plan,
            page_size=page_size,
            api_limit=api_limit,
        )
        self.host = host
        self.port = port
        self.http = http
        self._ca_out = ca_out
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.ca_path: Path | None = None
        self.access_token = ""

    # -- credentials and addresses ----------------------------------------------------------

    @property
    def url(self) -> str:
        """The instance URL (``https://127.0.0.1:PORT``)."""
        scheme = "http" if self.http else "https"
        host = WILDCARDS.get(self.host, self.host)  # listening everywhere: advertise loopback
        host = f"[{host}]" if ":" in host else host
        return f"{scheme}://{host}:{self.port}"

    @property
    def client_id(self) -> str:
        """The connected app's consumer key."""
        return self.state.auth.client_id

    @property
    def client_secret(self) -> str:
        """The connected app's consumer secret."""
        return self.state.auth.client_secret

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind, start serving in a background thread, and wait until it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("this sandbox is already started")
        self._tmp = tempfile.TemporaryDirectory(prefix="trueup-sandbox-")
        tls = self._tls()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            self.state.org.close()
            self._cleanup()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.state),
            http=_DroppingH11,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            **tls,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="trueup-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.access_token = self.state.auth.issue_direct()
        return self

    def _tls(self) -> dict[str, Any]:
        assert self._tmp is not None
        if self.http:
            return {}
        folder = Path(self._tmp.name)
        ca = trustme.CA(organization_name="trueup sandbox")
        self.ca_path = self._ca_out or folder / "ca.pem"
        self.ca_path.parent.mkdir(parents=True, exist_ok=True)
        ca.cert_pem.write_to_path(str(self.ca_path))
        names = ["127.0.0.1", "localhost", "::1"]
        if self.host not in names and self.host not in WILDCARDS:
            names.append(self.host)
        server_pem = folder / "server.pem"
        ca.issue_cert(*names).private_key_and_cert_chain_pem.write_to_path(str(server_pem))
        return {"ssl_certfile": str(server_pem)}

    def stop(self) -> None:
        """Stop serving, wait for the thread, close the org's file and remove temporary files."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            if self._thread.is_alive() and self._server is not None:
                self._server.force_exit = True
                self._thread.join(STOP_TIMEOUT)
        self._server = None
        self._thread = None
        self.state.org.close()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(ready: Callable[[Sandbox], None] | None = None, **options: Any) -> None:
    """Run a sandbox until Ctrl-C or SIGTERM; ``ready`` is called once it serves."""
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with Sandbox(**options) as sandbox:
            if ready is not None:
                ready(sandbox)
            with suppress(KeyboardInterrupt):
                while not done.wait(0.5):
                    if not sandbox.running:
                        raise RuntimeError("the sandbox server stopped unexpectedly")
    finally:
        signal.signal(signal.SIGTERM, previous)
