"""The ingest tests' simulator and environment fixtures, shared here."""

from imednet_assets_tests.defs.ingest.conftest import imednet_env, sim  # noqa: F401
