from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from takeover.main import Runtime
from takeover.testing import FakeClock
from tests.api.pool import Pool


@pytest.fixture
def pool(client: TestClient, runtime: Runtime, clock: FakeClock) -> Pool:
    return Pool(client, runtime, clock)
