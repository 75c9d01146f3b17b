"""TensorFlow process settings. Called by ``train`` before the first op runs."""

from __future__ import annotations

import os


def configure_tensorflow(num_threads: int) -> None:
    """Quiet TF's C++ logs and set its thread pools (a no-op once TF has started running ops).

    On a 2-core machine the small matrices of a DQN are fastest on one thread: more threads add
    synchronisation but no useful parallel work (measured by ``scripts/bench.py``).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == num_threads:
        return
    try:
        threading.set_intra_op_parallelism_threads(num_threads)
        threading.set_inter_op_parallelism_threads(num_threads)
    except RuntimeError:
        pass  # TF already initialised in this process; its first setting stands
