"""Atomic file and folder writes: a reader sees the old content or the new, never half of it.
And one writer per folder (``hold_folders``): a run, population or study that is training is
held, so that a second process does not write the same files at once."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dqn.errors import ConfigError, FolderBusyError, OutputError

try:
    import fcntl
except ImportError:  # not POSIX: folders are not held
    fcntl = None

LOCK_FILE = ".lock"


def check_named(path: str | Path, what: str) -> None:
    """ConfigError for an empty name (an unset variable's): Path("") is the current folder; for
    a name with a NUL character, which no filesystem takes (os's ValueError "embedded null
    byte"); or for a name that is not UTF-8 (bytes Python keeps as surrogates), which
    TensorFlow's writers (TensorBoard's, SavedModel's) cannot take: they failed with a
    traceback midway."""
    if isinstance(path, str) and not path.strip():
        raise ConfigError(f"{what} must be named, got an empty string")
    if "\0" in os.fspath(path):
        raise ConfigError(f"{what} {os.fspath(path)!r} holds a NUL character, which no name can")
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(
            f"{what} {os.fspath(path)!r} is not a UTF-8 name, which TensorFlow cannot write to: "
            "give another"
        ) from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def strict_json(value, indent: int | None = None) -> str:
    """``value`` as strict JSON, a NaN or infinity as null: Python's bare NaN is refused by
    other readers (JavaScript's JSON.parse, jq, Go), and summary.json and results.json are
    files for them too. A reader in dqn takes a null back as NaN where a number belongs
    (``nulls_as_nan``)."""

    def strict(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: strict(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [strict(x) for x in v]
        return v

    return json.dumps(strict(value), indent=indent, allow_nan=False)


def nulls_as_nan(read: dict, keys: Iterable[str]) -> dict:
    """``read`` (from JSON ``strict_json`` wrote) with a null under any of ``keys``, numbers a
    run may not have had, as the NaN it was written from."""
    return {**read, **{k: math.nan for k in keys if k in read and read[k] is None}}


def followed(path: str | Path) -> Path:
    """``path``, or what it points to if it is a symbolic link. A file or folder written under
    a temporary name and renamed into place would replace the link itself, where ``open`` and
    ``mkdir`` write through it (a ``current -> v3`` link to an empty folder was refused as
    "not a folder" only after the whole export)."""
    path = Path(path)
    try:
        return Path(os.path.realpath(path)) if path.is_symlink() else path
    except OSError:  # a name too long, say: the writer's own checks name it
        return path


def tmp_prefix(path: Path) -> str:
    """A temporary name's start beside ``path``: the name cut to 64 bytes of UTF-8 (a partial
    character dropped), so that a name near the filesystem's 255-byte limit, which ``path``
    itself may have, still leaves room."""
    cut = path.name.encode("utf-8", "surrogateescape")[:64].decode("utf-8", "ignore")
    return f".{cut}."


def mount_point_problem(path: Path) -> str | None:
    """Why a folder cannot be written whole at ``path`` if it is a mount point (a container's
    volume, say), else None: such a folder is renamed into place, and a mount point cannot be
    replaced, which failed only once everything was written."""
    if not os.path.ismount(path):
        return None
    return (
        "it is a mount point, which a folder written whole (renamed into place) cannot replace; "
        f"give a new folder inside it, such as {path / '1'}"
    )


def atomic_write_bytes(path: Path, data: bytes, new: bool = False) -> None:
    """Write ``data`` to ``path`` whole: a reader sees the old file or the new one, never half.
    ``new``: FileExistsError rather than replace a file there, even one written by another
    process since the caller checked (two ``dqn-evaluate --gif`` to one name at once)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=tmp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's file is private (0600); open()'s is not
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if new:
            _place_new(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _place_new(tmp: str, path: Path) -> None:
    """Give the file ``tmp`` the name ``path`` unless a file has it (FileExistsError): a hard
    link is made only where the name is free. A filesystem without hard links (FAT, some
    network ones) gets a rename after a check, which a writer between the two can still lose
    to."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_dir_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Call ``fill(tmp)`` on a new folder beside ``final``, then rename it into place.

    A failure (or Ctrl-C) while filling removes the temporary folder and leaves any previous
    ``final`` untouched: a reader never sees half a folder.
    """
    final = Path(final)
    created, tmp = missing_parents(final), None
    try:
        tmp = fresh_tmp_dir(final)
        fill(tmp)
        sync_tree(tmp)
        commit_dir(tmp, final)
    except BaseException:
        remove_unfinished(tmp, created)
        raise
    sync_parent(final)
    return final


def missing_parents(final: Path) -> list[Path]:
    """The folders above ``final`` that writing it would create, innermost first. Its links
    and ``..`` are resolved first: ``made/../yours/r0`` has ``yours`` as its parent, which
    exists, and which a cleanup of "the folders made for it" would otherwise have taken for
    new."""
    missing = []
    parent = Path(os.path.realpath(final)).parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    return missing


def remove_unfinished(tmp: Path | None, created: list[Path]) -> None:
    """Remove an unfinished folder, and the folders made for it (``missing_parents``, of one
    path or several) that are still empty: a failed save (a full disk) had left them behind."""
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    for folder in sorted(set(created), key=lambda p: len(p.parts), reverse=True):  # inner first
        with contextlib.suppress(OSError):  # not empty (nor then the folders above it), or gone
            folder.rmdir()


def sync_parent(path: Path) -> None:
    """Flush the rename that put ``path`` in place: its folder's entry. It is in place already,
    so a folder that cannot be synced is no error."""
    with contextlib.suppress(OSError):
        _fsync(Path(path).parent)


def remove_whole(folder: Path) -> None:
    """Delete a folder all or nothing: renamed to the hidden ``.<name>.trash`` first, then
    removed, so that a process killed part-way leaves no visible half of it (a checkpoint or a
    run that read as damaged), only a hidden folder that the next removal of the name clears."""
    trash = folder.with_name(f".{folder.name}.trash")
    if trash.exists() or trash.is_symlink():
        remove_entry(trash, ignore_errors=True)
    if folder.exists() or folder.is_symlink():
        os.replace(folder, trash)
        remove_entry(trash)


def remove_entry(path: Path, ignore_errors: bool = False) -> None:
    """A link or a file goes, not what a link leads to (a checkpoint moved to another disk and
    linked back: rmtree refused the link, which stopped the run at its next prune); a folder,
    whole."""
    if path.is_symlink() or not path.is_dir():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=ignore_errors)


def sync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, then its folders, to the disk. The rename that puts
    a folder into place can reach the disk before its files' data: after a crash of the
    machine (power, a cloud node lost), not only of the process, a checkpoint could be there
    with files of zeros, which a resume sets aside as damaged. A few ms for a checkpoint."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
    for root, _, _ in os.walk(folder, topdown=False):
        _fsync(Path(root))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # a folder on a filesystem that cannot sync one: its files were
        if not path.is_dir() or exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fresh_tmp_dir(final: Path) -> Path:
    """A new empty folder beside ``final``, to fill and then ``commit_dir`` into place."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=tmp_prefix(final), suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o777 & ~umask())  # mkdtemp's folder is private (0700); mkdir's is not
    return tmp


def folders_to_umask(root: Path) -> None:
    """Give the folders under ``root`` the umask's permissions, as mkdir does: TensorFlow makes
    its own (a SavedModel's variables/ and assets/) 0755 whatever the umask, so a group that
    shares runs (umask 002) could not delete them."""
    for folder in [p for p in Path(root).rglob("*") if p.is_dir() and not p.is_symlink()]:
        os.chmod(folder, 0o777 & ~umask())


def umask() -> int:
    """The process's umask, which files and folders written through a temporary name are given
    the permissions of, as ``open`` and ``mkdir`` would: a run, checkpoint, agent or model
    written 0600/0700 could not be read by another user (a colleague, a TensorBoard or model
    server running as another account). Linux states the umask in /proc/self/status (4.7 and
    later); elsewhere ``os.umask`` must set it to read it, so it sets the strictest mask for
    that instant, which is all another thread creating a file then would see."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def folder_mark(folder: Path) -> tuple[int, int] | None:
    """Which save of ``folder`` is in place: its inode and modification time (``commit_dir``
    puts a new folder in place of the old, so a save changes both), None if it is not there."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def commit_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place, replacing any previous folder at ``final``.

    A file at ``final`` is refused (NotADirectoryError), not replaced: no caller means to swap
    a file for a folder, and the file would be lost (it used to be left as ``.<name>.old``).
    A folder cannot be renamed over another, so the previous one is moved aside first; an
    error or Ctrl-C between the two renames moves it back (only a kill there leaves it as
    ``.<name>.old``).
    """
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise NotADirectoryError(f"{final} exists and is not a folder; not replaced")
    if not final.exists():
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    moved = False
    try:
        os.replace(final, old)
        moved = True
        os.replace(tmp, final)
    except BaseException:
        if moved and not final.exists():
            os.replace(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def hold_folders(folders: Iterable[Path]) -> Iterator[None]:
    """Hold each folder for this process while it writes there, or raise FolderBusyError
    naming the process that holds one (nothing held then).

    A hold is an flock on ``folder/.lock``: the kernel drops it when the process ends, however
    it ends, so a killed run leaves no stale hold, only the file, which the next holder takes
    over. A process killed inside ``atomic_write_bytes`` leaves its temporary file beside the
    one it wrote (``.summary.json.<random>.tmp``, perhaps half written): the next holder, the
    only writer of those files (``HELD_FOLDER_FILES``), removes their temporaries too. A
    folder that does not exist is made (and removed again at the end if still empty).
    On a filesystem that cannot lock (some network filesystems), or off POSIX, a folder is not
    held: the hold guards against a mistake, and must not stop a study on a cluster.
    """
    with contextlib.ExitStack() as held:
        for folder in folders:
            held.enter_context(_hold(Path(folder)))
        yield


@contextlib.contextmanager
def _hold(folder: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    try:
        fd = _lock(path, folder)
        try:
            if fd is not None:  # held: no other writer of these files is in the middle of one
                _remove_temporaries(folder)
            yield
        finally:
            if fd is not None:
                path.unlink(missing_ok=True)  # before the lock goes: no one takes a dying file
                os.close(fd)
    finally:
        if made:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if nothing was written


# The name of atomic_write_bytes' temporary file: tmp_prefix, mkstemp's 8 random characters.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
# The files dqn writes at the top of the folders it holds (a run's, a population's, a study's):
# only their temporaries are removed. A user's own hidden file of that shape (a study's --out
# may be a project folder), and another command's temporary written there without a hold (a
# dqn-evaluate --gif into a run folder, mid-write), are not dqn's to remove.
HELD_FOLDER_FILES = frozenset(
    {
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "init_from.json",
        "population.json",
        "population-step.json",
        "timing.json",
        "plan.json",
        "error.txt",
        "summary.md",
        "results.json",
        "results.csv",
        "learning_curves.png",
        "zero_grad_fraction.png",
        "td_error_quantiles.png",
        "dead_units.png",
    }
)


def _remove_temporaries(folder: Path) -> None:
    """Delete the temporary files of ``HELD_FOLDER_FILES`` that killed atomic writes left in
    ``folder`` itself (not below it); one that cannot be removed is left."""
    with os.scandir(folder) as entries:
        for entry in entries:
            found = _TEMPORARY.match(entry.name)
            if found and found["name"] in HELD_FOLDER_FILES:
                if entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)


def _busy(folder: Path, fd: int) -> FolderBusyError:
    """The error for ``folder`` held by another process, whose pid its lock file ``fd`` holds."""
    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    pid = f" (pid {holder})" if holder.isdigit() else ""
    return FolderBusyError(
        f"{folder} is being written by another process{pid}: wait until it ends, or stop it, "
        "then run this again"
    )


def check_not_held(folder: Path) -> None:
    """FolderBusyError if another process holds ``folder`` (``hold_folders``), else nothing:
    it is only looked at, neither held nor changed (a folder that is not dqn's stays as it is)."""
    if fcntl is None:
        return
    try:  # without blocking: a .lock that is a pipe would wait for a writer
        fd = os.open(Path(folder) / LOCK_FILE, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:  # no lock file: not held (or not a folder to look into)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(Path(folder), fd) from None
    except OSError:  # a filesystem that cannot lock: folders there are not held
        pass
    finally:
        os.close(fd)  # a shared lock taken goes with it


def _lock(path: Path, folder: Path) -> int | None:
    """An fd of ``path`` holding its exclusive flock; None where the filesystem cannot lock."""
    for _ in range(3):
        try:  # not through a link: the pid would overwrite the file it leads to, anywhere
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            link = f"{path} is a link, not a file: remove it, then run this again"
            raise OutputError(link) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a pipe there took no pid, and kept its fd
            os.close(fd)
            raise OutputError(f"{path} is not a file: remove it, then run this again")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            busy = _busy(folder, fd)
            os.close(fd)
            raise busy from None
        except OSError:
            os.close(fd)
            return None
        try:  # the file we locked is still the folder's (a holder ending removes its file)
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            return fd
        os.close(fd)
    raise FolderBusyError(f"{folder} is being taken and released by other processes: try again")
