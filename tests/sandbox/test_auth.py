"""The sandbox token endpoint and session checks: each grant, each failure body, expiry."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from trueup.sandbox.auth import GRANT_JWT_BEARER, Auth, AuthError
from trueup.sandbox.errors import ApiError

INSTANCE = "http://127.0.0.1:8765"
CLIENT_ID = "3MVG9testclient"
SECRET = "S3CR3T"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_767_225_600.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _certificate_pem(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trueup test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return _key()


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture()
def auth(key: rsa.RSAPrivateKey, clock: FakeClock) -> Auth:
    return Auth(
        client_id=CLIENT_ID,
        client_secret=SECRET,
        username="sync@acme.example",
        password="hunter2",
        security_token="TOKEN42",
        jwt_public_key=_public_pem(key),
        clock=clock,
    )


def _password_form(**overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "username": "sync@acme.example",
        "password": "hunter2TOKEN42",
    }
    return {**form, **overrides}


def _assertion(key: rsa.RSAPrivateKey, now: float, **claims: Any) -> str:
    payload = {
        "iss": CLIENT_ID,
        "sub": "sync@acme.example",
        "aud": "https://login.salesforce.com",
        "exp": f"{now + 180:.0f}",  # simple-salesforce sends exp as a numeric string
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256")


def _failure(auth: Auth, form: dict[str, str], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(AuthError) as caught:
        auth.issue(form, instance_url=INSTANCE, **kwargs)
    assert caught.value.status == 400
    return caught.value.body()


def test_password_grant_returns_the_documented_fields(auth: Auth, clock: FakeClock) -> None:
    body = auth.issue(_password_form(), instance_url=INSTANCE)
    assert set(body) == {
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
    }
    assert body["instance_url"] == INSTANCE
    assert body["token_type"] == "Bearer"
    assert body["issued_at"] == str(int(clock.now * 1000))
    assert body["id"].startswith(f"{INSTANCE}/id/00D")
    expected = hmac.new(
        SECRET.encode(), (body["id"] + body["issued_at"]).encode(), hashlib.sha256
    ).digest()
    assert base64.b64decode(body["signature"]) == expected
    auth.verify(f"Bearer {body['access_token']}")


@pytest.mark.parametrize(
    ("overrides", "error", "description"),
    [
        ({"password": "hunter2"}, "invalid_grant", "authentication failure"),
        ({"username": "someone@else.example"}, "invalid_grant", "authentication failure"),
        ({"client_id": "nope"}, "invalid_client_id", "client identifier invalid"),
        ({"client_secret": "wrong"}, "invalid_client", "invalid client credentials"),
        (
            {"grant_type": "authorization_code"},
            "unsupported_grant_type",
            "grant type not supported",
        ),
    ],
)
def test_password_grant_failures(
    auth: Auth, overrides: dict[str, str], error: str, description: str
) -> None:
    assert _failure(auth, _password_form(**overrides)) == {
        "error": error,
        "error_description": description,
    }


def test_missing_grant_type_is_unsupported(auth: Auth) -> None:
    assert _failure(auth, {})["error"] == "unsupported_grant_type"


def test_client_credentials_in_the_form(auth: Auth) -> None:
    form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    body = auth.issue(form, instance_url=INSTANCE)
    assert set(body) == {
        "access_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    }
    auth.verify(f"Bearer {body['access_token']}")


def test_client_credentials_in_a_basic_header_as_simple_salesforce_sends_them(auth: Auth) -> None:
    basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    body = auth.issue(
        {"grant_type": "client_credentials"}, instance_url=INSTANCE, authorization=basic
    )
    auth.verify(f"Bearer {body['access_token']}")

    wrong = "Basic " + base64.b64encode(f"{CLIENT_ID}:nope".encode()).decode()
    failure = _failure(auth, {"grant_type": "client_credentials"}, authorization=wrong)
    assert failure == {"error": "invalid_client", "error_description": "invalid client credentials"}


def test_client_credentials_with_an_unknown_client(auth: Auth) -> None:
    form = {"grant_type": "client_credentials", "client_id": "other", "client_secret": SECRET}
    assert _failure(auth, form)["error"] == "invalid_client_id"


def test_jwt_bearer_grant(auth: Auth, key: rsa.RSAPrivateKey, clock: FakeClock) -> None:
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": _assertion(key, clock.now)}
    body = auth.issue(form, instance_url=INSTANCE)
    assert set(body) == {"access_token", "scope", "instance_url", "id", "token_type"}
    auth.verify(f"Bearer {body['access_token']}")


def test_jwt_signed_by_another_key_is_an_invalid_assertion(auth: Auth, clock: FakeClock) -> None:
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": _assertion(_key(), clock.now)}
    assert _failure(auth, form) == {
        "error": "invalid_grant",
        "error_description": "invalid assertion",
    }


@pytest.mark.parametrize(
    ("claims", "error", "description"),
    [
        ({"aud": "https://example.com"}, "invalid_grant", "audience is invalid"),
        ({"exp": 1_767_225_000}, "invalid_grant", "expired authorization code"),
        ({"iss": "someone-else"}, "invalid_client_id", "client identifier invalid"),
        ({"sub": "ghost@acme.example"}, "invalid_grant", "user hasn't approved this consumer"),
    ],
)
def test_jwt_claim_failures(
    auth: Auth,
    key: rsa.RSAPrivateKey,
    clock: FakeClock,
    claims: dict[str, Any],
    error: str,
    description: str,
) -> None:
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": _assertion(key, clock.now, **claims)}
    assert _failure(auth, form) == {"error": error, "error_description": description}


@pytest.mark.parametrize(
    "audience",
    ["https://test.salesforce.com", "https://acme.my.salesforce.com", "https://127.0.0.1:8765"],
)
def test_jwt_audiences_accepted(
    auth: Auth, key: rsa.RSAPrivateKey, clock: FakeClock, audience: str
) -> None:
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": _assertion(key, clock.now, aud=audience)}
    assert auth.issue(form, instance_url=INSTANCE)["token_type"] == "Bearer"


def test_jwt_garbage_and_missing_assertions(auth: Auth) -> None:
    for form in (
        {"grant_type": GRANT_JWT_BEARER},
        {"grant_type": GRANT_JWT_BEARER, "assertion": "x.y"},
    ):
        assert _failure(auth, form)["error_description"] == "invalid assertion"


def test_jwt_checked_against_an_uploaded_certificate(key: rsa.RSAPrivateKey) -> None:
    auth = Auth(client_id=CLIENT_ID, client_secret=SECRET, jwt_public_key=_certificate_pem(key))
    assertion = _assertion(key, time.time(), sub="sandbox@trueup.local")
    body = auth.issue(
        {"grant_type": GRANT_JWT_BEARER, "assertion": assertion}, instance_url=INSTANCE
    )
    auth.verify(f"Bearer {body['access_token']}")


def test_jwt_without_a_configured_key_is_refused(key: rsa.RSAPrivateKey) -> None:
    auth = Auth(client_id=CLIENT_ID, client_secret=SECRET)
    assertion = _assertion(key, time.time(), sub="sandbox@trueup.local")
    form = {"grant_type": GRANT_JWT_BEARER, "assertion": assertion}
    assert _failure(auth, form)["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer not-a-token", "Basic abc", "Bearer  "]
)
def test_verify_rejects_with_invalid_session_id(auth: Auth, header: str | None) -> None:
    with pytest.raises(ApiError) as caught:
        auth.verify(header)
    assert caught.value.status == 401
    assert caught.value.body() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_session_expires_after_ttl_of_inactivity(clock: FakeClock) -> None:
    auth = Auth(client_id=CLIENT_ID, client_secret=SECRET, token_ttl=60, clock=clock)
    token = auth.issue_direct()
    clock.now += 59
    auth.verify(f"Bearer {token}")  # use keeps the session alive
    clock.now += 59
    auth.verify(f"OAuth {token}")
    clock.now += 60
    with pytest.raises(ApiError, match="INVALID_SESSION_ID"):
        auth.verify(f"Bearer {token}")


def test_revoke_all_ends_every_session(auth: Auth) -> None:
    tokens = [auth.issue_direct() for _ in range(3)]
    auth.revoke_all()
    for token in tokens:
        with pytest.raises(ApiError, match="INVALID_SESSION_ID"):
            auth.verify(f"Bearer {token}")
    fresh = auth.issue(_password_form(), instance_url=INSTANCE)["access_token"]
    auth.verify(f"Bearer {fresh}")


def test_tokens_are_distinct_opaque_strings(auth: Auth) -> None:
    tokens = {auth.issue_direct() for _ in range(50)}
    assert len(tokens) == 50
    assert all(t.startswith("00D") and "!" in t and len(t) > 60 for t in tokens)


def test_generate_makes_fresh_credentials() -> None:
    first, second = Auth.generate(), Auth.generate(password="pw")
    assert first.client_id != second.client_id
    assert first.client_secret != second.client_secret
    assert first.client_id.startswith("3MVG9")
    form = {
        "grant_type": "password",
        "client_id": second.client_id,
        "client_secret": second.client_secret,
        "username": "sandbox@trueup.local",
        "password": "pw",
    }
    second.verify(f"Bearer {second.issue(form, instance_url=INSTANCE)['access_token']}")


class _TokenEndpoint:
    """Stands in for requests.Session: hands simple-salesforce's token POST to Auth.issue."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    def post(self, url: str, data: dict[str, str], **kwargs: Any) -> Any:
        authorization = (kwargs.get("headers") or {}).get("Authorization")
        try:
            body, status = (
                self.auth.issue(data, instance_url=INSTANCE, authorization=authorization),
                200,
            )
        except AuthError as exc:
            body, status = exc.body(), exc.status

        class Reply:
            status_code = status
            text = json.dumps(body)

            def json(self) -> Any:
                return body

        return Reply()


def test_simple_salesforce_jwt_and_client_credentials_logins(key: rsa.RSAPrivateKey) -> None:
    login = pytest.importorskip("simple_salesforce.login")
    failed = pytest.importorskip("simple_salesforce.exceptions").SalesforceAuthenticationFailed
    auth = Auth(client_id=CLIENT_ID, client_secret=SECRET, jwt_public_key=_public_pem(key))
    session = _TokenEndpoint(auth)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token, instance = login.SalesforceLogin(
        username="sandbox@trueup.local", consumer_key=CLIENT_ID, privatekey=pem, session=session
    )
    assert instance == "127.0.0.1:8765"
    auth.verify(f"Bearer {token}")
    token, _ = login.SalesforceLogin(
        consumer_key=CLIENT_ID, consumer_secret=SECRET, domain="acme.my", session=session
    )
    auth.verify(f"Bearer {token}")
    with pytest.raises(failed, match="invalid client credentials"):
        login.SalesforceLogin(
            consumer_key=CLIENT_ID, consumer_secret="wrong", domain="acme.my", session=session
        )
