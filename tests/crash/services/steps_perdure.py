"""The Crash service (steps.py) written with the perdure SDK."""

import perdure
from tests.crash.services.steps import build_app

app = build_app(perdure)
