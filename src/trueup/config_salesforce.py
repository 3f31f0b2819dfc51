"""The ``destination: {kind: salesforce}`` section: the object, the connection and how to log in.

Secrets (tokens, client secrets, passwords) are SecretStr; users write ``${ENV}`` for them, so they
never sit in the file. Four ways to log in (``auth.kind``):

- ``token``: an access token and the instance URL it belongs to (cannot be renewed when it expires);
- ``client_credentials``: a connected app's key and secret, posted to the org's My Domain URL;
- ``jwt``: JWT bearer: a connected app's key, a username and an RSA private key file to sign;
- ``password``: username, password and security token with a connected app's key and secret.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator

from trueup.config_fields import Identifier, Section, between

_VERSION = re.compile(r"^\d{2,3}\.0$")
# Records per snapshot query: below one full page (2,000) chunking only costs calls.
MIN_SNAPSHOT_CHUNK, MAX_SNAPSHOT_CHUNK = 2_000, 5_000_000


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or len(value.split("://", 1)[1]) == 0:
        raise ValueError("must be an https:// URL, e.g. https://acme.my.salesforce.com")
    return value.rstrip("/")


def _version(value: str) -> str:
    value = value.removeprefix("v")
    if not _VERSION.match(value):
        raise ValueError("must be an API version such as '59.0'")
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _chunk_size(value: int) -> int:
    if not MIN_SNAPSHOT_CHUNK <= value <= MAX_SNAPSHOT_CHUNK:
        raise ValueError(
            f"must be between {MIN_SNAPSHOT_CHUNK:,} and {MAX_SNAPSHOT_CHUNK:,} records per "
            "snapshot query"
        )
    return value


Url = Annotated[str, AfterValidator(_url)]


class WritePath(StrEnum):
    """How records reach Salesforce: REST sObject Collections, Bulk API 2.0, or chosen per run."""

    AUTO = "auto"  # Bulk when a run sends more than ``bulk_threshold`` records, else REST
    REST = "rest"
    BULK = "bulk"


class TokenAuth(Section):
    """An access token and its instance URL, used as given (never renewed)."""

    kind: Literal["token"]
    instance_url: Url
    access_token: SecretStr


class ClientCredentialsAuth(Section):
    """OAuth client credentials, posted to ``instance_url`` (My Domain) or ``login_url``."""

    kind: Literal["client_credentials"]
    instance_url: Url | None = None
    login_url: Url | None = None
    client_id: str
    client_secret: SecretStr

    @model_validator(mode="after")
    def _one_url(self) -> ClientCredentialsAuth:
        if (self.instance_url is None) == (self.login_url is None):
            raise ValueError("give exactly one of 'instance_url' or 'login_url'")
        return self

    @property
    def token_url(self) -> str:
        """Where the token request goes."""
        return str(self.instance_url or self.login_url)


class JwtAuth(Section):
    """JWT bearer: an RS256 assertion for ``username`` signed with ``private_key_file``."""

    kind: Literal["jwt"]
    login_url: Url = "https://login.salesforce.com"
    client_id: str
    username: str
    private_key_file: str  # PEM, relative to the config file
    audience: str | None = None  # the assertion's ``aud``; default: login_url


class PasswordAuth(Section):
    """OAuth username-password flow (Salesforce discourages it: prefer jwt, client_credentials)."""

    kind: Literal["password"]
    login_url: Url = "https://login.salesforce.com"
    client_id: str
    client_secret: SecretStr
    username: str
    password: SecretStr
    security_token: SecretStr | None = None


SalesforceAuth = Annotated[
    TokenAuth | ClientCredentialsAuth | JwtAuth | PasswordAuth, Field(discriminator="kind")
]


class SalesforceDestinationConfig(Section):
    """A Salesforce object, upserted by an External ID field through sObject Collections (REST)
    or Bulk API 2.0: ``write_path: auto`` takes Bulk for runs above ``bulk_threshold`` records
    (Salesforce advises Bulk above about 2,000). ``api_reserve`` daily API requests are left
    unused: a run that would need them is refused, and a run that reaches them stops. Snapshots
    read the object ``snapshot_chunk_size`` records a query, by Id, so no query cursor lives
    long."""

    kind: Literal["salesforce"]
    object: Identifier
    auth: SalesforceAuth
    api_version: Annotated[str, AfterValidator(_version)] = "59.0"
    timeout: Annotated[float, AfterValidator(between(1, 600))] = 30.0  # seconds, every call
    ca_bundle: str | None = None  # PEM file of CAs to trust, relative to the config file
    batch_size: Annotated[int, AfterValidator(between(1, 200))] = 200  # records per request
    concurrency: Annotated[int, AfterValidator(between(1, 8))] = 2  # requests in flight
    write_path: WritePath = WritePath.AUTO
    bulk_threshold: Annotated[int, AfterValidator(_at_least_one)] = 2000  # records per run
    # Daily API requests trueup leaves for the org's other integrations (wire spec §9.3).
    api_reserve: Annotated[int, AfterValidator(_not_negative)] = 1000
    # Records per snapshot query (``WHERE Id > '<last Id>' ORDER BY Id LIMIT n``), each paged.
    snapshot_chunk_size: Annotated[int, AfterValidator(_chunk_size)] = 50_000
