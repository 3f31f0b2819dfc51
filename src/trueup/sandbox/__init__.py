"""trueup sandbox: a local Salesforce-compatible API server with scripted faults.

    errors.py   ApiError (request-level, errorCode) and RecordError (per record, statusCode)
    ids.py      15/18-character Ids and key prefixes
    objects.py  describe-shaped object definitions; Property__c and Product_Property__c
    values.py   field values from JSON and CSV, and back, by field type
    org.py      the in-memory org (optional SQLite file): DML with per-record results, rows for SOQL
    writes.py   the checks a record passes before it is saved (fields, values, Ids, duplicates)
    table.py    one object's records in memory, with external-ID and unique-field indexes
    storage.py  the org's optional SQLite file (write-through, owner-only)
    rules.py    the before-save hook automation faults plug into
    soql.py     the SOQL subset a sync needs: parse and run
    auth.py     OAuth token endpoint and session checks
    faults.py   scripted faults: HTTP failures, lock errors, flow chunk limits, validation rules
    bulk2.py    Bulk API 2.0 ingest jobs
    app.py      the ASGI app: the gateway (faults, sessions, daily limit), error bodies, request log
    rest.py     REST routes: versions, describe, single records, limits, the token endpoint
    queries.py  /query and /queryAll with paging (nextRecordsUrl cursors)
    composite.py  sObject Collections: create, update, upsert, delete (≤200 records)
    ingest.py   Bulk API 2.0 ingest routes over bulk2.py
    server.py   serving it over HTTPS (generated CA) or HTTP, in-process or from the CLI

It shares no code with trueup's Salesforce destination (DESIGN.md §2).
"""
