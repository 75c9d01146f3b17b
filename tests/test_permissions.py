"""What dqn writes is readable as the user's umask says, like any file ``open`` makes: files
written through a temporary name (mkstemp: 0600, mkdtemp: 0700) are given those permissions
before they are renamed into place, so a colleague or a server running as another account can
read a run, its checkpoints and a saved agent."""

import os
import stat

import pytest

from dqn import DQNConfig, train
from dqn.io import umask
from tests.conftest import TINY_RUN


@pytest.fixture(params=[0o022, 0o027, 0o002])  # 002: a group that shares runs
def mask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def test_umask_reads_the_process_umask_and_leaves_it(mask):
    assert umask() == mask
    assert umask() == mask  # reading it did not change it


def test_a_run_folder_and_a_saved_agent_have_the_umasks_permissions(tmp_path, mask):
    result = train(DQNConfig(**TINY_RUN, learner="numpy"), run_dir=tmp_path / "run", progress=False)
    result.agent.save(tmp_path / "agent")
    from dqn.export import export_policy

    export_policy(result.agent, tmp_path / "exported")  # TensorFlow made its folders 0755
    paths = [p for p in tmp_path.rglob("*") if ".lock" != p.name]
    files = [p for p in paths if p.is_file()]
    folders = [p for p in paths if p.is_dir()]
    assert {"config.yaml", "metrics.csv", "summary.json", "manifest.json"} <= {
        p.name for p in files
    }
    assert any(p.parent.name == "checkpoints" for p in folders)
    assert {"tb", "variables", "assets"} <= {p.name for p in folders}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    for path in folders:
        assert stat.S_IMODE(path.stat().st_mode) == 0o777 & ~mask, path
