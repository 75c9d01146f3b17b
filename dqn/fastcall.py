"""Calling a compiled TensorFlow function with as little Python in between as possible.

Why this module exists: on a CPU, ``ConcreteFunction.__call__`` spends most of its time in
Python, binding the arguments to the function's signature, flattening and packing nests and
checking types, which can cost more than one gradient step of a small network
(``python -m benchmarks.call_overhead`` measures both). When the agent trains after every env
step, that binding is most of the step. TensorFlow's own eager call path ends in one op
execution of the traced function by name, with the flat list of inputs followed by the
captured tensors; ``flat_caller`` goes there directly.

That entry point is not public API. ``flat_caller`` therefore checks that every piece it needs
exists, that it runs in eager mode, and that the fast call returns exactly what the public call
returns on the first arguments it sees; if anything is missing or differs it falls back to the
public call for good (slower, same results). Tests check both paths against each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import tensorflow as tf

Caller = Callable[..., list]


def public_caller(concrete) -> Caller:
    """``concrete(*tensors)`` with its outputs as a flat list (the reference path)."""

    def call(*tensors):
        return tf.nest.flatten(concrete(*tensors))

    return call


class _RuntimeCall:
    """The direct call. It holds ``concrete``: the function's definition leaves the context
    when the ConcreteFunction is garbage collected."""

    __slots__ = ("concrete", "name", "num_outputs", "captures", "attrs", "ctx", "execute")

    def __call__(self, *tensors):
        return self.execute(
            self.name, self.num_outputs, [*tensors, *self.captures], self.attrs, self.ctx
        )


def _runtime_caller(concrete) -> _RuntimeCall | None:
    """The direct call, or None if this TensorFlow does not have the pieces it needs."""
    try:
        from tensorflow.python.eager import context, execute

        ctx = context.context()
        if not ctx.executing_eagerly():
            return None
        atomic = concrete._inference_function  # the traced function registered in the context
        call = _RuntimeCall()
        call.concrete = concrete
        call.name = atomic.name.decode() if isinstance(atomic.name, bytes) else str(atomic.name)
        call.num_outputs = len(atomic.function_type.flat_outputs)
        call.captures = list(concrete.captured_inputs)
        # The same attributes (executor type, session config with thread settings) that
        # context.call_function passes on every call.
        call.attrs = tuple(itertools.chain(*ctx.function_call_options.as_attrs().items()))
        call.ctx = ctx
        call.execute = execute.quick_execute
    except (AttributeError, ImportError, TypeError):
        return None
    return call


def _same(a: Sequence, b: Sequence) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        x, y = x.numpy(), y.numpy()
        if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
            return False
    return True


def flat_caller(
    concrete, probe_args: Sequence[tf.Tensor] | None = None, probe_out: list | None = None
) -> Caller:
    """A function ``call(*tensors) -> list[tf.Tensor]`` that runs ``concrete``.

    ``tensors`` must be EagerTensors matching the concrete function's flat signature.
    With ``probe_args`` (a valid argument list), the fast path is accepted only if it returns
    the same bytes as the public call on them; pass arguments whose results do not depend on
    hidden state (the function must be pure for this check). ``probe_out``, a list, receives
    the public call's outputs on ``probe_args`` when the check got that far, so that a caller
    need not run the function a third time on the same arguments.
    """
    fast = _runtime_caller(concrete)
    if fast is None:
        return public_caller(concrete)
    if probe_args is not None:
        try:
            got = fast(*probe_args)
            want = public_caller(concrete)(*probe_args)
            if probe_out is not None:
                probe_out.extend(want)
            if not _same(got, want):
                return public_caller(concrete)
        except (TypeError, ValueError, tf.errors.OpError):
            return public_caller(concrete)
    return fast


def call_compiled(cache: dict, function, args: Sequence[tf.Tensor], key) -> list:
    """Run ``function`` (a ``tf.function``) on ``args`` through the flat caller kept in
    ``cache[key]``, tracing and checking it on first use (one per batch shape, say)."""
    fn = cache.get(key)
    if fn is None:
        concrete = function.get_concrete_function(*args)
        first: list = []
        fn = cache[key] = flat_caller(concrete, probe_args=args, probe_out=first)
        if first:  # the check already ran the function on these arguments (it is pure)
            return first
    return fn(*args)


def is_fast(caller: Caller) -> bool:
    """True if ``caller`` is the direct runtime call (for tests and benchmarks)."""
    return isinstance(caller, _RuntimeCall)


__all__ = ["call_compiled", "flat_caller", "is_fast", "public_caller"]
