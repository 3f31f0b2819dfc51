"""Object definitions in the shape of Salesforce's describe, and the two objects the sandbox ships.

An ``SObject`` is built from a describe-shaped dict (``from_describe``) and serves it back
(``describe``), so tests can load other objects from JSON files the same way. Field names are looked
up case-insensitively, as Salesforce does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

API_VERSION = "59.0"

TEXT_TYPES = frozenset(
    {"string", "textarea", "email", "phone", "url", "picklist", "id", "reference"}
)


@dataclass(frozen=True)
class SField:
    """One field as describe reports it."""

    name: str
    type: str  # id, string, textarea, boolean, date, datetime, double, int, reference, picklist...
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    id_lookup: bool = False
    unique: bool = False
    case_sensitive: bool = False
    custom: bool = False
    default_value: Any = None
    reference_to: tuple[str, ...] = ()
    label: str = ""

    def describe(self) -> dict[str, Any]:
        """This field's entry in ``fields[]`` of a describe result."""
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "idLookup": self.id_lookup,
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "custom": self.custom,
            "defaultedOnCreate": self.type == "boolean" or self.default_value is not None,
            "defaultValue": self.default_value,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.name.removesuffix("__c") + "__r"
            if self.type == "reference" and self.custom
            else None,
            "calculated": False,
            "autoNumber": False,
            "picklistValues": [],
        }

    @classmethod
    def from_describe(cls, data: Mapping[str, Any]) -> SField:
        """A field from its describe entry."""
        return cls(
            name=data["name"],
            type=data["type"],
            length=int(data.get("length") or 0),
            nillable=bool(data.get("nillable", True)),
            createable=bool(data.get("createable", True)),
            updateable=bool(data.get("updateable", True)),
            external_id=bool(data.get("externalId", False)),
            id_lookup=bool(data.get("idLookup", False)),
            unique=bool(data.get("unique", False)),
            case_sensitive=bool(data.get("caseSensitive", False)),
            custom=bool(data.get("custom", data["name"].endswith("__c"))),
            default_value=data.get("defaultValue"),
            reference_to=tuple(data.get("referenceTo") or ()),
            label=data.get("label", ""),
        )


@dataclass(frozen=True)
class SObject:
    """An object (table) of the org: its name, key prefix and fields."""

    name: str
    key_prefix: str
    fields: Mapping[str, SField]
    label: str = ""
    custom: bool = True
    _folded: Mapping[str, SField] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", {n.lower(): f for n, f in self.fields.items()})

    def field(self, name: str) -> SField | None:
        """The field called ``name`` (any case), or None."""
        return self._folded.get(name.lower())

    def describe(self, api_version: str = API_VERSION) -> dict[str, Any]:
        """The describe result served at ``/sobjects/{name}/describe``."""
        base = f"/services/data/v{api_version}/sobjects/{self.name}"
        return {
            "name": self.name,
            "label": self.label or self.name.removesuffix("__c").replace("_", " "),
            "custom": self.custom,
            "keyPrefix": self.key_prefix,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "urls": {
                "sobject": base,
                "describe": f"{base}/describe",
                "rowTemplate": f"{base}/{{ID}}",
            },
        }

    def summary(self, api_version: str = API_VERSION) -> dict[str, Any]:
        """This object's entry in the ``/sobjects`` list."""
        full = self.describe(api_version)
        return {k: v for k, v in full.items() if k != "fields"}

    @classmethod
    def from_describe(cls, data: Mapping[str, Any]) -> SObject:
        """An object from a describe-shaped dict."""
        fields = [SField.from_describe(f) for f in data["fields"]]
        return cls(
            name=data["name"],
            key_prefix=data["keyPrefix"],
            fields={f.name: f for f in fields},
            label=data.get("label", ""),
            custom=bool(data.get("custom", data["name"].endswith("__c"))),
        )


def load_objects(paths: Iterable[Path]) -> dict[str, SObject]:
    """Objects from describe-shaped JSON files."""
    found = {}
    for path in paths:
        obj = SObject.from_describe(json.loads(path.read_text(encoding="utf-8")))
        found[obj.name] = obj
    return found


def _standard(name_length: int = 80) -> list[SField]:
    def system(name: str, kind: str, length: int = 0) -> SField:
        return SField(name, kind, length, nillable=False, createable=False, updateable=False)

    return [
        replace(system("Id", "id", 18), id_lookup=True),
        SField("Name", "string", name_length, id_lookup=True),
        system("IsDeleted", "boolean"),
        system("CreatedDate", "datetime"),
        system("LastModifiedDate", "datetime"),
        system("SystemModstamp", "datetime"),
    ]


PRODUCTS = (  # (enabled, start date, updated date) fields of Product_Property__c
    (
        "Fraud_Detection_Enabled__c",
        "Fraud_Detection_Start_Date__c",
        "Fraud_Detection_Updated_Date__c",
    ),
    (
        "Income_Verification_Enabled__c",
        "Income_Verification_Start_Date__c",
        "Income_Verification_Updated_Date__c",
    ),
    (
        "ID_Verification_Enabled__c",
        "ID_Verification_Start_Date__c",
        "ID_Verification_Updated_Date__c",
    ),
    ("IDV_Only_Enabled__c", "IDV_Only_Start_Date__c", "IDV_Only_Updated_Date__c"),
    (
        "Connected_Payroll_Enabled__c",
        "Connected_Payroll_Start_Date__c",
        "Connected_Payroll_Updated_Date__c",
    ),
    ("Bank_Linking_Enabled__c", "Bank_Linking_Start_Date__c", "Bank_Linking_Updated_Date__c"),
    ("Verification_of_Rent_Enabled__c", "VOR_Start_Date__c", "VOR_Updated_Date__c"),
)


def default_objects() -> dict[str, SObject]:
    """``Property__c`` and ``Product_Property__c`` as DESIGN.md §1 describes them."""
    prop = SObject("Property__c", "a0P", {f.name: f for f in _standard()}, label="Property")
    custom: list[SField] = [
        SField(
            "Reverse_ETL_ID__c",
            "string",
            64,
            external_id=True,
            id_lookup=True,
            unique=True,
            custom=True,
        ),
        SField(
            "Snappt_Property_ID__c", "string", 36, external_id=True, id_lookup=True, custom=True
        ),
        SField("Property__c", "reference", 18, reference_to=("Property__c",), custom=True),
        SField("Is_Multi_Property__c", "boolean", nillable=False, default_value=False, custom=True),
    ]
    for enabled, start, updated in PRODUCTS:
        custom += [
            SField(enabled, "boolean", nillable=False, default_value=False, custom=True),
            SField(start, "date", custom=True),
            SField(updated, "date", custom=True),
        ]
    fields = {f.name: f for f in [*_standard(), *custom]}
    product = SObject("Product_Property__c", "a0X", fields, label="Product Property")
    return {prop.name: prop, product.name: product}
