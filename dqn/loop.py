"""train(config) / resume(run_dir) -> TrainResult: the one DQN loop, for one env or a vector.

Each loop step: epsilon, act on every env's observation, step the envs, store the transitions
(n-step windows per env, ``dqn.nstep``), run the gradient steps owed (one burst per
``train_every_env_steps`` transitions), check for divergence, evaluate and checkpoint on their
periods. With one env a loop step is one env step; a vector of n envs takes up to n per loop
step and runs the bursts those env steps owe in one call, so the ratio of updates to env steps
is the same and an update can only come between loop steps. Periods are counted in env steps
(``multiples_between``), which for one env is ``step % every == 0``.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dqn import checkpoint
from dqn.agent import DQNAgent
from dqn.config import (
    DQNConfig,
    check_is_config,
    check_path_arg,
    check_reporting,
    output_folder,
    replay_capacity,
    user_path,
)
from dqn.diagnostics import PROBE_SIZE
from dqn.divergence import check_update, q_bound
from dqn.envs import (
    check_env_values,
    check_n_step,
    check_spaces,
    config_env,
    empty_replay_error,
    make_stepper,
    solve_return,
)
from dqn.envstate import capture_env_state, restore_env_state, unrestored_warning
from dqn.errors import (
    CheckpointError,
    CheckpointWarning,
    ConfigError,
    DivergenceError,
    InputError,
    UnsupportedSpaceError,
    add_note,
    raise_if_signalled,
    writing,
)
from dqn.evaluation import evaluate_side_by_side, side_by_side_envs
from dqn.io import (
    atomic_write_text,
    hold_folders,
    missing_parents,
    remove_entry,
    remove_unfinished,
)
from dqn.members import member_bytes
from dqn.networks import NetworkFn
from dqn.nstep import NStepWindow
from dqn.replay import ReplayBuffer, check_replay_fits
from dqn.run_log import (
    METRICS_COLUMNS,
    Interrupt,
    MetricWindow,
    Progress,
    RunLog,
    metrics_row,
    write_summary,
)
from dqn.run_state import LoopState, prepare_resume, save_run_state, summary_problem
from dqn.runtime import available_memory_bytes, configure_runtime
from dqn.step_metrics import METRIC_NAMES

INIT_FROM_FILE = "init_from.json"  # the agent a run started from (train's init_from)


def linear_epsilon(env_step: int, config: DQNConfig) -> float:
    """Epsilon at ``env_step``: linear from start to end over the decay fraction, then flat."""
    decay_steps = config.epsilon_decay_fraction * config.total_env_steps
    if decay_steps <= 0:
        return config.epsilon_end
    frac = min(1.0, env_step / decay_steps)
    return config.epsilon_start + frac * (config.epsilon_end - config.epsilon_start)


def multiples_between(lo: int, hi: int, every: int, after: int = 0) -> int:
    """How many multiples of ``every`` lie in (lo, hi] and are > ``after``."""
    lo = max(lo, after)
    return max(hi // every - lo // every, 0)


@dataclass
class TrainResult:
    """What a run produced. ``history`` holds the metrics.csv rows as dicts (left out of the
    repr with the returns and the summary: a notebook showing a result shows its figures)."""

    agent: DQNAgent
    run_dir: Path
    history: list[dict[str, float]] = field(repr=False)
    episode_returns: list[float] = field(repr=False)
    first_solve_env_step: int | None
    final_eval_mean: float
    final_eval_std: float
    train_seconds: float
    eval_seconds: float
    interrupted: bool = False
    solve_return: float | None = None
    summary: dict = field(default_factory=dict, repr=False)
    stop_signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM)


OnEval = Callable[[dict, DQNAgent], "bool | None"]


def check_on_eval(on_eval, args: str = "(row, agent)") -> None:
    """InputError unless ``on_eval`` is None or can be called with two arguments: refused
    before anything is written, not at the first evaluation with a run folder half made."""
    if on_eval is None:
        return
    if not callable(on_eval):
        raise InputError(f"on_eval must be a function of {args}, got {type(on_eval).__name__}")
    import inspect

    try:
        inspect.signature(on_eval).bind(None, None)
    except TypeError:
        raise InputError(
            f"on_eval must be a function of two arguments {args}, got {on_eval!r}"
        ) from None
    except ValueError:  # no signature to read (some builtins): left to the call
        pass


def ask_on_eval(on_eval: Callable, row: dict, agent, what: str = "the run") -> bool:
    """True if ``on_eval`` stops ``what``. It gets a copy: the row is also metrics.csv's."""
    answer = on_eval(dict(row), agent)
    if answer is None:
        return False
    if isinstance(answer, (bool, np.bool_)):  # a comparison's result, numpy's included
        return not answer
    # A stop is asked for with False only: 0, "" or "stop" would each be a guess.
    raise InputError(
        f"on_eval returned {answer!r}: it returns False to stop {what}, None or True to go on"
    )


def train(
    config: DQNConfig,
    *,
    network_fn: NetworkFn | None = None,
    run_dir: str | Path | None = None,
    progress: bool | Progress = True,
    log_tensorboard: bool = True,
    on_eval: OnEval | None = None,
    init_from: str | Path | DQNAgent | None = None,
) -> TrainResult:
    """Train a DQN agent as configured; write the run folder; return what it produced.

    ``network_fn(obs_dim, n_actions) -> keras.Model``: a Q-network of your own in place of the
    config's MLP (its ``hidden_sizes`` and ``activation`` then go unused); seed its initializers
    from ``config.seed`` for a seed to reproduce. ``run_dir``: the run folder, which must not
    exist or be empty, nor lie inside a run's, a population's, a saved agent's or a study's
    runs/ folder, whose files it would mix with (ConfigError otherwise); by default a new
    ``<output_dir>/<env>-<loss>-seed<seed>-<time>``. ``progress``: a tqdm bar on stderr, or a
    callable called with the env steps just taken (as ``train_population``'s).
    ``log_tensorboard``: also write TensorBoard events in ``run_dir/tb``.

    ``init_from`` (a run folder, a checkpoint, a saved agent, or a DQNAgent) starts the run's
    online and target networks from that agent's, to train a finished run on: a new run, with
    its own config's schedules from their start (set epsilon_start low to exploit at once),
    fresh Adam moments and an empty replay buffer. The networks must be alike (ConfigError
    otherwise); ``init_from.json`` in the run folder names the agent it started from.

    ``on_eval(row, agent)`` is called after each evaluation, the final one included, with that
    evaluation's metrics.csv row (a dict) and the agent. It may read, save or act greedily with
    the agent (none of which changes the run), and it returns False to stop the run there: a
    resumable checkpoint is saved and the run ends interrupted, as after a signal, with
    ``stopped_by_on_eval`` in its summary. None or True go on; anything else is refused.

    Ctrl-C (SIGINT) or SIGTERM stops the run at a resumable checkpoint and then raises
    ``dqn.errors.TrainingInterrupted`` (a KeyboardInterrupt), whose ``result`` is this
    TrainResult: a script ends there, as on any Ctrl-C, and ``resume(run_dir)`` continues it.

    Raises DivergenceError if the loss, a gradient or |Q| blows up (see ``dqn.divergence``),
    and its subclass NonFiniteEnvError if the env returns a NaN or inf observation or reward.
    """
    check_is_config(config)
    check_on_eval(on_eval)
    check_reporting(progress, log_tensorboard)
    if run_dir is not None:
        check_path_arg(run_dir, "run_dir is a folder's path")
    if init_from is not None and not isinstance(init_from, DQNAgent):
        check_path_arg(
            init_from, "init_from is a DQNAgent or the path of a run, checkpoint or agent"
        )
    run_dir, init_from = user_path(run_dir, "run_dir"), user_path(init_from, "init_from")
    return _train(config, network_fn, run_dir, progress, log_tensorboard, on_eval, init_from)


def train_study_run(
    config: DQNConfig, run_dir: Path, progress: bool | Progress = False
) -> TrainResult:
    """``train`` for one run of a study, whose folder lies inside the study's runs/ folder by
    design (``train`` refuses a run inside another of the package's folders)."""
    return _train(config, None, run_dir, progress, True, None, None, in_study=True)


def _train(
    config, network_fn, run_dir, progress, log_tensorboard, on_eval, init_from, in_study=False
):
    if run_dir is not None:
        resume = "dqn.loop.resume(run_dir)"
        checkpoint.check_new_folder(run_dir, resume=resume, nested_ok=in_study)
    configure_runtime(config)
    envs = make_stepper(config.env_id, config.num_envs, config.env_kwargs)
    try:  # the envs are closed by whoever made them, whatever refuses or stops the run
        obs_dim, n_actions = check_spaces(*envs.spaces)
        check_n_step(config)
        # Checked before the agent is built, which is where an MLP too large for memory would fail;
        # a network_fn's size is unknown until it is built, so only its replay is counted.
        network = member_bytes(config, obs_dim, n_actions) if network_fn is None else 0
        check_replay_fits(replay_capacity(config), obs_dim, available_memory_bytes(), network)
        agent = DQNAgent(*envs.spaces, config, network_fn)
        agent.check_network_saves()  # before the run folder: its checkpoints save the model
        source = None
        if init_from is not None:
            source = init_from if isinstance(init_from, DQNAgent) else DQNAgent.load(init_from)
            agent.start_from(source)
        replay = ReplayBuffer(
            replay_capacity(config), agent.obs_dim, np.random.default_rng([config.seed, 2])
        )
        # Before the run folder: an env whose reset is refused (one of gym < 0.26) leaves none.
        envs.reset(config.seed)
        loop = LoopState(
            columns=[*METRICS_COLUMNS, *agent.diagnostic_names()],
            obs=envs.obs,
            open_returns=np.zeros(envs.n),
            pending_reset=np.zeros(envs.n, bool),
        )
        # In one line, as the CLI says it.
        with writing("the run folder in", run_dir or output_folder(config)):
            parents = missing_parents(Path(run_dir or output_folder(config) / "run"))
            new = run_dir is None or not Path(run_dir).exists()
            run_dir = Path(run_dir) if run_dir is not None else checkpoint.make_run_dir(config)
            run_dir.mkdir(parents=True, exist_ok=True)
        # A resume of this run from another process is refused while it is held.
        with _discarded_if_refused(run_dir, new, parents, loop, in_study), hold_folders([run_dir]):
            config.to_yaml(run_dir / "config.yaml", agent.network_note())
            if source is not None:
                agent_dir = None if source.loaded_from is None else str(source.loaded_from)
                started = {"agent": agent_dir, "grad_steps": source.grad_steps}
                atomic_write_text(run_dir / INIT_FROM_FILE, json.dumps(started, indent=1))
            result = _run(
                config, run_dir, envs, agent, replay, loop, progress, log_tensorboard, on_eval
            )
    finally:
        envs.close()
    return _signalled(result)


@contextlib.contextmanager
def _discarded_if_refused(run_dir: Path, new: bool, parents: list[Path], loop, in_study: bool):
    """Take a new run's folder back if the run is refused (the CLI's exit 2) before it kept
    anything: no metrics row, no checkpoint.

    A run's env can be refused only once it steps, after the folder is made (an env of
    gym < 0.26, an observation of another shape; and a config whose n_step no episode reaches,
    at the first update): a refusal writes nothing (README, Errors), so the config.yaml and the
    empty metrics.csv it had left go, with the folders made for them (``parents``, innermost
    first; a user's empty folder stays, empty). A run that kept a row stays whatever stops it;
    a study's run is left to the study, which records its failure there. Entered outside the
    run's hold, so the hold's lock file is gone when the folder is removed.

    So too a signal in the few milliseconds between config.yaml and the loop (one in the loop
    carries ``run_dir`` and keeps the run's files): its folder, neither new nor resumable, was
    refused by the same --run-dir and by --resume alike. And a disk that cannot take the run (a
    full one) before its first row: the folder had config.yaml and an empty metrics.csv, and
    the CLI said "the checkpoints written before are intact" of none. An OSError that leaves
    the folder carries it as ``run_dir``, for the CLI to say what it holds.
    """
    try:
        yield
    except (UnsupportedSpaceError, ConfigError, KeyboardInterrupt, OSError) as exc:
        in_loop = isinstance(exc, KeyboardInterrupt) and getattr(exc, "run_dir", None) is not None
        kept = in_loop or loop.history or checkpoint.list_checkpoints(run_dir)
        if not (in_study or kept):
            if new:
                remove_unfinished(run_dir, parents)
            else:
                for entry in run_dir.iterdir():
                    remove_entry(entry, ignore_errors=True)
        elif isinstance(exc, OSError):
            exc.run_dir = run_dir
        raise


def resume(
    run_dir: str | Path,
    *,
    progress: bool | Progress = True,
    log_tensorboard: bool = True,
    on_eval: OnEval | None = None,
) -> TrainResult:
    """Continue a run from its newest good checkpoint, exactly as if it had never stopped.

    A corrupt or incomplete newer checkpoint is skipped with a CheckpointWarning and renamed
    ``corrupt-step-...``. The run's metrics.csv is cut back to the checkpoint's rows. A run
    that another process is training (or resuming) is refused with FolderBusyError.
    ``on_eval`` is ``train``'s: a run it stopped resumes from the checkpoint of that stop, and
    a signal raises TrainingInterrupted as in ``train``.
    """
    check_on_eval(on_eval)
    check_reporting(progress, log_tensorboard)
    check_path_arg(run_dir, "resume takes a run folder's path")
    run_dir = Path(user_path(run_dir, "run_dir"))
    if not run_dir.is_dir():  # said by prepare_resume, without making the folder to hold it
        return _signalled(_resume(run_dir, progress, log_tensorboard, on_eval))
    with hold_folders([run_dir]):
        result = _resume(run_dir, progress, log_tensorboard, on_eval)
    return _signalled(result)


def _signalled(result: TrainResult) -> TrainResult:
    """The result, or TrainingInterrupted carrying it when a signal stopped the run."""
    step = result.summary.get("env_steps", 0)
    return raise_if_signalled(
        result, result.stop_signal, step, f"dqn.loop.resume({str(result.run_dir)!r})"
    )


def _resume(
    run_dir: Path, progress: bool | Progress, log_tensorboard: bool, on_eval
) -> TrainResult:
    ready = prepare_resume(run_dir, available_memory_bytes())
    for line in ready.skipped:
        warnings.warn(
            f"skipping checkpoint {line}; resuming from {ready.checkpoint.name}",
            CheckpointWarning,
            stacklevel=3,
        )
    config = ready.config
    envs = make_stepper(config.env_id, config.num_envs, config.env_kwargs)
    try:  # closed here, whatever refuses or stops the run
        try:
            unrestored = restore_env_state(envs.state_holder, ready.env_snapshot)
        except ValueError as exc:
            raise CheckpointError(
                f"checkpoint {ready.checkpoint.name} does not fit {config.env_id}: {exc}"
            ) from None
        if unrestored:
            warnings.warn(
                unrestored_warning(config.env_id, unrestored, "the resumed run"),
                CheckpointWarning,
                stacklevel=3,
            )
        envs.obs, envs.pending_reset = ready.loop.obs, ready.loop.pending_reset.copy()
        configure_runtime(config)
        agent = DQNAgent.load(ready.checkpoint / "agent")
        columns = [*METRICS_COLUMNS, *agent.diagnostic_names()]
        if ready.loop.columns != columns:
            # A custom network_fn whose layers an earlier dqn named otherwise than a loaded model
            # has them ("grad_norm/sequential" for a fresh Sequential's, "grad_norm/dense" loaded).
            unknown = [c for c in columns if c not in ready.loop.columns]
            raise CheckpointError(
                f"checkpoint {ready.checkpoint.name}: its metrics.csv has no column "
                f"{', '.join(unknown) or 'in the order'} that the loaded network writes (a run "
                "of a custom network_fn that an earlier dqn wrote): it cannot continue; train it "
                "afresh"
            )
        _restore_run_files(run_dir, ready)
        checkpoint.set_aside(run_dir, ready.loop.env_step)
        # A run killed while pruning (its final prune too, after which a resume only writes the
        # summary) keeps more checkpoints than keep_checkpoints, or half of one, and a killed write
        # leaves a hidden temporary folder: the resume tidies both, keeping the one it resumes from.
        checkpoint.prune_checkpoints(run_dir, config.keep_checkpoints)
        return _run(
            config,
            run_dir,
            envs,
            agent,
            ready.replay,
            ready.loop,
            progress,
            log_tensorboard,
            on_eval,
        )
    finally:
        envs.close()


def _restore_run_files(run_dir: Path, ready) -> None:
    """Say what a resume puts back: a config.yaml that is gone (the checkpoint's config is the
    run's), and the summary of a run whose summary.json cannot be read (the final checkpoint
    writes it again). Each is a warning: the run is intact, one of its files was not."""
    step = ready.checkpoint.name
    if not (run_dir / "config.yaml").is_file():
        warnings.warn(
            f"{run_dir} has no config.yaml: written again from checkpoint {step}",
            CheckpointWarning,
            stacklevel=4,
        )
        # The checkpoint's copy: the run's config, with its network_note if it has one.
        saved = (ready.checkpoint / "agent" / "config.yaml").read_text()
        atomic_write_text(run_dir / "config.yaml", saved)
    summary = run_dir / "summary.json"
    if ready.loop.env_step >= ready.config.total_env_steps and summary.is_file():
        if what := summary_problem(run_dir):  # [] or {} was rewritten in silence
            warnings.warn(
                f"{summary} {what}: the run is finished again from checkpoint {step}",
                CheckpointWarning,
                stacklevel=4,
            )


def _run(
    config: DQNConfig,
    run_dir: Path,
    envs,
    agent: DQNAgent,
    replay: ReplayBuffer,
    loop: LoopState,
    progress: bool | Progress,
    log_tensorboard: bool,
    on_eval: OnEval | None = None,
) -> TrainResult:
    """The loop, from ``loop.env_step`` to the end (or a signal, or divergence)."""
    with contextlib.ExitStack() as cleanup:
        # Stateless between evaluations: reset with fixed seeds.
        eval_env = cleanup.enter_context(contextlib.closing(config_env(config)))
        threshold = solve_return(config, eval_env)
        bound = q_bound(config, eval_env)
        copies: list = []  # more evaluation envs, for episodes played side by side

        def eval_envs_of(episodes: int) -> list:
            def make():  # closed with the run, as eval_env is
                return cleanup.enter_context(contextlib.closing(config_env(config)))

            return side_by_side_envs(eval_env, copies, episodes, make)

        log = cleanup.enter_context(
            contextlib.closing(
                RunLog(run_dir, loop, config.total_env_steps, progress, log_tensorboard)
            )
        )
        return _loop(
            config, run_dir, envs, agent, replay, loop, eval_envs_of, threshold, bound, log, on_eval
        )


def _loop(
    config: DQNConfig,
    run_dir: Path,
    envs,
    agent: DQNAgent,
    replay: ReplayBuffer,
    loop: LoopState,
    eval_envs_of: Callable[[int], list],
    threshold: float,
    bound: float | None,
    log: RunLog,
    on_eval: OnEval | None,
) -> TrainResult:
    """``_run``'s loop, given the evaluation envs and the run log that ``_run`` closes."""
    metrics = MetricWindow(loop.window)
    windows = [NStepWindow(config.n_step, config.gamma) for _ in range(envs.n)]
    for window, arrays in zip(windows, loop.pending):
        window.load(**arrays)
    returns = np.array(loop.open_returns, np.float64)
    seconds_before = loop.train_seconds + loop.eval_seconds
    if loop.env_step < config.total_env_steps:  # a run resumed at its end only writes its summary
        agent.learner.start()  # before the clock, as a command-line run imports TF before it
    start = time.perf_counter()

    def save_checkpoint(step: int) -> None:
        loop.env_step, loop.obs, loop.open_returns = step, envs.obs, returns.copy()
        loop.pending_reset = envs.pending_reset.copy()
        loop.window = metrics.rows
        loop.pending = [w.arrays(agent.obs_dim) for w in windows]
        loop.train_seconds = seconds_before + time.perf_counter() - start - loop.eval_seconds
        checkpoint.write_checkpoint(
            run_dir,
            step,
            lambda folder: save_run_state(
                folder, agent, replay, loop, capture_env_state(envs.state_holder)
            ),
            config.keep_checkpoints,
        )

    step, saved_step, stop_signal, stopped_by_on_eval = loop.env_step, None, None, False
    resumed = step > 0  # from a checkpoint; a new run has none until its first is saved
    try:
        check_env_values(step, envs.obs, None, resumed)  # a reset's or a checkpoint's
        with Interrupt() as stop:
            while step < config.total_env_steps:
                epsilon = linear_epsilon(step + 1, config)
                obs = envs.obs
                actions = agent.act_batch(obs, epsilon)
                out = envs.step(actions)
                kept = resumed or saved_step is not None  # a checkpoint to resume from
                check_env_values(step, out.next_obs, out.rewards, kept)  # before replay has them
                if out.terminated.any() or out.truncated.any():
                    check_env_values(step, envs.obs, None, kept)  # new episodes' first
                for i in np.flatnonzero(out.real):
                    # terminated, not done: a time-limit cut is not terminal and bootstraps.
                    for t in windows[i].push(
                        obs[i],
                        actions[i],
                        out.rewards[i],
                        out.next_obs[i],
                        out.terminated[i],
                        out.truncated[i],
                    ):
                        replay.add(*t)
                returns += np.where(out.real, out.rewards, 0.0)
                for i in np.flatnonzero(out.real & (out.terminated | out.truncated)):
                    loop.episode_returns.append(float(returns[i]))
                    returns[i] = 0.0
                before, step = step, step + int(out.real.sum())

                # Up to total_env_steps only: a vector env's last loop step may pass it, and the
                # bursts those extra transitions would owe are past the schedules' end (the
                # run takes config.total_grad_steps gradient steps, as a one-env run does).
                bursts = multiples_between(
                    before,
                    min(step, config.total_env_steps),
                    config.train_every_env_steps,
                    config.learning_starts_env_steps,
                )
                if bursts:
                    if not len(replay):
                        raise empty_replay_error(step, config.n_step)
                    rows = replay.sample_rows(
                        config.batch_size, bursts * config.gradient_steps_per_train
                    )
                    values = agent.update_rows(rows)
                    # Before it is saved.
                    check_update(values, METRIC_NAMES, bound, step, kept, replay.largest_abs_obs)
                    metrics.add(values, bursts)

                done = step >= config.total_env_steps
                if multiples_between(before, step, config.eval_every_env_steps) or done:
                    row = _evaluate_and_log(
                        config,
                        agent,
                        eval_envs_of,
                        replay,
                        loop,
                        step,
                        epsilon,
                        metrics.pop(),
                        threshold,
                    )
                    log.write(row)  # and into loop.history, once metrics.csv took it
                    if on_eval is not None:
                        try:
                            stopped_by_on_eval = ask_on_eval(on_eval, row, agent) and not done
                        except Exception as exc:
                            # The run is whole here, as at a stop: keep it before the caller's
                            # error goes up, rather than lose the steps since the last checkpoint.
                            if saved_step != step:
                                save_checkpoint(step)
                            add_note(
                                exc,
                                f"the run was checkpointed at env step {step} before this error: "
                                f"dqn.loop.resume({str(run_dir)!r}) continues it",
                            )
                            raise
                if multiples_between(before, step, config.checkpoint_every_env_steps) or done:
                    save_checkpoint(step)
                    saved_step = step
                log.advance_to(step, every=250)
                # A signal during the last step (its final evaluation and checkpoint) finds the
                # run complete: it ends as a finished run, not as an interrupted one.
                if stop.signum is not None and not done:
                    stop_signal = stop.signum
                    break
                if stopped_by_on_eval:
                    break
            if (stop_signal is not None or stopped_by_on_eval) and saved_step != step:
                save_checkpoint(step)  # a full, resumable checkpoint of where the signal found us
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):  # a second signal, which stops at once: say where
            exc.run_dir = run_dir
        elif isinstance(exc, DivergenceError):
            loop.train_seconds = seconds_before + time.perf_counter() - start - loop.eval_seconds
            write_summary(run_dir, config, loop, step, threshold, stop_signal, str(exc))
        # The traceback keeps the agent alive (an interactive session holds on to it), and
        # with it a learner process: take the state back and end it here. The error to tell is
        # this one, not one the stop may raise.
        with contextlib.suppress(Exception):
            agent.learner.stop()
        raise
    finally:
        log.advance_to(step)

    # train_seconds stays what the last checkpoint holds (every way out of the loop above saves
    # one): that write not counted, a run finished from its final checkpoint (killed before its
    # summary) says the same as one never stopped, and as a population's member does.
    agent.learner.stop()  # the returned agent holds its state; no process left behind
    summary = write_summary(
        run_dir,
        config,
        loop,
        step,
        threshold,
        stop_signal,
        None,
        stopped_by_on_eval=stopped_by_on_eval,
    )
    return TrainResult(
        agent=agent,
        run_dir=run_dir,
        history=loop.history,
        episode_returns=loop.episode_returns,
        first_solve_env_step=loop.first_solve,
        final_eval_mean=loop.eval_mean,
        final_eval_std=loop.eval_std,
        train_seconds=loop.train_seconds,
        eval_seconds=loop.eval_seconds,
        interrupted=stop_signal is not None or stopped_by_on_eval,
        solve_return=threshold,
        summary=summary,
        stop_signal=stop_signal,
    )


def _evaluate_and_log(config, agent, eval_envs_of, replay, loop, step, epsilon, window, threshold):
    """Evaluate greedily, update ``loop`` (first solve, probe) and return the row.

    The episodes ``evaluate`` would play one after another (episode i reset with eval_seed +
    i), played side by side as a population member plays them (``evaluate_side_by_side``)."""
    t0 = time.perf_counter()
    final = step >= config.total_env_steps
    episodes = config.final_eval_episodes if final else config.eval_episodes
    envs = eval_envs_of(episodes)
    loop.eval_mean, loop.eval_std, _ = evaluate_side_by_side(
        agent, envs, episodes, config.eval_seed
    )
    loop.eval_seconds += time.perf_counter() - t0
    if loop.first_solve is None and threshold is not None and loop.eval_mean >= threshold:
        loop.first_solve = step
    row = metrics_row(
        step, agent.grad_steps, loop.episode_returns, epsilon, loop.eval_mean, loop.eval_std, window
    )
    if config.diagnostics and loop.probe is None and step > config.learning_starts_env_steps:
        loop.probe = replay.sample(PROBE_SIZE, rng=np.random.default_rng([config.seed, 3]))
    diagnostics = agent.diagnose(loop.probe) if loop.probe is not None else {}
    for name in agent.diagnostic_names():
        row[name] = diagnostics.get(name, float("nan"))
    return row


__all__ = ["TrainResult", "linear_epsilon", "multiples_between", "resume", "train"]
