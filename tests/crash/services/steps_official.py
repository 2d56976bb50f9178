"""The Crash service (steps.py) written with the official SDK, restate-sdk."""

import restate

from tests.crash.services.steps import build_app

app = build_app(restate)
