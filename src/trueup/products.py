"""The flagship job's vocabulary: the seven products and their Salesforce fields (DESIGN.md §1).

The single Python copy of the mapping from the features model's columns to the fields of
``Product_Property__c``. The demo config is built from it; the example ``trueup init`` writes
(``examples/product_features.yml``) is a static file that a unit test holds equal to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

SALESFORCE_OBJECT = "Product_Property__c"


@dataclass(frozen=True)
class Product:
    """One product: its feature code in the source and its three fields in Salesforce."""

    code: str
    enabled_field: str
    start_date_field: str
    updated_date_field: str


PRODUCTS: tuple[Product, ...] = (
    Product(
        "fraud_detection",
        "Fraud_Detection_Enabled__c",
        "Fraud_Detection_Start_Date__c",
        "Fraud_Detection_Updated_Date__c",
    ),
    Product(
        "income_verification",
        "Income_Verification_Enabled__c",
        "Income_Verification_Start_Date__c",
        "Income_Verification_Updated_Date__c",
    ),
    Product(
        "identity_verification",
        "ID_Verification_Enabled__c",
        "ID_Verification_Start_Date__c",
        "ID_Verification_Updated_Date__c",
    ),
    Product(
        "idv_only",
        "IDV_Only_Enabled__c",
        "IDV_Only_Start_Date__c",
        "IDV_Only_Updated_Date__c",
    ),
    Product(
        "payroll_linking",
        "Connected_Payroll_Enabled__c",
        "Connected_Payroll_Start_Date__c",
        "Connected_Payroll_Updated_Date__c",
    ),
    Product(
        "bank_linking",
        "Bank_Linking_Enabled__c",
        "Bank_Linking_Start_Date__c",
        "Bank_Linking_Updated_Date__c",
    ),
    Product(
        "verification_of_rent",
        "Verification_of_Rent_Enabled__c",
        "VOR_Start_Date__c",
        "VOR_Updated_Date__c",
    ),
)

#: The features model's record-level columns and the fields they fill.
RECORD_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "key": "Reverse_ETL_ID__c",
        "member_id": "Snappt_Property_ID__c",
        "member_name": "Name",
        "group_id": "Property__c",
        "is_multi_member": "Is_Multi_Property__c",
    }
)


def _product_property_mapping() -> dict[str, str]:
    mapping = dict(RECORD_FIELDS)
    for p in PRODUCTS:
        mapping[f"{p.code}_enabled"] = p.enabled_field
        mapping[f"{p.code}_start_date"] = p.start_date_field
        mapping[f"{p.code}_updated_date"] = p.updated_date_field
    return mapping


#: The whole ``mapping:`` section of the flagship config: model column → Salesforce field.
PRODUCT_FIELDS: Mapping[str, str] = MappingProxyType(_product_property_mapping())

#: Salesforce's declared lengths of the text fields (``Name`` is 80, Ids are 18, uuids 36).
TEXT_LENGTHS: Mapping[str, int] = MappingProxyType(
    {"Reverse_ETL_ID__c": 255, "Snappt_Property_ID__c": 36, "Name": 80, "Property__c": 18}
)
