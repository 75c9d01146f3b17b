"""``dqn-export``: a trained agent's Q-network as a TensorFlow SavedModel, to serve without dqn.

The SavedModel holds the online network's weights and two signatures, plain TensorFlow ops
only (``tf.saved_model.load`` works in a process that has neither dqn nor Keras imported):

- ``q_values`` (also ``serving_default``): ``obs`` float32 [batch, obs_dim] -> ``q_values``
  float32 [batch, n_actions];
- ``action``: ``obs`` -> ``action`` int64 [batch], the greedy action (argmax; ties go to the
  lowest index and a NaN Q-value wins, as numpy's argmax in ``DQNAgent.act``).

``serving_default`` is ``q_values``: it loses nothing (the action is its argmax, while
exploration, action masks or a confidence check need the values), it is what the Keras model
computes, and converters that take one signature (TFLite, TF.js) pick ``serving_default``; a
float32 output also converts everywhere, unlike int64 (TF.js has no int64).

``--tflite`` adds ``model.tflite`` (the ``q_values`` signature) to the same folder. The folder
is written beside ``--out`` under a temporary name and renamed into place when complete: a
failure or Ctrl-C leaves nothing behind.

From Python, ``export_policy(agent_or_folder, out, tflite=False)`` writes the same folder.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dqn.command_line import (
    Parser,
    add_import_option,
    fail,
    folder_arg,
    held_signals,
    home_expanded,
    import_modules,
    interrupted_code,
    one_line_warnings,
    sigterm_as_ctrl_c,
)
from dqn.errors import (
    DQNError,
    OutputError,
    first_line,
    op_error_reason,
    raised_by_env,
    writing,
)
from dqn.io import (
    check_named,
    folders_to_umask,
    followed,
    missing_parents,
    mount_point_problem,
    remove_unfinished,
)
from dqn.terminal import command

if TYPE_CHECKING:  # imported when exporting: the command's refusals need no TensorFlow
    from dqn.agent import DQNAgent

PROG = "dqn-export"
TFLITE_FILE = "model.tflite"


def export_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog=PROG,
        description="Write a trained agent's Q-network as a TensorFlow SavedModel "
        "(signatures q_values and action), loadable without dqn.",
    )
    p.add_argument(
        "path",
        type=home_expanded,
        help="a run folder (its newest good checkpoint), a checkpoint folder or an agent folder",
    )
    p.add_argument(
        "--out",
        type=folder_arg,
        required=True,
        help="the SavedModel folder to create (new or empty)",
    )
    p.add_argument(
        "--tflite", action="store_true", help=f"also write {TFLITE_FILE} (the q_values signature)"
    )
    add_import_option(p)
    return p


@command
def main(argv: Sequence[str] | None = None) -> int:
    args = export_parser().parse_args(argv)
    out: Path = followed(args.out)  # a link to an empty folder: written through, as mkdir does
    try:
        _check_out(out)
    except KeyboardInterrupt as exc:  # while it imports what it checks with: nothing written
        return fail(PROG, "interrupted; nothing written", interrupted_code(exc))
    except DQNError as exc:
        return fail(PROG, exc)
    except OSError as exc:  # a name too long for the filesystem, a folder that may not be read
        return fail(PROG, f"cannot write --out {out}: {exc.strerror or exc}")
    try:
        with one_line_warnings(PROG):
            agent_dir, obs_dim, n_actions = _check_agent(args.path)
    except DQNError as exc:
        return fail(PROG, exc)
    except OSError as exc:
        if raised_by_env(exc):
            raise
        return fail(PROG, f"cannot read {args.path}: {exc.strerror or exc}")

    def write(folder: Path) -> None:  # called once the temporary folder exists
        nonlocal agent_dir
        from dqn.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()  # the command's stderr: its one line, not TF's start-up
        import_modules(args.imports)
        with one_line_warnings(PROG):
            agent_dir = _write(args.path, agent_dir, folder, tflite=args.tflite)

    written = False
    try:
        # SIGTERM (`timeout`, `kill`) as Ctrl-C: the unfinished folder is removed, where the
        # default action left a hidden .<name>.*.tmp folder beside --out.
        with sigterm_as_ctrl_c():
            _write_whole(out, write, "--out")  # an unwritable --out fails before TensorFlow
            written = True
    except BaseException as exc:
        # A signal once the folder was in place changes nothing: it is written, and complete.
        if not (written and isinstance(exc, KeyboardInterrupt)):
            if isinstance(exc, DQNError):
                return fail(PROG, exc)
            if isinstance(exc, OSError) and not raised_by_env(exc):
                return fail(PROG, f"cannot write {out}: {exc.strerror or exc}")
            if isinstance(exc, KeyboardInterrupt):
                return fail(PROG, "interrupted; nothing written", interrupted_code(exc))
            raise
    what = f"SavedModel{' and ' + TFLITE_FILE if args.tflite else ''}"
    print(
        f"{PROG}: wrote {what} of {agent_dir} to {out}/ with signatures "
        f"q_values (serving_default): obs float32 [batch, {obs_dim}] -> q_values float32 "
        f"[batch, {n_actions}]; action: obs -> action int64 [batch] (greedy)"
    )
    return 0


def export_policy(
    source: DQNAgent | str | os.PathLike, out: str | os.PathLike, *, tflite: bool = False
) -> Path:
    """Write the greedy policy of ``source`` into the new folder ``out``, as ``dqn-export``
    does: a SavedModel with the ``q_values`` (serving_default) and ``action`` signatures, and
    ``model.tflite`` with ``tflite``. ``source`` is a ``DQNAgent``, or a run, checkpoint or
    agent folder (its newest good agent). Returns the folder written: ``out``, or where it
    points if it is a link (to an empty folder, written through).

    ``out`` must not exist or be an empty folder; it is written under a temporary name and
    renamed into place, so an error or Ctrl-C leaves nothing. Raises DQNError (a folder that
    holds no agent, an ``out`` that cannot be written) and InputError (another ``source``, an
    ``out`` that is no path).
    """
    from dqn.config import check_flag, check_path_arg, user_path
    from dqn.errors import InputError

    check_path_arg(out, "export_policy's out is a folder's path")
    check_flag(tflite, "tflite")
    source, out = user_path(source, "source"), user_path(out, "out")
    out, path = followed(out), Path(source) if isinstance(source, str | os.PathLike) else None
    if path is None:
        from dqn.agent import DQNAgent

        if not isinstance(source, DQNAgent):
            raise InputError(
                "export_policy takes a DQNAgent or the path of a run, checkpoint or agent "
                f"folder, got {type(source).__name__}"
            )
    with writing("out", out):  # in one line, as dqn-export would say it
        _check_out(out, "out")
    agent_dir = None if path is None else _check_agent(path)[0]

    def fill(folder: Path) -> None:
        if path is None:
            _write_agent(source, folder, tflite)
        else:
            _write(path, agent_dir, folder, tflite)

    with writing("out", out):
        _write_whole(out, fill, "out")
    return out


def _write_whole(out: Path, write: Callable[[Path], object], name: str) -> None:
    """``write(folder)`` into a fresh temporary folder beside ``out``, renamed to ``out`` when
    complete; an error or a signal before then removes it, and the parents of ``out`` it made.
    ``name`` is how messages name ``out`` (``--out`` for the command).

    Signals are held while it writes: TensorFlow's calls (a TFLite conversion takes seconds)
    finish, and a SIGINT or SIGTERM that came during them then stops the export, before the
    rename. One that comes after the rename is dropped: the export is written, and whole."""
    from dqn.io import fresh_tmp_dir, sync_parent, sync_tree

    created, tmp = missing_parents(out), None
    try:
        with held_signals() as held:
            tmp = fresh_tmp_dir(out)
            write(tmp)
            sync_tree(tmp)  # on the disk before the rename, as a checkpoint is
            held.raise_if_noted()
            _move_into_place(tmp, out, name)
            sync_parent(out)
    except BaseException:
        remove_unfinished(tmp, created)
        raise


def _check_out(out: Path, name: str = "--out") -> None:
    # OutputError, each: a folder export_policy cannot write, as train's and save's are.
    if out.name in ("", ".", ".."):
        raise OutputError(f"{name} must name a new folder, not {out}")
    check_named(out, name)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{name} {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        raise OutputError(f"{name} {out} already exists and is not empty")
    if why := mount_point_problem(out):
        raise OutputError(f"cannot write {name} {out}: {why}", why)
    from dqn.agent_files import BREAKS, checkpoint_around, keeper_around

    if (around := checkpoint_around(out)) is not None:
        raise OutputError(f"{name} {out} is inside {around}, {BREAKS}: export elsewhere")
    if (owner := keeper_around(out)) is not None:
        raise OutputError(
            f"{name} {out} is inside the {owner[1]} folder {owner[0]}, whose next write it would "
            "stop (a save there replaces the folder whole; a study rerun refuses files it does "
            "not write): export elsewhere"
        )
    above = out.absolute().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        why = f"{above} is not a folder"
        raise OutputError(f"cannot write {name} {out}: {why}", why)


def _check_agent(path: Path) -> tuple[Path, int, int]:
    """The agent folder for ``path`` and its network's sizes, read without TensorFlow."""
    from dqn.agent_files import read_newest

    return read_newest(path, _sizes)


def _sizes(agent_dir: Path) -> tuple[Path, int, int]:
    from dqn.agent_files import check_agent_files, read_agent_meta

    check_agent_files(agent_dir)
    meta = read_agent_meta(agent_dir)  # names the field that is wrong ("is unreadable" did not)
    return agent_dir, meta.obs_dim, meta.n_actions


def _move_into_place(tmp: Path, out: Path, name: str = "--out") -> None:
    """Rename the finished folder to ``out``; refuse if something was written there since."""
    try:
        os.rename(tmp, out)  # POSIX: replaces an empty folder, refuses a non-empty one
    except OSError:
        if out.is_dir() and not any(out.iterdir()):  # Windows renames onto nothing
            out.rmdir()
            os.rename(tmp, out)
        elif out.exists():
            raise DQNError(f"{name} {out} appeared while exporting; not replaced") from None
        else:
            raise


def _write(path: Path, agent_dir: Path, folder: Path, tflite: bool) -> Path:
    """Writes the policy of the agent in ``agent_dir`` (where ``path`` resolved to) into
    ``folder``; returns the agent folder it read: a run still training may have replaced that
    checkpoint since, with a newer one."""
    from dqn.agent import DQNAgent
    from dqn.agent_files import read_newest

    agent_dir, agent = read_newest(path, lambda found: (found, DQNAgent.load(found)), agent_dir)
    _write_agent(agent, folder, tflite)
    return agent_dir


def _write_agent(agent, folder: Path, tflite: bool) -> None:
    """The agent's SavedModel (and TFLite model) in ``folder``; TensorFlow's own file errors
    (disk full, permissions) as a DQNError."""
    import tensorflow as tf

    try:
        save_policy(agent.online, agent.obs_dim, folder)
    except tf.errors.OpError as exc:
        raise DQNError(f"cannot write the SavedModel: {op_error_reason(exc)}") from None
    if tflite:
        write_tflite(folder, folder / TFLITE_FILE)


def greedy_actions(q):
    """[batch] int64 argmax of Q-values [batch, n_actions] as numpy's argmax in DQNAgent.act
    takes it: ties to the lowest index, and where a finite observation so large that the
    network overflows (inf - inf) gives some NaN Q-values, the first NaN wins. tf.argmax
    passes NaN by, and answered 0 where act answered 1. (NotEqual, ReduceAny, Cast, ArgMax and
    Select are TFLite builtins; a NaN is the value != itself.)"""
    import tensorflow as tf

    nan = tf.not_equal(q, q)
    first_nan = tf.argmax(tf.cast(nan, tf.float32), axis=1, output_type=tf.int64)
    best = tf.argmax(q, axis=1, output_type=tf.int64)
    return tf.where(tf.reduce_any(nan, axis=1), first_nan, best)


def policy_module(model, obs_dim: int):
    """A ``tf.Module`` with the ``q_values`` and ``action`` functions of a Keras Q-network.

    The module tracks the model's variables, not the model: the SavedModel holds TensorFlow
    variables and graphs, no Keras objects, and nothing of dqn.
    """
    import numpy as np
    import tensorflow as tf

    spec = tf.TensorSpec([None, obs_dim], tf.float32, name="obs")
    largest = float(np.finfo(np.float32).max)

    def finite_rows(obs):
        """[batch] bool: every value of the row is finite."""
        finite = tf.cast(tf.abs(obs) <= largest, tf.float32)
        return tf.reduce_min(finite, axis=1) > 0.5

    class QPolicy(tf.Module):
        def __init__(self):
            super().__init__(name="dqn_policy")
            # Plain tf.Variables (Keras 3 wraps each in a KerasVariable): what the functions
            # read, and all that is saved besides them.
            self.weights = [v.value for v in model.variables]

        @tf.function(input_signature=[spec], autograph=False)
        def q_values(self, obs):
            # A loaded signature does not check its input's shape: an observation of another
            # width failed inside the first matmul ("Matrix size-incompatible: In[0]: [3,4],
            # In[1]: [6,256]"), with a dump of the graph. This names the shape it expects.
            obs = tf.ensure_shape(obs, [None, obs_dim])
            q = tf.cast(model(obs, training=False), tf.float32)
            # An observation with a NaN or inf gets NaN Q-values, whatever the network: a relu
            # layer's fused kernel (MatMul + BiasAdd + Relu) turns a NaN into 0, and an inf
            # saturates a tanh or sigmoid, so the network alone gave plausible values, and the
            # SavedModel and TFLite disagreed. Ops TFLite has built in: |x| <= max is False for
            # NaN and inf alike.
            return {"q_values": tf.where(finite_rows(obs)[:, None], q, float("nan"))}

        @tf.function(input_signature=[spec], autograph=False)
        def action(self, obs):
            best = greedy_actions(self.q_values(obs)["q_values"])
            return {"action": tf.where(finite_rows(obs), best, tf.zeros_like(best))}

    return QPolicy()


def save_policy(model, obs_dim: int, folder: Path) -> None:
    """Write the SavedModel of ``policy_module(model, obs_dim)`` into ``folder``."""
    import tensorflow as tf

    module = policy_module(model, obs_dim)
    q_values = module.q_values.get_concrete_function()
    signatures = {
        "serving_default": q_values,
        "q_values": q_values,
        "action": module.action.get_concrete_function(),
    }
    tf.saved_model.save(module, str(folder), signatures=signatures)
    folders_to_umask(folder)


def write_tflite(saved_model: Path, path: Path) -> None:
    """Convert the SavedModel's ``q_values`` signature to a TFLite flatbuffer at ``path``."""
    import tensorflow as tf

    converter_class = getattr(getattr(tf, "lite", None), "TFLiteConverter", None)
    if converter_class is None:
        raise DQNError("--tflite: this TensorFlow build has no TFLite converter (tf.lite)")
    converter = converter_class.from_saved_model(str(saved_model), signature_keys=["q_values"])
    try:
        flatbuffer = _muted_stderr(converter.convert)
    except Exception as exc:  # the converter's own error types differ between TF versions
        raise DQNError(f"--tflite: conversion failed: {first_line(exc)}") from None
    path.write_bytes(flatbuffer)


def _muted_stderr(fn):
    """Call ``fn`` with file descriptor 2 sent to /dev/null (the MLIR converter's C++ logs)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            return fn()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
