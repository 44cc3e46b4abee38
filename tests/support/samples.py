"""Where the shared Lambda event samples live: ``EVENT_SAMPLES``, else ``../shared`` beside the repo."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("EVENT_SAMPLES") or REPO.parent / "shared" / "event_samples")
