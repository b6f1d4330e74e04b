"""The embedded store: unique indexes, write-through durability across SIGKILL, owner thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from pymongo.errors import DuplicateKeyError

from libs.common.settings import Settings
from libs.common.store import EmbeddedEngine, StoreFactory

ROOT = Path(__file__).resolve().parents[2]


def test_unique_index_rejects_duplicate_keys(tmp_path: Path) -> None:
    engine = EmbeddedEngine(tmp_path / "store")
    try:
        things = engine.database("yingji_test")["things"]
        things.create_index([("code", 1)], unique=True)
        things.insert_one({"_id": "a", "code": "X"})
        with pytest.raises(DuplicateKeyError):
            things.insert_one({"_id": "b", "code": "X"})
        with pytest.raises(DuplicateKeyError):
            things.insert_one({"_id": "a", "code": "Y"})
        assert things.count_documents({}) == 1
    finally:
        engine.close()


def test_calls_from_many_threads_are_serialised_and_race_free(tmp_path: Path) -> None:
    engine = EmbeddedEngine(tmp_path / "store")
    try:
        stock = engine.database("yingji_test")["stock"]
        stock.insert_one({"_id": "tent", "quantity": 100})
        taken: list[int] = []

        def take() -> None:
            for _ in range(30):
                result = stock.update_one(
                    {"_id": "tent", "quantity": {"$gte": 1}}, {"$inc": {"quantity": -1}}
                )
                taken.append(result.modified_count)

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(taken) == 100
        assert stock.find_one({"_id": "tent"})["quantity"] == 0
    finally:
        engine.close()


def test_find_returns_a_list_and_honours_keyword_options(tmp_path: Path) -> None:
    engine = EmbeddedEngine(tmp_path / "store")
    try:
        rows = engine.database("yingji_test")["rows"]
        rows.insert_many([{"_id": i, "n": i % 3} for i in range(10)])
        found = rows.find({"n": 1}, sort=[("_id", -1)], limit=2, projection={"n": 1})
        assert found == [{"_id": 7, "n": 1}, {"_id": 4, "n": 1}]
    finally:
        engine.close()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from libs.common.store import EmbeddedEngine
    engine = EmbeddedEngine(Path(sys.argv[1]))
    coll = engine.database("yingji_intake")["incidents"]
    for i in range(200):
        coll.insert_one({"_id": f"inc-{i}", "n": i})
        print(i, flush=True)
    sys.stdin.read()  # stay alive until killed
    """
)


def test_accepted_writes_survive_sigkill(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    acknowledged = -1
    for line in proc.stdout:
        acknowledged = int(line)
        if acknowledged == 199:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert acknowledged == 199
    engine = EmbeddedEngine(store)
    try:
        coll = engine.database("yingji_intake")["incidents"]
        assert coll.count_documents({}) == 200
        assert coll.find_one({"_id": "inc-199"}) == {"_id": "inc-199", "n": 199}
    finally:
        engine.close()


def test_each_service_gets_its_own_database_name(tmp_path: Path) -> None:
    factory = StoreFactory(Settings(data_dir=tmp_path))
    try:
        assert factory.database("intake").name == "yingji_intake"
        assert factory.database("reporting").name == "yingji_reporting"
    finally:
        factory.close()


def test_mongodb_urls_select_pymongo_with_a_database_per_service() -> None:
    factory = StoreFactory(Settings(mongo_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50"))
    try:
        intake = factory.database("intake")
        warning = factory.database("warning")
        assert type(intake).__module__.startswith("pymongo")
        assert (intake.name, warning.name) == ("yingji_intake", "yingji_warning")
        assert intake.client is warning.client
    finally:
        factory.close()


def test_sqlite_mode_hands_out_a_read_only_reader_and_never_loads_litemongo(tmp_path: Path) -> None:
    """A process whose services all have repositories (intake here; all four once they move)
    keeps keys and data in SQLite files and never imports the previous engine."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from libs.common.app import Runtime
        from libs.common.settings import Settings
        from libs.common.store import LegacyDatabase
        from yingji.platform import load_specs

        runtime = Runtime(Settings(data_dir=Path(sys.argv[1])), load_specs(["intake"]))
        runtime.prepare()
        assert isinstance(runtime.contexts["intake"].db, LegacyDatabase)
        assert runtime.contexts["intake"].db.list_collection_names() == []
        runtime.stop()
        print("litemongo" in sys.modules)
        """
    )
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-c", script, str(data)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (data / "yingji_platform.sqlite3").is_file() and not (data / "store").exists()
