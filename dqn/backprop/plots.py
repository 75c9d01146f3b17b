"""One figure per demo, written to a PNG file.

matplotlib is imported inside ``_pyplot`` with the non-interactive Agg backend, so importing
this module (or the CLI) costs nothing and works on a machine without a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dqn.backprop.demos import DeadReluResult, LossesResult, RNNResult, SigmoidResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write to a temporary file, then rename it: a lab stopped mid-write (Ctrl-C, `timeout`)
    leaves the figure as it was, never a truncated PNG."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    try:
        fig.savefig(tmp, dpi=110)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        _pyplot().close(fig)
    return path


def plot_sigmoid(r: SigmoidResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    ax[0].plot(r.grid, r.local_grad)
    ax[0].axhline(0.25, ls=":", c="k")
    ax[0].set(xlim=(-10, 10), xlabel="x", ylabel="sigmoid'(x)", title="max 0.25 at x = 0")
    floor = 1e-300  # log scale: exact zeros (sigmoid rounded to 1) are drawn at the floor
    bins = np.linspace(-300, 0, 61)
    for name, init in r.inits.items():
        ax[1].hist(np.log10(np.maximum(init.local_grads, floor)), bins=bins, alpha=0.6, label=name)
    ax[1].axvline(-6, ls=":", c="k")
    ax[1].set(
        xlabel="log10 sigmoid'(z) per unit and sample",
        ylabel="count",
        title="local gradients: +/-400 init vs Glorot",
    )
    ax[1].legend()
    ax[2].semilogy(r.depths, r.depth_ratio, "o-", label="measured ||dx_0|| / ||dx_L||")
    ax[2].semilogy(r.depths, r.depth_bound, "k--", label="bound 4^-L")
    ax[2].set(xlabel="sigmoid layers L (orthogonal weights)", title="gradient through depth")
    ax[2].legend()
    return _save(fig, path)


def plot_dead_relus(r: DeadReluResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for lr in r.learning_rates:
        ax[0].semilogy(r.losses[lr], label=f"lr {lr:g}")
        ax[1].plot(r.dead_fraction_curve[lr], label=f"lr {lr:g}")
    ax[0].set(xlabel="SGD step", ylabel="cross-entropy", title="training loss (spirals)")
    ax[1].set(
        xlabel="SGD step",
        ylabel="fraction of dead hidden units",
        ylim=(-0.05, 1.05),
        title="dead ReLUs never come back",
    )
    for a in ax:
        a.legend()
    return _save(fig, path)


def plot_rnn(r: RNNResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for rho in r.rhos:
        (line,) = ax[0].semilogy(r.horizons, r.ratio[rho], "o", ms=3, label=f"rho {rho:g}")
        ax[0].semilogy(r.horizons, rho**r.horizons, "-", c=line.get_color(), lw=0.8)
    ax[0].set(
        xlabel="T",
        ylabel="||dL/dh0|| / ||dL/dh_T||",
        title="zero inputs: measured (dots) = rho^T (lines)",
    )
    ax[0].legend()
    x = np.arange(len(r.input_scales))
    width = 0.8 / len(r.rhos)
    for i, rho in enumerate(r.rhos):
        vals = [r.ratio_with_inputs[(rho, s)] for s in r.input_scales]
        ax[1].bar(x + i * width, np.log10(vals), width, label=f"rho {rho:g}")
    ax[1].axhline(0, c="k", lw=0.8)
    ax[1].set_xticks(x + 0.4 - width / 2, [f"{s:g}" for s in r.input_scales])
    ax[1].set(
        xlabel="input scale",
        ylabel=f"log10 ratio at T = {r.horizons[-1]}",
        title="with inputs, tanh saturation can make rho > 1 vanish",
    )
    ax[1].legend()
    return _save(fig, path)


def plot_losses(r: LossesResult, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for name in r.value:
        ax[0].plot(r.grid, r.value[name], label=name)
        ax[1].plot(r.grid, r.grad[name], label=name)
    ax[0].set(xlabel="TD error", ylabel="loss", ylim=(0, 4.6), title="value")
    ax[1].set(xlabel="TD error", ylabel="d loss / d TD error", title="gradient")
    ax[1].axvspan(r.grid[0], -r.bound, color="r", alpha=0.08)
    ax[1].axvspan(r.bound, r.grid[-1], color="r", alpha=0.08, label="clipped_delta grad = 0")
    for a in ax[:2]:
        a.legend(fontsize=8)
    labels = ["clipped delta", "Huber", "L2"]
    dq = [r.example_dq["clipped_delta"], r.example_dq["huber"], r.example_dq["l2"]]
    x = np.arange(r.example_td_error.size)
    for i, (label, g) in enumerate(zip(labels, dq)):
        ax[2].bar(x + (i - 1) * 0.27, g, 0.27, label=label)
    ax[2].set_xticks(x, [f"{e:g}" for e in r.example_td_error])
    ax[2].set(
        xlabel="TD error (target - Q)",
        ylabel="dL/dQ (0.5-scaled, mean over 4)",
        title="worked example",
    )
    ax[2].axhline(0, c="k", lw=0.8)
    ax[2].legend(fontsize=8)
    return _save(fig, path)
