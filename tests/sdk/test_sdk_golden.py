"""Golden replay: every recorded exchange of the fixture captures, fed into the perdure SDK,
gives the recorded response (see golden_support for how each transport is reproduced)."""

from __future__ import annotations

import json

import pytest

from perdure.protocol.manifest import parse_manifest, validate_manifest
from perdure.sdk.discovery import manifest_json
from tests.sdk import golden_services
from tests.sdk.golden_support import FIXTURES, SETS, compare, drive, load_exchanges

SCENARIOS = [
    "greet",
    "run_steps",
    "object_state",
    "lazy_state",
    "sleep",
    "call_send",
    "awakeable",
    "awakeable_suspend",
    "workflow",
    "terminal_error",
    "retryable_error",
    "run_terminal_failure",
    "run_retry_exhausted",
    "select",
    "gather",
    "random_uuid",
]

# Exchanges whose response carries nothing that legitimately differs between two runs (wall
# clock times, Python stack traces) must be byte-identical to the recording.
_NOT_BYTE_COMPARABLE = {
    "sleep",
    "call_send",
    "retryable_error",
    "run_retry_exhausted",
    "select",
    "gather",
}

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason="golden fixtures not available")


@pytest.mark.parametrize("set_name", list(SETS))
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_recorded_exchanges_replay_to_the_recorded_responses(
    set_name: str, scenario: str
) -> None:
    golden_services.FAILED_ONCE.clear()
    exchanges = load_exchanges(set_name, scenario)
    assert exchanges, f"no exchanges in {set_name}/{scenario}"
    for ex in exchanges:
        ours = await drive(ex, golden_services.SERVICES)
        identical = compare(ex, ours)
        if scenario not in _NOT_BYTE_COMPARABLE:
            assert identical, f"{ex}: equal after decoding but not byte-identical"


@pytest.mark.parametrize("set_name", list(SETS))
def test_manifest_of_the_same_services_is_byte_identical_to_the_recorded_one(set_name: str) -> None:
    recorded = (FIXTURES / set_name / "discovery" / "01-response.bin").read_bytes()
    mode = json.loads(recorded)["protocolMode"]
    ours = manifest_json(golden_services.ALL, mode, 4)
    assert ours == recorded
    validate_manifest(parse_manifest(ours))
