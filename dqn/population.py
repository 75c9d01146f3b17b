"""train_population(config, members) / resume_population(folder): many runs in one program.

The one loop of ``dqn.loop`` for M members in lockstep: every loop step acts for all members
with one batched forward pass, steps each member's own env, stores each member's transitions
in its own replay ring, and runs the gradient steps owed as ONE burst of the population
learner (``dqn.learner.PopulationLearner``: parameters stacked on a member axis, batched
matmuls) for every member at once. Members are configs that share ``dqn.members.SHARED_KEYS``
and may differ in everything else (loss, learning rate, gamma, clipping, Double DQN, target
sync, epsilon, seed), so one program can hold all the loss variants of a study.

Each member writes the run folder a single run writes (config.yaml, metrics.csv, tb/,
checkpoints/, summary.json): ``dqn-evaluate``, ``DQNAgent.load`` and the comparison report read
it unchanged. A member stopped by the divergence guard is recorded as stopped (its
summary.json says where and why) and the others go on. The population folder holds
``population.json`` (the members and their run folders) and ``population-step.json`` (the
newest step at which every running member has a checkpoint), from which
``resume_population`` continues exactly, also after SIGKILL.

Nothing couples members: a member's trajectory depends only on its own config and seed
(tests perturb one member and check that the others stay bit-identical).
"""

from __future__ import annotations

import contextlib
import operator
import shutil
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from dqn import checkpoint
from dqn.agent_files import (
    check_checkpoints_folder,
    checkpoint_dir,
    list_checkpoints,
    stop_reason,
    verify_checkpoint,
)
from dqn.config import DQNConfig, check_is_config, output_folder, replay_capacity
from dqn.divergence import q_bound
from dqn.envs import check_spaces, checked_obs, checked_reset, config_env, solve_return
from dqn.envstate import restore_env_state, unrestored_warning
from dqn.errors import (
    CheckpointError,
    CheckpointWarning,
    ConfigError,
    UnsupportedSpaceError,
    few,
    raise_if_signalled,
    writing,
)
from dqn.io import check_named, hold_folders, missing_parents, remove_unfinished
from dqn.learner import LearnerArrays
from dqn.loop import check_on_eval
from dqn.member_agent import MemberAgent
from dqn.members import (
    check_label,
    check_memory,
    check_population,
    configured,
    env_of,
    first_repeat,
)
from dqn.nstep import NStepWindow
from dqn.numpy_population import NumpyPopulationLearner
from dqn.population_files import (
    STEP_FILE,
    MemberResult,
    Network,
    read_population,
    read_step_marker,
    relative,
    trained_past,
    write_population,
)
from dqn.population_loop import PopulationLoop, Slot
from dqn.replay import ReplayBuffer
from dqn.run_log import METRICS_COLUMNS, MetricWindow, Progress
from dqn.run_state import (
    LoopState,
    check_run_config,
    ended_summary,
    load_run_state,
    parse_metrics_csv,
    read_summary,
    summary_problem,
)
from dqn.runtime import configure_runtime

OnEval = Callable[[dict, MemberAgent], "bool | None"]  # train_population's on_eval(row, member)
ON_EVAL_ARGS = "(row, member)"


# Config keys a member does not take as overrides, and what sets them instead (an output_dir
# override would be ignored without a word).
MEMBER_OWNS = {
    "seed": "a member's seed is its own field, Member(overrides, seed, label)",
    "output_dir": "a population writes its members under its own folder (train_population's "
    "out_dir and run_dirs)",
}


@dataclass(frozen=True)
class Member:
    """One run of a population: the base config's overrides and the seed, and a label that
    names its run folder (``<label>-seed<seed>``; an (overrides, seed) pair is labelled
    ``member<i>`` by its place in the list)."""

    overrides: Mapping[str, Any]
    seed: int
    label: str = "member"

    def __post_init__(self) -> None:
        check_label(self.label, "member label")
        if not isinstance(self.overrides, Mapping):
            raise ConfigError(
                f"member {self.label!r}: overrides must map config keys to values, "
                f"got {self.overrides!r}"
            )
        try:  # a numpy integer is an int; 1.0, "1" and True are not seeds (as in a pair)
            if isinstance(self.seed, bool):
                raise TypeError
            object.__setattr__(self, "seed", operator.index(self.seed))
        except TypeError:
            raise ConfigError(
                f"member {self.label!r}: seed must be an integer, got {self.seed!r}"
            ) from None
        if bad := [k for k in self.overrides if not isinstance(k, str)]:
            raise ConfigError(f"member {self.label!r}: config keys must be strings, got {bad[0]!r}")
        if owned := [k for k in self.overrides if k in MEMBER_OWNS]:
            raise ConfigError(
                f"member {self.label!r} sets {owned[0]!r} in its overrides: {MEMBER_OWNS[owned[0]]}"
            )

    def config(self, base: DQNConfig) -> DQNConfig:
        return configured(base, self.overrides, self.seed, f"member {self.label!r}")


def as_member(item: Member | tuple, index: int = 0) -> Member:
    """A Member from a Member or an (overrides, seed) pair (labelled ``member<index>``)."""
    if isinstance(item, Member):
        return item
    try:
        overrides, seed = item
        if isinstance(seed, bool):
            raise TypeError
        seed = operator.index(seed)  # 1.7 is not a seed
        # None for no overrides; anything else must be a mapping (a list of pairs, 0 or "" was
        # taken as one, or as none, without a word)
        if overrides is not None and not isinstance(overrides, Mapping):
            raise TypeError
    except (TypeError, ValueError):
        raise ConfigError(
            f"a member is a Member or an (overrides, seed) pair, overrides a mapping of config "
            f"keys to values (or None), got {item!r}"
        ) from None
    return Member(dict(overrides or {}), seed, f"member{index}")


def train_population(
    config: DQNConfig,
    members: Sequence[Member | tuple],
    *,
    out_dir: str | Path | None = None,
    run_dirs: Sequence[str | Path] | None = None,
    progress: bool | Progress = True,
    log_tensorboard: bool = True,
    on_eval: OnEval | None = None,
) -> list[MemberResult]:
    """Train every member of ``members`` on ``config`` in one program; one run folder each.

    ``out_dir`` holds the population's own files (default: a new folder under
    ``config.output_dir``); ``run_dirs`` the members' folders (default: ``out_dir/<label>-
    seed<k>``), which, as ``out_dir``, must not lie inside another run's, population's, saved
    agent's or study's runs/ folder (ConfigError). Every member config is validated, the
    members checked to share what they must, and the memory of all replay rings checked, before
    anything is written. ``progress``: a tqdm bar of the members on stderr, or a callable
    called with the env steps just taken, summed over the running members.

    Returns one ``MemberResult`` per member, in order. A member whose training diverges does
    not raise, as ``train`` does: it is stopped, its ``diverged`` holds the reason (its
    ``final_eval_mean`` is its last periodic evaluation's, NaN before its first, as for a run
    stopped early; its folder's summary.json says so too), and the others go on.

    ``on_eval(row, member)`` is ``train``'s, per member: called after each member's evaluation
    with its metrics.csv row and a ``dqn.member_agent.MemberAgent`` (``index``, ``config``,
    ``run_dir``, ``q_values``, greedy ``act``, ``save``); False stops that member at a
    resumable checkpoint of its own (``stopped_by_on_eval`` in its summary), and the others go
    on. A resumed population keeps it stopped; ``dqn.loop.resume(run_dir)`` continues it alone.

    Ctrl-C (SIGINT) or SIGTERM stops every running member at a resumable checkpoint and then
    raises ``dqn.errors.TrainingInterrupted`` (a KeyboardInterrupt) carrying the members'
    results; ``resume_population(out_dir)`` continues them.
    """
    from dqn.config import check_path_arg, check_reporting, user_path

    check_reporting(progress, log_tensorboard)
    if out_dir is not None:
        check_path_arg(out_dir, "out_dir is a folder's path")
    if isinstance(run_dirs, list | tuple):
        for d in run_dirs:
            check_path_arg(d, "run_dirs is a list of folders' paths, each")
    out_dir = user_path(out_dir, "out_dir")
    if isinstance(run_dirs, list | tuple):
        run_dirs = [user_path(d, "a run folder") for d in run_dirs]
    return _train_population(
        config, members, out_dir, run_dirs, progress, log_tensorboard, on_eval, in_study=False
    )


def train_study_population(
    config: DQNConfig,
    members: Sequence[Member],
    out_dir: Path,
    run_dirs: Sequence[Path],
    progress: bool | Progress,
) -> list[MemberResult]:
    """``train_population`` for a chunk of a study, whose members' folders lie in the study's
    runs/ folder by design (``train_population`` refuses a run folder inside another of the
    package's folders)."""
    return _train_population(config, members, out_dir, run_dirs, progress, True, None, True)


def _train_population(
    config, members, out_dir, run_dirs, progress, log_tensorboard, on_eval, in_study: bool
):
    check_on_eval(on_eval, ON_EVAL_ARGS)
    if (
        not isinstance(members, Iterable)
        or isinstance(members, Member | Mapping | str)
        or (isinstance(members, tuple) and len(members) == 2 and isinstance(members[0], Mapping))
    ):  # one member (or None) where a list of them belongs
        raise ConfigError(
            f"members is a list of members, [Member(...)] or [(overrides, seed)], got {members!r}"
        )
    members = [as_member(m, i) for i, m in enumerate(members)]
    check_is_config(config)
    configs = [m.config(config) for m in members]
    check_population(configs)
    _check_distinct(members, configs)
    from dqn.envs import check_env, check_n_step

    env = env_of(configs[0])  # the members' own: an override may name another env than config's
    check_memory([configs], {env: check_env(*env)})
    for member, member_config in zip(members, configs):
        try:
            check_n_step(member_config)
        except ConfigError as exc:
            raise ConfigError(f"member {member.label!r}: {exc}") from None
    if out_dir is None:  # to the microsecond: two populations started together get two
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        out_dir = output_folder(config) / f"population-{stamp}"
    check_named(out_dir, "population folder")
    out = Path(out_dir)
    if run_dirs is None:
        run_dirs = [out / f"{m.label}-seed{m.seed}" for m in members]
    if isinstance(run_dirs, str | Path) or not isinstance(run_dirs, Sequence):
        raise ConfigError(
            f"{len(members)} members need a list of {len(members)} run folders, got "
            f"{type(run_dirs).__name__}"
        )
    if len(run_dirs) != len(members):
        raise ConfigError(f"{len(members)} members need a list of {len(members)} run folders")
    folders = [Path(d).resolve() for d in run_dirs]
    if len(set(folders)) != len(folders):
        twice = next(str(d) for d in folders if folders.count(d) > 1)
        raise ConfigError(
            f"two members would write the same run folder {twice}: give them different labels "
            "or seeds"
        )
    # A run folder that is or holds the population's folder or another run's mixes their files
    # (runs inside the population's folder are its default).
    population = out.resolve()
    for folder in folders:
        if folder == population:
            raise ConfigError(
                f"run folder {folder} is the population folder: give each member its own folder"
            )
        for other in (population, *folders):
            if other != folder and other.is_relative_to(folder):
                what = "the population folder" if other == population else other
                raise ConfigError(
                    f"run folder {folder} holds {what}: give each member its own folder"
                )
    # Nothing is written over an earlier population or run (resume_population continues one).
    resume = "dqn.population.resume_population"
    # A study's chunk lies in its study's populations/ by design.
    checkpoint.check_new_folder(out, "population folder", resume, nested_ok=in_study)
    for folder, resolved in zip(run_dirs, folders):
        # Inside the population's own folder is their default; elsewhere, as train's run_dir.
        mine = in_study or resolved.is_relative_to(population)
        checkpoint.check_new_folder(folder, "run folder", resume, nested_ok=mine)
    # The folders made for it and its members' (outside it, where given), if refused.
    parents = (
        [] if in_study else [p for d in (out, *map(Path, run_dirs)) for p in missing_parents(d)]
    )
    try:
        return _train_new_population(
            members, configs, out, run_dirs, progress, log_tensorboard, on_eval, in_study
        )
    except (UnsupportedSpaceError, ConfigError, OSError):
        remove_unfinished(None, parents)  # those still empty: it was refused before it kept any
        raise


def _train_new_population(
    members, configs, out: Path, run_dirs, progress, log_tensorboard, on_eval, in_study: bool
):
    # Held while it trains: a resume of the population, or of a member's run, from another
    # process is refused rather than writing the same files.
    with contextlib.ExitStack() as held:
        # A folder that cannot be made (under a file, on a read-only disk) is named in one line,
        # as train names its run folder; the folders held before it are let go (and removed if
        # this call made them).
        for what, folder in [("the population folder", out)] + [
            ("the run folder", d) for d in run_dirs
        ]:
            with writing(what, folder):
                held.enter_context(hold_folders([Path(folder)]))
        try:
            write_population(out, [(m.label, m.seed) for m in members], run_dirs, configs)
            (out / STEP_FILE).unlink(missing_ok=True)
            loop = _new_loop(configs, [Path(d) for d in run_dirs], out, log_tensorboard)
        except BaseException:
            # Ctrl-C or an error while the members are built (a second for 25 default ones):
            # population.json without a step marker could be neither resumed nor trained again.
            # The folders were new or empty (check_new_folder): they are emptied again.
            _empty_again([out, *(Path(d) for d in run_dirs)])
            raise
        try:
            results = loop.run(progress, on_eval)
        except (UnsupportedSpaceError, ConfigError, OSError):
            # A member's env refused at its first steps (an env of gym < 0.26, an observation
            # of another shape; a config whose n_step no episode reaches, at the first update),
            # or a disk that cannot take its first row: a refusal writes nothing (README,
            # Errors), so a population that kept no metrics row and no checkpoint is emptied as
            # above. A study's chunk is left to the study, which records its failure there.
            kept = loop.checkpointed or any(slot.loop.history for slot in loop.slots)
            if not (kept or in_study):
                _empty_again([out, *(Path(d) for d in run_dirs)])
            raise
        return _signalled(loop, results)


def _check_distinct(members: list[Member], configs: list[DQNConfig]) -> None:
    """ConfigError where two members are one run (``first_repeat``; a seed repeated in a list
    of pairs is the usual slip)."""
    if (repeat := first_repeat(configs)) is not None:
        i, j = repeat
        raise ConfigError(
            f"members {members[i].label!r} and {members[j].label!r} are the same run (the "
            f"same config, seed {configs[j].seed}): give each its own seed or overrides"
        )


def _empty_again(folders: list[Path]) -> None:
    """Remove what a population wrote into its new folders before it trained, but their holds
    (each folder's lock file, and the member folders inside the population's: ``hold_folders``
    removes the folders it made once they are empty)."""
    from dqn.io import LOCK_FILE, remove_entry

    keep = {folder.resolve() for folder in folders}
    for folder in folders:
        for entry in list(folder.iterdir()) if folder.is_dir() else []:
            if entry.name != LOCK_FILE and entry.resolve() not in keep:
                with contextlib.suppress(OSError):  # the error that stopped it says more
                    remove_entry(entry)


def resume_population(
    out_dir: str | Path,
    *,
    progress: bool | Progress = True,
    log_tensorboard: bool = True,
    on_eval: OnEval | None = None,
) -> list[MemberResult]:
    """Continue a population from the newest step at which every running member checkpointed,
    exactly as if it had never stopped (members stopped by the guard or by ``on_eval`` stay
    stopped; ``on_eval`` is ``train_population``'s; a signal raises TrainingInterrupted as
    there).

    A population killed after its final checkpoint but before every member's summary.json is
    finished from that checkpoint: the summaries are written, nothing is trained again."""
    check_on_eval(on_eval, ON_EVAL_ARGS)
    from dqn.config import check_path_arg, check_reporting, user_path

    check_reporting(progress, log_tensorboard)
    check_path_arg(out_dir, "resume_population takes a population folder's path")
    out = Path(user_path(out_dir, "out_dir"))
    configs, run_dirs = read_population(out)
    # Its own folder and its members' (which a study keeps apart from it): a second resume, or
    # a member's run resumed alone, from another process is refused.
    with hold_folders([out, *(d for d in run_dirs if Path(d).is_dir())]):
        return _resume_population(out, configs, run_dirs, progress, log_tensorboard, on_eval)


def _resume_population(
    out, configs, run_dirs, progress, log_tensorboard, on_eval
) -> list[MemberResult]:
    from dqn.envs import check_env

    marker, stopped = _step_marker(out, run_dirs)
    if any(not 0 <= i < len(run_dirs) for i in stopped):
        raise CheckpointError(f"population {out}: {STEP_FILE} stops members it does not have")
    total = configs[0].total_env_steps
    if marker >= total and all(
        i in stopped or ended_summary(d, total) is not None for i, d in enumerate(run_dirs)
    ):
        raise CheckpointError(f"population {out} is already complete ({marker} env steps)")
    running = [(c, d) for i, (c, d) in enumerate(zip(configs, run_dirs)) if i not in stopped]
    if not running:
        raise CheckpointError(
            f"population {out}: every member was stopped (by the divergence guard, a NaN or inf "
            "from its env, or on_eval); nothing to resume"
        )
    for run_dir in run_dirs:  # a stopped member's too: its summary is read at the end
        if not Path(run_dir).is_dir():
            raise CheckpointError(
                f"population {out}: member {relative(run_dir, out)}'s run folder is missing"
            )
        check_checkpoints_folder(run_dir)
    for i in stopped:  # its results are read from its summary and metrics at the end
        if problem := _stopped_member_problem(run_dirs[i]):
            raise CheckpointError(
                f"population {out}: member {relative(run_dirs[i], out)} is recorded as stopped, "
                f"and its {problem}"
            )
    for config, run_dir in running:
        check_run_config(run_dir, config)  # an edited config.yaml would take no effect
    step = _common_good_step(running, marker, out)
    spaces = check_env(*env_of(configs[0]))  # the members share them; checked once, here
    try:  # as a new population is checked: before its replays are read back, or a file goes
        check_memory([[c for c, _ in running]], {env_of(c): spaces for c, _ in running})
    except ConfigError as exc:
        raise CheckpointError(f"population {out} cannot be resumed in this memory: {exc}") from None
    for config, run_dir in running:
        if step >= total:  # finished from its final checkpoint, the newest: a killed final
            checkpoint.prune_checkpoints(run_dir, config.keep_checkpoints)  # prune is redone
        else:  # a member's checkpoints past the step may be needed yet: leftovers only
            checkpoint.remove_leftovers(run_dir)
    loop = _resumed_loop(configs, run_dirs, out, step, stopped, spaces, log_tensorboard)
    return _signalled(loop, loop.run(progress, on_eval))


def _step_marker(out: Path, run_dirs: list) -> tuple[int, list[int]]:
    """``read_step_marker``'s, or, where there is none because the divergence guard (or a NaN
    from the env) stopped every member before the first checkpoint, the line that says so with
    the first one's reason, which says what to change: "train it again" alone repeats it."""
    if not (out / STEP_FILE).is_file():
        reasons = [stop_reason(Path(d)) for d in run_dirs]
        if reasons and all(reasons):
            raise CheckpointError(
                f"population {out}: every member was stopped before its first checkpoint "
                f"({relative(run_dirs[0], out)}: {reasons[0]}), and a member stopped so does "
                "not continue: train it again"
            )
    return read_step_marker(out)


def _stopped_member_problem(run_dir: Path) -> str | None:
    """What keeps a stopped member's results from being read at the end, or None: its
    summary.json (with the figures a MemberResult holds) and its metrics.csv. The others
    trained to the end, and then a KeyError or FileNotFoundError came instead of results."""
    if problem := summary_problem(run_dir):
        return f"summary.json {problem}"
    missing = [k for k in _RESULT_KEYS if k not in read_summary(run_dir)]
    if missing:
        return f"summary.json has no {', '.join(missing)}"
    try:
        parse_metrics_csv((Path(run_dir) / "metrics.csv").read_text())
    except (OSError, ValueError, TypeError) as exc:
        return f"metrics.csv is unreadable ({type(exc).__name__})"
    return None


# What a stopped member's MemberResult takes from its summary.json.
_RESULT_KEYS = ("first_solve_env_step", "final_eval_mean", "final_eval_std", "train_seconds")


def _signalled(loop: PopulationLoop, results: list[MemberResult]) -> list[MemberResult]:
    """The members' results, or TrainingInterrupted carrying them when a signal stopped the
    population."""
    call = f"dqn.population.resume_population({str(loop.out)!r})"
    return raise_if_signalled(results, loop.stop_signal, loop.step, call)


def _common_good_step(running: list, marker: int, out: Path) -> int:
    """The newest env step, at most the step marker's, at which every running member has a
    good checkpoint: the marker's step, unless a member's checkpoint there was damaged since
    (then an older common one, with a CheckpointWarning; members are independent, so going
    back only recomputes steps). CheckpointError naming the member if there is none."""
    first_problem = None
    held = {checkpoint.checkpoint_step(p) for _, d in running for p in list_checkpoints(d)}
    for step in sorted({s for s in held if s <= marker}, reverse=True):
        for _, run_dir in running:
            try:
                verify_checkpoint(checkpoint_dir(run_dir, step))
            except CheckpointError as exc:
                first_problem = first_problem or f"member {relative(run_dir, out)}: {exc}"
                break
        else:
            if step != marker:
                warnings.warn(
                    f"population {out} resumes from env step {step}, not {marker}: {first_problem}",
                    CheckpointWarning,
                    stacklevel=4,  # resume_population's caller
                )
            return step
    ahead = [(d, newest) for _, d in running if (newest := trained_past(d, marker)) is not None]
    if ahead:  # a member's run went on without the others (dqn-train --resume of it, say)
        run_dir, newest = ahead[0]
        # Each member is a run of its own: the others continue alone from their checkpoints
        # (what a dqn-compare rerun does with such a chunk). Moving the member away only
        # made the next resume refuse its missing folder.
        raise CheckpointError(
            f"population {out} cannot resume: member {relative(run_dir, out)} has checkpoints "
            f"only past the population's env step {marker} (newest: {newest}), as a run trained "
            "on without the population has; continue each member alone instead: "
            "dqn.loop.resume(member_folder), or dqn-train --resume MEMBER_FOLDER"
        )
    raise CheckpointError(
        f"population {out} cannot resume: no env step up to {marker} at which every running "
        f"member has a good checkpoint ({first_problem or 'none has a checkpoint'})"
    )


def _make_learner(configs, net: Network, online: np.ndarray, own_pools: bool):
    if configs[0].learner == "numpy":
        return NumpyPopulationLearner(net.flat.shapes, net.activations, configs, online)
    from dqn.runtime import warn_threads_fixed
    from dqn.tf_population import TFPopulationLearner, population_key

    if not own_pools:  # TF ran first: its pools are fixed (configure_runtime said so)
        warn_threads_fixed(configs[0].num_threads, "a population's learner")
    shapes, activations = net.flat.shapes, net.activations
    share = population_key(shapes, activations, configs)  # the default MLP's chain of layers
    return TFPopulationLearner(shapes, activations, configs, online, share)


def _new_loop(configs, run_dirs, out: Path, log_tensorboard: bool) -> PopulationLoop:
    own_pools = configure_runtime(configs[0])
    first_env = config_env(configs[0])
    obs_dim, n_actions = check_spaces(first_env.observation_space, first_env.action_space)
    first_env.close()
    net = Network(configs[0], obs_dim, n_actions)
    online = np.stack([net.initial(c) for c in configs])
    columns = [*METRICS_COLUMNS, *net.diagnostic_names()]
    slots = []
    for config, run_dir in zip(configs, run_dirs):
        run_dir.mkdir(parents=True, exist_ok=True)
        config.to_yaml(run_dir / "config.yaml")
        env = config_env(config)
        obs = checked_obs(checked_reset(env.reset(seed=config.seed), env), (obs_dim,), env)[None]
        loop = LoopState(columns=columns, obs=obs)
        replay = ReplayBuffer(
            replay_capacity(config), obs_dim, np.random.default_rng([config.seed, 2])
        )
        rng = np.random.default_rng([config.seed, 1])
        slots.append(_slot(config, run_dir, env, replay, rng, loop, MetricWindow()))
    learner = _make_learner(configs, net, online, own_pools)
    loop = PopulationLoop(slots, net, learner, out, 0)
    loop.open_logs(log_tensorboard)
    return loop


def _resumed_loop(configs, run_dirs, out, step, stopped, spaces, log_tensorboard) -> PopulationLoop:
    """``spaces``: the members' (obs_dim, n_actions), checked by the caller."""
    from dqn.agent import DQNAgent

    own_pools = configure_runtime(configs[0])
    obs_dim, n_actions = spaces
    net = Network(configs[0], obs_dim, n_actions)
    slots, states, unrestored = [], [], []
    for i, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        folder = checkpoint_dir(run_dir, step)
        if i in stopped:  # its folder is final; it only keeps its place on the member axis
            state = LearnerArrays(*(np.zeros(net.flat.size, np.float32),) * 4, np.float32(0), 0)
            loop = LoopState(columns=[], obs=np.zeros((1, obs_dim), np.float32))
            env = config_env(config)
            slot = _slot(config, run_dir, env, None, None, loop, None)
            slot.stopped = "stopped before the checkpoint"
        else:
            agent = DQNAgent.load(folder / "agent")  # verified by _common_good_step
            state = agent.state
            loop, replay, snapshot = load_run_state(folder, config, obs_dim, n_actions)
            if loop.columns != (columns := [*METRICS_COLUMNS, *net.diagnostic_names()]):
                # As a run's resume checks (an edited header was csv's ValueError mid-run).
                odd = [c for c in loop.columns if c not in columns]
                lacks = [c for c in columns if c not in loop.columns]
                what = (
                    f"{few(odd)} not among them"
                    if odd
                    else f"no {few(lacks)}"
                    if lacks
                    else "in another order"
                )
                raise CheckpointError(
                    f"checkpoint {folder}: its metrics.csv's columns are not the ones the "
                    f"population writes ({what}): it cannot continue"
                )
            env = config_env(config)
            try:
                unrestored += restore_env_state(env, snapshot)
            except ValueError as exc:
                raise CheckpointError(f"checkpoint {folder} does not fit: {exc}") from None
            slot = _slot(config, run_dir, env, replay, agent.rng, loop, MetricWindow(loop.window))
            slot.window.load(**loop.pending[0])
        slots.append(slot)
        states.append(state)
    if unrestored:  # once for the population: its members' envs share an id
        warnings.warn(
            unrestored_warning(configs[0].env_id, unrestored, "each resumed member"),
            CheckpointWarning,
            stacklevel=4,  # resume_population's caller
        )
    for i, run_dir in enumerate(run_dirs):  # all loaded: the newer ones are recomputed
        for newer in list_checkpoints(run_dir) if i not in stopped else ():
            if checkpoint.checkpoint_step(newer) > step:
                # A damaged one is kept for inspection, as a run's resume keeps it; a good one
                # (a member's past the marker, or one the damage sent the others back from)
                # will be written again, to the same bytes.
                try:
                    verify_checkpoint(newer)
                except CheckpointError:
                    checkpoint.set_aside_one(newer)
                else:
                    shutil.rmtree(newer)
    learner = _make_learner(configs, net, np.stack([s.online for s in states]), own_pools)
    for i, state in enumerate(states):
        learner.set_member_state(i, state)
    loop = PopulationLoop(slots, net, learner, out, step)
    loop.open_logs(log_tensorboard)
    return loop


def _slot(config, run_dir, env, replay, rng, loop, metrics) -> Slot:
    # Stateless between evaluations: reset with fixed seeds.
    eval_env = config_env(config)
    return Slot(
        config=config,
        run_dir=run_dir,
        env=env,
        eval_env=eval_env,
        replay=replay,
        rng=rng,
        window=NStepWindow(config.n_step, config.gamma),
        loop=loop,
        metrics=metrics,
        threshold=solve_return(config, eval_env),
        bound=q_bound(config, eval_env),
    )


__all__ = [
    "STEP_FILE",
    "Member",
    "MemberResult",
    "as_member",
    "read_population",
    "resume_population",
    "train_population",
]
