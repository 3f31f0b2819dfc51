"""Salesforce as a destination: REST client and auth (client.py), describe → schema and pre-flight
(schema.py), sObject Collections writes (collections.py) and the Destination (destination.py).

Talks to Salesforce over httpx; shares no code with ``trueup.sandbox``, the emulator it is tested
against.
"""
