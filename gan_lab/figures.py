"""Pictures of a run: sample grids, single-image PNGs and the loss-curve figure."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Generator output in [-1, 1], shape (N, 28, 28[, 1]) -> uint8 (N, 28, 28)."""
    images = np.asarray(images, dtype=np.float32).reshape(len(images), 28, 28)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, cols: int = 10, pad: int = 2) -> np.ndarray:
    """uint8 (N, H, W) -> one uint8 picture, row-major, ``cols`` per row, white padding."""
    n, h, w = images.shape
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, cols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = image
    return grid


def label_grid(images: np.ndarray, labels: np.ndarray, cols: int = 10) -> np.ndarray:
    """One row per distinct label (ascending), up to ``cols`` images each."""
    rows = [images[labels == label][:cols] for label in np.unique(labels)]
    blank = np.full((cols, *images.shape[1:]), 255, dtype=np.uint8)
    return image_grid(np.concatenate([np.concatenate([row, blank[len(row) :]]) for row in rows]), cols)


def sample_grid(images: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """The grid a run shows: up to 10 x 10 samples, square when their number is (4 x 4 for 16), or for
    conditional samples one row per label."""
    shown = images[:100]
    return image_grid(shown, cols=math.isqrt(len(shown) - 1) + 1) if labels is None else label_grid(images, labels)


def save_png(picture: np.ndarray, path: Path) -> None:
    """Write a uint8 picture (grayscale H x W or RGB H x W x 3) as PNG, byte-identical for identical pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path, format="PNG")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rgb(fig) -> np.ndarray:
    """Render a matplotlib figure to an RGB uint8 array and close it."""
    fig.canvas.draw()
    picture = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    _pyplot().close(fig)
    return picture


def _class_ticks(axis, classes: Sequence[str]) -> None:
    """Tick each class by name; names longer than a digit stand at an angle."""
    rotation = 0 if max(map(len, classes)) <= 2 else 45
    axis.set_ticks(range(len(classes)), classes, rotation=rotation, ha="right" if rotation else "center", fontsize=8)


def histogram_figure(counts: list[int], real_counts: list[int] | None = None, *, classes: Sequence[str]) -> np.ndarray:
    """Bar chart of the share of samples the judge assigns to each of its ``classes``, real shares beside."""
    plt = _pyplot()
    labels = np.arange(len(counts))
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.bar(labels, np.asarray(counts) / max(sum(counts), 1), color="tab:blue", label=f"generated (n={sum(counts)})")
    if real_counts is not None:
        share = np.asarray(real_counts) / max(sum(real_counts), 1)
        ax.scatter(labels, share, color="black", marker="_", s=400, zorder=3, label="real held-out")
    ax.axhline(1 / len(counts), color="gray", linestyle=":", linewidth=1)
    _class_ticks(ax.xaxis, classes)
    ax.set(xlabel="class predicted by the judge", ylabel="share of samples",
           title=f"Label histogram ({len(classes)} classes)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _rgb(fig)


def confusion_figure(confusion: list[list[int]], classes: Sequence[str]) -> np.ndarray:
    """Heatmap of the requested class (rows) against the judge's prediction (columns), row-normalised."""
    plt = _pyplot()
    matrix = np.asarray(confusion, dtype=float)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (row, col), rate in np.ndenumerate(rates):
        if rate >= 0.01:
            ax.text(col, row, f"{rate:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if rate > 0.5 else "black")
    _class_ticks(ax.xaxis, classes)
    ax.yaxis.set_ticks(range(len(classes)), classes, fontsize=8)
    ax.set(xlabel="judged as", ylabel="asked for", title=f"Conditional confusion ({len(classes)} classes)")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _rgb(fig)


def save_loss_curve(history: dict[str, list[float]], path: Path) -> None:
    """Write a PNG of per-epoch D/G losses (left) and D accuracies (right)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(history["d_loss"]) + 1)
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in [("d_loss", "discriminator"), ("g_loss", "generator")]:
        loss_ax.plot(epochs, history[key], marker="o", label=label)
    loss_ax.set(xlabel="epoch", ylabel="mean loss", title="Losses")
    for key, label in [("d_acc_real", "D accuracy on real"), ("d_acc_fake", "D accuracy on fake")]:
        acc_ax.plot(epochs, history[key], marker="o", label=label)
    acc_ax.set(xlabel="epoch", ylabel="accuracy", ylim=(-0.02, 1.02), title="Discriminator accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def _panels(n: int, width: float, height: float, cols: int = 4):
    """A figure of ``n`` panels, ``cols`` per row, and the list of its axes (extra ones hidden)."""
    plt = _pyplot()
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), dpi=100, squeeze=False)
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _mean_std(values) -> tuple[float, float]:
    """Mean and standard deviation (n - 1) of the finite values; NaN where there are too few."""
    finite = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    mean = finite.mean() if len(finite) else np.nan
    return mean, finite.std(ddof=1) if len(finite) > 1 else np.nan


def metrics_vs_parameter(name: str, values: list[float], series: list[str], metrics: dict[str, list[float]],
                         log_x: bool) -> np.ndarray:
    """One panel per metric: its final value against a swept parameter. Per run (``values``, ``series``: the
    other swept parameters' values, one line each): a dot; per parameter value: the mean over runs, with an
    error bar of one standard deviation where there are two runs or more (seeds)."""
    fig, axes = _panels(len(metrics), 3.2, 2.6)
    x, series = np.asarray(values, dtype=float), np.asarray(series)
    for ax, (metric, ys) in zip(axes, metrics.items()):
        ys = np.asarray(ys, dtype=float)
        for index, label in enumerate(dict.fromkeys(series)):
            color = f"C{index % 10}"
            chosen = series == label
            ax.plot(x[chosen], ys[chosen], ".", color=color, alpha=0.45)
            points = sorted(set(x[chosen]))
            stats = [_mean_std(ys[chosen & (x == point)]) for point in points]
            ax.errorbar(points, [m for m, _ in stats], yerr=[s for _, s in stats], color=color, marker="o",
                        capsize=3, label=label or None)
        ax.set(xlabel=name, title=metric, xscale="log" if log_x else "linear")
        ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=30)
        ax.grid(alpha=0.3)
        if len(set(series)) > 1:
            ax.legend(fontsize=6)
    fig.suptitle(f"Final judge metrics against {name}: mean ± std over runs (dots: each run)")
    fig.tight_layout()
    return _rgb(fig)


def metrics_by_config(labels: list[str], metrics: dict[str, list[float]]) -> np.ndarray:
    """One panel per metric: a bar per configuration (``labels``, one per run: runs sharing a label are its
    seeds) at their mean, an error bar of one standard deviation, and each run's value as a dot; for sweeps
    over choices, such as model x loss."""
    fig, axes = _panels(len(metrics), max(3.2, 0.5 * len(set(labels))), 3.2)
    names = list(dict.fromkeys(labels))
    position = np.asarray([names.index(label) for label in labels])
    for ax, (metric, ys) in zip(axes, metrics.items()):
        ys = np.asarray(ys, dtype=float)
        stats = [_mean_std(ys[position == i]) for i in range(len(names))]
        ax.bar(range(len(names)), np.nan_to_num([m for m, _ in stats]), yerr=[s for _, s in stats], capsize=3,
               color="tab:blue", alpha=0.7)
        ax.plot(position, ys, ".", color="black", alpha=0.6)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_title(metric)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _rgb(fig)


def objective_by_trial(trials: list[int], values: list[float], objective: str, maximise: bool) -> np.ndarray:
    """A search's objective per trial, with the best so far."""
    plt = _pyplot()
    values = np.asarray(values, dtype=float)
    best = (np.fmax if maximise else np.fmin).accumulate(values)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(trials, values, "o", label="trial")
    ax.plot(trials, best, "-", color="tab:orange", label="best so far")
    ax.set(xlabel="trial (sweep job)", ylabel=objective, title=f"{objective} by trial")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _rgb(fig)


def histograms_side_by_side(labels: list[str], counts: list[list[int] | None],
                            classes: list[Sequence[str]]) -> np.ndarray:
    """Every job's label histogram (share of samples per judged class, named by the job's ``classes``), side by side."""
    fig, axes = _panels(len(labels), 3.0, 2.4)
    for ax, label, job_counts, job_classes in zip(axes, labels, counts, classes):
        if job_counts is None:
            ax.text(0.5, 0.5, "no judgement", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.bar(range(len(job_counts)), np.asarray(job_counts) / max(sum(job_counts), 1), color="tab:blue")
            ax.axhline(1 / len(job_counts), color="gray", linestyle=":", linewidth=1)
            _class_ticks(ax.xaxis, job_classes)
        ax.set_title(label, fontsize=8)
    fig.tight_layout()
    return _rgb(fig)


def pictures_side_by_side(labels: list[str], pictures: list[np.ndarray | None]) -> np.ndarray:
    """Every job's last sample grid, side by side."""
    fig, axes = _panels(len(labels), 3.0, 3.4)
    for ax, label, picture in zip(axes, labels, pictures):
        if picture is None:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.imshow(picture, cmap="gray", vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return _rgb(fig)
