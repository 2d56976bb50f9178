"""RawHandler: a handler with raw (bytes) input and output echoes any bytes unchanged."""

from __future__ import annotations

import os


def test_raw_input_comes_back_as_raw_output(stack):
    data = os.urandom(100)

    resp = stack.call(
        "TestUtilsService",
        "rawEcho",
        raw=data,
        headers={"content-type": "application/octet-stream"},
    )

    assert resp.status == 200, resp.text
    assert resp.body == data
