"""The sandbox's OAuth 2.0 token endpoint and session checks (wire spec §2).

``Auth.issue`` answers ``POST /services/oauth2/token`` for the three grants a sync uses: username-
password (``password`` is the password with the security token appended), client credentials (key
and secret in the form or, as simple-salesforce sends them, in an HTTP Basic header) and the JWT
bearer flow (an RS256 assertion checked against the connected app's public key or certificate).
Failures raise ``AuthError``, rendered as ``{"error": ..., "error_description": ...}``, HTTP 400.

Access tokens are random opaque strings shaped like Salesforce session ids (``{orgId}!{random}``).
A token lapses after ``token_ttl`` seconds without use, as Salesforce sessions time out after
inactivity (§2.7); ``revoke_all`` ends every session at once for the token-expiry fault. ``verify``
raises the 401 ``INVALID_SESSION_ID`` ApiError that clients refresh on.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from trueup.sandbox.errors import ApiError
from trueup.sandbox.ids import mint

GRANT_PASSWORD = "password"
GRANT_CLIENT_CREDENTIALS = "client_credentials"
GRANT_JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"

ORG_ID = mint("00D", 1)
USER_ID = mint("005", 1)
SCOPE = "api"

# Audiences Salesforce accepts in a JWT assertion (§2.3), plus My Domain hosts, which simple-
# salesforce builds as https://{domain}.salesforce.com when given a My Domain prefix.
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
MY_DOMAIN_AUDIENCE = "https://*.my.salesforce.com"

_TOKEN_ALPHABET = string.ascii_letters + string.digits + "._"


class AuthError(Exception):
    """A token-endpoint failure: HTTP status plus the OAuth ``error`` and ``error_description``."""

    def __init__(self, error: str, error_description: str, *, status: int = 400) -> None:
        super().__init__(f"{status} {error}: {error_description}")
        self.status = status
        self.error = error
        self.error_description = error_description

    def body(self) -> dict[str, str]:
        """The JSON body Salesforce sends for this failure."""
        return {"error": self.error, "error_description": self.error_description}


def _unknown_client() -> AuthError:
    return AuthError("invalid_client_id", "client identifier invalid")


def _bad_secret() -> AuthError:
    return AuthError("invalid_client", "invalid client credentials")


def _auth_failure() -> AuthError:
    return AuthError("invalid_grant", "authentication failure")


def _invalid_assertion() -> AuthError:
    return AuthError("invalid_grant", "invalid assertion")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _load_public_key(pem: bytes) -> RSAPublicKey:
    """An RSA key from a PEM public key or a PEM X.509 certificate (what Salesforce stores)."""
    key: object
    if b"BEGIN CERTIFICATE" in pem:
        key = x509.load_pem_x509_certificate(pem).public_key()
    else:
        key = load_pem_public_key(pem)
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the JWT bearer flow needs an RSA public key (RS256)")
    return key


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """Client id and secret from an HTTP Basic header, as simple-salesforce sends them (§2.4)."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None


class Auth:
    """One connected app and one integration user: issues, checks and revokes access tokens."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        username: str = "sandbox@trueup.local",
        password: str = "sandbox-password",
        security_token: str = "",
        jwt_public_key: bytes | None = None,
        jwt_audiences: Iterable[str] = (),
        token_ttl: float = 7200.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.username = username
        self.password = password
        self.security_token = security_token
        self.token_ttl = token_ttl
        self._public_key = _load_public_key(jwt_public_key) if jwt_public_key else None
        self._audiences = (*LOGIN_AUDIENCES, *jwt_audiences)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, float] = {}  # token -> last use, epoch seconds

    @classmethod
    def generate(cls, **kwargs: Any) -> Auth:
        """An Auth with a fresh random client id and secret, for a new sandbox."""
        kwargs.setdefault("client_id", "3MVG9" + secrets.token_urlsafe(60).replace("-", "."))
        kwargs.setdefault("client_secret", secrets.token_hex(32).upper())
        return cls(**kwargs)

    def issue(
        self,
        form: Mapping[str, str],
        *,
        instance_url: str,
        authorization: str | None = None,
    ) -> dict[str, Any]:
        """Answer a token request (form, optional Authorization header) or raise AuthError."""
        grant = form.get("grant_type", "")
        if grant == GRANT_PASSWORD:
            self._check_client(form.get("client_id"), form.get("client_secret"))
            self._check_user(form.get("username"), form.get("password"))
            return self._response(instance_url, signed=True, scoped=False)
        if grant == GRANT_CLIENT_CREDENTIALS:
            basic = _basic_credentials(authorization)
            if basic is not None:
                self._check_client(*basic)
            else:
                self._check_client(form.get("client_id"), form.get("client_secret"))
            return self._response(instance_url, signed=True, scoped=True)
        if grant == GRANT_JWT_BEARER:
            self._check_assertion(form.get("assertion", ""), instance_url)
            return self._response(instance_url, signed=False, scoped=True)
        raise AuthError("unsupported_grant_type", "grant type not supported")

    def verify(self, authorization: str | None) -> None:
        """Accept ``Bearer <token>`` (or ``OAuth <token>``) for a live session, else raise 401."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        now = self._clock()
        with self._lock:
            last_use = self._sessions.get(token) if scheme.lower() in ("bearer", "oauth") else None
            if last_use is None or now - last_use >= self.token_ttl:
                self._sessions.pop(token, None)
                raise ApiError(401, "INVALID_SESSION_ID", "Session expired or invalid")
            self._sessions[token] = now

    def revoke_all(self) -> None:
        """End every session: each token issued so far gets 401 from now on."""
        with self._lock:
            self._sessions.clear()

    def issue_direct(self) -> str:
        """A valid access token without the HTTP flow (for the CLI to print, and for tests)."""
        return self._new_token()

    def _check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if not client_id or not _same(client_id, self.client_id):
            raise _unknown_client()
        if client_secret is None or not _same(client_secret, self.client_secret):
            raise _bad_secret()

    def _check_user(self, username: str | None, password: str | None) -> None:
        user_ok = username is not None and _same(username.lower(), self.username.lower())
        password_ok = password is not None and _same(password, self.password + self.security_token)
        if not (user_ok and password_ok):
            raise _auth_failure()

    def _check_assertion(self, assertion: str, instance_url: str) -> None:
        """Check an RS256 JWT in the order Salesforce reports problems: app, signature, claims."""
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise _invalid_assertion() from exc
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not _same(issuer, self.client_id):
            raise _unknown_client()
        if self._public_key is None:
            raise _invalid_assertion()
        try:
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                # exp is checked below against the sandbox clock; simple-salesforce sends it as a
                # numeric string, which PyJWT's own check rejects.
                options={
                    "verify_exp": False,
                    "verify_aud": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "sub", "aud", "exp"],
                },
            )
        except jwt.InvalidTokenError as exc:
            raise _invalid_assertion() from exc
        if not self._audience_ok(claims["aud"], instance_url):
            raise AuthError("invalid_grant", "audience is invalid")
        try:
            expires = float(claims["exp"])
        except (TypeError, ValueError) as exc:
            raise _invalid_assertion() from exc
        if expires <= self._clock():
            raise AuthError("invalid_grant", "expired authorization code")
        subject = claims["sub"]
        if not isinstance(subject, str) or not _same(subject.lower(), self.username.lower()):
            raise AuthError("invalid_grant", "user hasn't approved this consumer")

    def _audience_ok(self, audience: object, instance_url: str) -> bool:
        values = audience if isinstance(audience, list) else [audience]
        host = instance_url.split("://", 1)[-1].rstrip("/")
        accepted = {*self._audiences, f"https://{host}", f"http://{host}"}
        for value in values:
            if not isinstance(value, str):
                continue
            value = value.rstrip("/")
            if value in accepted or fnmatchcase(value, MY_DOMAIN_AUDIENCE):
                return True
        return False

    def _new_token(self) -> str:
        random_part = "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(96))
        token = f"{ORG_ID[:15]}!AQ{random_part}"
        with self._lock:
            self._sessions[token] = self._clock()
        return token

    def _response(self, instance_url: str, *, signed: bool, scoped: bool) -> dict[str, Any]:
        """The success body, with the fields each flow returns (§2.2, §2.3, §2.4)."""
        identity = f"{instance_url.rstrip('/')}/id/{ORG_ID}/{USER_ID}"
        body: dict[str, Any] = {"access_token": self._new_token()}
        if scoped:
            body["scope"] = SCOPE
        body.update(instance_url=instance_url, id=identity, token_type="Bearer")
        if signed:
            issued_at = str(int(self._clock() * 1000))
            # Salesforce signs id + issued_at with the consumer secret (HMAC-SHA256, base64).
            digest = hmac.new(
                self.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
            ).digest()
            body["issued_at"] = issued_at
            body["signature"] = base64.b64encode(digest).decode()
        return body
