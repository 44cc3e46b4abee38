"""The Lambda event samples the tests and benchmarks use, kept in the repository.

``tests/fixtures/events/`` holds real Lambda event samples and ``manifest.json``, what Datadog's
reference library extracts from each; a clone anywhere needs nothing beside it.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "tests" / "fixtures" / "events"
