"""Thread settings: TensorFlow's pools can only be set before it runs; dqn says so, once."""

import subprocess
import sys

WARNS = (
    "import warnings, json\n"
    "{before}"
    "from dqn.runtime import configure_tensorflow\n"
    "with warnings.catch_warnings(record=True) as caught:\n"
    "    warnings.simplefilter('always')\n"
    "    configure_tensorflow(1)\n"
    "    configure_tensorflow(1)\n"
    "said = [str(w.message) for w in caught if w.category.__name__ == 'ThreadsWarning']\n"
    "print(json.dumps(said))\n"
)


def warnings_when(before: str) -> list[str]:
    import json

    code = WARNS.format(before=before)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_fresh_process_sets_the_threads_without_a_warning():
    assert warnings_when("") == []


def test_tensorflow_running_first_gives_one_warning_naming_the_cause_and_the_fix():
    started = "import tensorflow as tf\n(tf.constant([[1.0]]) @ tf.constant([[2.0]])).numpy()\n"
    messages = warnings_when(started)
    assert len(messages) == 1, messages  # once, though asked twice
    assert "TensorFlow was already running" in messages[0]
    assert "configure_tensorflow(1) before your first TensorFlow operation" in messages[0]
