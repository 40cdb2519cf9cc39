"""The Dagster instance config the platform owns: the repo's `dagster.yaml` (run monitoring, run
retries, queue and pool limits), plus PostgreSQL storage when `DAGSTER_PG_URL` is set.

A `dagster.yaml` cannot branch on the environment, so the file written into a DAGSTER_HOME is
composed here: the repo's file as it is (comments kept), then, with `DAGSTER_PG_URL` set, a
`storage: postgres:` block that reads the URL from the environment at load time. The password never
lands in the file or on the console.

    python -m imednet_assets.instance DIR    # write DIR/dagster.yaml for the current environment
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from imednet_assets.settings import redact

PG_URL_ENV = "DAGSTER_PG_URL"
REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"
# run, event log and schedule storage in one PostgreSQL database (dagster-postgres)
POSTGRES_STORAGE: dict[str, Any] = {"postgres": {"postgres_url": {"env": PG_URL_ENV}}}
# dagster-postgres 0.29.27 needs psycopg2: SQLAlchemy 2.1 reads a plain `postgresql://` as
# psycopg 3, on which its `NOTIFY run_events, :id` is a syntax error and no event can be stored
PG_SCHEME = "postgresql+psycopg2"
# keys that choose storage; the base file must leave them to the environment
STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")
HEADER = (
    "# Written by imednet_assets/instance.py from {source}: edit that file, not this one\n"
    "# (`imednet-assets demo`, `dev` and `refresh` write it again). Storage: {storage}.\n"
)


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def uses_postgres(env: Mapping[str, str] | None = None) -> bool:
    """Whether the instance keeps its storage in PostgreSQL (`DAGSTER_PG_URL` set)."""
    return bool(_env(env).get(PG_URL_ENV))


def dagster_pg_url(url: str) -> str:
    """`url` with the driver dagster-postgres works with: `postgres://` and `postgresql://` get
    psycopg2, `postgresql+psycopg2://` stays; any other driver is refused (password never shown)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"{PG_URL_ENV} is not a URL (postgresql://user:password@host:5432/db)")
    if scheme in ("postgres", "postgresql", PG_SCHEME):
        return f"{PG_SCHEME}://{rest}"
    raise ValueError(
        f"{PG_URL_ENV} asks for {scheme}://; dagster-postgres needs psycopg2: "
        f"use postgresql:// or {PG_SCHEME}://"
    )


def prepare_environment(env: MutableMapping[str, str] | None = None) -> None:
    """Give `DAGSTER_PG_URL` the psycopg2 driver in this process's environment (and so in every
    process it starts, `dagster dev` included); nothing when it is unset."""
    env = os.environ if env is None else env
    if uses_postgres(env):
        env[PG_URL_ENV] = dagster_pg_url(env[PG_URL_ENV])


def describe_storage(env: Mapping[str, str] | None = None) -> str:
    """Where runs and events are kept, fit to print: the URL's password masked."""
    if uses_postgres(env):
        return f"PostgreSQL at {redact(_env(env)[PG_URL_ENV])} ({PG_URL_ENV})"
    return "SQLite under DAGSTER_HOME"


def _base_text(base: Path) -> str:
    # without the repo's file (an installed wheel), Dagster's defaults
    return base.read_text() if base.exists() else ""


def instance_yaml(env: Mapping[str, str] | None = None, base: Path = REPO_DAGSTER_YAML) -> str:
    """The `dagster.yaml` text for this environment: `base` verbatim, plus the PostgreSQL storage
    block when `DAGSTER_PG_URL` is set (only its name is written, never its value)."""
    if uses_postgres(env):
        dagster_pg_url(_env(env)[PG_URL_ENV])  # refuse a driver that cannot work, now
    text = _base_text(base)
    clashing = [key for key in STORAGE_KEYS if key in (yaml.safe_load(text) or {})]
    if clashing:
        raise ValueError(
            f"{base} sets {', '.join(clashing)}: leave storage to the environment "
            f"({PG_URL_ENV} set: PostgreSQL, unset: SQLite under DAGSTER_HOME)"
        )
    if text and not text.endswith("\n"):
        text += "\n"
    source = str(base) if base.exists() else "Dagster's defaults"
    if not uses_postgres(env):
        return HEADER.format(source=source, storage="SQLite under DAGSTER_HOME") + text
    return (
        HEADER.format(source=source, storage=f"PostgreSQL at ${PG_URL_ENV}")
        + text
        + "\n# runs, events and schedules in PostgreSQL; the URL is read when the instance loads\n"
        + yaml.safe_dump({"storage": POSTGRES_STORAGE}, sort_keys=False)
    )


def instance_config(env: Mapping[str, str] | None = None, base: Path = REPO_DAGSTER_YAML) -> dict:
    """The instance config as a mapping (what `instance_yaml` writes, parsed)."""
    return yaml.safe_load(instance_yaml(env, base)) or {}


def write_instance_yaml(
    home: Path, env: Mapping[str, str] | None = None, base: Path = REPO_DAGSTER_YAML
) -> Path:
    """Write `home/dagster.yaml` for this environment when it differs from what is there (an
    edited repo file, or `DAGSTER_PG_URL` newly set or unset, reaches an existing home); atomic."""
    text = instance_yaml(env, base)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if target.exists() and target.read_text() == text:
        return target
    staging = home / f".dagster.yaml.{os.getpid()}.tmp"
    staging.write_text(text)
    os.replace(staging, target)
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m imednet_assets.instance DAGSTER_HOME_DIR", file=sys.stderr)
        return 2
    given = os.environ.get(PG_URL_ENV, "")
    try:
        target = write_instance_yaml(Path(args[0]))
    except ValueError as refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    print(f"wrote {target}; storage: {describe_storage()}")
    if given and dagster_pg_url(given) != given:
        print(f"note: Dagster processes started with this home need {PG_URL_ENV}="
              f"{redact(dagster_pg_url(given))} (psycopg2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
