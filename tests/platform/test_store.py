"""Where data lives: a SQLite file per service (and the read-only reader of the previous engine's
files), or a MongoDB database per service; the platform never loads an emulator."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

from libs.common.settings import Settings
from libs.common.store import LegacyDatabase, StoreFactory, sqlite_file

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "warning", "dispatch", "reporting")


def test_each_service_gets_its_own_database_name(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    factory = StoreFactory(settings)
    try:
        readers = {name: factory.database(name) for name in SERVICES}
        assert all(isinstance(reader, LegacyDatabase) for reader in readers.values())
        assert {name: reader.name for name, reader in readers.items()} == {
            name: f"yingji_{name}" for name in SERVICES
        }
        # The previous engine kept a directory per service database under store/.
        assert readers["intake"].path == tmp_path / "store" / "yingji_intake"
    finally:
        factory.close()
    files = {name: sqlite_file(settings, name) for name in SERVICES}
    assert files == {name: tmp_path / f"yingji_{name}.sqlite3" for name in SERVICES}


def test_the_prefix_names_both_the_files_and_the_readers(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_prefix="county7")
    factory = StoreFactory(settings)
    try:
        assert factory.database("warning").name == "county7_warning"
    finally:
        factory.close()
    assert sqlite_file(settings, "warning") == tmp_path / "county7_warning.sqlite3"


def test_a_reader_of_a_directory_the_previous_engine_never_wrote_is_empty(tmp_path: Path) -> None:
    reader = StoreFactory(Settings(data_dir=tmp_path)).database("intake")
    assert reader.list_collection_names() == []
    assert list(reader["incidents"].documents()) == []
    assert reader.command("ping") == {"ok": 1.0}
    assert not (tmp_path / "store").exists()


def test_mongodb_urls_select_pymongo_with_a_database_per_service() -> None:
    settings = Settings(mongo_url="mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=50")
    factory = StoreFactory(settings)
    try:
        intake = factory.database("intake")
        warning = factory.database("warning")
        assert type(intake).__module__.startswith("pymongo")
        assert (intake.name, warning.name) == ("yingji_intake", "yingji_warning")
        assert intake.client is warning.client
    finally:
        factory.close()
    assert sqlite_file(settings, "intake") is None


def test_the_embedded_platform_keeps_its_data_in_sqlite_and_never_loads_an_emulator(
    tmp_path: Path,
) -> None:
    """All four services and the keys: one SQLite file each, ``ctx.db`` only the read-only reader,
    and neither litemongo nor mongomock imported (they are not platform dependencies)."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from libs.common.app import Runtime
        from libs.common.settings import Settings
        from libs.common.store import LegacyDatabase
        from yingji.platform import load_specs

        runtime = Runtime(Settings(data_dir=Path(sys.argv[1])), load_specs())
        runtime.prepare()
        for ctx in runtime.contexts.values():
            assert isinstance(ctx.db, LegacyDatabase), ctx.name
            assert ctx.db.list_collection_names() == [], ctx.name
        runtime.stop()
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("litemongo", "mongomock")))
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
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert not (data / "store").exists()
    for name in ("platform", *SERVICES):
        path = data / f"yingji_{name}.sqlite3"
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",), name


def test_concurrent_writers_on_one_file_all_commit(tmp_path: Path) -> None:
    """Threads of one process, through two handles on the same file, each get their turn at the
    write lock: every transaction commits, none is lost or refused as locked."""
    import threading

    from libs.common.sqlite import SqliteDatabase

    first, second = (
        SqliteDatabase(tmp_path / "one.sqlite3"),
        SqliteDatabase(tmp_path / "one.sqlite3"),
    )
    first.script(["CREATE TABLE counter (n INTEGER)", "INSERT INTO counter VALUES (0)"])
    errors: list[BaseException] = []

    def write(db: SqliteDatabase) -> None:
        try:
            for _ in range(25):
                with db.transaction() as conn:
                    (n,) = conn.execute("SELECT n FROM counter").fetchone()
                    conn.execute("UPDATE counter SET n = ?", (n + 1,))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(db,)) for db in [first, second] * 6]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert first.query("SELECT n FROM counter") == [(12 * 25,)]
    finally:
        first.close()
        second.close()
