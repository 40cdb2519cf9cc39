"""A throw-away database on the local PostgreSQL (127.0.0.1:5432, trust auth), for the SQL
destination's tests, benchmark and demo."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

HOST = "127.0.0.1"
PORT = 5432
ADMIN_USERS = ("postgres", "root")


class NoLocalPostgres(RuntimeError):
    """No PostgreSQL answered on the loopback address with any of the admin users."""


def admin_url() -> sa.URL:
    """The local server's admin login: the first of `ADMIN_USERS` it lets in."""
    for user in ADMIN_USERS:
        url = sa.URL.create(
            "postgresql+psycopg", username=user, host=HOST, port=PORT, database="postgres"
        )
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except sa.exc.OperationalError:
            continue
        finally:
            engine.dispose()
    raise NoLocalPostgres(f"no PostgreSQL lets {' or '.join(ADMIN_USERS)} in on {HOST}:{PORT}")


@contextmanager
def temporary_database(prefix: str = "imednet") -> Iterator[sa.URL]:
    """A fresh database named `<prefix>_<pid>_<random>`, dropped (connections and all) after."""
    admin = admin_url()
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        try:
            yield admin.set(database=name)
        finally:
            with engine.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()
