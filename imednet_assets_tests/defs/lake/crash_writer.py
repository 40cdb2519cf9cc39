"""A lake writer that dies for real: run as a subprocess by the crash tests, it writes one study
slice of records and kills itself with SIGKILL when the code reaches the function named by
`seam` (`module:function`), so nothing after that point (no `finally`, no cleanup) runs.

    python -m imednet_assets_tests.defs.lake.crash_writer '{"io": {...}, "seam": "...", ...}'
"""

import importlib
import json
import os
import signal
import sys

import dagster as dg

from imednet_assets.defs.lake.io_manager import LakeIOManager
from imednet_assets.settings import is_object_store_url
from imednet_assets_tests.defs.lake.lakes import (
    KEY_ID_ENV,
    SECRET_ENV,
    batches_of,
    lake_asset,
    rows,
)


def _die(*_args: object, **_kwargs: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(args: dict) -> None:
    module, name = args["seam"].split(":")
    setattr(importlib.import_module(module), name, _die)
    config = dict(args["io"])
    if is_object_store_url(config["root"]):  # keys from the environment, as in production
        config.update(aws_access_key_id=dg.EnvVar(KEY_ID_ENV),
                      aws_secret_access_key=dg.EnvVar(SECRET_ENV))
    data = rows(args["study"], [tuple(r) for r in args["rows"]])
    asset = lake_asset("records", {"fn": lambda s: batches_of(data, 3)}, "form_key")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("study", [args["study"]])
    dg.materialize([asset], partition_key=args["study"], instance=instance,
                   resources={"lake_io_manager": LakeIOManager(**config)})
    sys.exit("the writer reached its end: the seam was never called")


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
