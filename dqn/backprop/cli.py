"""``dqn-backprop``: run the four demos, print their numbers, write one PNG per demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from dqn.backprop import demos, plots
from dqn.terminal import command


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        # Options written whole, as in every command of dqn's (--se read as --seed).
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):  # one line and exit code 2, instead of usage + message
        raise _UsageError(message)


def _version() -> str:
    # The installed distribution's: the lab imports nothing of dqn's outside itself but
    # dqn.terminal (which imports no TensorFlow).
    from importlib.metadata import PackageNotFoundError, version

    try:  # the distribution's name is the top package's, spelt out by no import of it
        return version(__name__.partition(".")[0])
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def _folder(text: str) -> Path:
    """--out with a leading ``~`` expanded, as the other commands do: the shell leaves it in
    ``--out=~/figs``, and a folder named ``~`` in the working folder is a trap (``rm -rf ~``).
    An empty name is refused: it wrote the figures into the working folder."""
    if not text:
        raise argparse.ArgumentTypeError("--out is a folder's name, got ''")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # pathlib's "Could not determine home directory."
        raise argparse.ArgumentTypeError(
            f"{text!r} starts with a home folder that cannot be found: give the whole path"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dqn-backprop",
        description="Run the four backprop demos, print their "
        "numbers and write one PNG figure per demo.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument(
        "--out",
        type=_folder,
        default=Path("results/backprop"),
        help="directory for the four PNG figures (default: results/backprop)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of every demo (default 0, the one the docs quote)"
    )
    return p


# The figures main writes, one per demo: all that --out may hold before it writes them.
FIGURES = (
    "sigmoid_saturation.png",
    "dead_relus.png",
    "rnn_gradients.png",
    "clipped_delta_vs_huber.png",
)


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    # Text in the first column reads better left-aligned, numbers right-aligned.
    fmt = "  ".join([f"{{:<{widths[0]}}}"] + [f"{{:>{w}}}" for w in widths[1:]])
    lines = [title] if title else []
    lines += [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*r) for r in rows]) + "\n"


def _vec(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x + 0.0:g}" for x in v) + "]"  # + 0.0 turns -0 into 0


def report_sigmoid(r: demos.SigmoidResult) -> str:
    rows = [
        [
            name,
            f"{i.preact_std:.1f}",
            f"[{i.preact_range[0]:.0f}, {i.preact_range[1]:.0f}]",
            f"{i.mean_local_grad:.3g}",
            f"{100 * i.frac_below_1e6:.1f}%",
            f"{i.weight_grad_norm:.3g}",
            f"{i.weight_grad_norm / i.weight_norm:.3g}",
        ]
        for name, i in r.inits.items()
    ]
    out = f"max sigmoid'(x) on a grid over [-20, 20]: {r.max_local_grad!r} at x = {r.argmax_x:g}\n"
    out += _table(
        "", ["init", "z std", "z range", "mean sigmoid'", "< 1e-6", "||dW||", "||dW||/||W||"], rows
    )
    rows = [
        [str(d), f"{q:.3e}", f"{b:.3e}", f"{q / b:.3f}"]
        for d, q, b in zip(r.depths, r.depth_ratio, r.depth_bound)
    ]
    return out + _table(
        "\nthrough L sigmoid layers, orthogonal weights (spectral norm 1):",
        ["L", "||dx_0||/||dx_L||", "4^-L", "ratio/bound"],
        rows,
    )


def report_dead_relus(r: demos.DeadReluResult) -> str:
    rows = [
        [
            f"{lr:g}",
            f"{r.final_loss[lr]:.4f}",  # of the trained weights, as the other columns
            f"{r.accuracy[lr]:.3f}",
            f"{r.dead_fraction[lr]:.2f}",
        ]
        for lr in r.learning_rates
    ]
    out = _table(
        "full-batch SGD on 2-class spirals, H = 100, He init, "
        f"{len(r.losses[r.learning_rates[0]])} steps:",
        ["lr", "final loss", "accuracy", "dead fraction"],
        rows,
    )
    return out + (
        f"\nlr {r.probe_lr:g} run, {r.n_dead_probed} dead units: max |grad| of their weights = "
        f"{r.dead_grad_max_abs:g} (live units: {r.live_grad_max_abs:.3g})\n"
        f"after {r.extra_steps} more SGD steps: dead weights bit-identical = "
        f"{r.dead_weights_unchanged}; live weights moved up to {r.live_weights_changed:.3g}\n"
    )


def report_rnn(r: demos.RNNResult) -> str:
    shown = [t for t in (1, 10, 25, 50) if t <= r.horizons[-1]]
    rows = [[f"{rho:g}"] + [f"{r.ratio[rho][t - 1]:.4g}" for t in shown] for rho in r.rhos]
    out = _table(
        "||dL/dh0|| / ||dL/dh_T||, W_hh = rho Q, zero inputs (= rho^T, max rel. "
        f"error {r.max_rel_err_vs_rho_T:.1e}):",
        ["rho"] + [f"T={t}" for t in shown],
        rows,
    )
    rows = [
        [f"{rho:g}"] + [f"{r.ratio_with_inputs[(rho, s)]:.3g}" for s in r.input_scales]
        for rho in r.rhos
    ]
    out += _table(
        f"\nsame ratio at T = {r.horizons[-1]} with N(0, 1) inputs, by input scale:",
        ["rho"] + [f"x{s:g}" for s in r.input_scales],
        rows,
    )
    return out + (
        f"\nclipping the exploding gradient of (dWx, dWh, db) at rho {r.exploding_case[0]:g}, "
        f"input scale {r.exploding_case[1]:g} (global norm {r.raw_grad_norm:.4g}) at "
        f"{r.clip_norm:g}:\n"
        f"  by global norm: norm {r.global_clip_norm:.4g}, cosine {r.global_clip_cosine:.4f}\n"
        f"  element-wise  : norm {r.elementwise_clip_norm:.4g}, "
        f"cosine {r.elementwise_clip_cosine:.4f}\n"
        f"  {_vec(r.example)} -> by norm {_vec(np.round(r.example_global, 3))}, "
        f"element-wise {_vec(r.example_elementwise)} "
        f"(cosine {r.example_elementwise_cosine:.3f})\n"
    )


def report_losses(r: demos.LossesResult) -> str:
    out = (
        f"clipped_delta gradient is exactly 0 for |e| > {r.bound:g} and only there: "
        f"{r.zero_grad_matches_outside} (smallest such |e| on the grid: "
        f"{r.zero_grad_min_abs:g})\n"
        f"samples with zero gradient: Student-t(df={r.heavy_tail_df:g}) "
        f"{100 * r.heavy_tail_zero_frac:.1f}% (exact {100 * r.heavy_tail_expected:.1f}%), "
        f"N(0, 1) {100 * r.gaussian_zero_frac:.1f}%, n = {r.heavy_tail_n}\n"
    )
    rows = [[name, f"{r.example_value[name]:g}", _vec(r.example_dq[name])] for name in r.example_dq]
    # Without the 0.5: the 2016 code's mean(clip(e)^2) and plain MSE mean(e^2) (twice the above).
    rows += [
        [label, f"{r.example_value_2016[name]:g}", _vec(r.example_dq_2016[name])]
        for label, name in (
            ("mean(clip(e)^2), 2016 code", "clipped_delta"),
            ("mean(e^2), MSE", "l2"),
        )
    ]
    return out + _table(
        f"\nworked example, td_error = target - Q = {_vec(r.example_td_error)}, mean over 4:",
        ["loss", "value", "dL/dQ"],
        rows,
    )


def _check_writable(folder: Path) -> None:
    """OSError (PermissionError, a read-only disk) if no file can be made in ``folder``: checked
    before the first demo runs and prints, not at its figure. A file is made and removed, as
    os.access says yes to root whatever the folder's mode."""
    import tempfile

    with tempfile.NamedTemporaryFile(dir=folder, prefix=".dqn-backprop-"):
        pass


def _taken(path: Path) -> bool:
    """Whether a figure's name is held by something that is not a regular file."""
    return (path.exists() or path.is_symlink()) and not path.is_file()


@command  # `dqn-backprop | head` ends the reading, not the figures
def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as err:  # worded as the other commands word theirs
        print(f"dqn-backprop: error: {err} (see dqn-backprop --help)", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help, --version
        return int(exit_.code or 0)
    if not 0 <= args.seed < 2**32:  # numpy's seeding range; checked before --out is created
        print(
            f"dqn-backprop: error: --seed must be in [0, 2**32 - 1], got {args.seed}",
            file=sys.stderr,
        )
        return 2
    # Only the four figures are ever replaced: in a folder holding anything else (a run, a
    # project's files) they would be written among files that are not the lab's.
    try:  # also a name too long for the filesystem, which is_dir() would raise for
        foreign = sorted(
            p.name for p in args.out.iterdir() if p.name not in FIGURES and p.name[:1] != "."
        )
    except (FileNotFoundError, NotADirectoryError):
        foreign = []  # a new folder, or a file there: mkdir below says so
    except OSError as err:
        print(f"dqn-backprop: error: cannot use --out {args.out}: {err.strerror}", file=sys.stderr)
        return 2
    if foreign:
        # dqn.errors.few's wording (the lab imports no dqn module but dqn.terminal).
        more = f" and {len(foreign) - 3} more" if foreign[3:] else ""
        shown = ", ".join(foreign[:3]) + more
        print(
            f"dqn-backprop: error: --out {args.out} holds files the demos do not write "
            f"({shown}): give the figures their own folder",
            file=sys.stderr,
        )
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        _check_writable(args.out)
    except OSError as err:
        print(f"dqn-backprop: error: cannot use --out {args.out}: {err.strerror}", file=sys.stderr)
        return 2
    # A figure's name taken by a folder (or another kind of file) failed after the demos before
    # it had run and printed, with a message that did not name it.
    taken = [name for name in FIGURES if _taken(args.out / name)]
    if taken:
        print(
            f"dqn-backprop: error: --out {args.out} holds {taken[0]}, which is not a file: "
            "give the figures their own folder",
            file=sys.stderr,
        )
        return 2

    steps = [
        (
            "1. sigmoid saturation",
            demos.sigmoid_saturation,
            report_sigmoid,
            plots.plot_sigmoid,
            "sigmoid_saturation.png",
        ),
        (
            "2. dead ReLUs",
            demos.dead_relus,
            report_dead_relus,
            plots.plot_dead_relus,
            "dead_relus.png",
        ),
        ("3. RNN gradients", demos.rnn_gradients, report_rnn, plots.plot_rnn, "rnn_gradients.png"),
        (
            "4. clipped delta vs Huber",
            demos.clipped_delta_vs_huber,
            report_losses,
            plots.plot_losses,
            "clipped_delta_vs_huber.png",
        ),
    ]
    try:
        for title, run, report, plot, filename in steps:
            result = run(seed=args.seed)
            print(f"== {title} ==\n{report(result)}")
            print(f"figure: {plot(result, args.out / filename)}\n")
    except OSError as err:  # a full disk while a figure is written (each is written whole)
        print(
            f"dqn-backprop: error: cannot write to {args.out}: {err.strerror} ({filename})",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the figures written so far are whole
        print("dqn-backprop: error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
