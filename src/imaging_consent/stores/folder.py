"""FolderStore: a directory tree of DICOM files, indexed in SQLite.

The index maps each file (path relative to the root, ``mtime_ns``, size) to its identifiers
(Study, Series and SOP Instance UID, SOP Class, Transfer Syntax, Modality, Instance Number), or to
the error that made it unusable. :meth:`FolderStore.refresh` re-reads only files that are new or
whose ``mtime_ns`` or size changed, and drops rows for files that are gone.

The index caches no pixel hash and nothing is ever trusted from it for integrity: a file can change
after it was indexed, so the release gate rehashes the bytes it opens. :meth:`FolderStore.open`
also refuses a file whose size or ``mtime_ns`` no longer match the index.

Indexing is per file: whatever goes wrong reading one file (malformed DICOM, a reader running out
of stack or memory, an I/O error) is a :class:`Problem` listed against that file, never a store
that will not open. Files are opened only inside the root: a symbolic link whose target is outside
it is a problem, and every open walks the resolved path from the root without following links, so
a file or folder swapped for a link after indexing is refused too. The index (and SQLite's
``-journal``, ``-wal`` and ``-shm`` files, which take its mode) is readable by its owner only.
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeAlias

from imaging_consent.dicom.read import (
    METADATA_DEFER_SIZE,
    InstanceRecord,
    instance_record,
    read_dicom,
)
from imaging_consent.errors import (
    DicomError,
    StaleIndexError,
    StoreError,
    UnknownInstanceError,
    UnknownStudyError,
)

logger = logging.getLogger(__name__)

#: Progress callback for indexing: ``(files_done, files_total, path)``.
ProgressCallback: TypeAlias = Callable[[int, int, Path], None]


class ProblemKind(str, enum.Enum):
    """Why a file in the folder is not in the index (the value is the reason shown)."""

    UNREADABLE = "unreadable DICOM"
    MISSING_UID = "missing UID"
    DUPLICATE = "duplicate SOP Instance UID"
    OUTSIDE = "symbolic link out of the store"
    CANNOT_OPEN = "cannot open"


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that could not be used, and why.

    Attributes:
        path: The file (under the store's root).
        kind: The reason.
        detail: What the index knows more: the reader's reason, the missing UIDs' keywords, or
            the file (relative to the root) whose SOP Instance UID this one repeats. Never a
            UID or another element value.
    """

    path: Path
    kind: ProblemKind
    detail: str

    @property
    def error(self) -> str:
        """One line naming the file, the reason and the detail."""
        return f"{self.path}: {self.kind.value}" + (f" ({self.detail})" if self.detail else "")


class _UnusableFileError(Exception):
    """Raised while reading one file: it goes in the index as a problem."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        super().__init__(f"{kind.value}: {detail}")
        self.kind = kind
        self.detail = detail


def iter_files(root: Path, *, skip: Iterable[Path] = ()) -> list[Path]:
    """Return every regular file under ``root``, sorted, skipping hidden names and ``skip``."""
    skipped = {p.resolve() for p in skip}
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if path.is_file() and path.resolve() not in skipped:
                found.append(path)
    return sorted(found)


INDEX_NAME = ".imaging-consent-index.sqlite3"
# 2: paths are stored as the file system's bytes (any file name), problems as kind and detail.
_SCHEMA_VERSION = 2
_REQUIRED_UIDS = ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# O_NONBLOCK: a FIFO swapped in for a file must not block the open (regular files ignore it).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    problem TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    path BLOB NOT NULL UNIQUE REFERENCES files(path) ON DELETE CASCADE,
    series_instance_uid TEXT NOT NULL,
    study_instance_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    transfer_syntax_uid TEXT NOT NULL,
    modality TEXT NOT NULL,
    instance_number INTEGER,
    has_pixel_data INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_study
    ON instances (study_instance_uid, series_instance_uid);
"""
_COLUMNS = (
    "sop_instance_uid, series_instance_uid, study_instance_uid, sop_class_uid, "
    "transfer_syntax_uid, modality, instance_number, has_pixel_data"
)
_ORDER = "series_instance_uid, instance_number IS NULL, instance_number, sop_instance_uid"


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """What one :meth:`FolderStore.refresh` changed."""

    added: int
    updated: int
    removed: int
    unchanged: int
    problems: int


class FolderStore:
    """An :class:`~imaging_consent.stores.base.ImageStore` over a directory of DICOM files.

    Args:
        root: The directory to index (recursively; hidden names are skipped).
        index_path: The SQLite index; default ``<root>/.imaging-consent-index.sqlite3``.
        refresh: Bring the index up to date now (default True).
        progress: Called as ``(done, total, path)`` while files are read.

    Raises:
        StoreError: If ``root`` is not a directory or the index cannot be opened.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        index_path: str | os.PathLike[str] | None = None,
        *,
        refresh: bool = True,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise StoreError(f"{self.root}: not a directory")
        self.index_path = Path(index_path) if index_path is not None else self.root / INDEX_NAME
        self._local = threading.local()
        self._make_private()
        with self._connect() as con:
            self._prepare(con)
        if refresh:
            self.refresh(progress=progress)

    def _make_private(self) -> None:
        """Create the index readable by its owner only, or tighten one of ours that is not.

        SQLite gives its ``-journal``, ``-wal`` and ``-shm`` files the index's own mode.
        """
        try:
            fd = os.open(
                self.index_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600
            )
        except FileExistsError:
            for path in self._skipped():
                try:
                    st = path.lstat()
                    if (
                        stat.S_ISREG(st.st_mode)
                        and st.st_uid == os.geteuid()
                        and st.st_mode & 0o077
                    ):
                        path.chmod(0o600)
                except OSError:
                    continue  # absent, or not ours to change
            return
        except OSError as exc:
            raise StoreError(
                f"{self.index_path}: cannot create the index ({exc.strerror})"
            ) from exc
        os.close(fd)

    def _prepare(self, con: sqlite3.Connection) -> None:
        """Create the tables; rebuild an index of an older schema (it is only a cache).

        Raises:
            StoreError: If the index was written by a newer version.
        """
        con.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        found = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if row is not None and (found is None or found > _SCHEMA_VERSION):
            raise StoreError(f"{self.index_path}: index schema {row[0]} is not supported")
        if found is not None and found < _SCHEMA_VERSION:
            logger.info(
                "rebuilding an image index of schema %d as schema %d", found, _SCHEMA_VERSION
            )
            con.execute("DROP TABLE IF EXISTS instances")
            con.execute("DROP TABLE IF EXISTS files")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                con.execute(statement)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(_SCHEMA_VERSION),))

    def __repr__(self) -> str:
        return f"FolderStore({str(self.root)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction on this thread's connection (opened once: about 0.1 ms saved per
        lookup, two lookups per release)."""
        try:
            con: sqlite3.Connection | None = getattr(self._local, "con", None)
            if con is None:
                con = sqlite3.connect(self.index_path, timeout=30)
                con.execute("PRAGMA foreign_keys = ON")
                self._local.con = con
            with con:
                yield con
        except sqlite3.Error as exc:
            raise StoreError(f"{self.index_path}: index error ({type(exc).__name__})") from exc

    def _skipped(self) -> list[Path]:
        base = self.index_path
        return [base, Path(f"{base}-journal"), Path(f"{base}-wal"), Path(f"{base}-shm")]

    def refresh(self, *, progress: ProgressCallback | None = None) -> RefreshReport:
        """Bring the index up to date with the folder.

        New files and files whose ``mtime_ns`` or size changed are read again; rows of files
        that are gone are dropped; files that duplicated another file's SOP Instance UID are
        retried. Unusable files are recorded as problems.

        Raises:
            StoreError: If the index cannot be written.
        """
        on_disk: dict[str, tuple[int, int]] = {}
        for path in iter_files(self.root, skip=self._skipped()):
            try:
                st = path.stat()
            except OSError:
                continue  # vanished between listing and stat
            on_disk[path.relative_to(self.root).as_posix()] = (st.st_mtime_ns, st.st_size)
        added = updated = removed = unchanged = 0
        with self._connect() as con:
            known = {
                os.fsdecode(row[0]): (row[1], row[2], row[3])
                for row in con.execute("SELECT path, mtime_ns, size, problem FROM files")
            }
            for rel in sorted(set(known) - set(on_disk)):
                con.execute("DELETE FROM files WHERE path = ?", (os.fsencode(rel),))
                removed += 1
            todo = []
            for rel, stamp in sorted(on_disk.items()):
                old = known.get(rel)
                if old is None:
                    added += 1
                    todo.append(rel)
                elif (old[0], old[1]) != stamp:
                    updated += 1
                    todo.append(rel)
                elif old[2] == ProblemKind.DUPLICATE.name:
                    unchanged += 1  # retried: the file it duplicated may be gone now
                    todo.append(rel)
                else:
                    unchanged += 1
            for done, rel in enumerate(todo, start=1):
                self._index_file(con, rel, on_disk[rel])
                if progress is not None:
                    progress(done, len(todo), self.root / rel)
            problems = con.execute(
                "SELECT COUNT(*) FROM files WHERE problem IS NOT NULL"
            ).fetchone()[0]
        report = RefreshReport(added, updated, removed, unchanged, problems)
        logger.debug("refreshed the image index of %s", self.root)
        logger.info(
            "image index refreshed: %d added, %d updated, %d removed, %d problem file(s)",
            added,
            updated,
            removed,
            problems,
        )
        return report

    def _index_file(self, con: sqlite3.Connection, rel: str, stamp: tuple[int, int]) -> None:
        key = os.fsencode(rel)
        con.execute("DELETE FROM files WHERE path = ?", (key,))
        try:
            inst = self._read_record(rel)
            owner = con.execute(
                "SELECT path FROM instances WHERE sop_instance_uid = ?", (inst.sop_instance_uid,)
            ).fetchone()
            if owner is not None:
                raise _UnusableFileError(ProblemKind.DUPLICATE, f"also in {os.fsdecode(owner[0])}")
        except _UnusableFileError as exc:
            con.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?)", (key, *stamp, exc.kind.name, exc.detail)
            )
            return
        con.execute("INSERT INTO files VALUES (?, ?, ?, NULL, NULL)", (key, *stamp))
        con.execute(
            f"INSERT INTO instances (path, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                inst.sop_instance_uid,
                inst.series_instance_uid,
                inst.study_instance_uid,
                inst.sop_class_uid,
                inst.transfer_syntax_uid,
                inst.modality,
                inst.instance_number,
                int(inst.has_pixel_data),
            ),
        )

    def _read_record(self, rel: str) -> InstanceRecord:
        """Read one file's identifiers; any failure becomes :class:`_UnusableFileError`.

        Whatever the reader raises (its typed errors, and defensively a recursion, memory or I/O
        error, or anything unexpected) stays with this file.
        """
        label = os.fspath(self.root / rel)
        try:
            with self._open_inside(rel) as fp:
                ds = read_dicom(fp, defer_size=METADATA_DEFER_SIZE)
                missing = [k for k in _REQUIRED_UIDS if not str(ds.get(k) or "").strip()]
                if missing:
                    raise _UnusableFileError(ProblemKind.MISSING_UID, ", ".join(missing))
                return instance_record(ds, label)
        except _UnusableFileError:
            raise
        except DicomError as exc:
            raise _UnusableFileError(
                ProblemKind.UNREADABLE, str(exc).removeprefix(f"{label}: ")
            ) from exc
        except RecursionError as exc:
            raise _UnusableFileError(
                ProblemKind.UNREADABLE, "nested too deeply (RecursionError)"
            ) from exc
        except MemoryError as exc:
            raise _UnusableFileError(
                ProblemKind.UNREADABLE, "too large to read (MemoryError)"
            ) from exc
        except OSError as exc:
            raise _UnusableFileError(ProblemKind.CANNOT_OPEN, _os_reason(exc)) from exc
        except Exception as exc:  # a reader bug must not stop the store: keep it with the file
            logger.debug("unexpected error reading %s", label, exc_info=True)
            raise _UnusableFileError(
                ProblemKind.UNREADABLE, f"unexpected {type(exc).__name__}"
            ) from exc

    def _open_inside(self, rel: str) -> BinaryIO:
        """Open a file for reading, never outside the root.

        The path is resolved (a link to another file in the store is fine), checked to be under
        the root, then opened one component at a time from the root without following links: a
        link swapped in after the check fails the open.

        Raises:
            _UnusableFileError: If it resolves outside the root, or is not a regular file.
            OSError: If it cannot be opened (gone, a link swapped in, no permission).
        """
        label = self.root / rel
        real = Path(os.path.realpath(label))
        if real == self.root or not real.is_relative_to(self.root):
            raise _UnusableFileError(
                ProblemKind.OUTSIDE, "its target is outside the store; not followed"
            )
        *folders, name = real.relative_to(self.root).parts
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for folder in folders:
                inner = os.open(folder, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = inner
            leaf = os.open(name, _FILE_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            if not stat.S_ISREG(os.fstat(leaf).st_mode):
                raise _UnusableFileError(ProblemKind.CANNOT_OPEN, "not a regular file")
            os.set_blocking(leaf, True)
        except BaseException:
            os.close(leaf)
            raise
        return open(label, "rb", opener=lambda _path, _flags: leaf)

    # --- ImageStore ----------------------------------------------------------------------------

    def studies(self) -> list[str]:
        """Return the Study Instance UIDs in the index, sorted."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT DISTINCT study_instance_uid FROM instances ORDER BY study_instance_uid"
            ).fetchall()
        return [r[0] for r in rows]

    def instances(
        self, study_instance_uid: str, series_instance_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Return a study's (or one series') instances, by series then instance number.

        Raises:
            UnknownStudyError: If the index has no such study, or the study no such series.
        """
        query = f"SELECT {_COLUMNS} FROM instances WHERE study_instance_uid = ?"
        args: tuple[str, ...] = (study_instance_uid,)
        if series_instance_uid is not None:
            query += " AND series_instance_uid = ?"
            args += (series_instance_uid,)
        with self._connect() as con:
            rows = con.execute(f"{query} ORDER BY {_ORDER}", args).fetchall()
        if not rows:
            what = "study" if series_instance_uid is None else "study or series"
            raise UnknownStudyError(f"no such {what} in {self.root}")
        return [_stored(r) for r in rows]

    def instance(self, sop_instance_uid: str) -> InstanceRecord:
        """Return the index record of one instance.

        Raises:
            UnknownInstanceError: If the index has no such instance.
        """
        with self._connect() as con:
            row = con.execute(
                f"SELECT {_COLUMNS} FROM instances WHERE sop_instance_uid = ?",
                (sop_instance_uid,),
            ).fetchone()
        if row is None:
            raise UnknownInstanceError(f"no such instance in {self.root}")
        return _stored(row)

    def path(self, sop_instance_uid: str) -> Path:
        """Return the file path of one instance.

        Raises:
            UnknownInstanceError: If the index has no such instance.
        """
        return self.root / self._file(sop_instance_uid)[0]

    def _file(self, sop_instance_uid: str) -> tuple[str, int, int]:
        with self._connect() as con:
            row = con.execute(
                "SELECT f.path, f.mtime_ns, f.size FROM instances i JOIN files f USING (path) "
                "WHERE i.sop_instance_uid = ?",
                (sop_instance_uid,),
            ).fetchone()
        if row is None:
            raise UnknownInstanceError(f"no such instance in {self.root}")
        return os.fsdecode(row[0]), row[1], row[2]

    @contextmanager
    def open(self, sop_instance_uid: str) -> Iterator[BinaryIO]:
        """Open one instance's file for reading.

        Raises:
            UnknownInstanceError: If the index has no such instance.
            StaleIndexError: If the file is gone, is no longer a regular file under the root
                (a link out of the store, a FIFO...), or its size or ``mtime_ns`` changed since
                it was indexed (call :meth:`refresh`).
        """
        rel, mtime_ns, size = self._file(sop_instance_uid)
        path = self.root / rel
        try:
            fp = self._open_inside(rel)
        except _UnusableFileError as exc:
            raise StaleIndexError(f"{path}: {exc}; refresh the index") from None
        except OSError as exc:
            raise StaleIndexError(f"{path}: cannot open indexed file ({_os_reason(exc)})") from exc
        with fp:
            st = os.fstat(fp.fileno())
            if (st.st_mtime_ns, st.st_size) != (mtime_ns, size):
                raise StaleIndexError(f"{path}: changed since it was indexed; refresh the index")
            yield fp

    # --- problems ------------------------------------------------------------------------------

    def problems(self) -> list[Problem]:
        """Return the files that could not be used, with the reason, by path."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT path, problem, detail FROM files WHERE problem IS NOT NULL ORDER BY path"
            ).fetchall()
        return [
            Problem(path=self.root / os.fsdecode(r[0]), kind=ProblemKind[r[1]], detail=r[2] or "")
            for r in rows
        ]


def _os_reason(exc: OSError) -> str:
    return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"


def _stored(row: tuple[object, ...]) -> InstanceRecord:
    (sop, series, study, sop_class, ts, modality, number, pixels) = row
    return InstanceRecord(
        sop_instance_uid=str(sop),
        series_instance_uid=str(series),
        study_instance_uid=str(study),
        sop_class_uid=str(sop_class),
        transfer_syntax_uid=str(ts),
        modality=str(modality),
        instance_number=int(number) if isinstance(number, int) else None,
        has_pixel_data=bool(pixels),
    )
