"""Command-line entry points: ``dqn-train``, ``dqn-evaluate`` and ``dqn-compare``.

Bad input (a config key, value or file, a loss or env name, a checkpoint) is reported as one
line on stderr with exit code 2, before TensorFlow is even imported where possible. A run that
diverges exits with code 3; one stopped by a signal with 128 + the signal (130 for SIGINT,
143 for SIGTERM) after saving a checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dqn.command_line import (
    EXIT_DIVERGED,
    EXIT_FAILED,
    Parser,
    add_import_option,
    fail,
    folder_arg,
    home_expanded,
    import_modules,
    interrupted_code,
    one_line_warnings,
    quiet_tensorflow,
    sigterm_as_ctrl_c,
)
from dqn.errors import (
    CheckpointWarning,
    ConfigError,
    DivergenceError,
    DQNError,
    OutputError,
    StudyInterrupted,
    TrainingInterrupted,
    WorkerError,
    os_problem,
    raised_by_env,
)
from dqn.terminal import command

if TYPE_CHECKING:
    from dqn.config import DQNConfig


# ---------------------------------------------------------------------- dqn-train
class _PrintKeys(argparse.Action):
    """``--keys``: print the config keys and exit, as ``--help`` does (nothing else is read)."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from dqn.config import describe_keys

        print(describe_keys())
        parser.exit(0)


def train_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="dqn-train",
        description="Train a DQN agent on a Gymnasium env (vector observations, discrete actions).",
    )
    p.add_argument(
        "--config",
        type=home_expanded,
        help="YAML run config; without it, DQNConfig's defaults (those of configs/cartpole.yaml)",
    )
    p.add_argument(
        "--env",
        metavar="ENV_ID",
        help="Gymnasium env id, e.g. Acrobot-v1 or my_module:MyEnv-v0 (the config's env_id)",
    )
    p.add_argument("--loss", help="TD loss: l2, clipped_delta, huber or clipped_grad")
    # Read as --set seed= reads it (1e3, 0x10, 1_000): argparse's int refused what --set took.
    p.add_argument("--seed", help="override the config's seed (read as --set seed=SEED reads it)")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, values as YAML (--set double_dqn=true 'hidden_sizes=[64,64]'); "
        "--keys lists them",
    )
    p.add_argument(
        "--keys",
        action=_PrintKeys,
        help="list every config key with its default, the values it takes and what it means",
    )
    p.add_argument(
        "--run-dir", type=folder_arg, help="write the run here instead of output_dir/<name>"
    )
    p.add_argument(
        "--init-from",
        type=home_expanded,
        metavar="RUN_DIR",
        help="start the networks from a trained run's (or checkpoint's, or saved agent's) and "
        "train a new run on from there; the config's schedules start afresh (epsilon_start)",
    )
    p.add_argument(
        "--resume",
        type=home_expanded,
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest good checkpoint, exactly (takes only --no-progress "
        "and --import)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_import_option(p)  # for --resume and --init-from of a network_fn's run
    return p


@command
def train_main(argv: Sequence[str] | None = None) -> int:
    args = train_parser().parse_args(argv)
    prog = "dqn-train"
    changes = (args.config, args.env, args.loss, args.seed, args.run_dir, args.init_from)
    if args.resume is not None and (args.set or any(c is not None for c in changes)):
        return fail(
            prog,
            "--resume continues a run with its own config: it takes no --config, --env, "
            "--loss, --seed, --set, --run-dir or --init-from",
        )
    try:
        # SIGTERM (`timeout`, `kill`) before the loop takes over the signals says so in one line,
        # as Ctrl-C does, instead of ending the process silently.
        with sigterm_as_ctrl_c(), one_line_warnings(prog):
            result = _resume(args) if args.resume is not None else _train(args)
    except TrainingInterrupted as stop:  # its checkpoint is saved: summed up as any stopped run
        result = stop.result
    except DivergenceError as exc:
        return fail(prog, exc, EXIT_DIVERGED)
    except OutputError as exc:  # a checkpoint's agent (the run's folder is made before train)
        return fail(prog, _cannot_write(exc, exc.reason, args.resume))
    except DQNError as exc:
        return fail(prog, exc)
    except OSError as exc:
        if raised_by_env(exc):
            raise
        return fail(prog, _cannot_write(exc, os_problem(exc), args.resume))
    except KeyboardInterrupt as exc:  # before the loop, or a second Ctrl-C in it
        return fail(prog, _interrupted_at_once(exc), interrupted_code(exc))
    _print_summary(result)
    return 128 + result.stop_signal if result.stop_signal is not None else 0


def _cannot_write(exc: OSError, reason: str, resumed: str | None) -> str:
    """A run the disk stopped, and what it keeps: its newest checkpoint, or none (a new run's
    folder that kept no row was taken back: ``dqn.loop._discarded_if_refused``)."""
    run_dir = getattr(exc, "run_dir", None) or resumed
    if run_dir is None:
        return f"cannot write the run: {reason}; no checkpoint was kept"
    kept = _newest_kept(Path(run_dir)) or f"{run_dir} has no checkpoint"
    return f"cannot write the run: {reason}; {kept}"


def _interrupted_at_once(exc: KeyboardInterrupt) -> str:
    """What a run stopped at once keeps (by a signal before its loop, where no handler turns it
    into a checkpoint, or by a second one in it): its newest checkpoint, or none."""
    run_dir = getattr(exc, "run_dir", None)  # set by the loop; None: stopped before it
    if run_dir is None:
        return "interrupted before training started"
    kept = _newest_kept(run_dir)
    if kept is None:
        return f"interrupted twice, before {run_dir} had a checkpoint: nothing to resume"
    return f"interrupted twice; {kept}"


def _newest_kept(run_dir: Path) -> str | None:
    """What a stopped run keeps to resume from, in words; None if it holds no checkpoint."""
    from dqn.agent_files import checkpoint_step, list_checkpoints

    newest = list_checkpoints(run_dir)
    if not newest:
        return None
    return (
        f"{run_dir}'s checkpoint of env step {checkpoint_step(newest[0])} is intact: "
        f"dqn-train --resume {run_dir} continues from it"
    )


def train_config(args: argparse.Namespace) -> DQNConfig:
    """dqn-train's config: the --config file (or the defaults) with --set, --env, --loss and
    --seed applied; a key given by a flag and by --set is refused."""
    from dqn.config import DQNConfig, parse_overrides

    try:
        seed = None if args.seed is None else parse_overrides([f"seed={args.seed}"])["seed"]
    except ConfigError as exc:  # a tag it cannot read: named as --seed's, not an override's
        raise ConfigError(str(exc).replace("override 'seed'", "--seed", 1)) from None
    if args.seed is not None and seed is None:  # --seed null: not "no --seed", as a None reads
        raise ConfigError(f"config key 'seed' must be an integer, got --seed {args.seed}")
    flags = (
        ("--env", "env_id", args.env),
        ("--loss", "loss", args.loss),
        ("--seed", "seed", seed),
    )
    return DQNConfig.from_yaml(args.config, _with_flags(args.set, flags))


def _with_flags(sets: Sequence[str], flags) -> dict:
    """``--set``'s overrides and each (flag, key, value) given as one more; a key set by a flag
    and by --set, or by --set twice, is refused. A flag's value is taken as given, not read as
    YAML as --set's are: ``--loss null`` is the loss named "null" (refused by name, with the
    losses there are), ``--env 'a:'`` an env id, not a mapping."""
    from dqn.config import parse_overrides

    overrides = parse_overrides(list(sets))  # a key given twice is refused there
    for flag, key, value in flags:
        if value is not None:
            if key in overrides:
                raise ConfigError(f"{flag} and --set {key}=... both set {key!r}: give it once")
            overrides[key] = value
    return overrides


def _train(args: argparse.Namespace):
    from dqn.agent_files import resolve_agent_dir
    from dqn.checkpoint import check_new_folder, make_run_dir
    from dqn.config import output_folder, replay_capacity
    from dqn.envs import check_env, check_n_step
    from dqn.members import PROCESS_BYTES, member_bytes
    from dqn.replay import check_replay_fits
    from dqn.runtime import available_memory_bytes

    config = train_config(args)
    _import_before_env(args.imports, config.num_threads)
    # An unknown id, keyword or space fails here, before TF (unless --import brought it in).
    obs_dim, n_actions = check_env(config.env_id, config.env_kwargs)
    check_n_step(config)
    # The network too: its parameters' copies (dqn.members.member_bytes), so that
    # hidden_sizes=[100000, 100000] is refused here rather than running out of memory in TF.
    # TensorFlow loads after this check (unless --import brought it in): its runtime is not yet
    # in this process, as a population's new process counts it (dqn.members.PROCESS_BYTES).
    network = member_bytes(config, obs_dim, n_actions)
    runtime = PROCESS_BYTES if "tensorflow" not in sys.modules else 0
    check_replay_fits(replay_capacity(config), obs_dim, available_memory_bytes(), network, runtime)
    if args.init_from is not None:  # a missing or broken agent: named before anything is written
        with warnings.catch_warnings():  # a skipped checkpoint: train's load names it, once
            warnings.simplefilter("ignore", CheckpointWarning)
            resolve_agent_dir(args.init_from)
    # The folders missing on the way to the run's, deepest first: this command makes them, and
    # takes them away again (with a run folder it named itself) if train refuses before
    # writing anything in them.
    run_dir = args.run_dir
    wanted = output_folder(config) if run_dir is None else run_dir
    made = [folder for folder in (wanted, *wanted.parents) if _absent(folder)]
    try:
        if run_dir is None:
            run_dir = make_run_dir(config)  # an unwritable output_dir fails here, before TF too
        else:
            check_new_folder(run_dir, "--run-dir")  # nor inside a run, population or study
            run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # nothing is written yet: no "checkpoints written before" to speak of
        where = run_dir if run_dir is not None else output_folder(config)
        raise DQNError(f"cannot create the run folder in {where}: {os_problem(exc)}") from None
    try:
        quiet_tensorflow(config.num_threads)
        from dqn.loop import train

        return train(
            config, run_dir=run_dir, progress=not args.no_progress, init_from=args.init_from
        )
    except (DQNError, KeyboardInterrupt, OSError) as exc:
        # Refused before it wrote anything (an --init-from agent whose network does not fit), or
        # stopped by a signal or a full disk before it kept a row: the folders made for it go
        # too, as if the refusal had come before them (a signal in the loop, or a disk that
        # fills up after a row, leaves the run's files: a checkpoint or not).
        if getattr(exc, "run_dir", None) is not None:
            raise
        for folder in ([run_dir] if args.run_dir is None else []) + made:
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()
        raise


def _import_before_env(imports: Sequence[str], num_threads: int) -> None:
    """Import ``--import``'s modules before the env is looked up: a module's
    ``gymnasium.register`` calls are what make a user's env id known, in a run trained from a
    script as much as in a new one. TensorFlow starts first, quiet and with the run's threads,
    because such a module may import it (its Keras classes are the option's other use)."""
    if imports:
        quiet_tensorflow(num_threads)
        import_modules(imports)


def _threads_of(run_dir: Path) -> int:
    """The thread count a run was trained with, from its config.yaml, for TensorFlow's pools;
    the default where the file cannot say (the resume then names what is wrong with it)."""
    from dqn.config import DQNConfig, read_saved_config

    try:
        return read_saved_config(Path(run_dir) / "config.yaml").num_threads
    except (DQNError, OSError):
        return DQNConfig().num_threads


def _absent(path: Path) -> bool:
    """True if nothing is at ``path``; False also where the question cannot be asked (a name
    too long for the filesystem: ``exists`` raises, and making it fails with its own message)."""
    try:
        return not path.exists()
    except OSError:
        return False


def _resume(args: argparse.Namespace):
    from dqn.agent_files import folder_exists
    from dqn.io import hold_folders
    from dqn.run_state import prepare_resume
    from dqn.runtime import available_memory_bytes

    # Everything but the agent is read and checked here, before TF is imported: a bad run
    # folder or a corrupt checkpoint costs a fraction of a second to report. Held while it is
    # read: a run another process is training is named as busy, even before its first
    # checkpoint (which would otherwise read as a folder without checkpoints, to delete).
    if args.imports:
        _import_before_env(args.imports, _threads_of(args.resume))
    held = [args.resume] if folder_exists(args.resume) else []
    with hold_folders(held):
        config = prepare_resume(args.resume, available_memory_bytes()).config
    quiet_tensorflow(config.num_threads)
    from dqn.loop import resume

    return resume(args.resume, progress=not args.no_progress)


def _episodes(n: int) -> str:
    return f"{n} episode" + ("" if n == 1 else "s")


def _returns(mean: float, std: float, *others: float) -> str:
    """``mean +/- std`` to 0.1 where returns are tens or more (CartPole's), else to 0.001, so
    that an env of small rewards does not print 0.9 +/- 0.0 for 0.93 in every episode."""
    digits = 1 if max(abs(v) for v in (mean, *others)) >= 10 else 3
    return f"{mean:.{digits}f} +/- {std:.{digits}f}"


def _print_summary(result) -> None:
    s = result.summary
    solved = s["first_solve_env_step"]
    threshold = s["solve_return"]
    config = result.agent.config
    if not s["interrupted"]:
        evaluation = f"final greedy evaluation ({_episodes(config.final_eval_episodes)}): "
    elif result.history:  # a stopped run's figure is its last periodic evaluation's
        step = int(result.history[-1]["env_step"])
        evaluation = (
            f"last greedy evaluation ({_episodes(config.eval_episodes)}, at env step {step}): "
        )
    else:
        evaluation = None
    lines = [
        "",
        f"{s['env_id']} / {s['loss']} / seed {s['seed']}: {s['env_steps']} env steps"
        + (" (interrupted; checkpoint saved, continue with --resume)" if s["interrupted"] else ""),
        "  no greedy evaluation yet"
        if evaluation is None
        else f"  {evaluation}{_returns(s['final_eval_mean'], s['final_eval_std'])}",
    ]
    if threshold is not None:
        lines.append(
            f"  first evaluation >= {threshold:g}: "
            + (f"at env step {solved}" if solved is not None else "not reached")
        )
    lines += [
        f"  wall time: {s['train_seconds']:.1f} s training + {s['eval_seconds']:.1f} s evaluation",
        f"  run folder: {result.run_dir}  (metrics.csv, tb/, checkpoints/)",
    ]
    print("\n".join(lines))


# ---------------------------------------------------------------------- dqn-evaluate
def evaluate_parser() -> argparse.ArgumentParser:
    p = Parser(prog="dqn-evaluate", description="Greedy evaluation of a saved agent.")
    p.add_argument(
        "path",
        type=home_expanded,
        help="a run folder (its newest good checkpoint), a checkpoint folder or an agent folder",
    )
    p.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    p.add_argument(
        "--seed", type=int, default=10_000, help="episode i is reset with seed + i (default 10000)"
    )
    p.add_argument(
        "--epsilon",
        type=float,
        default=0.0,
        help="take a uniformly random action with this probability at each step, drawn from a "
        "generator seeded with --seed (default 0: greedy; the Atari DQN papers evaluate at 0.05; "
        "--gif still draws a greedy episode)",
    )
    p.add_argument(
        "--gif",
        type=home_expanded,
        metavar="FILE",
        help="also draw the first episode into FILE, a new .gif (needs pygame for gymnasium's "
        "classic-control envs: pip install 'gymnasium[classic-control]' pillow, dqn's render "
        "extra)",
    )
    add_import_option(p)
    return p


@command
def evaluate_main(argv: Sequence[str] | None = None) -> int:
    args = evaluate_parser().parse_args(argv)
    prog = "dqn-evaluate"
    from dqn.config import MAX_EVAL_EPISODES, episode_seeds_fit

    if not 1 <= args.episodes <= MAX_EVAL_EPISODES:
        return fail(prog, f"--episodes must be in [1, {MAX_EVAL_EPISODES:_}], got {args.episodes}")
    if not episode_seeds_fit(args.seed, args.episodes):
        return fail(prog, f"--seed must be in [0, 2**32 - episodes], got {args.seed}")
    if not 0.0 <= args.epsilon <= 1.0:
        return fail(prog, f"--epsilon must be in [0, 1], got {args.epsilon}")
    try:
        # The warnings of the envs it makes to evaluate and draw too, not only of the loading.
        with sigterm_as_ctrl_c(), one_line_warnings(prog):  # `timeout`, `kill`: one line
            return _evaluate(args, prog)
    except DQNError as exc:
        return fail(prog, exc)
    except OSError as exc:  # unreadable, or a checkpoint a training run pruned as it was read
        if raised_by_env(exc):
            raise
        return fail(prog, f"cannot read {args.path}: {os_problem(exc)}")
    except KeyboardInterrupt as exc:  # it writes nothing but the GIF, and that whole or not
        return fail(prog, "interrupted", interrupted_code(exc))


def _evaluate(args: argparse.Namespace, prog: str) -> int:
    from dqn.agent_files import read_newest
    from dqn.envs import config_env
    from dqn.render import check_gif_path, record_gif

    if args.gif is not None:
        check_gif_path(args.gif)  # before the agent is loaded and evaluated
    agent = read_newest(args.path, functools.partial(_checked_then_loaded, args.imports))
    from dqn.evaluation import evaluate, evaluate_side_by_side, side_by_side_envs

    with contextlib.ExitStack() as envs_open:

        def make():
            return envs_open.enter_context(config_env(agent.config))

        if args.epsilon == 0:  # the episodes side by side, as a run's evaluations play them
            envs = side_by_side_envs(make(), [], args.episodes, make)
            mean, std, returns = evaluate_side_by_side(agent, envs, args.episodes, args.seed)
        else:  # one after another: the exploring draws come from one generator, in this order
            mean, std, returns = evaluate(agent, make(), args.episodes, args.seed, args.epsilon)
    if args.gif is not None:
        frames, steps, gif_return = record_gif(
            agent, agent.config.env_id, args.gif, args.seed, agent.config.env_kwargs
        )
    policy = "greedy" if args.epsilon == 0 else f"epsilon-greedy (epsilon {args.epsilon:g})"
    print(
        f"{agent.config.env_id}: {policy} return {_returns(mean, std, *returns)} over "
        f"{_episodes(args.episodes)} (min {min(returns):g}, max {max(returns):g})"
    )
    # Which agent: a run's newest good checkpoint is not always its last one.
    print(f"agent: {agent.loaded_from} ({agent.grad_steps:,} gradient steps)")
    if args.gif is not None:
        cut = f" (its first {frames - 1:,} of {steps:,} steps)" if frames <= steps else ""
        print(
            f"wrote {args.gif}: the episode reset with seed {args.seed}, return {gif_return:g}, "
            f"{frames:,} frames{cut}"
        )
    return 0


def _checked_then_loaded(imports: Sequence[str], agent_dir: Path):
    """The agent in ``agent_dir``, its files and env checked before TensorFlow is imported (and
    then the ``--import`` modules its network's classes need)."""
    from dqn.agent_files import check_agent_fits, read_agent_config
    from dqn.envs import check_env

    config = read_agent_config(agent_dir)
    _import_before_env(imports, 1)
    obs_dim, n_actions = check_env(config.env_id, config.env_kwargs)
    check_agent_fits(agent_dir, config.env_id, obs_dim, n_actions)
    quiet_tensorflow()
    from dqn.agent import DQNAgent

    return DQNAgent.load(agent_dir)


# ---------------------------------------------------------------------- dqn-compare
def compare_parser() -> argparse.ArgumentParser:
    from dqn.compare import DEFAULT_VARIANTS

    p = Parser(
        prog="dqn-compare",
        description="Train loss variants x seeds with one config, in parallel, resumably.",
    )
    p.add_argument(
        "--config",
        type=home_expanded,
        help="YAML run config shared by every variant (default: DQNConfig's defaults); its "
        "seed and output_dir are the study's: --seeds/--first-seed and --out set them",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="VARIANT",
        help="a loss name, or LABEL:key=value,key=value (default: "
        + " ".join(DEFAULT_VARIANTS)
        + ")",
    )
    p.add_argument(
        "--variants-file",
        type=home_expanded,
        metavar="YAML",
        help="read the variants from a YAML mapping of label to overrides (a committed sweep)",
    )
    p.add_argument(
        "--env",
        metavar="ENV_ID",
        help="Gymnasium env id for every variant, as dqn-train's --env (the config's env_id)",
    )
    p.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    p.add_argument("--first-seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config keys for every variant",
    )
    p.add_argument(
        "--out",
        type=folder_arg,
        default=Path("results/compare"),
        help="output folder (default: results/compare; a rerun into it resumes the study)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel training processes, num_threads TF threads each (default: the CPUs this "
        "process may use, after its affinity and a container's CPU quota, divided by "
        "num_threads, or fewer where that many would not fit in memory); with --backend ray and "
        "no --address, the CPUs of the local Ray",
    )
    p.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="run in local processes (default) or as Ray tasks (the 'ray' extra; its progress "
        "bar moves as each task, a run or a population, ends)",
    )
    p.add_argument(
        "--address",
        help="with --backend ray: the Ray cluster (HEAD:6379); OUT must be on a filesystem "
        "every node sees (default: start a local Ray)",
    )
    p.add_argument(
        "--runner",
        choices=("population", "process"),
        default="population",
        help="population (default): the runs that can share one program train as populations, "
        "one chunk per worker; process: one process per run (a population a stopped study "
        "started continues whole)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@command
def compare_main(argv: Sequence[str] | None = None) -> int:
    prog = "dqn-compare"
    try:  # the parser imports the study's modules (scipy's statistics): most of a second
        args = compare_parser().parse_args(argv)
    except KeyboardInterrupt as exc:
        return fail(prog, "interrupted before the study started", interrupted_code(exc))
    from dqn.compare import MAX_SEEDS  # no TensorFlow: checked before the seeds' list is made

    # --workers left out: run_comparison's default, the CPUs this process may use.
    for flag, value, rule, ok in (
        ("--seeds", args.seeds, f"in [1, {MAX_SEEDS:_}]", 0 < args.seeds <= MAX_SEEDS),
        ("--workers", args.workers, "> 0", args.workers is None or args.workers > 0),
        (  # the study's seeds are first-seed .. first-seed + seeds - 1, each a 32-bit seed
            "--first-seed",
            args.first_seed,
            f"in [0, 2**32 - seeds = {2**32 - args.seeds}]",
            0 <= args.first_seed <= 2**32 - args.seeds,
        ),
    ):
        if not ok:
            return fail(prog, f"{flag} must be {rule}, got {value}")
    if args.address is not None and args.backend != "ray":
        return fail(prog, "--address is the Ray cluster to use: give it with --backend ray")
    try:
        from dqn.compare import (
            DEFAULT_VARIANTS,
            STUDY_OWNS,
            Variant,
            read_variants_file,
            run_comparison,
            seed_table,
        )
        from dqn.config import DQNConfig, parse_overrides

        for key in parse_overrides(list(args.set)):
            if key in STUDY_OWNS:
                raise ConfigError(f"--set {key}: {STUDY_OWNS[key]}")
        overrides = _with_flags(args.set, [("--env", "env_id", args.env)])
        base = DQNConfig.from_yaml(args.config, overrides)
        if args.variants_file is not None:
            if args.variants is not None:
                raise DQNError("give either --variants or --variants-file, not both")
            variants = read_variants_file(args.variants_file)
        else:
            variants = [Variant.parse(v) for v in args.variants or DEFAULT_VARIANTS]
        labels = [v.label for v in variants]
        if len(set(labels)) != len(labels):
            raise DQNError(f"variant labels must be unique, got {', '.join(labels)}")
        if args.env is not None:  # "for every variant": one that names its own env overrode it
            for v in variants:
                if own := [k for k, _ in v.overrides if k in ("env_id", "env_kwargs")]:
                    raise ConfigError(
                        f"--env {args.env} is every variant's env, and variant {v.label!r} sets "
                        f"{own[0]}: give the env in the variants, or --env without them"
                    )
        # --set is "for every variant" too: a variant's own value won without a word (--set
        # loss=l2 under the loss variants trained each variant's loss).
        for key in parse_overrides(list(args.set)):
            for v in variants:
                if key in dict(v.overrides):
                    raise ConfigError(
                        f"--set {key}=... is every variant's {key}, and variant {v.label!r} sets "
                        f"its own: give {key} in the variants (or in --config's file), or --set "
                        "it without them"
                    )
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        with sigterm_as_ctrl_c(), one_line_warnings(prog):
            rows = run_comparison(
                base,
                variants,
                seeds,
                args.out,
                workers=args.workers,
                progress=not args.no_progress,
                backend=args.backend,
                address=args.address,
                runner=args.runner,
            )
    except WorkerError as exc:  # a crash, not bad input
        return fail(prog, exc, EXIT_FAILED)
    except StudyInterrupted as exc:
        return fail(prog, exc, 128 + exc.signum)
    except DQNError as exc:
        return fail(prog, exc)
    except OSError as exc:
        if raised_by_env(exc):
            raise
        return fail(prog, f"cannot write to {args.out}: {os_problem(exc)}")
    except KeyboardInterrupt as exc:  # before the runs started, or a second signal
        return fail(
            prog,
            "interrupted at once; finished runs and the checkpoints written so far are kept, "
            "and the same command continues",
            interrupted_code(exc),
        )
    print(seed_table(rows))
    print()
    print((args.out / "summary.md").read_text())
    print(f"results, summary and figures: {args.out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(train_main())
