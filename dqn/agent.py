"""DQNAgent: a Q-network, one learner, epsilon-greedy acting, save and load.

The update is the learner's (``dqn.learner``: TensorFlow or numpy, chosen by the config); the
agent acts through a numpy mirror of the online weights and keeps it in step after each burst.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from dqn import learner_process, losses
from dqn.agent_files import (
    check_config_env,
    check_network_fits,
    corrupt_file,
    read_agent_config,
    read_agent_meta,
    read_newest,
    save_agent_to,
)
from dqn.agent_io import (
    check_loads_again,
    load_adam_file,
    load_model_file,
    network_sizes,
    write_agent_folder,
)
from dqn.config import DQNConfig, check_is_config, total_grad_steps
from dqn.diagnostics import diagnostic_names, hidden_unit_stats, layer_grad_norms
from dqn.envs import check_spaces
from dqn.errors import ConfigError, InputError, first_line, shown
from dqn.finite import all_finite, check_epsilon
from dqn.io import write_dir_atomically
from dqn.learner import Learner, LearnerArrays
from dqn.networks import FlatNetwork, NetworkFn, NumpyMLP, build_mlp, is_default_mlp
from dqn.numpy_learner import NumpyLearner
from dqn.replay import Batch, check_batch, pack_batch
from dqn.runtime import configure_tensorflow, warn_threads_fixed
from dqn.step_metrics import METRIC_NAMES
from dqn.tf_learner import TFLearner, shared_key


def _make_learner(
    config: DQNConfig,
    net: FlatNetwork,
    mirror: NumpyMLP | None,
    loss_fn,
    sizes: tuple[int, int],
    flat: np.ndarray,
    own_pools: bool,
    custom_network: bool,
) -> Learner:
    """The one place that picks the backend (``config.learner``); see ``dqn.learner``.

    ``own_pools`` False: TensorFlow ran before dqn could set its threads. The TF learner of the
    default network (built, or loaded from a run that used it) then runs in a fresh process
    (``dqn.learner_process``), as it would from the command line, if its bursts are long enough
    to pay for the round trip; another network cannot be rebuilt there and stays, with a warning.
    """
    if config.learner == "numpy":
        if mirror is None:
            raise ConfigError(
                "learner 'numpy' needs a chain of Dense layers (the default MLP); "
                "use learner 'tensorflow' for this network"
            )
        return NumpyLearner(net.shapes, mirror.activation_names, config, flat)
    # A loaded agent's network (a resume's) is the default MLP too where its Keras config is:
    # it shares the compiled functions, which a resume compiled again each time, and XLA frees
    # none (6.5 MB and a second more a resume in one process).
    default = not custom_network or is_default_mlp(net.model, *sizes, config)
    # Short bursts of a small network stay: the round trip would cost more than the threads.
    if not own_pools and learner_process.worth_a_process(config, net.shapes):
        if default and learner_process.supported():
            return learner_process.ProcessLearner(config, *sizes, flat)
        warn_threads_fixed(config.num_threads, "training this network")
    share = shared_key(config, net.shapes) if default else None
    return TFLearner(net.forward, loss_fn, config, sizes[0], flat, share)


def _shape(obs) -> tuple[int, ...] | None:
    """``obs``'s array shape, or None where it has none: a ragged list, or the (obs, info) pair
    ``env.reset()`` returns (numpy raised a ValueError from inside)."""
    try:
        return np.shape(obs)
    except ValueError:
        return None


def _what(obs) -> str:
    """How an error shows an argument without an array shape of its own."""
    if isinstance(obs, tuple) and len(obs) == 2 and isinstance(obs[1], dict):
        return f"{shown(obs, 40)} (a tuple: env.reset() returns (obs, info), give obs)"
    return f"{shown(obs, 40)} (a {type(obs).__name__})"


def check_one_observation(obs, obs_dim: int, also: str = "") -> None:
    """InputError unless ``obs`` is one observation [obs_dim] (``act``'s argument)."""
    if (shape := _shape(obs)) != (obs_dim,):
        # A scalar, a string or None has shape (): "got []" would not say what came instead.
        got = list(shape) if shape else _what(obs)
        raise InputError(f"act takes one observation of shape [{obs_dim}], got {got}{also}")


def check_observations_shape(obs: np.ndarray, obs_dim: int) -> None:
    """InputError unless ``obs`` is one observation [obs_dim] or a batch [n, obs_dim]."""
    if obs.shape[-1:] != (obs_dim,) or obs.ndim > 2:
        raise InputError(
            f"observations must have shape [{obs_dim}] or [n, {obs_dim}], got {list(obs.shape)}"
        )


def checked_observations(obs, method: str) -> np.ndarray:
    """``obs`` as float32, or an InputError if it is not numbers or holds a NaN, an inf or a
    value beyond float32's range (inf once cast)."""
    try:
        if isinstance(obs, np.ndarray) and obs.dtype == np.float32:
            cast = obs  # the hot path of a float32 env's steps: no cast, so nothing to overflow
        elif obs is None:  # numpy casts None to NaN: named as what it is
            raise TypeError
        elif isinstance(obs, np.ma.MaskedArray) or np.asarray(obs).dtype.kind in "US":
            # Text ("1", "2") cast to numbers, and a masked array's mask was dropped: neither is
            # an observation of numbers as given.
            raise TypeError
        else:
            with np.errstate(over="ignore"), warnings.catch_warnings():  # said below, as given
                # A complex array's cast drops its imaginary part with a mere warning.
                warnings.simplefilter("error", np.exceptions.ComplexWarning)
                cast = np.asarray(obs, np.float32)
    except (TypeError, ValueError, OverflowError, np.exceptions.ComplexWarning):
        # OverflowError: a Python int of 10**400
        raise InputError(f"{method} takes real numbers, got {shown(obs, 80)}") from None
    # A NaN observation gives NaN Q-values, and argmax of NaNs is action 0: a silent wrong answer.
    if all_finite(cast):
        return cast
    rows = np.asarray(obs, np.float64)  # as given: 1e39 would show as the cast's inf

    def why(values: np.ndarray) -> str:
        return "NaN or inf" if not np.isfinite(values).all() else "values beyond float32's range"

    if rows.ndim < 2:
        raise InputError(f"{method} got an observation with {why(rows)}: {rows.tolist()}")
    rows = rows.reshape(len(rows), -1)
    bad = np.flatnonzero(~np.isfinite(cast.reshape(len(rows), -1)).all(axis=1))
    kinds = {why(row) for row in rows[bad]}
    what = kinds.pop() if len(kinds) == 1 else "NaN, inf or values beyond float32's range"
    raise InputError(
        f"{method} got {what} in {len(bad)} of {len(rows)} observations; the first, row "
        f"{bad[0]}: {rows[bad[0]].tolist()}"
    )


def _check_arity(network_fn) -> None:
    """ConfigError unless ``network_fn`` can be called with (obs_dim, n_actions)."""
    try:
        inspect.signature(network_fn).bind(0, 0)
    except TypeError:
        raise ConfigError(
            f"network_fn must be a function of two arguments (obs_dim, n_actions), got "
            f"{shown(network_fn, 80)}"
        ) from None
    except ValueError:  # no signature to read (some builtins): left to the call
        pass


def _check_network(online, target, obs_dim: int, n_actions: int) -> None:
    """ConfigError unless a network_fn built two separate Keras models that map observations
    [n, obs_dim] to Q-values [n, n_actions]: found when the agent is built, not mid-run."""
    for model in (online, target):
        if not isinstance(model, keras.Model):
            raise ConfigError(f"network_fn must return a keras.Model, got {type(model).__name__}")
    # Called, both: a model with no declared input (a subclassed one, a Sequential without
    # keras.Input) makes its weights at its first call, and a target never built was saved
    # empty and loaded as a fresh random network.
    shapes, dtypes = [], []
    for model in (online, target):
        try:
            q = model(np.zeros((2, obs_dim), np.float32))
        except Exception as exc:  # Keras raises many kinds for an input it cannot take
            raise ConfigError(
                f"network_fn's model cannot take observations of shape [n, {obs_dim}]: "
                f"{first_line(exc)}"
            ) from None
        if not hasattr(q, "shape"):  # a list or dict of outputs: several heads, not Q-values
            raise ConfigError(
                f"network_fn's model returns a {type(q).__name__} of outputs; it must return one "
                f"tensor of Q-values, of shape [n, {n_actions}]"
            )
        shapes.append(tuple(q.shape))
        dtypes += [keras.backend.standardize_dtype(q.dtype)]
        dtypes += [keras.backend.standardize_dtype(v.dtype) for v in model.trainable_variables]
        if not model.trainable_variables:
            raise ConfigError(
                "network_fn's model has no trainable weights: DQN has nothing to learn"
            )
    # The learners keep the weights in one float32 vector and compute the loss in float32: a
    # model in float64 (keras.config.set_floatx) or bfloat16 (a mixed policy) failed at the first
    # update, mid-run, or acted on other Q-values than it learned.
    if other := sorted(set(dtypes) - {"float32"}):
        raise ConfigError(
            f"network_fn's model computes or keeps weights in {', '.join(other)}; dqn's learners "
            "work in float32: build its layers with dtype='float32'"
        )
    if {id(v) for v in online.weights} & {id(v) for v in target.weights}:
        raise ConfigError("network_fn must build a new model on each call (no shared variables)")
    layout = [[tuple(v.shape) for v in m.trainable_variables] for m in (online, target)]
    if layout[0] != layout[1]:
        raise ConfigError(
            "network_fn must build the same network on each call: its two models' weights have "
            f"shapes {layout[0]} and {layout[1]}"
        )
    shape = shapes[0]
    if shape != (2, n_actions):
        raise ConfigError(
            f"network_fn's model maps observations [2, {obs_dim}] to shape {list(shape)}; "
            f"DQN needs Q-values [2, {n_actions}], one per action"
        )


class _SavedModels:
    """The network_fn of a loaded agent: hands out the online then the target model read from
    its files. Their weights are what an earlier run learned, in inference mode as dqn runs
    them, so a part of Keras training they carry (``_check_nothing_left_out``) does not stop
    them from loading: it changed nothing in how they act."""

    def __init__(self, models: list[keras.Model]):
        self._models = iter(models)

    def __call__(self, obs_dim: int, n_actions: int) -> keras.Model:
        return next(self._models)


def _left_out_layers(model: keras.Model) -> str:
    """' (names)' of the layers in ``model`` that compute otherwise in training mode or on each
    call: Keras's own (a dropout with a rate, noise, batch normalization that trains, spectral
    normalization) and layers of the user's own whose call takes ``training``. Other Keras
    layers whose call takes it (attention, recurrent, Dense) compute alike at their defaults,
    and naming them would tell a user to remove a layer that is not the cause."""
    flatten = getattr(model, "_flatten_layers", None)  # Keras 3's walk over nested layers
    named = []
    for layer in [] if flatten is None else flatten(include_self=False):
        if isinstance(layer, keras.Model):
            continue
        dropouts = keras.layers.Dropout | keras.layers.AlphaDropout | keras.layers.GaussianDropout
        if isinstance(layer, dropouts):
            suspect = layer.rate > 0
        elif isinstance(layer, keras.layers.GaussianNoise):
            suspect = layer.stddev > 0
        elif isinstance(layer, keras.layers.BatchNormalization):
            suspect = layer.trainable  # a frozen one runs in inference mode in training too
        elif isinstance(layer, keras.layers.SpectralNormalization):
            suspect = True
        else:
            suspect = not type(layer).__module__.startswith("keras.") and (
                "training" in inspect.signature(layer.call).parameters
            )
        if suspect:
            named.append(f"'{layer.name}' ({type(layer).__name__})")
    return f" ({', '.join(named)})" if named else ""


def _check_nothing_left_out(model: keras.Model, obs_dim: int) -> None:
    """ConfigError if a network_fn's model carries a part of Keras training that dqn's learners
    leave out, found when the agent is built rather than never.

    The learners run the model as a pure function of its trainable weights (FlatNetwork) with
    ``training=False`` and its other state frozen, minimise the TD loss alone, and step with
    their own Adam. So a compiled optimizer or loss, a weight's regularizer or constraint, an
    activity regularizer or ``add_loss``, what dropout, noise or batch normalization do in
    training mode, and a layer that draws new noise on each call would all be accepted and then
    never happen.
    """
    if getattr(model, "compiled", False):
        raise ConfigError(
            "network_fn's model is compiled (an optimizer, a loss), which dqn would leave out "
            "(it trains with its own Adam on the config's loss and learning_rate): return it "
            "uncompiled"
        )
    for v in model.trainable_variables:
        for attribute, what, cure in (
            ("regularizer", "a regularizer", "minimise the TD loss alone"),
            ("constraint", "a constraint", "step with their own Adam, which applies none"),
        ):
            if getattr(v, attribute, None) is not None:
                raise ConfigError(
                    f"network_fn's model gives its weight {v.path} {what}, which dqn would "
                    f"leave out (its learners {cure}): build the layer without it"
                )
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(8, obs_dim)).astype(np.float32)
    # Every variable is put back as it was after the probe: a call in training mode may change
    # state (batch normalization's moving statistics, a seed, spectral normalization's kernel),
    # a layer first built by that call adds variables, and the probe runs on stirred weights.
    kept = [(v, v.numpy()) for v in model.variables]
    try:
        # Weights plus a little noise: a layer initialised at zero (a Q-head, often) would
        # give the same Q-values in both modes whatever came before it.
        for v in model.trainable_variables:
            v.assign(v.numpy() + rng.normal(scale=0.1, size=v.shape).astype(np.float32))
        stirred = [(v, v.numpy()) for v in model.trainable_variables]
        inferred = np.asarray(model(probe, training=False))
        again = np.asarray(model(probe, training=False))
        trained = np.asarray(model(probe, training=True))
        added = len(model.losses)
        rewritten = [v.path for v, value in stirred if not np.array_equal(v.numpy(), value)]
    except Exception:  # a model that cannot run in training mode is never run so by dqn
        return
    finally:
        for v, value in kept:
            v.assign(value)
    if rewritten:
        raise ConfigError(
            f"network_fn's model rewrites its weights {', '.join(rewritten)} when called in "
            f"training mode{_left_out_layers(model)}, which dqn would leave out (it learns and "
            "acts with training=False): build it without that layer"
        )
    if added:
        raise ConfigError(
            f"network_fn's model adds {added} loss(es) of its own (an activity regularizer or "
            "add_loss), which dqn would leave out (its learners minimise the TD loss alone): "
            "build it without them"
        )
    for same, other, why, cure in (
        (
            _alike(inferred, again),
            "on each call with the same weights",
            "its learners hold a layer's random state fixed",
            "the layer that draws it",
        ),
        (
            _alike(trained, inferred),
            "in training mode than in inference mode",
            "it learns and acts with training=False: no dropout, noise or batch statistics",
            "the layer that does (a dropout inside another)",
        ),
    ):
        if not same:
            named = _left_out_layers(model)
            raise ConfigError(
                f"network_fn's model computes other Q-values {other}{named}, which dqn would "
                f"leave out ({why}): build it without {'those layers' if named else cure}"
            )


def _alike(a: np.ndarray, b: np.ndarray) -> bool:
    """Two outputs of one model on one probe are the same, to float32 rounding (a model that
    returns another shape or structure in training mode is not)."""
    try:
        return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True))
    except TypeError:  # object arrays: a dict of outputs
        return False


def check_saveable(model: keras.Model) -> None:
    """ConfigError unless Keras can describe ``model`` for a .keras file: a subclassed model
    whose ``__init__`` takes arguments must override ``get_config``, or every checkpoint fails.
    Checked before a run writes anything (train) or an agent is saved, not at its first
    checkpoint, where the run would stop with its folder half-made."""
    try:
        model.get_config()
    except NotImplementedError:
        raise ConfigError(
            f"network_fn's model {type(model).__name__} cannot be saved (no checkpoint could be "
            "written): a subclassed keras.Model whose __init__ takes arguments must override "
            "get_config(), and be registered with @keras.saving.register_keras_serializable() "
            "to load again"
        ) from None


class DQNAgent:
    """Deep Q-learning agent for vector observations and discrete actions.

    ``network_fn(obs_dim, n_actions) -> keras.Model`` replaces the default MLP. It is called
    twice (online and target network); the two must be separate models, and they are trained
    as dqn trains: the TD loss alone, its own Adam, ``training=False`` (a regularizer, a
    constraint, an added loss or a layer that computes otherwise in training mode is refused;
    one that Keras cannot save, or read back from its save, is refused by ``save`` and ``train``).
    """

    def __init__(
        self,
        observation_space: gym.Space,
        action_space: gym.Space,
        config: DQNConfig,
        network_fn: NetworkFn | None = None,
    ):
        check_is_config(config)
        # A model, or a model class, is callable too: called with (obs_dim, n_actions), Keras
        # failed deep inside ("Only input tensors may be passed as positional arguments").
        if network_fn is not None and (
            not callable(network_fn) or isinstance(network_fn, type | keras.Model)
        ):
            what = type(network_fn).__name__
            cure = (
                ": wrap what builds it, e.g. lambda obs_dim, n_actions: build(obs_dim, n_actions)"
                if callable(network_fn)
                else ""
            )
            raise ConfigError(
                "network_fn must be a function (obs_dim, n_actions) -> keras.Model, got "
                f"{network_fn.__name__ if isinstance(network_fn, type) else what}{cure}"
            )
        if network_fn is not None:
            _check_arity(network_fn)
        self.config = config
        self.obs_dim, self.n_actions = check_spaces(observation_space, action_space)
        own_pools = configure_tensorflow(config.num_threads)  # before the models' first ops
        custom_network = network_fn is not None
        # A network_fn's model, not one read from an agent's files (what a run learned with
        # loads whatever it carries): it is probed for what the learners leave out, and
        # check_network_saves reads a save of it back.
        self._users_network = custom_network and not isinstance(network_fn, _SavedModels)
        if network_fn is None:

            def network_fn(obs_dim: int, n_actions: int) -> keras.Model:
                return build_mlp(
                    obs_dim, n_actions, config.hidden_sizes, config.activation, config.seed
                )

        online_model = network_fn(self.obs_dim, self.n_actions)
        target_model = network_fn(self.obs_dim, self.n_actions)
        if custom_network:
            _check_network(online_model, target_model, self.obs_dim, self.n_actions)
            if self._users_network:
                _check_nothing_left_out(online_model, self.obs_dim)
            # The learners train the trainable weights and compute both networks with the
            # online model's others (a frozen layer's): the target model takes them too, or its
            # view (agent.target, target.keras) held a frozen layer of another draw for good.
            # (Only those: a loaded agent's target keeps its own trainable weights.)
            for mine, online_one in zip(
                target_model.non_trainable_variables, online_model.non_trainable_variables
            ):
                mine.assign(online_one)
        self._net = FlatNetwork(online_model)
        self._target_model = target_model
        flat = self._net.read()
        self.rng = np.random.default_rng([config.seed, 1])  # exploration only
        # Gradient steps left before the learning rate is 0 (None: it never is, or it was said,
        # _say_schedule_over), counted here: reading the learner's count costs a tensor read.
        self._steps_to_zero_rate = (
            total_grad_steps(config) if config.learning_rate_end == 0 else None
        )
        # The agent folder ``load`` read (a run's newest good checkpoint's), as long as the
        # agent holds its weights: None once it has learned, or if it was not loaded.
        self.loaded_from: Path | None = None
        loss_fn = losses.get(config.loss)
        self._q_fn = tf.function(self._net.forward, autograph=False)  # see TFLearner
        self._mirror = NumpyMLP.mirror(self._net, flat, self.obs_dim)
        self.learner = _make_learner(
            config,
            self._net,
            self._mirror,
            loss_fn,
            (self.obs_dim, self.n_actions),
            flat,
            own_pools,
            custom_network,
        )
        self._after_update()

    # ------------------------------------------------------------------ acting
    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q(s, .) for one observation [obs_dim] or a batch [n, obs_dim]."""
        obs = checked_observations(obs, "q_values")
        return self._q_values(obs)

    def _q_values(self, obs: np.ndarray) -> np.ndarray:
        if self._mirror is not None and obs.shape == (self.obs_dim,):
            return self._mirror(obs)  # the acting hot path: one observation, no reshapes
        check_observations_shape(obs, self.obs_dim)
        batch = obs.reshape(-1, self.obs_dim)
        if self._mirror is not None:
            q = self._mirror(batch)
        else:
            q = self._q_fn(tf.constant(self.learner.online), tf.constant(batch)).numpy()
        return q[0] if obs.ndim == 1 else q

    def act(self, obs: np.ndarray, epsilon: float = 0.0) -> int:
        """Epsilon-greedy action for one observation (greedy when epsilon is 0)."""
        check_epsilon(epsilon)
        check_one_observation(obs, self.obs_dim, " (act_batch takes [n, obs_dim])")
        obs = checked_observations(obs, "act")
        if epsilon > 0.0 and self.rng.random() < epsilon:
            return int(self.rng.integers(self.n_actions))
        return int(self._q_values(obs).argmax())

    def act_batch(self, obs: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """Epsilon-greedy actions [n] for observations [n, obs_dim], one draw per env.

        One observation goes through ``act`` (matrix-vector products, no Q when exploring).
        """
        if (shape := _shape(obs)) is None or len(shape) != 2 or shape[1] != self.obs_dim:
            got = _what(obs) if shape is None else list(shape)
            raise InputError(
                f"act_batch takes observations of shape [n, {self.obs_dim}], got {got}"
            )
        check_epsilon(epsilon)
        obs = checked_observations(obs, "act_batch")  # (errors name this call, not act)
        n = len(obs)
        if n == 1:
            return np.array([self.act(obs[0], epsilon)])
        explore = self.rng.random(n) < epsilon if epsilon > 0.0 else np.zeros(n, bool)
        actions = self._q_values(obs).argmax(axis=1)
        if explore.any():
            actions = np.where(explore, self.rng.integers(self.n_actions, size=n), actions)
        return actions

    # ------------------------------------------------------------------ learning
    def update(self, batch: Batch) -> dict[str, float]:
        """Gradient steps on a batch [batch, ...] (one step) or [k, batch, ...] (k steps).

        The transitions are ``config.n_step``-step ones, as the training loop stores them
        (``dqn.nstep``): ``rewards`` the discounted sum of n rewards, ``next_obs`` the observation
        n steps on, bootstrapped with gamma^n. The default config has n_step=10: an agent fed
        one-step transitions of your own needs ``n_step=1``. The learning rate follows the
        config's schedule over its gradient steps: the default decays it to 0 at
        ``dqn.config.total_grad_steps(config)``, after which updates change nothing (a warning
        says so); ``learning_rate_end=None`` keeps it constant.

        Returns metrics over the steps (see ``dqn.step_metrics.STEP_METRICS``): the loss, |td_error|
        statistics, the fraction of samples whose loss gradient is exactly zero, Q statistics
        and the gradient's global norm (the diagnostics among them are NaN when
        ``config.diagnostics`` is false).
        """
        return dict(zip(METRIC_NAMES, self.update_raw(batch).tolist()))

    def update_raw(self, batch: Batch) -> np.ndarray:
        """Like ``update``, as an array ordered as METRIC_NAMES (no dict on the hot path)."""
        check_batch(batch, self.obs_dim, self.n_actions)
        return self.update_rows(pack_batch(batch))

    def update_rows(self, rows: np.ndarray) -> np.ndarray:
        """Gradient steps on packed replay rows [B, W] or [K, B, W] (from ``sample_rows``)."""
        if rows.ndim == 2:
            rows = rows[None]
        if self._steps_to_zero_rate is not None:
            if self._steps_to_zero_rate <= 0:
                self._say_schedule_over()
            else:
                self._steps_to_zero_rate -= rows.shape[0]
        metrics = self.learner.burst(rows)
        self._after_update()
        return metrics

    def _say_schedule_over(self) -> None:
        """Once per agent: its steps past the learning-rate schedule's end, at 0, change
        nothing, which an agent stepped in a user's own loop (or fine-tuned once loaded) past
        the run its config describes would otherwise find out from flat curves."""
        self._steps_to_zero_rate = None
        # At the first frame outside dqn: the user's update() or update_raw() line (a fixed
        # level pointed into dqn for one of them), or the loop's caller.
        level, frame = 1, sys._getframe(0)
        while frame is not None and frame.f_globals.get("__name__", "").startswith("dqn."):
            level, frame = level + 1, frame.f_back
        warnings.warn(
            f"learning rate is 0 from gradient step {total_grad_steps(self.config):,} on (the "
            "schedule decays to learning_rate_end=0 over the config's total_env_steps): this "
            "update and later ones change nothing; set learning_rate_end (null: constant) or a "
            "larger total_env_steps to train on",
            UserWarning,
            stacklevel=level,
        )

    def _after_update(self) -> None:
        self.loaded_from = None  # its weights are no longer that folder's
        if self._mirror is not None:
            self._mirror.load(self.learner.online)  # views: a few microseconds
        self._target_vector: np.ndarray | None = None  # the target model's, read when needed

    @property
    def state(self) -> LearnerArrays:
        """The learner state (parameters, Adam moments, counters) as numpy arrays."""
        return self.learner.state

    @state.setter
    def state(self, state: LearnerArrays) -> None:
        # Checked before anything changes: a TF learner took a wrong-sized vector and was left
        # unable to update, with TensorFlow's error from inside.
        for name, want in zip(("online", "target", "adam_m", "adam_v"), self.learner.state):
            got = np.shape(getattr(state, name, None))
            if got != want.shape:
                raise InputError(
                    f"state.{name} must have shape {list(want.shape)} (this agent's "
                    f"parameters), got {list(got)}"
                )
            # NaN weights made NaN Q-values, whose argmax is a silent action 0 (the act that
            # refuses a NaN observation for that reason took them).
            if not np.isfinite(getattr(state, name)).all():
                raise InputError(f"state.{name} holds NaN or inf: no agent computes with them")
        self.learner.state = state
        if self._steps_to_zero_rate is not None:  # a loaded agent's steps count too
            self._steps_to_zero_rate = total_grad_steps(self.config) - int(state.grad_steps)
        self._after_update()

    def diagnose(self, batch: Batch) -> dict[str, float]:
        """Diagnostics on a probe batch [batch, ...], without updating anything.

        Per-layer gradient norms of the loss, and for a mirrored MLP the fraction of dead
        (ReLU) or saturated (tanh, sigmoid) hidden units over the batch's states.
        """
        check_batch(batch, self.obs_dim, self.n_actions)  # as update does: one line, not numpy's
        if np.ndim(batch.obs) != 2:
            raise InputError(
                f"diagnose takes one batch, obs [batch, {self.obs_dim}], got "
                f"{list(np.shape(batch.obs))}"
            )
        # Where the learner computes its updates: its backend, threads and process, so the
        # norms are those of the gradients it steps with (a learner process's pools sum in
        # another order than this process's TensorFlow).
        grads = self.learner.probe_gradient(batch)
        out = {
            f"grad_norm/{k}": v
            for k, v in layer_grad_norms(grads, self._net.layer_slices()).items()
        }
        if self._mirror is not None:
            hidden = self._mirror.hidden_activations(batch.obs)
            out.update(hidden_unit_stats(hidden, self._mirror.activation_names))
        return out

    def diagnostic_names(self) -> list[str]:
        """The keys ``diagnose`` returns, in order."""
        activations = None if self._mirror is None else self._mirror.activation_names
        return diagnostic_names(self._net.layer_slices(), activations)

    @property
    def grad_steps(self) -> int:
        return self.learner.grad_steps

    # ------------------------------------------------------------------ Keras views
    # The learner holds the weights (a flat vector, in a learner process perhaps); these Keras
    # models are views of them, written at each read: a model edited through Keras was saved
    # while the agent acted with its own weights, and a view written only after updates kept
    # the edit until the next one.
    @property
    def online(self) -> keras.Model:
        """The online Q-network as a Keras model, written from the agent's weights at each
        read: a view to call, inspect or export, not a handle on them. A reference kept across
        ``update`` shows the weights of its read, and a change made through Keras
        (``set_weights``, ``fit``) is not the agent's: the next read or ``save`` writes the
        agent's weights over it. ``start_from`` or ``state =`` give an agent other weights.
        Each read writes the weights (about 1.5 ms for the default network): Q-values in a
        loop come cheaper from ``q_values``."""
        self._net.write(self.learner.online)  # a local vector, for every learner
        return self._net.model

    @property
    def target(self) -> keras.Model:
        """The target Q-network (a separate Keras model, no shared variables), a view written
        at each read as ``online`` is."""
        if self._target_vector is None:  # read once per update: the state is a process's, perhaps
            self._target_vector = self.state.target
        self._net.write(self._target_vector, self._target_model)
        return self._target_model

    def start_from(self, other: DQNAgent) -> None:
        """Take ``other``'s online and target networks as this agent's starting point (a run
        that continues a trained agent: ``train(config, init_from=...)``). Adam's moments and the
        gradient-step count stay this agent's own, fresh: the learning-rate schedule and the
        target syncs count from here. ConfigError where the networks do not fit each other."""
        where = f"init_from {other.loaded_from}" if other.loaded_from else f"init_from {other!r}"
        if (other.obs_dim, other.n_actions) != (self.obs_dim, self.n_actions):
            raise ConfigError(
                f"{where}: its agent takes {other.obs_dim} observation values and "
                f"{other.n_actions} actions, this env {self.obs_dim} and {self.n_actions}"
            )
        mine, theirs = self._layer_kinds(), other._layer_kinds()
        if self._net.shapes != other._net.shapes or mine != theirs:
            if self._mirror is not None and other._mirror is not None:  # both chains of Dense
                sizes = [shape[1] for shape in other._net.shapes[0::2]][:-1]
                inner = set(other._mirror.activation_names[:-1])
                cure = "give the run the same hidden_sizes and activation"
                if len(inner) == 1 and other._mirror.activation_names[-1] == "linear":
                    widths = ",".join(map(str, sizes))  # one shell word: no spaces
                    cure += f" (dqn-train: --set hidden_sizes=[{widths}] activation={inner.pop()})"
            else:
                cure = "give the run a network_fn that builds the same network"
            raise ConfigError(
                f"{where}: its Q-network ({other._describe_network()}) is not this run's "
                f"({self._describe_network()}): {cure}"
            )
        state = other.state
        self.state = self.state._replace(online=state.online.copy(), target=state.target.copy())

    def _layer_kinds(self) -> list[tuple[str, str | None]]:
        """The online network's layers, nested models' included, as (kind, activation): with
        its weights' shapes, what must agree for another network to compute alike from the same
        weights. Not the layers' names, which Keras numbers per process, nor their
        initializers, seeded per run."""

        def leaves(layer) -> list:
            inner = getattr(layer, "layers", None)
            if inner is None:
                return [] if isinstance(layer, keras.layers.InputLayer) else [layer]
            return [leaf for sub in inner for leaf in leaves(sub)]

        return [
            (type(layer).__name__, layer.get_config().get("activation"))
            for layer in leaves(self._net.model)
        ]

    def network_note(self) -> str | None:
        """None if config's hidden_sizes and activation describe the online network; otherwise
        what it is, for the comment heading the config.yaml files a run or a save writes (a
        network_fn's run keeps the default hidden_sizes there, which its network ignores)."""
        if self._mirror is not None:
            sizes = [shape[1] for shape in self._net.shapes[0::2]][:-1]
            names = [self.config.activation] * len(sizes) + ["linear"]
            if sizes == list(self.config.hidden_sizes) and self._mirror.activation_names == names:
                return None
        return (
            f"The Q-network was built by a network_fn ({self._describe_network()}): "
            "hidden_sizes and activation below do not describe it."
        )

    def _describe_network(self) -> str:
        if self._mirror is not None:  # a chain of Dense layers: its sizes and activations
            sizes = [shape[1] for shape in self._net.shapes[0::2]]
            *inner, head = self._mirror.activation_names
            named = ", ".join(dict.fromkeys(inner)) or "none"
            text = f"hidden_sizes {sizes[:-1]}, activation {named}"
            return text if head == "linear" else f"{text}, output activation {head}"
        kinds = ", ".join(
            kind if act is None else f"{kind}({act})" for kind, act in self._layer_kinds()
        )
        return f"layers {kinds}; weight shapes {[list(s) for s in self._net.shapes]}"

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write config, both networks, Adam state and counters; atomic (temp folder + rename).

        ``directory`` is a new path, an empty folder or an earlier agent save, which is
        replaced as a whole (saving the latest agent to the same folder again and again). An
        existing file, or a folder holding anything else (a run folder, files of yours, the
        agent inside a checkpoint) is refused with an OutputError before anything is written.
        """
        self.check_network_saves()
        from dqn.config import check_path_arg, user_path

        check_path_arg(directory, "DQNAgent.save takes a folder's path")
        return save_agent_to(user_path(directory, "the folder"), self._write_whole)

    def check_network_saves(self) -> None:
        """ConfigError unless the networks can be saved (``check_saveable``) and, for a
        network_fn's, read back (``check_loads_again``): checked before a run writes anything
        and when an agent is saved, rather than at a checkpoint or a load."""
        check_saveable(self._net.model)  # its structure: the weights are written by _write
        if self._users_network:
            check_loads_again(self._net.model)

    def save_into_checkpoint(self, directory: Path) -> Path:
        """``save`` for the agent of a checkpoint being written (``dqn.run_state``): its
        folder is in the checkpoint's temporary folder among checkpoints/, where ``save``
        refuses a folder of the user's."""
        check_saveable(self._net.model)
        return save_agent_to(directory, self._write_whole, checked=False)

    def _write_whole(self, folder: Path) -> None:
        write_dir_atomically(folder, self._write)

    def _write(self, folder: Path) -> None:
        write_agent_folder(
            folder,
            self.config,
            self.online,
            self.target,
            self.state,
            (self.obs_dim, self.n_actions),
            self.rng.bit_generator.state,
            self.network_note(),
        )

    @classmethod
    def load(cls, directory: str | Path) -> DQNAgent:
        """Rebuild a saved agent: its Q-values and its next update are identical.

        ``directory`` is an agent folder (``save``), a checkpoint folder (checked against its
        manifest) or a run folder (its newest good checkpoint); a folder of runs is refused,
        naming them. The files are checked against each other (``dqn.agent_files``):
        agent.json's sizes against the networks' and, in a checkpoint, config.yaml's env against
        them; a CheckpointError names the file and the field that is wrong. A run that is still
        training may delete the checkpoint as it is read: its newest is then read instead.
        """
        from dqn.config import check_path_arg, user_path

        check_path_arg(directory, "DQNAgent.load takes a folder's path")
        return read_newest(Path(user_path(directory, "the folder")), cls._load_agent_dir)

    @classmethod
    def _load_agent_dir(cls, directory: Path) -> DQNAgent:
        config = read_agent_config(directory)  # after checking that every file is there
        meta = read_agent_meta(directory)
        models = [load_model_file(directory / name) for name in ("online.keras", "target.keras")]
        for name, model in zip(("online.keras", "target.keras"), models):
            check_network_fits(directory, name, network_sizes(model, meta.obs_dim), meta)
        check_config_env(directory, config, meta)
        # Two files of other networks (one copied from another run) were reported as a user's
        # network_fn that "must build the same network on each call": name the file instead.
        shapes = [[tuple(w.shape) for w in model.weights] for model in models]
        if shapes[0] != shapes[1]:
            raise corrupt_file(
                directory / "target.keras",
                f"its weights have shapes {shapes[1]}, online.keras's {shapes[0]}",
            )
        adam = load_adam_file(directory / "optimizer.npz")
        space = gym.spaces.Box(-np.inf, np.inf, (meta.obs_dim,), np.float32)
        agent = cls(space, gym.spaces.Discrete(meta.n_actions), config, _SavedModels(models))
        target_flat = FlatNetwork(models[1]).read()
        size = (agent._net.size,)
        if target_flat.shape != size:
            raise corrupt_file(
                directory / "target.keras",
                f"{target_flat.size} parameters, online.keras has {size[0]}",
            )
        for key in ("adam_m", "adam_v"):
            if adam[key].shape != size:
                raise corrupt_file(
                    directory / "optimizer.npz",
                    f"{key} has shape {adam[key].shape}, the networks have {size[0]} parameters",
                )
        agent.state = agent.state._replace(
            target=target_flat,
            adam_m=adam["adam_m"],
            adam_v=adam["adam_v"],
            adam_step=np.float32(adam["adam_step"]),
            grad_steps=meta.grad_steps,
        )
        agent.rng.bit_generator.state = meta.rng_state
        agent.loaded_from = Path(directory).absolute()
        return agent

    def __repr__(self) -> str:
        return (
            f"DQNAgent(obs_dim={self.obs_dim}, n_actions={self.n_actions}, "
            f"loss={self.config.loss!r}, grad_steps={self.grad_steps})"
        )
