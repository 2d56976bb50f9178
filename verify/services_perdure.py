"""The verification services on the perdure SDK: serve ``verify.services_perdure:app``."""

import perdure
from verify.interpreter import build

app = build(perdure)
