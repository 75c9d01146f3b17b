"""The process dqn runs in: Keras on TensorFlow and a usable MPLBACKEND (set by ``import
dqn``), TensorFlow's and numpy's BLAS threads (set by ``train`` before it starts)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

_WARNED_THREADS = False  # the ThreadsWarning is said once per process

# XLA:CPU (as in TensorFlow 2.21) schedules a compiled program for concurrency and runs its
# independent parts (the online and target nets' forward passes, say) on TF's intra-op pool.
# With one thread that pool is one more thread: every call hands work to it and waits, two
# context switches per call. Scheduled for memory instead, the program runs on the calling
# thread, op for op the same: results are bit-identical (tests/test_runtime.py), and a [64, 64]
# TF learner's one-step call is shorter (``python -m benchmarks.xla_schedule`` times both).
# TensorFlow < 2.18 has no such flag, and XLA aborts the process on a flag it does not know,
# hence the version check.
XLA_SCHEDULER = "xla_cpu_enable_concurrency_optimized_scheduler"
SEQUENTIAL_XLA_FLAG = f"--{XLA_SCHEDULER}=false"
SEQUENTIAL_XLA_SINCE = (2, 18)
_XLA_CONFIGURED = False


def configure_tensorflow(num_threads: int) -> bool:
    """Set TF's thread pools to ``num_threads``; False if TF already runs with other pools.

    Once TF has run an operation its pools are fixed. The small matrices of a DQN leave a
    second thread little parallel work and add synchronisation, so few threads are fastest on a
    small machine (README, Performance); with fixed pools ``DQNAgent`` moves its TF learner to
    a fresh process (``dqn.learner_process``), and what cannot move says so in a ThreadsWarning.
    With one thread of its own it also sets XLA's schedule (``configure_xla``), which compiles
    a trivial function and so starts TF's runtime: the pools are fixed from then on.
    """
    check_keras_backend()
    import tensorflow as tf

    threading = tf.config.threading
    own = True
    # The settings as set, not as read (``_pools`` reads 0 as the core count): an unset pool is
    # sized at TF's start from TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS when those are
    # in the environment, so num_threads equal to the core count must still be set.
    if _settings(threading) != (num_threads, num_threads):
        try:
            threading.set_intra_op_parallelism_threads(num_threads)
            threading.set_inter_op_parallelism_threads(num_threads)
        except RuntimeError:  # TF already initialised in this process: its first setting stands
            own = _pools(threading) == (num_threads, num_threads)
    if num_threads == 1 and own:  # pools of more threads than asked: XLA's concurrency may use them
        configure_xla(tf)
    return own


def settle_process_environment() -> None:
    """What ``import dqn`` sets, before anything imports Keras or TensorFlow: Keras on
    TensorFlow (``keras_on_tensorflow``), and no MPLBACKEND that matplotlib refuses
    (``drop_an_unusable_matplotlib_backend``). Each changes nothing where nothing is wrong."""
    keras_on_tensorflow()
    drop_an_unusable_matplotlib_backend()


def keras_on_tensorflow() -> None:
    """dqn runs Keras on TensorFlow. Keras takes its backend once, when it is first imported,
    from KERAS_BACKEND, else ~/.keras/keras.json: set to jax or torch for a user's other
    projects, every dqn command failed in Keras's import ("No module named 'jax'"). Where this
    process's Keras would start on another backend, KERAS_BACKEND is set to tensorflow (the
    processes it starts inherit it: dqn's workers need it too); where it would start on
    TensorFlow, nothing is changed. A Keras imported before dqn is ``check_keras_backend``'s."""
    if "keras" not in sys.modules and _configured_keras_backend() != "tensorflow":
        os.environ["KERAS_BACKEND"] = "tensorflow"


def _configured_keras_backend() -> str:
    """The backend Keras would start on, read as Keras 3 reads it: a non-empty KERAS_BACKEND,
    else the "backend" of keras.json in KERAS_HOME or ~/.keras (/tmp/.keras where the home
    folder cannot be written), else tensorflow."""
    if chosen := os.environ.get("KERAS_BACKEND"):
        return chosen
    folder = os.environ.get("KERAS_HOME")
    if folder is None:
        home = os.path.expanduser("~")
        folder = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")
    try:
        backend = json.loads(Path(folder, "keras.json").read_text()).get("backend")
    except (OSError, ValueError, AttributeError):  # none, unreadable, not a mapping
        return "tensorflow"
    return backend if isinstance(backend, str) and backend else "tensorflow"


# matplotlib's own backends (3.10's ``backend_registry.list_builtin()``): a name among them is
# taken without importing matplotlib to check it (MPLBACKEND=agg is common in CI).
_MATPLOTLIB_BACKENDS = frozenset(
    "agg cairo gtk3agg gtk3cairo gtk4agg gtk4cairo macosx nbagg notebook pdf pgf ps qt5agg "
    "qt5cairo qtagg qtcairo svg template tkagg tkcairo webagg wx wxagg wxcairo".split()
)


def drop_an_unusable_matplotlib_backend() -> None:
    """Keras imports matplotlib.pyplot as TensorFlow loads it, and matplotlib refuses at its
    import an MPLBACKEND it cannot use: a Jupyter kernel's terminals and ``!`` commands have
    ``module://matplotlib_inline.backend_inline``, which dqn's environment may lack, and every
    command failed in TensorFlow's import. dqn draws to files only, so such a value is dropped
    for its process; one matplotlib takes is kept."""
    wanted = os.environ.get("MPLBACKEND")
    if not wanted or wanted.lower() in _MATPLOTLIB_BACKENDS or "matplotlib" in sys.modules:
        return
    del os.environ["MPLBACKEND"]
    try:
        import matplotlib

        matplotlib.rcParams["backend"] = wanted  # the check matplotlib's import makes of it
    except Exception:  # ValueError, or an ImportError from the backend's module
        return
    os.environ["MPLBACKEND"] = wanted


def check_keras_backend() -> None:
    """ConfigError if this process imported Keras on another backend than TensorFlow before it
    imported dqn (which otherwise sets KERAS_BACKEND: ``keras_on_tensorflow``): dqn's learners
    and networks are TensorFlow's, and Keras cannot change its backend in a running process."""
    keras = sys.modules.get("keras")
    backend = getattr(getattr(keras, "backend", None), "backend", None)
    if callable(backend) and (name := backend()) != "tensorflow":
        from dqn.errors import ConfigError

        raise ConfigError(
            f"dqn runs Keras on TensorFlow, and this process imported Keras on {name!r} first "
            "(KERAS_BACKEND or ~/.keras/keras.json): import dqn before keras, or set "
            "KERAS_BACKEND=tensorflow"
        )


def configure_xla(tf) -> None:
    """Make XLA:CPU run each compiled program on the calling thread (``SEQUENTIAL_XLA_FLAG``).

    XLA reads ``XLA_FLAGS`` once, at a process's first compilation: the flag is added for a
    trivial compilation here and ``XLA_FLAGS`` is then put back as it was, so that processes
    started later (perhaps with another TensorFlow) do not inherit it. Nothing changes when the
    caller's ``XLA_FLAGS`` already sets this flag, when this TensorFlow predates it, or when XLA
    has compiled before in this process (its flags are then fixed; speed only, never results).
    """
    global _XLA_CONFIGURED
    if _XLA_CONFIGURED:
        return
    before = os.environ.get("XLA_FLAGS")
    if XLA_SCHEDULER in (before or ""):  # the caller's own setting stands
        return
    _XLA_CONFIGURED = True
    if tf_version(tf.__version__) < SEQUENTIAL_XLA_SINCE:
        return
    os.environ["XLA_FLAGS"] = f"{before} {SEQUENTIAL_XLA_FLAG}" if before else SEQUENTIAL_XLA_FLAG
    try:
        tf.function(lambda x: x + 1.0, jit_compile=True, autograph=False)(tf.constant(0.0))
    finally:
        if before is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = before


def tf_version(text: str) -> tuple[int, ...]:
    """(major, minor) of a TensorFlow version string such as "2.21.0" or "2.19.0-rc1"."""
    return release(text, 2)


def release(text: object, parts: int) -> tuple[int, ...]:
    """The first ``parts`` numbers of a version string ("3.15.1", "2.19.0-rc1"), zeros for one
    that names none ("nightly", not a string)."""
    pattern = r"\.".join([r"(\d+)"] * parts)
    found = re.match(pattern, text) if isinstance(text, str) else None
    return tuple(int(n) for n in found.groups()) if found else (0,) * parts


def usable_cores() -> int:
    """CPUs this process may run on, at least 1: the machine's count capped by the process's
    CPU affinity (``taskset``, a batch scheduler) and a container's CPU quota (cgroups, as
    Docker's ``--cpus`` sets it).

    Why not ``os.cpu_count()``: it counts the machine's CPUs, so a 2-CPU container on a
    64-core host would start 64 training processes that share 2 CPUs' time. joblib's count reads
    the affinity mask and both cgroup versions' quota files (``LOKY_MAX_CPU_COUNT`` caps it too).
    """
    from joblib import cpu_count

    return max(1, int(cpu_count()))


def _settings(threading) -> tuple[int, int]:
    """(intra, inter) threads as set in TF's config; 0 where unset."""
    intra = threading.get_intra_op_parallelism_threads()
    return intra, threading.get_inter_op_parallelism_threads()


def _pools(threading) -> tuple[int, int]:
    """(intra, inter) threads TF uses: an unset (0) pool is sized at TF's start from
    TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS where those are set, else one per core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
    return tuple(
        n or _env_count(name) or cores or 1 for n, name in zip(_settings(threading), names)
    )


def _env_count(name: str) -> int:
    """A positive thread count from the environment variable ``name``, else 0."""
    try:
        return max(0, int(os.environ.get(name, "0")))
    except ValueError:  # TF ignores what it cannot read as a number too
        return 0


def warn_threads_fixed(wanted: int, what: str) -> None:
    """Say once per process that ``what`` runs on TF's fixed pools instead of ``wanted`` threads."""
    global _WARNED_THREADS
    if _WARNED_THREADS:
        return
    _WARNED_THREADS = True
    import warnings

    import tensorflow as tf

    from dqn.errors import ThreadsWarning

    current = tf.config.threading.get_intra_op_parallelism_threads()
    have = f"{current} threads" if current else "one thread per core"
    warnings.warn(
        f"TensorFlow was already running (with {have}) when dqn asked for num_threads="
        f"{wanted}, and its thread pools cannot change once it runs: {what} may be slower "
        f"and less even than from a fresh process. Call dqn.runtime.configure_tensorflow("
        f"{wanted}) before your first TensorFlow operation, or train with learner: numpy.",
        ThreadsWarning,
        stacklevel=3,
    )


def configure_runtime(config) -> bool:
    """TF and BLAS threads of a ``DQNConfig``, and op determinism if asked (Keras initializers
    are seeded). Returns ``configure_tensorflow``'s answer: are TF's pools the ones asked for?"""
    own_pools = configure_tensorflow(config.num_threads)
    configure_blas(config.num_threads)
    if config.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    return own_pools


def configure_blas(num_threads: int) -> None:
    """Cap the BLAS threads numpy uses (the numpy learner, acting, diagnostics).

    BLAS libraries start one thread per core, which for the small matrices of a DQN costs
    more in synchronisation than it gains (README, Layout: the dependencies). The cap changes
    speed, not results.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=num_threads, user_api="blas")


def import_tensorflow_quietly(num_threads: int = 1):
    """Import TensorFlow and start its runtime with stderr muted, for command-line tools and
    for users' scripts (call it before anything imports TensorFlow).

    TF >= 2.20 prints absl start-up lines ("Could not find cuda drivers", "failed call to
    cuInit") before any Python logging setting can reach them; they are noise on a CPU machine
    and would bury the one-line errors the CLI promises. Library code never calls this: muting
    a process's stderr is its owner's choice.

    Its first op fixes TensorFlow's intra- and inter-op pools for the process at
    ``num_threads`` (and sets TF_CPP_MIN_LOG_LEVEL=2 unless set): a caller with TensorFlow
    work of its own in the process passes the count that work wants.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            configure_tensorflow(num_threads)  # before the first op, or it cannot apply
            import tensorflow as tf

            tf.config.list_physical_devices()
            tf.constant(0.0) + 1.0  # first op: device and XLA-service start-up messages
            # TensorFlow 2.16 starts XLA at the first compiled call, with absl lines that
            # TF_CPP_MIN_LOG_LEVEL does not reach ("XLA service ... initialized", "Compiled
            # cluster using XLA!"): a tiny one here (about 25 ms) prints them into the mute.
            tf.function(lambda x: x + 1.0, jit_compile=True, autograph=False)(tf.constant(0.0))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get without swapping or the kernel's OOM killer: Linux's
    MemAvailable (elsewhere free physical pages), lowered to what the process's cgroups still
    allow (``cgroup_memory_headroom``); None if the platform says nothing.

    Why the cgroups: in a container (Docker's ``--memory``, a Kubernetes limit) /proc/meminfo
    shows the host's memory, and a population sized to it would be killed part-way through.
    """
    machine = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    machine = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if machine is None:
        try:
            machine = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    limits = [x for x in (machine, cgroup_memory_headroom()) if x is not None]
    return min(limits) if limits else None


# cgroup v1 writes "no limit" as the largest page-aligned int64; anything this large is none.
_NO_LIMIT = 1 << 60


def cgroup_memory_headroom(
    root: str | Path = "/sys/fs/cgroup", membership: str | Path = "/proc/self/cgroup"
) -> int | None:
    """Bytes this process's memory cgroup, and each ancestor with a limit, can still charge:
    the smallest limit - (usage - inactive file cache) among them. None without a limit (or
    without cgroups).

    cgroup v2 (a ``0::<path>`` line in ``membership``): memory.max, memory.current and
    memory.stat's inactive_file under ``root``/<path>; v1 (a ``memory`` controller line):
    memory.limit_in_bytes, memory.usage_in_bytes and total_inactive_file under
    ``root``/memory/<path>. Inactive file pages are left out of the usage because the kernel
    drops them before it kills anything (Docker's ``stats`` counts usage the same way). A path
    missing under ``root`` (a container that sees the host's path) is looked for from its
    nearest existing ancestor.
    """
    try:
        with open(membership) as fh:
            lines = [line.rstrip("\n").split(":", 2) for line in fh]
    except OSError:
        return None
    for fields in lines:
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":
            mount, files = Path(root), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            mount = Path(root) / "memory"
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        folder = mount.joinpath(*[p for p in path.split("/") if p])
        room = []
        while True:
            if folder.is_dir():
                headroom = _cgroup_headroom(folder, *files)
                if headroom is not None:
                    room.append(headroom)
            if folder == mount:
                break
            folder = folder.parent
        if room:
            return max(0, min(room))
    return None


def _cgroup_headroom(folder: Path, limit_file: str, usage_file: str, inactive: str) -> int | None:
    """limit - (usage - inactive file pages) of one cgroup folder; None without a limit or
    with files that do not say."""
    try:
        limit_text = (folder / limit_file).read_text().strip()
        if limit_text == "max" or int(limit_text) >= _NO_LIMIT:
            return None
        usage = int((folder / usage_file).read_text())
        cache = 0
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive:
                cache = int(value)
                break
    except (OSError, ValueError):
        return None
    return int(limit_text) - max(0, usage - cache)
