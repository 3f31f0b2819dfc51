"""HTTP to Salesforce's REST API: login per auth kind, one re-login when a session expires, a
timeout on every call, and failures mapped onto trueup's error tree (wire spec §2, §3, §9).

``request`` never retries: callers decide what is safe to resend (the collections writer per
batch; ``with_retries`` for the reads here: describe, query pages, limits). It maps failures:

- connection errors, timeouts, dropped connections, HTTP 429/500/502/503/504, a concurrent-request
  ``REQUEST_LIMIT_EXCEEDED`` and a top-level ``UNABLE_TO_LOCK_ROW`` → TransientDestinationError
  (``retry_after`` from the Retry-After header);
- 401 → log in again once and resend; a second 401, a token endpoint refusal, or an expired token
  that was given in the config (nothing to renew it with) → AuthenticationError;
- 403 ``REQUEST_LIMIT_EXCEEDED`` for the daily allocation (§9.3) → ApiAllowanceExhausted
  (``mid_write``), never retried: nothing more can be sent until the allocation recovers;
- any other 4xx → FatalDestinationError reading ``errorCode: message`` (parsed body on ``.body``).

The client is shared by the writer's threads: logins are serialised, and a thread that finds
its session expired after another thread renewed it uses the new one instead of logging in again.
Messages never contain tokens, secrets or passwords.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import jwt
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from trueup.config_salesforce import (
    ClientCredentialsAuth,
    JwtAuth,
    SalesforceDestinationConfig,
    TokenAuth,
)
from trueup.errors import (
    ApiAllowanceExhausted,
    AuthenticationError,
    ConfigError,
    FatalDestinationError,
    TransientDestinationError,
)

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_LIFETIME = 180  # seconds; Salesforce wants a short-lived assertion
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def with_retries(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    initial_wait: float = 0.5,
    max_wait: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``, retrying TransientDestinationError with exponential backoff and jitter.

    A ``retry_after`` on the error is honoured: the wait is at least that long.
    """
    backoff = wait_exponential(multiplier=initial_wait, max=max_wait) + wait_random(0, initial_wait)

    def wait(state: RetryCallState) -> float:
        seconds = float(backoff(state))
        error = state.outcome.exception() if state.outcome is not None else None
        asked = getattr(error, "retry_after", None)
        return max(seconds, float(asked)) if asked else seconds

    retrying = Retrying(
        retry=retry_if_exception_type(TransientDestinationError),
        stop=stop_after_attempt(attempts),
        wait=wait,
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)


@dataclass(frozen=True)
class _Session:
    access_token: str
    instance_url: str


class SalesforceClient:
    """Authenticated calls to one org's REST API (``/services/data/v{api_version}/``)."""

    def __init__(
        self,
        config: SalesforceDestinationConfig,
        *,
        base_dir: Path,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._config = config
        self._base_dir = base_dir
        self._root = f"/services/data/v{config.api_version}/"
        self._http = httpx.Client(
            timeout=config.timeout,
            verify=self._verify(),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._login_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._session: _Session | None = None
        self.api_calls = 0  # data API calls sent (what counts against the daily allocation)
        self.logins = 0  # token requests that succeeded
        self.api_usage: tuple[int, int] | None = None  # (used, max) from Sforce-Limit-Info

    # -- the one way in -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one API call; ``path`` is relative to the versioned root unless it starts with /."""
        session = self._current_session()
        send = {"json": json, "params": params, "content": content, "headers": headers}
        response = self._send(session, method, path, **send)
        if response.status_code == 401:
            session = self._renew(session, response)
            response = self._send(session, method, path, **send)
            if response.status_code == 401:
                raise AuthenticationError(
                    f"Salesforce refused a newly issued session: {_error_text(response)}",
                    body=_body(response),
                )
        return self._checked(method, path, response)

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record the SOQL query returns, page after page (each page retried alone)."""
        page = with_retries(lambda: _json(self.request("GET", "query/", params={"q": soql})))
        while True:
            yield from page.get("records", [])
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            page = with_retries(partial(self._page, str(next_url)))

    def _page(self, path: str) -> Any:
        return _json(self.request("GET", path))

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe result of ``sobject`` (wire spec §4)."""
        if not _NAME.match(sobject):
            raise ValueError(f"not an sObject name: {sobject!r}")
        result: dict[str, Any] = with_retries(
            lambda: _json(self.request("GET", f"sobjects/{sobject}/describe/"))
        )
        return result

    def limits(self) -> dict[str, Any]:
        """The org's limits: ``{"DailyApiRequests": {"Max": n, "Remaining": n}, ...}``."""
        result: dict[str, Any] = with_retries(lambda: _json(self.request("GET", "limits/")))
        return result

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> SalesforceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------------------------

    def _send(self, session: _Session, method: str, path: str, **send: Any) -> httpx.Response:
        url = session.instance_url + (path if path.startswith("/") else self._root + path)
        headers = {**(send.pop("headers") or {}), "Authorization": f"Bearer {session.access_token}"}
        with self._count_lock:
            self.api_calls += 1
        try:
            response = self._http.request(method, url, headers=headers, **send)
        except httpx.HTTPError as exc:
            raise _connection_error(f"Salesforce {method} {_shown(path)}", exc) from exc
        found = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
        if found:
            self.api_usage = (int(found.group(1)), int(found.group(2)))
        return response

    def _checked(self, method: str, path: str, response: httpx.Response) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        text, body = _error_text(response), _body(response)
        message = f"Salesforce {method} {_shown(path)}: HTTP {status} {text}"
        codes = _error_codes(body)
        concurrent = status == 403 and "ConcurrentRequests" in text
        if status in TRANSIENT_STATUSES or concurrent or "UNABLE_TO_LOCK_ROW" in codes:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise TransientDestinationError(message, retry_after=retry_after, body=body)
        if status == 403 and "REQUEST_LIMIT_EXCEEDED" in codes:
            usage = (
                f" (api-usage {self.api_usage[0]}/{self.api_usage[1]})" if self.api_usage else ""
            )
            raise ApiAllowanceExhausted(
                f"Salesforce's daily API allocation is spent{usage}: {message}", mid_write=True
            )
        raise FatalDestinationError(message, body=body)

    # -- sessions --------------------------------------------------------------------------------

    def _current_session(self) -> _Session:
        with self._login_lock:
            if self._session is None:
                self._session = self._login()
            return self._session

    def _renew(self, stale: _Session, response: httpx.Response) -> _Session:
        """A new session after a 401, unless another thread already got one."""
        if isinstance(self._config.auth, TokenAuth):
            raise AuthenticationError(
                f"Salesforce refused the access token ({_error_text(response)}); a token given in "
                "the config cannot be renewed: set a fresh one, or use client_credentials or jwt "
                "auth",
                body=_body(response),
            )
        with self._login_lock:
            if self._session is None or self._session == stale:
                self._session = self._login()
            return self._session

    def _login(self) -> _Session:
        auth = self._config.auth
        if isinstance(auth, TokenAuth):
            return _Session(auth.access_token.get_secret_value(), auth.instance_url)
        if isinstance(auth, ClientCredentialsAuth):
            form = {
                "grant_type": "client_credentials",
                "client_id": auth.client_id,
                "client_secret": auth.client_secret.get_secret_value(),
            }
            return self._token(auth.token_url, form, auth.kind)
        if isinstance(auth, JwtAuth):
            form = {"grant_type": JWT_GRANT, "assertion": self._assertion(auth)}
            return self._token(auth.login_url, form, auth.kind)
        token = auth.security_token.get_secret_value() if auth.security_token else ""
        form = {
            "grant_type": "password",
            "client_id": auth.client_id,
            "client_secret": auth.client_secret.get_secret_value(),
            "username": auth.username,
            "password": auth.password.get_secret_value() + token,
        }
        return self._token(auth.login_url, form, auth.kind)

    def _token(self, base_url: str, form: dict[str, str], kind: str) -> _Session:
        url = f"{base_url}/services/oauth2/token"
        try:
            response = self._http.post(url, data=form)
        except httpx.HTTPError as exc:
            raise _connection_error(f"Salesforce login ({kind})", exc) from exc
        if response.status_code in TRANSIENT_STATUSES:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise TransientDestinationError(
                f"Salesforce login ({kind}): HTTP {response.status_code} {_error_text(response)}",
                retry_after=retry_after,
            )
        body = _body(response)
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise AuthenticationError(
                f"Salesforce refused the login ({kind}): {_error_text(response)}", body=body
            )
        self.logins += 1
        instance = str(body.get("instance_url") or base_url).rstrip("/")
        return _Session(str(body["access_token"]), instance)

    def _assertion(self, auth: JwtAuth) -> str:
        path = self._file(auth.private_key_file, "destination.auth.private_key_file")
        claims = {
            "iss": auth.client_id,
            "sub": auth.username,
            "aud": auth.audience or auth.login_url,
            "exp": int(time.time()) + JWT_LIFETIME,
        }
        try:
            return jwt.encode(claims, path.read_bytes(), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ConfigError(
                f"{path} is not an RSA private key in PEM format",
                path="destination.auth.private_key_file",
            ) from exc

    def _verify(self) -> ssl.SSLContext | bool:
        if self._config.ca_bundle is None:
            return True
        path = self._file(self._config.ca_bundle, "destination.ca_bundle")
        try:
            return ssl.create_default_context(cafile=str(path))
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{path} holds no PEM certificates", path="destination.ca_bundle"
            ) from exc

    def _file(self, name: str, config_path: str) -> Path:
        path = Path(name).expanduser()
        path = path if path.is_absolute() else (self._base_dir / path).resolve()
        if not path.is_file():
            raise ConfigError(f"no such file: {path}", path=config_path)
        return path


# -- answers -------------------------------------------------------------------------------------


def _shown(path: str) -> str:
    return path.split("?", 1)[0]


def _connection_error(what: str, exc: httpx.HTTPError) -> Exception:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FatalDestinationError(
                f"{what}: the server's certificate is not trusted ({cause.verify_message}); "
                "set destination.ca_bundle to the CA file that signs it"
            )
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.TimeoutException):
        return TransientDestinationError(f"{what}: timed out ({type(exc).__name__})")
    detail = str(exc) or type(exc).__name__
    return TransientDestinationError(f"{what}: connection failed ({detail})")


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise FatalDestinationError(
            f"Salesforce answered {response.request.url.path} with something that is not JSON"
        ) from exc


def _error_codes(body: Any) -> list[str]:
    if isinstance(body, list):
        return [str(item.get("errorCode")) for item in body if isinstance(item, dict)]
    return []


def _error_text(response: httpx.Response) -> str:
    """Salesforce's ``errorCode: message`` (or the token endpoint's ``error: description``)."""
    body = _body(response)
    if isinstance(body, list):
        parts = [
            f"{item.get('errorCode', '?')}: {item.get('message', '')}".strip()
            for item in body
            if isinstance(item, dict)
        ]
        if parts:
            return "; ".join(parts)
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']}: {body.get('error_description', '')}".strip()
    text = " ".join(response.text.split())[:200]
    return text or response.reason_phrase


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
