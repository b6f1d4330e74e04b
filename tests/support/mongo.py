"""Which MongoDB the tests use: `YINGJI_TEST_MONGO_URL`, else a testcontainers MongoDB when a
Docker engine answers, else none (the embedded store)."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
from typing import Any

_lock = threading.Lock()
_container: Any = None
_url: str | None = None
_resolved = False


def docker_engine_reachable() -> bool:
    """True when a Docker engine (not just the client) answers."""
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def mongo_url_for_tests() -> str | None:
    """A MongoDB URL for store tests, or None to use the embedded engine."""
    global _container, _url, _resolved
    with _lock:
        if _resolved:
            return _url
        _resolved = True
        if os.environ.get("YINGJI_TEST_MONGO_URL"):
            _url = os.environ["YINGJI_TEST_MONGO_URL"]
        elif docker_engine_reachable():
            from testcontainers.mongodb import MongoDbContainer

            _container = MongoDbContainer("mongo:7.0")
            _container.start()
            atexit.register(_container.stop)
            _url = _container.get_connection_url()
        return _url


def drop_databases(url: str, prefix: str) -> None:
    """Remove the databases a test created under ``prefix``."""
    import pymongo

    client: pymongo.MongoClient[Any] = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        for name in client.list_database_names():
            if name.startswith(prefix + "_"):
                client.drop_database(name)
    finally:
        client.close()
