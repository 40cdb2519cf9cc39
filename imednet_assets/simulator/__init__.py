"""Built-in iMednet EDC REST API simulator: deterministic studies behind the real API shape."""

from imednet_assets.simulator.app import build_app
from imednet_assets.simulator.server import (
    SimulatorServer,
    add_simulate_arguments,
    run_from_args,
)
from imednet_assets.simulator.store import SimulatorConfig, SimulatorStore, build_store

__all__ = [
    "SimulatorConfig",
    "SimulatorServer",
    "SimulatorStore",
    "add_simulate_arguments",
    "build_app",
    "build_store",
    "run_from_args",
]
