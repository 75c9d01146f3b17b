"""The population's loop (``dqn.population``): ``dqn.loop``'s steps for M members in lockstep.

Per loop step: one batched forward pass gives every member's Q-values; each member draws its
own epsilon-greedy action from its own RNG, steps its own env (reset as soon as an episode
ends, as a one-env run does), and pushes the step through its own n-step window into its own
replay ring. When a burst is owed (the same env steps for all: the schedule is shared), each
member samples its rows from its own ring and ONE call of the population learner runs the
burst for all. Evaluations run all members' greedy episodes in lockstep; checkpoints write
each member's checkpoint exactly as a single run does, then the population's step marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from dqn import checkpoint
from dqn.config import DQNConfig
from dqn.diagnostics import PROBE_SIZE, hidden_unit_stats, layer_grad_norms
from dqn.divergence import check_update, updates_pass
from dqn.envs import config_env, empty_replay_error, non_finite_rows, training_stop
from dqn.envstate import capture_env_state
from dqn.errors import DivergenceError, NonFiniteEnvError, add_note
from dqn.evaluation import evaluate_members, side_by_side_envs
from dqn.finite import as_float32
from dqn.lockstep import lockstep
from dqn.loop import ask_on_eval, linear_epsilon, multiples_between
from dqn.member_agent import MemberAgent
from dqn.nstep import NStepWindow
from dqn.numpy_population import NumpyPopulationLearner
from dqn.population_files import (
    STEP_FILE,
    MemberResult,
    Network,
    write_step_marker,
    write_timing,
)
from dqn.replay import Batch, ReplayBuffer, pack_batch, row_layout
from dqn.run_log import Interrupt, MetricWindow, RunLog, metrics_row, write_summary
from dqn.run_state import LoopState, save_run_state
from dqn.step_metrics import METRIC_NAMES


@dataclass
class Slot:
    """One member's own pieces: nothing here is shared with another member."""

    config: DQNConfig
    run_dir: Path
    env: gym.Env
    eval_env: gym.Env
    replay: ReplayBuffer
    rng: np.random.Generator  # exploration, as DQNAgent.rng
    window: NStepWindow
    loop: LoopState
    metrics: MetricWindow
    threshold: float | None
    bound: float
    log: RunLog | None = None
    stopped: str | None = None  # why the guard, a NaN from its env or on_eval stopped it
    eval_envs: list[gym.Env] = field(default_factory=list)  # more copies of eval_env


class PopulationLoop:
    def __init__(self, slots: list[Slot], net: Network, learner, out: Path, step: int) -> None:
        self.slots, self.net, self.learner, self.out, self.step = slots, net, learner, out, step
        # The acting and diagnostics path is numpy on stacked views, whichever the learner.
        self.lens = (
            learner
            if isinstance(learner, NumpyPopulationLearner)
            else NumpyPopulationLearner(
                net.flat.shapes, net.activations, [s.config for s in slots], learner.online
            )
        )
        self.obs = as_float32(self._first_obs())
        self.bounds = np.array([s.bound for s in slots])  # each member's divergence guard
        # Members with n_step = 1 store each step as it comes, without their n-step window.
        self.direct = [s.window.n == 1 for s in slots]
        self.any_direct = any(self.direct)
        self.returns = np.array([float(s.loop.open_returns[0]) for s in slots])
        self.eval_elapsed = 0.0  # evaluation wall time since this loop started
        # The diagnostics probe's, apart: a single run counts it as training time, not
        # evaluation (``dqn.loop``), and so does this loop's members' train_seconds.
        self.diagnostics_elapsed = 0.0
        # Wall time of the learner's calls since this loop started: all of them, and the first
        # alone (with the TF learner it traces and compiles the burst).
        self.learner_elapsed, self.learner_calls, self.first_learner_call = 0.0, 0, 0.0
        # Views of the online parameters for acting, made again only when a burst replaces
        # the array (the TF learner returns a new one; the numpy learner updates in place).
        self.acting = self.lens.layers(learner.online)
        # All members' envs step together (one numpy pass for CartPoles, bit-identical to
        # each env's own step); the envs' attributes are synced back before a checkpoint.
        self.envs = lockstep([s.env for s in slots])
        # The newest step marker's env step (None before the first), and what on_eval asks.
        self.marker = step if (out / STEP_FILE).is_file() else None
        self.on_eval, self.asked = None, []
        self.on_eval_error: Exception | None = None  # the first error on_eval raised
        self.stop_signal: int | None = None  # the signal that stopped the loop, if one did

    # ------------------------------------------------------------------ building
    def open_logs(self, log_tensorboard: bool) -> None:
        total = self.slots[0].config.total_env_steps
        for slot in self.running():
            slot.log = RunLog(slot.run_dir, slot.loop, total, False, log_tensorboard)

    def running(self) -> list[Slot]:
        return [s for s in self.slots if s.stopped is None]

    # ------------------------------------------------------------------ the loop
    def run(self, progress, on_eval=None) -> list[MemberResult]:
        from dqn.population_progress import progress_reporter

        self.on_eval, self.on_eval_error = on_eval, None
        shared = self.slots[0].config
        active = np.array([s.stopped is None for s in self.slots])
        report = progress_reporter(progress, self)
        start, seconds_before = time.perf_counter(), [s.loop.train_seconds for s in self.slots]
        eps = EpsilonSchedule([s.config for s in self.slots])
        step, saved = self.step, None
        first = step
        self.checkpointed = step > 0  # resumed from a checkpoint; set by the first one saved
        stop_signal = None
        try:
            with Interrupt() as stop:
                # The first observations (a reset's or a checkpoint's); later ones are checked
                # as the step or reset that returns them.
                self._stop_non_finite(active, step, range(len(self.slots)), self._first_obs())
                while step < shared.total_env_steps and active.any():
                    epsilon = eps.at(step + 1)
                    self._act_and_store(epsilon, active, step)
                    before, step = step, step + 1
                    bursts = multiples_between(
                        before, step, shared.train_every_env_steps, shared.learning_starts_env_steps
                    )
                    if bursts:
                        self._burst(bursts, active, step)
                    done = step >= shared.total_env_steps
                    evaluate = multiples_between(before, step, shared.eval_every_env_steps) or done
                    if evaluate and active.any():  # this step's stops may have left none
                        self._evaluate(step, epsilon, active, done)
                    self.step = step
                    self._set_seconds(start, seconds_before)
                    if multiples_between(before, step, shared.checkpoint_every_env_steps) or done:
                        self._checkpoint(step)
                        saved = step
                    if self.on_eval_error is not None:
                        self._raise_on_eval_error(active, step, checkpointed=saved == step)
                    if self.asked:
                        self._stop_asked(active, step, checkpointed=saved == step)
                    report(step, int(active.sum()))
                    if stop.signum is not None and not done:  # after the last step: finished
                        stop_signal = stop.signum
                        break
                if stop_signal is not None and saved != step:
                    self._checkpoint(step)
            if step > first:  # a population finished from its final checkpoint ran no step
                self._write_timing(first, step, time.perf_counter() - start)
        finally:
            report.close()
            for slot in self.slots:
                if slot.stopped is None:
                    slot.log.close()
                # One stopped in this loop closed its env then; one stopped before it (a
                # resume's) never opened a log, and its env is closed here.
                if slot.stopped is None or slot.log is None:
                    slot.env.close()
            for slot in self.slots:
                for env in (slot.eval_env, *slot.eval_envs):
                    env.close()
        self.stop_signal = stop_signal
        return [self._finish(slot, step, stop_signal) for slot in self.slots]

    def _act_and_store(self, epsilon: np.ndarray, active: np.ndarray, step: int) -> None:
        q = self.lens.forward(self.acting, self.obs[:, None, :])[:, 0]
        # Plain Python numbers from here on: this runs once per env step, and a numpy
        # scalar costs several times a float or an int in each comparison and index.
        greedy, eps = q.argmax(axis=1).tolist(), epsilon.tolist()
        idx = np.flatnonzero(active)
        actions = []
        for i in idx.tolist():
            rng, e = self.slots[i].rng, eps[i]
            # DQNAgent.act's draws, in its order, from the member's own generator.
            if e > 0.0 and rng.random() < e:
                actions.append(int(rng.integers(self.net.n_actions)))
            else:
                actions.append(greedy[i])
        actions = np.array(actions, np.int64)
        next_obs, rewards, terminated, truncated = self.envs.step(actions, idx)
        self._stop_non_finite(active, step, idx, next_obs, rewards)  # before replay stores them
        next_obs = as_float32(next_obs)
        live = active[idx]  # a member stopped just now stores nothing more
        # With n_step = 1 a step's packed row is exactly what the member's window would hand
        # its ring, so it goes straight in; packed for all members at once, and only if some
        # member stores that way (the default config's windows do not).
        rows = None
        if self.any_direct:
            rows = pack_batch(Batch(self.obs[idx], actions, rewards, next_obs, terminated))
        for j, i in enumerate(idx.tolist()):
            if not live[j]:
                continue
            slot = self.slots[i]
            if self.direct[i]:
                slot.replay.add_row(rows[j])
                continue
            action, reward = int(actions[j]), float(rewards[j])
            term, trunc = bool(terminated[j]), bool(truncated[j])
            for t in slot.window.push(self.obs[i], action, reward, next_obs[j], term, trunc):
                slot.replay.add(*t)
        members, rewards = idx[live], rewards[live]
        self.returns[members] += rewards
        self.obs[members] = next_obs[live]
        reset, first = [], []
        for i in members[(terminated | truncated)[live]].tolist():
            self.slots[i].loop.episode_returns.append(float(self.returns[i]))
            self.returns[i] = 0.0
            first.append(self.envs.reset(i))
            self.obs[i] = as_float32(first[-1])
            reset.append(i)
        if reset:
            self._stop_non_finite(active, step, reset, np.stack(first))  # new episodes' first

    def _burst(self, bursts: int, active: np.ndarray, step: int) -> None:
        shared = self.slots[0].config
        k = bursts * shared.gradient_steps_per_train
        width = row_layout(self.net.obs_dim).width
        rows = np.zeros((len(self.slots), k, shared.batch_size, width), np.float32)
        for i in np.flatnonzero(active):
            slot = self.slots[i]
            if not len(slot.replay):
                raise empty_replay_error(step, slot.config.n_step)
            rows[i] = slot.replay.sample_rows(shared.batch_size, k)
        t0 = time.perf_counter()
        values = self.learner.burst(rows, active)
        seconds = time.perf_counter() - t0
        self.learner_elapsed += seconds
        self.learner_calls += 1
        if self.learner_calls == 1:
            self.first_learner_call = seconds
        if self.learner is not self.lens:
            self.acting = self.lens.layers(self.learner.online)
        passed = updates_pass(values, METRIC_NAMES, self.bounds)
        for i in np.flatnonzero(active).tolist():
            if not passed[i]:  # check_update raises, with the message a single run gives
                try:
                    slot = self.slots[i]
                    check_update(
                        values[i],
                        METRIC_NAMES,
                        slot.bound,
                        step,
                        self.checkpointed,
                        slot.replay.largest_abs_obs,
                    )
                except DivergenceError as exc:
                    self._stop(i, active, step, exc)
                    continue
            self.slots[i].metrics.add(values[i], bursts)

    def _first_obs(self) -> np.ndarray:
        """The members' first observations (a reset's or a checkpoint's) as their envs gave
        them: checked so, then cast to float32 (1e39 is named as 1e39, not as inf)."""
        return np.stack([s.loop.obs[0] for s in self.slots])

    def _stop_non_finite(self, active, step, members, obs, rewards=None) -> None:
        """Stop each active member whose env returned a NaN or inf: member ``members[j]``'s
        observation is ``obs[j]`` and its reward ``rewards[j]``. The others go on."""
        for j, what in non_finite_rows(obs, rewards).items():
            if active[members[j]]:
                stop = training_stop(step, what, self.checkpointed)
                self._stop(members[j], active, step, stop)

    def _stop(self, i: int, active: np.ndarray, step: int, exc: DivergenceError | None) -> None:
        """Member i stops as a single run would, by the guard (``exc``) or by on_eval (None):
        its summary says so; the others go on."""
        slot = self.slots[i]
        reason = None if exc is None else str(exc)  # the summary's "diverged"
        slot.stopped = reason or f"stopped by on_eval at env step {step}"
        active[i] = False
        self.obs[i] = 0.0  # its row still goes through the acting pass: zeros, as on a resume
        write_summary(
            slot.run_dir,
            slot.config,
            slot.loop,
            step,
            slot.threshold,
            None,
            reason,
            self._summary_extra(),
            stopped_by_on_eval=exc is None,
        )
        slot.log.close()
        slot.env.close()

    def _evaluate(self, step: int, epsilon: np.ndarray, active: np.ndarray, final: bool) -> None:
        shared = self.slots[0].config
        t0 = time.perf_counter()
        idx = np.flatnonzero(active)
        layers = self.acting
        episodes = shared.final_eval_episodes if final else shared.eval_episodes
        envs = [
            side_by_side_envs(s.eval_env, s.eval_envs, episodes, partial(config_env, s.config))
            for s in (self.slots[i] for i in idx)
        ]
        full = np.zeros((len(self.slots), len(envs[0]), self.net.obs_dim), np.float32)

        def q_values(obs: np.ndarray) -> np.ndarray:
            full[idx] = obs
            return self.lens.forward(layers, full)[idx]

        results = evaluate_members(q_values, envs, episodes, shared.eval_seed)
        share = (time.perf_counter() - t0) / len(idx)
        self.eval_elapsed += time.perf_counter() - t0
        if shared.diagnostics and step > shared.learning_starts_env_steps:
            for i in idx:
                slot = self.slots[i]
                if slot.loop.probe is None:
                    rng = np.random.default_rng([slot.config.seed, 3])
                    slot.loop.probe = slot.replay.sample(PROBE_SIZE, rng=rng)
        t0 = time.perf_counter()
        diagnostics = self._diagnose(idx)
        self.diagnostics_elapsed += time.perf_counter() - t0
        for j, i in enumerate(idx):
            if isinstance(results[j], NonFiniteEnvError):  # its eval env returned a NaN or inf
                self._stop(i, active, step, results[j])  # as a single run's evaluation stops it
                continue
            slot, (mean, std) = self.slots[i], results[j]
            loop = slot.loop
            loop.eval_mean, loop.eval_std = mean, std
            loop.eval_seconds += share
            if loop.first_solve is None and slot.threshold is not None and mean >= slot.threshold:
                loop.first_solve = step
            row = metrics_row(
                step,
                int(self.learner.grad_steps[i]),
                loop.episode_returns,
                float(epsilon[i]),
                mean,
                std,
                slot.metrics.pop(),
            )
            for name in self.net.diagnostic_names():
                row[name] = diagnostics.get(i, {}).get(name, float("nan"))
            slot.log.write(row)  # and into loop.history, once metrics.csv took it
            if self.on_eval is not None:
                try:
                    stop = ask_on_eval(self.on_eval, row, self.member(i), "the member")
                except Exception as exc:
                    # The other members' rows of this step are still logged and asked about (a
                    # member asked to stop here stops), and the population is checkpointed at
                    # it before the first error goes up (``run``).
                    if self.on_eval_error is None:
                        self.on_eval_error = exc
                    continue
                if stop and not final:  # at the final evaluation there is nothing to stop
                    self.asked.append(i)

    def _raise_on_eval_error(self, active: np.ndarray, step: int, checkpointed: bool) -> None:
        """Keep the population at this step, as a signal would, then let on_eval's error go up:
        ``resume_population`` continues it without losing the steps since the last checkpoint
        (the members on_eval asked to stop at this step stop)."""
        exc = self.on_eval_error
        if not checkpointed:
            self._checkpoint(step)
        if self.asked:
            self._stop_asked(active, step, checkpointed=True)
        add_note(
            exc,
            f"the population was checkpointed at env step {step} before this error: "
            f"dqn.population.resume_population({str(self.out)!r}) continues it",
        )
        raise exc

    def _stop_asked(self, active: np.ndarray, step: int, checkpointed: bool) -> None:
        """End the members on_eval stopped at this step as ``train``'s on_eval ends a run: at a
        resumable checkpoint of their own, interrupted, ``stopped_by_on_eval`` in the summary.
        The others go on; a population resumed later keeps them stopped."""
        asked, self.asked = self.asked, []
        if not checkpointed:
            self.envs.sync()
        for i in asked:
            if not checkpointed:
                self._checkpoint_member(i, step)
            self._stop(i, active, step, None)
        # The marker's step stays; it now names them stopped, so their checkpoints from before
        # this step are no longer needed for a resume.
        if self.marker is not None:
            self._write_marker(self.marker)
        for slot in (self.slots[i] for i in asked):
            checkpoint.prune_checkpoints(slot.run_dir, slot.config.keep_checkpoints)

    def _diagnose(self, idx: np.ndarray) -> dict[int, dict[str, float]]:
        """Per-layer gradient norms and dead/saturated units on each member's probe batch."""
        probed = [i for i in idx if self.slots[i].loop.probe is not None]
        if not probed:
            return {}
        lens = self.lens
        if lens is not self.learner:  # the TF learner's state, seen through numpy views
            lens.online[:] = self.learner.online
            for i in probed:
                lens.target[i] = self.learner.member_state(i).target
        n = PROBE_SIZE
        d = self.net.obs_dim
        obs = np.zeros((len(self.slots), n, d), np.float32)
        next_obs = np.zeros_like(obs)
        actions = np.zeros((len(self.slots), n), np.intp)
        rewards = np.zeros((len(self.slots), n), np.float32)
        terminated = np.zeros_like(rewards)
        for i in probed:
            p = self.slots[i].loop.probe
            obs[i], next_obs[i], actions[i] = p.obs, p.next_obs, p.actions
            rewards[i], terminated[i] = p.rewards, p.terminated
        with np.errstate(all="ignore"):
            grads = lens.loss_and_grad(obs, actions, rewards, next_obs, terminated)[1]
            hidden = lens.hidden(obs)
        out = {}
        for i in probed:
            stats = {
                f"grad_norm/{k}": v for k, v in layer_grad_norms(grads[i], self.net.slices).items()
            }
            stats.update(hidden_unit_stats([h[i] for h in hidden], self.net.activations))
            out[i] = stats
        return out

    def _set_seconds(self, start: float, seconds_before: list[float]) -> None:
        """A member's train_seconds: its share of the population's training wall time."""
        share = (time.perf_counter() - start - self.eval_elapsed) / len(self.slots)
        for i, slot in enumerate(self.slots):
            if slot.stopped is None:
                slot.loop.train_seconds = seconds_before[i] + share

    def _checkpoint(self, step: int) -> None:
        self.checkpointed = True
        self.envs.sync()
        for i, slot in enumerate(self.slots):
            if slot.stopped is None:
                self._checkpoint_member(i, step)
        # Last: the step is resumable only once every running member has its checkpoint.
        self._write_marker(step)
        # Only now may a member's older checkpoints go: killed before the marker, the population
        # resumes from the marker's step, which every member must still hold (with
        # keep_checkpoints: 1, one that pruned at once would hold only the new step).
        for slot in self.slots:
            if slot.stopped is None:
                checkpoint.prune_checkpoints(slot.run_dir, slot.config.keep_checkpoints)

    def _checkpoint_member(self, i: int, step: int) -> None:
        """Member i's checkpoint at ``step``, as a single run writes it (the envs synced)."""
        slot = self.slots[i]
        loop = slot.loop
        loop.env_step, loop.obs = step, self.obs[i][None].copy()
        loop.open_returns = np.array([self.returns[i]])
        loop.pending_reset = np.zeros(1, bool)
        loop.window = slot.metrics.rows
        loop.pending = [slot.window.arrays(self.net.obs_dim)]
        agent = self.member(i)
        checkpoint.write_checkpoint(
            slot.run_dir,
            step,
            lambda folder: save_run_state(
                folder, agent, slot.replay, slot.loop, capture_env_state(slot.env)
            ),
            None,  # pruned by the caller: the marker's step may still be needed until then
        )

    def _write_marker(self, step: int) -> None:
        stopped = [i for i, s in enumerate(self.slots) if s.stopped is not None]
        write_step_marker(self.out, step, stopped)
        self.marker = step

    def member(self, i: int) -> MemberAgent:
        """Member i seen as an agent: its current parameters, read when it is used."""
        slot = self.slots[i]

        def q_values(obs: np.ndarray) -> np.ndarray:
            own = [(w[i : i + 1], b[i : i + 1]) for w, b in self.acting]
            return self.lens.forward(own, obs[None])[0]

        return MemberAgent(
            i,
            slot.config,
            slot.run_dir,
            (self.net.obs_dim, self.net.n_actions),
            q_values,
            lambda: self.learner.member_state(i),
            self.net.save_agent,
            slot.rng,
        )

    def _write_timing(self, first: int, last: int, seconds: float) -> None:
        write_timing(
            self.out,
            {
                "env_steps": [first, last],
                "members": len(self.slots),
                "loop_seconds": seconds,
                "learner_seconds": self.learner_elapsed,
                "learner_calls": self.learner_calls,
                "first_learner_call_seconds": self.first_learner_call,
                "evaluation_seconds": self.eval_elapsed,
                "diagnostics_seconds": self.diagnostics_elapsed,
            },
        )

    def _summary_extra(self) -> dict:
        return {"population_members": len(self.slots)}

    def _finish(self, slot: Slot, step: int, stop_signal: int | None) -> MemberResult:

        from dqn.run_state import parse_metrics_csv, read_summary

        if slot.stopped is None:
            summary = write_summary(
                slot.run_dir,
                slot.config,
                slot.loop,
                step,
                slot.threshold,
                stop_signal,
                None,
                self._summary_extra(),
            )
        else:
            summary = read_summary(slot.run_dir)
        history = slot.loop.history
        if not slot.loop.columns:  # stopped before a resume: its rows are on disk
            history = parse_metrics_csv((slot.run_dir / "metrics.csv").read_text())
        return MemberResult(
            config=slot.config,
            run_dir=slot.run_dir,
            history=history,
            first_solve_env_step=summary["first_solve_env_step"],
            final_eval_mean=summary["final_eval_mean"],
            final_eval_std=summary["final_eval_std"],
            diverged=summary["diverged"],
            train_seconds=summary["train_seconds"],
            summary=summary,
        )


class EpsilonSchedule:
    """Every member's epsilon at an env step (each its own linear schedule)."""

    def __init__(self, configs: list[DQNConfig]) -> None:
        # Computed once per distinct schedule: members of a study mostly share one.
        keys = [
            (c.epsilon_start, c.epsilon_end, c.epsilon_decay_fraction, c.total_env_steps)
            for c in configs
        ]
        distinct = list(dict.fromkeys(keys))
        self.schedules = [configs[keys.index(k)] for k in distinct]  # one config per schedule
        self.member = np.array([distinct.index(k) for k in keys])

    def at(self, env_step: int) -> np.ndarray:
        return np.array([linear_epsilon(env_step, c) for c in self.schedules])[self.member]


__all__ = ["EpsilonSchedule", "PopulationLoop", "Slot"]
