"""Benchmarks of ``dqn``: against Stable-Baselines3, and of its own costs.

Not part of the installed package (the wheel holds ``dqn*`` only), so that ``dqn`` never needs
torch or Stable-Baselines3. Run from the repository root:

    python -m benchmarks.bench               # dqn vs SB3 (``make bench``; needs the "bench" extra)
    python -m benchmarks.call_overhead       # one update, and TensorFlow's per-call overhead
    python -m benchmarks.diagnostics_cost    # training time with the diagnostics on and off
    python -m benchmarks.population_scaling  # a population's gradient step against its size
                                             # (--processes 2: alone and two at once)
    python -m benchmarks.learner_anatomy     # a population step's matmuls against the floor's rate
    python -m benchmarks.first_call          # a population learner's first call (compilation)
    python -m benchmarks.subnormals          # dead ReLUs and the subnormal Adam moments they leave

The library code of ``benchmarks.bench``, one concept per module:
``settings`` (the regimes' hyperparameters for both libraries), ``floor`` (FLOP counts and the
compute floor), ``clock`` (the per-step wall clock), ``worker`` (one job per process),
``dqn_worker`` / ``sb3_worker`` (the jobs of each library), ``regimes`` (which jobs each regime
runs) and ``table`` (the markdown table).
"""
