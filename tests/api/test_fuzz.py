"""A bounded schemathesis run over the OpenAPI schema: no input is a 500, every answer fits its schema.

A few generated examples per operation (valid and invalid ones), as the admin, on SQLite. 503
is not a crash here: it is the documented answer when no node can take an instance. The
caller's own token is never deleted (every later request would be a 401).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from takeover.testing import FakeClock
from tests.conftest import make_runtime

_data = Path(tempfile.mkdtemp(prefix="takeover-fuzz-"))
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", make_runtime(f"sqlite:///{_data / 'fuzz.db'}", FakeClock(), _data).app
)


@schema.exclude(method="DELETE", path="/api/v1/tokens/{token_id}").parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_a_500_and_every_answer_fits_the_schema(
    case: schemathesis.Case,  # type: ignore[type-arg]  # its operation type is internal to schemathesis
) -> None:
    response = case.call(headers={"Authorization": "Bearer admin-secret"})
    assert response.status_code < 500 or response.status_code == 503, response.text
    case.validate_response(response, checks=[status_code_conformance, response_schema_conformance])
