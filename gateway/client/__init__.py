"""A client for the gateway's HTTP API: a Python library and the `ovngw` command.

Standard library HTTP and PyYAML only: no Flask, ovsdbapp or ovs (it runs on a laptop)."""

from gateway.client.api import (
    AmbiguousName,
    BadRequest,
    Client,
    ClientError,
    Collection,
    Conflict,
    Document,
    Forbidden,
    LoadBalancers,
    NotFound,
    OutcomeUnknown,
    Policies,
    Ports,
    PreconditionFailed,
    ProblemError,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    Unreachable,
    is_id,
)

__all__ = [
    "AmbiguousName", "BadRequest", "Client", "ClientError", "Collection", "Conflict",
    "Document", "Forbidden", "LoadBalancers", "NotFound", "OutcomeUnknown", "Policies",
    "Ports", "PreconditionFailed", "ProblemError", "ServiceUnavailable", "TooManyRequests",
    "Unauthorized", "Unprocessable", "Unreachable", "is_id",
]
