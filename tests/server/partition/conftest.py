from __future__ import annotations

import pytest

from tests.server.partition.harness import Harness


@pytest.fixture
def h(tmp_path):
    harness = Harness(tmp_path / "store.db")
    yield harness
    harness.close()
