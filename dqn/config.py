"""DQNConfig: every hyperparameter of a run, frozen and validated when built.

No TensorFlow here: a config can be built, checked and written by processes that never train.
Units are in the names (``*_env_steps``, ``*_grad_steps``) because "every 500 steps" is the most
common source of silently different DQN runs: env steps and gradient steps differ by
``train_every_env_steps / gradient_steps_per_train``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from dqn.errors import ConfigError

# The loss names live here (not only in dqn.losses) so that validating a config needs no
# TensorFlow import; tests/test_losses.py checks that both lists agree.
LOSS_NAMES = ("l2", "clipped_delta", "huber", "clipped_grad")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu")
LEARNERS = ("tensorflow", "numpy")


@dataclass(frozen=True)
class DQNConfig:
    """Hyperparameters of one DQN run. Build it with keywords, ``from_yaml`` or ``replace``."""

    env_id: str = "CartPole-v1"
    """Gymnasium id of the environment (1-D Box observations, Discrete actions)."""
    seed: int = 0
    """Seeds the env, the network initialisation, exploration and replay sampling."""
    total_env_steps: int = 50_000
    """Length of training, in environment steps."""

    buffer_size: int = 100_000
    """Replay capacity, in transitions (a ring: the oldest are overwritten)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor, in (0, 1]."""
    n_step: int = 1
    """Steps of reward summed before bootstrapping: the target is r_{t+1} + ... +
    gamma^(n-1) r_{t+n} + gamma^n max_a Q_target(s_{t+n}, a) (``dqn.nstep``). 1: plain DQN."""
    learning_rate: float = 2.3e-3
    """Adam step size."""
    learning_rate_end: float | None = 0.0
    """Decay the learning rate linearly to this value over the run's gradient steps; None: constant."""
    adam_epsilon: float = 1e-7
    """Adam's epsilon (Keras default)."""
    loss: str = "huber"
    """Element-wise loss of the TD error: one of LOSS_NAMES."""
    loss_bound: float = 1.0
    """Clip bound of ``clipped_delta``/``clipped_grad`` and delta of ``huber`` (unused by ``l2``)."""
    max_grad_norm: float | None = None
    """Clip the gradient by global norm to this value (Pascanu et al. 2013); None: no clipping."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Widths of the hidden Dense layers of the Q-network."""
    activation: str = "relu"
    """Hidden activation: one of ACTIVATIONS."""
    double_dqn: bool = False
    """Select the next action with the online net, evaluate it with the target net (van Hasselt 2016)."""

    target_update_every_grad_steps: int = 128
    """Sync the target network every this many gradient steps."""
    target_tau: float = 1.0
    """Sync weight: target <- tau * online + (1 - tau) * target. 1.0 is a hard copy."""

    train_every_env_steps: int = 256
    """Run a burst of gradient steps every this many env steps."""
    gradient_steps_per_train: int = 128
    """Gradient steps in each burst."""
    learning_starts_env_steps: int = 1_000
    """Env steps of pure data collection before the first gradient step."""

    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_end: float = 0.04
    """Exploration rate once the linear decay is over."""
    epsilon_decay_fraction: float = 0.16
    """Fraction of total_env_steps over which epsilon decays linearly."""

    eval_every_env_steps: int = 2_500
    """Greedy evaluation period, in env steps (also the period of metrics.csv rows)."""
    eval_episodes: int = 10
    """Episodes per greedy evaluation; episode i is reset with seed eval_seed + i."""
    final_eval_episodes: int = 100
    """Episodes of the greedy evaluation at the last step (the last metrics.csv row: the run's
    final evaluation). 100 is CartPole-v1's criterion: a mean of 475 over 100 episodes."""
    eval_seed: int = 10_000
    """Seed of the first evaluation episode."""
    solve_return: float | None = None
    """Evaluation mean that counts as solved; None: the env's reward_threshold (475 for CartPole-v1)."""

    checkpoint_every_env_steps: int = 10_000
    """Checkpoint period, in env steps (a checkpoint is also written at the end and on Ctrl-C)."""
    keep_checkpoints: int = 3
    """Checkpoints kept in ``run_dir/checkpoints``: the newest ones; older ones are deleted."""
    max_abs_q: float | None = None
    """Divergence guard: stop when any |Q| in an update exceeds this. None: automatic, 10 x
    r_max / (1 - gamma) where the env's per-step reward bound r_max is known (see
    ``dqn.divergence``), else only NaN/inf stop training."""
    output_dir: str = "runs"
    """Parent folder of run folders."""
    num_threads: int = 1
    """Threads of TensorFlow (intra- and inter-op) and of numpy's BLAS. 1 is fastest for the
    small networks of a DQN on few cores."""
    jit_compile: bool = True
    """Compile the update with XLA."""
    num_envs: int = 1
    """Environments stepped together (a gymnasium vector env; the env's own vectorized
    implementation where it has one, as CartPole does). Above 1, training trades the strict
    one-env order of updates for throughput: every loop step collects num_envs transitions,
    acts on them in one batch, and runs the gradient steps owed for them in one call
    (still one burst per train_every_env_steps transitions). Such runs write agent-only
    checkpoints and cannot be resumed."""
    learner: str = "tensorflow"
    """What runs the gradient steps: "tensorflow" (``dqn.update``, compiled with XLA) or
    "numpy" (``dqn.numpy_update``: the same update written out in numpy for a chain of Dense
    layers, such as the default MLP). On a CPU, numpy is faster when the network is small and
    updates are frequent, because each TensorFlow call costs hundreds of microseconds of
    dispatch. Results agree to float32 rounding, not bit for bit."""
    diagnostics: bool = True
    """Compute the backprop diagnostics: TD-error quantiles and zero-gradient fraction in every
    update, per-layer gradient norms and dead units on a probe batch at every metrics row."""
    deterministic: bool = True
    """Enable ``tf.config.experimental.enable_op_determinism()``, so that a seed gives the same
    metrics.csv on the same machine. Once on, it stays on in the process (TF has no off switch);
    a custom ``network_fn`` should seed its initializers."""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        _check_types(self)
        _check_values(self)

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DQNConfig":
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a config must be a mapping of key: value, got {type(data).__name__}")
        unknown = sorted(set(data) - set(field_names()))
        if unknown:
            raise ConfigError(
                f"unknown config key {unknown[0]!r}; valid keys: {', '.join(field_names())}"
            )
        return cls(**dict(data))

    @classmethod
    def from_yaml(
        cls, path: str | Path | None = None, overrides: Mapping[str, Any] | Sequence[str] = ()
    ) -> "DQNConfig":
        """Load ``configs/*.yaml`` (safe loader), then apply overrides.

        ``overrides`` is a mapping or a list of ``"key=value"`` strings, values parsed as YAML
        (``--set hidden_sizes=[64,64] double_dqn=true``).
        """
        data: dict[str, Any] = {}
        if path is not None:
            data = _read_yaml(Path(path))
        data.update(parse_overrides(overrides))
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "DQNConfig":
        """A validated copy with some fields changed."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def to_yaml(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename)."""
        from dqn.io import atomic_write_text

        atomic_write_text(Path(path), yaml.safe_dump(self.to_dict(), sort_keys=False))


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(DQNConfig)]


def parse_overrides(overrides: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    if isinstance(overrides, Mapping):
        return dict(overrides)
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{line}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value")
    return data


# ---------------------------------------------------------------------- type checks
def _coerce(name: str, value: Any, kind: str) -> Any:
    """Return value converted to kind, or raise ConfigError naming the key and expected type.

    YAML 1.1 reads ``1e-3`` as a string and ``1e5`` too; numbers written that way are accepted.
    Booleans are never accepted as numbers (``True == 1`` in Python).
    """

    def fail() -> ConfigError:
        return ConfigError(f"config key {name!r} must be {kind}, got {value!r}")

    if kind == "a bool":
        if isinstance(value, bool):
            return value
        raise fail()
    if kind == "a string":
        if isinstance(value, str) and value:
            return value
        raise fail()
    if isinstance(value, bool):
        raise fail()
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise fail() from None
    if kind == "an integer":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail()
    if kind == "a number":
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
        raise fail()
    raise AssertionError(kind)


# Field annotations are strings here (``from __future__ import annotations``): "float | None".
_KINDS = {"int": "an integer", "float": "a number", "bool": "a bool", "str": "a string"}


def _check_types(cfg: DQNConfig) -> None:
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "hidden_sizes":
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(f"config key 'hidden_sizes' must be a list of integers, got {value!r}")
            sizes = tuple(_coerce("hidden_sizes", v, "an integer") for v in value)
            object.__setattr__(cfg, f.name, sizes)
            continue
        optional = "None" in str(f.type)
        if optional and value is None:
            continue
        base = str(f.type).split("|")[0].strip()
        kind = _KINDS[base]
        if optional:
            kind_msg = kind + " or null"
            try:
                value = _coerce(f.name, value, kind)
            except ConfigError:
                raise ConfigError(f"config key {f.name!r} must be {kind_msg}, got {value!r}") from None
        else:
            value = _coerce(f.name, value, kind)
        object.__setattr__(cfg, f.name, value)


# ---------------------------------------------------------------------- value checks
def _check_values(c: DQNConfig) -> None:
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    def positive(name: str) -> None:
        v = getattr(c, name)
        need(v > 0, f"config key {name!r} must be > 0, got {v!r}")

    for name in (
        "total_env_steps", "buffer_size", "batch_size", "learning_rate", "adam_epsilon",
        "loss_bound", "target_update_every_grad_steps", "train_every_env_steps",
        "gradient_steps_per_train", "eval_every_env_steps", "eval_episodes",
        "final_eval_episodes", "n_step",
        "checkpoint_every_env_steps", "keep_checkpoints", "num_threads", "num_envs",
    ):
        positive(name)
    need(c.loss in LOSS_NAMES, f"unknown loss {c.loss!r}; valid losses: {', '.join(LOSS_NAMES)}")
    need(
        c.activation in ACTIVATIONS,
        f"unknown activation {c.activation!r}; valid activations: {', '.join(ACTIVATIONS)}",
    )
    need(
        c.learner in LEARNERS,
        f"unknown learner {c.learner!r}; valid learners: {', '.join(LEARNERS)}",
    )
    need(0 < c.gamma <= 1, f"config key 'gamma' must be in (0, 1], got {c.gamma!r}")
    need(0 < c.target_tau <= 1, f"config key 'target_tau' must be in (0, 1], got {c.target_tau!r}")
    need(
        c.batch_size <= c.buffer_size,
        f"config key 'batch_size' ({c.batch_size}) must be <= buffer_size ({c.buffer_size})",
    )
    need(
        0 <= c.learning_starts_env_steps < c.total_env_steps,
        f"config key 'learning_starts_env_steps' must be in [0, total_env_steps = "
        f"{c.total_env_steps}), got {c.learning_starts_env_steps}: the agent would never train",
    )
    need(c.seed >= 0, f"config key 'seed' must be >= 0, got {c.seed}")
    for name in ("epsilon_start", "epsilon_end", "epsilon_decay_fraction"):
        v = getattr(c, name)
        need(0 <= v <= 1, f"config key {name!r} must be in [0, 1], got {v!r}")
    need(len(c.hidden_sizes) >= 1, "config key 'hidden_sizes' must list at least one layer width")
    need(
        all(h > 0 for h in c.hidden_sizes),
        f"config key 'hidden_sizes' must hold positive widths, got {list(c.hidden_sizes)}",
    )
    if c.max_grad_norm is not None:
        positive("max_grad_norm")
    if c.max_abs_q is not None:
        positive("max_abs_q")
    if c.learning_rate_end is not None:
        need(
            c.learning_rate_end >= 0,
            f"config key 'learning_rate_end' must be >= 0 or null, got {c.learning_rate_end!r}",
        )
    need(c.env_id.strip() == c.env_id, f"config key 'env_id' has stray spaces: {c.env_id!r}")


def bootstrap_discount(c: DQNConfig) -> float:
    """gamma^n: the discount of the bootstrapped term of an n-step TD target."""
    return c.gamma**c.n_step


def total_grad_steps(c: DQNConfig) -> int:
    """Gradient steps a full run takes: one burst every train_every_env_steps after learning starts."""
    bursts = c.total_env_steps // c.train_every_env_steps - (
        c.learning_starts_env_steps // c.train_every_env_steps
    )
    return max(bursts, 0) * c.gradient_steps_per_train
