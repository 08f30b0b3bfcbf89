"""Helpers shared by the tests, imported as `from helpers.<module> import ...`.

pytest puts tests/ on sys.path (`pythonpath = ["tests"]` in pyproject.toml), so `helpers` is
one package whichever folder's tests load first; fixtures stay in the conftest.py files.

- api: ApiClient, token, unique, SECRET (the HTTP API through Flask's test client)
- nb: reading the OVN northbound database through ovn-nbctl
- dataplane: hosts on a data-plane sandbox, pings and TCP probes
- problems: RFC 9457 problem responses
- waiting: one bounded polling loop (wait_until)
- matchtokens: what OVN match text the policy compiler may produce
"""
