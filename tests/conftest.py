from __future__ import annotations

from hypothesis import settings

# Property tests run on a 2-core CI machine next to real servers: no deadlines.
settings.register_profile("sluice", deadline=None, max_examples=100)
settings.load_profile("sluice")
