"""dqn-backprop end to end, its argument errors, and the no-TensorFlow import guarantee."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dqn.backprop import cli
from dqn.backprop.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIGURES = [
    "sigmoid_saturation.png",
    "dead_relus.png",
    "rnn_gradients.png",
    "clipped_delta_vs_huber.png",
]


def test_importing_the_backprop_package_does_not_import_tensorflow_or_pyplot():
    code = (
        "import sys\n"
        "import dqn.backprop, dqn.backprop.layers, dqn.backprop.losses, dqn.backprop.mlp\n"
        "import dqn.backprop.gradcheck, dqn.backprop.demos, dqn.backprop.plots\n"
        "import dqn.backprop.demos.sigmoid, dqn.backprop.demos.dead_relu\n"
        "import dqn.backprop.demos.rnn, dqn.backprop.demos.td_losses\n"
        "import dqn.backprop.cli\n"
        "print('tensorflow' in sys.modules, 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_cli_prints_the_four_tables_and_writes_four_pngs(tmp_path, capsys):
    out_dir = tmp_path / "figs"
    assert main(["--out", str(out_dir)]) == 0
    stdout = capsys.readouterr().out
    for name in FIGURES:
        data = (out_dir / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert sorted(os.listdir(out_dir)) == sorted(cli.FIGURES)  # all that --out may hold
    # A number per demo that the demo tests also assert.
    assert "max sigmoid'(x) on a grid over [-20, 20]: 0.25 at x = 0" in stdout
    assert "dead weights bit-identical = True" in stdout
    assert "6.376e+08" in stdout  # 1.5^50
    assert "[0.25, 0.25, -0.125, -0.25]" in stdout and "1.15625" in stdout
    assert "[0, 0.5, -0.25, 0]" in stdout and "[1.5, 0.5, -0.25, -1]" in stdout


@pytest.mark.parametrize("argv", [["--bogus"], ["--seed", "x"], ["--out"], ["--seed", "-1"]])
def test_bad_arguments_give_one_line_and_exit_code_2(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("dqn-backprop: error:")


def test_a_bad_seed_is_refused_before_out_is_created(tmp_path, capsys):
    assert main(["--seed", str(2**32), "--out", str(tmp_path / "figs")]) == 2
    assert "--seed must be in [0, 2**32 - 1]" in capsys.readouterr().err
    assert not (tmp_path / "figs").exists()


def test_out_holding_other_files_is_refused_and_left_as_it_was(tmp_path, capsys):
    # A rerun into the lab's own folder replaces its figures; anything else there is not its.
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "dead_relus.png").write_bytes(b"old")
    assert main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"dqn-backprop: error: --out {tmp_path} holds files the demos do not write (notes.txt): "
        "give the figures their own folder\n"
    )
    assert sorted(os.listdir(tmp_path)) == ["dead_relus.png", "notes.txt"]
    assert (tmp_path / "dead_relus.png").read_bytes() == b"old"


def test_a_crowded_out_names_three_of_its_files_and_counts_the_rest(tmp_path, capsys):
    for name in ("a.txt", "b.txt", "c.txt", "d.txt", "e.txt"):
        (tmp_path / name).write_text("")
    assert main(["--out", str(tmp_path)]) == 2
    assert "(a.txt, b.txt, c.txt and 2 more)" in capsys.readouterr().err


def test_out_holding_only_hidden_files_or_not_made_yet_is_accepted(tmp_path, monkeypatch):
    from dqn.backprop import demos

    def stopped(seed):  # stops main once --out is accepted and made, before any demo runs
        raise KeyboardInterrupt

    monkeypatch.setattr(demos, "sigmoid_saturation", stopped)
    (tmp_path / ".DS_Store").write_bytes(b"")
    assert main(["--out", str(tmp_path)]) == 130
    nested = tmp_path / "a" / "b" / "figs"
    assert main(["--out", str(nested)]) == 130
    assert nested.is_dir()


def test_a_tilde_the_shell_left_in_out_is_the_home_folder(tmp_path, monkeypatch, capsys):
    # bash leaves the ~ of "--out=~/figs" as typed: a folder named "~" appeared in the working
    # folder, where rm -rf ~ to delete it deletes the home folder.
    from dqn.backprop import demos

    def stopped(seed):  # stops main once --out is made, before any demo runs
        raise KeyboardInterrupt

    monkeypatch.setattr(demos, "sigmoid_saturation", stopped)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(["--out=~/figs"]) == 130
    assert (tmp_path / "home" / "figs").is_dir() and list((tmp_path / "work").iterdir()) == []
    assert main(["--out=~no_such_user_of_dqn/figs"]) == 2
    assert "starts with a home folder that cannot be found" in capsys.readouterr().err


def test_each_printed_number_is_read_from_its_own_field():
    from dataclasses import replace

    import numpy as np

    from dqn.backprop import demos

    # Tiny runs, then distinct values in every field a column could be read from by mistake.
    relu = replace(
        demos.dead_relus(learning_rates=(1.0,), probe_lr=1.0, n_per_class=5, hidden=4, steps=2),
        losses={1.0: np.array([0.7, 0.875])},  # before each step: not the trained net's
        final_loss={1.0: 0.125},  # after the last step, as accuracy and dead fraction
        dead_fraction_curve={1.0: np.array([0.0, 0.25])},  # before each step, not after
        dead_fraction={1.0: 0.5},
        accuracy={1.0: 0.75},
    )
    assert ["1", "0.1250", "0.750", "0.50"] in [
        r.split() for r in cli.report_dead_relus(relu).splitlines()
    ]
    sig = demos.sigmoid_saturation(n=4, d_in=10, d_out=3, max_depth=1)
    sig = replace(
        sig, inits={"glorot": replace(sig.inits["glorot"], weight_grad_norm=2.0, weight_norm=8.0)}
    )
    [row] = [r.split() for r in cli.report_sigmoid(sig).splitlines() if r.startswith("glorot")]
    assert row[-2:] == ["2", "0.25"]  # ||dW|| and ||dW|| / ||W||
    losses = replace(
        demos.clipped_delta_vs_huber(heavy_tail_n=100),
        heavy_tail_zero_frac=0.5,
        gaussian_zero_frac=0.25,
    )
    text = cli.report_losses(losses)
    assert "Student-t(df=2) 50.0% (exact 42.3%), N(0, 1) 25.0%" in text
    assert "and only there: True" in text
    assert "and only there: False" in cli.report_losses(
        replace(losses, zero_grad_matches_outside=False)
    )
    # The depth table: each column from its own field (ratio, bound, their quotient).
    sig = replace(sig, depths=(3,), depth_ratio=np.array([0.5]), depth_bound=np.array([0.25]))
    depth = cli.report_sigmoid(sig).splitlines()[-1].split()
    assert depth == ["3", "5.000e-01", "2.500e-01", "2.000"]
    # The RNN's clipping lines: a distinct value in every field they read.
    rnn = replace(
        demos.rnn_gradients(rhos=(1.5,), max_t=2, hidden=4, d_in=2, n=2, input_scales=(0.1,)),
        raw_grad_norm=11.0,
        clip_norm=5.0,
        global_clip_norm=4.5,
        global_clip_cosine=0.875,
        elementwise_clip_norm=3.25,
        elementwise_clip_cosine=0.625,
        example_elementwise_cosine=0.375,
    )
    text = cli.report_rnn(rnn)
    assert "(global norm 11) at 5:" in text
    assert "by global norm: norm 4.5, cosine 0.8750" in text
    assert "element-wise  : norm 3.25, cosine 0.6250" in text
    assert "(cosine 0.375)" in text


def test_out_where_no_figure_can_be_written_is_refused_before_any_demo_runs(
    tmp_path, capsys, monkeypatch
):
    # A read-only --out (root passes any mode, so the denial is simulated), or a figure's
    # name held by a folder: refused after demo 1 had run and printed its tables.
    (tmp_path / "taken" / "dead_relus.png").mkdir(parents=True)
    assert main(["--out", str(tmp_path / "taken")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        f"dqn-backprop: error: --out {tmp_path / 'taken'} holds dead_relus.png, which is not a "
        "file: give the figures their own folder\n"
    )

    def denied(folder):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli, "_check_writable", denied)
    assert main(["--out", str(tmp_path / "ro")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith(
        "cannot use --out " + str(tmp_path / "ro") + ": Permission denied\n"
    )


def test_an_empty_out_is_refused_not_the_working_folder(tmp_path, capsys, monkeypatch):
    # dqn-train and dqn-export refuse an empty folder name; this wrote the figures into ".".
    monkeypatch.chdir(tmp_path)
    assert main(["--out", ""]) == 2
    assert "--out is a folder's name, got ''" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_writable_check_leaves_nothing_behind(tmp_path):
    cli._check_writable(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_file_is_an_argument_error(tmp_path, capsys):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    assert main(["--out", str(not_a_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_out_with_a_name_too_long_for_the_filesystem_is_one_line(tmp_path, capsys):
    out = tmp_path / ("n" * 300)  # a file name holds at most 255 bytes
    assert main(["--out", str(out)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"dqn-backprop: error: cannot use --out {out}: File name too long"
    assert not list(tmp_path.iterdir())


def test_script_wrapper_exits_2_without_traceback():
    # The script's own directory is sys.path[0]; make sure this checkout's dqn is importable.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "backprop_demos.py"), "--nope"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "dqn-backprop: error: unrecognized arguments: --nope (see dqn-backprop --help)"
    )


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    assert "--out" in capsys.readouterr().out


def test_a_figure_interrupted_while_written_keeps_the_previous_one(tmp_path, monkeypatch):
    """savefig wrote the PNG in place: Ctrl-C half-way left a truncated file under its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from dqn.backprop.plots import _save

    path = tmp_path / "figure.png"
    _save(plt.figure(), path)
    before = path.read_bytes()

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _save(plt.figure(), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


@pytest.mark.parametrize(
    "stop, code, line",
    [
        (KeyboardInterrupt, 130, "dqn-backprop: error: interrupted"),
        (OSError(28, "No space left"), 2, "dqn-backprop: error: cannot write to {out}: No space"),
    ],
    ids=["Ctrl-C", "full disk"],
)
def test_a_demo_stopped_by_ctrl_c_or_a_full_disk_prints_one_line(
    stop, code, line, tmp_path, monkeypatch, capsys
):
    # Ctrl-C printed a KeyboardInterrupt traceback; a figure that could not be written, an
    # OSError one. The figures already written stay whole (each is written, then renamed).
    from dqn.backprop import demos

    def stopped(seed):
        raise stop

    monkeypatch.setattr(demos, "dead_relus", stopped)
    assert main(["--out", str(tmp_path)]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(line.format(out=tmp_path)), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sigmoid_saturation.png"]


def test_a_reader_that_goes_away_ends_the_reading_not_the_figures(tmp_path):
    """`dqn-backprop | head -1`: the pipe's reader is gone after one line. Its BrokenPipeError,
    an OSError, was reported as a failure to write --out, and the later figures were not made."""
    from tests.conftest import buffered_env

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write to write_end now fails with EPIPE
    code = "import sys; from dqn.backprop.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--out", str(tmp_path / "figs")],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=buffered_env(),  # block-buffered, as in a user's shell
        timeout=300,
    )
    os.close(write_end)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert len(list((tmp_path / "figs").glob("*.png"))) == 4


def test_the_seed_asked_for_reaches_every_demo(tmp_path, monkeypatch):
    from dqn.backprop import demos, plots

    seeds = {}

    def recording(name):
        def run(seed):
            seeds[name] = seed  # no demo, report or figure runs: only the seed is looked at

        return run

    for name in ("sigmoid_saturation", "dead_relus", "rnn_gradients", "clipped_delta_vs_huber"):
        monkeypatch.setattr(demos, name, recording(name))
    for name in ("report_sigmoid", "report_dead_relus", "report_rnn", "report_losses"):
        monkeypatch.setattr(cli, name, lambda result: "")
    for name in ("plot_sigmoid", "plot_dead_relus", "plot_rnn", "plot_losses"):
        monkeypatch.setattr(plots, name, lambda result, path: path)
    assert main(["--seed", "7", "--out", str(tmp_path)]) == 0
    assert seeds == dict.fromkeys(seeds, 7) and len(seeds) == 4


def test_a_folder_of_four_foreign_files_names_three_and_one_more(tmp_path, capsys):
    for name in ("a.txt", "b.txt", "c.txt", "d.txt"):
        (tmp_path / name).write_text("")
    assert main(["--out", str(tmp_path)]) == 2
    assert "(a.txt, b.txt, c.txt and 1 more)" in capsys.readouterr().err


def test_a_dangling_symlink_named_like_a_figure_is_refused(tmp_path, capsys, monkeypatch):
    # exists() is False for it, yet writing the figure would follow it to wherever it points.
    from dqn.backprop import demos

    def stopped(seed):
        raise KeyboardInterrupt

    monkeypatch.setattr(demos, "sigmoid_saturation", stopped)
    (tmp_path / "dead_relus.png").symlink_to(tmp_path / "nowhere")
    assert main(["--out", str(tmp_path)]) == 2
    assert "holds dead_relus.png, which is not a file" in capsys.readouterr().err


def test_every_cell_of_the_sigmoid_table_is_read_from_its_own_field():
    from dataclasses import replace

    from dqn.backprop import demos

    sig = demos.sigmoid_saturation(n=4, d_in=10, d_out=3, max_depth=1)
    glorot = replace(
        sig.inits["glorot"],
        preact_std=3.5,
        preact_range=(-7.0, 9.0),
        mean_local_grad=0.125,
        frac_below_1e6=0.375,
        weight_grad_norm=2.0,
        weight_norm=8.0,
    )
    [row] = [
        r.split()
        for r in cli.report_sigmoid(replace(sig, inits={"glorot": glorot})).splitlines()
        if r.startswith("glorot")
    ]
    # z std, z range, mean sigmoid', % below 1e-6, ||dW||, ||dW||/||W||
    assert row == ["glorot", "3.5", "[-7,", "9]", "0.125", "37.5%", "2", "0.25"]


def test_the_dead_relu_lines_read_each_number_from_its_own_field():
    from dataclasses import replace

    import numpy as np

    from dqn.backprop import demos

    relu = replace(
        demos.dead_relus(learning_rates=(1.0,), probe_lr=1.0, n_per_class=5, hidden=4, steps=2),
        losses={1.0: np.array([0.7, 0.875, 0.5])},  # one loss before each of 3 steps
        probe_lr=3.0,
        n_dead_probed=7,
        dead_grad_max_abs=0.0,
        live_grad_max_abs=0.375,
        extra_steps=5,
        dead_weights_unchanged=True,
        live_weights_changed=0.0625,
    )
    text = cli.report_dead_relus(relu)
    assert text.splitlines()[0].endswith("He init, 3 steps:")
    assert text.endswith(
        "\nlr 3 run, 7 dead units: max |grad| of their weights = 0 (live units: 0.375)\n"
        "after 5 more SGD steps: dead weights bit-identical = True; live weights moved up to "
        "0.0625\n"
    )


def test_the_rnn_input_table_and_clipping_lines_read_each_number_from_its_own_field():
    from dataclasses import replace

    import numpy as np

    from dqn.backprop import demos

    rnn = replace(
        demos.rnn_gradients(rhos=(1.5,), max_t=2, hidden=4, d_in=2, n=2, input_scales=(0.1, 2.0)),
        ratio_with_inputs={(1.5, 0.1): 3.0, (1.5, 2.0): 0.25},
        exploding_case=(1.5, 0.1),
        example=np.array([3.0, 40.0, -0.5]),
        example_global=np.array([0.25, 4.5, -0.0001]),  # rounds to -0: printed as 0
        example_elementwise=np.array([3.0, 5.0, -0.5]),
    )
    lines = cli.report_rnn(rnn).splitlines()
    table = lines.index("same ratio at T = 2 with N(0, 1) inputs, by input scale:")
    assert lines[table + 1].split() == ["rho", "x0.1", "x2"]
    assert lines[table + 3].split() == ["1.5", "3", "0.25"]  # a column per input scale
    assert "at rho 1.5, input scale 0.1 (global norm" in lines[table + 5]
    assert "  [3, 40, -0.5] -> by norm [0.25, 4.5, 0], element-wise [3, 5, -0.5] (cosine" in (
        "\n".join(lines)
    )


def test_the_losses_lines_name_the_smallest_zero_gradient_error_and_the_sample_count():
    from dataclasses import replace

    from dqn.backprop import demos

    losses = replace(
        demos.clipped_delta_vs_huber(heavy_tail_n=100),
        zero_grad_min_abs=1.25,  # not the bound (1)
        heavy_tail_zero_frac=0.5,
        gaussian_zero_frac=0.25,
    )
    text = cli.report_losses(losses)
    assert "(smallest such |e| on the grid: 1.25)\n" in text
    assert "N(0, 1) 25.0%, n = 100\n" in text
