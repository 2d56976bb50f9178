"""The verification services on the official ``restate-sdk``: serve
``verify.services_official:app``."""

import restate

from verify.interpreter import build

app = build(restate)
