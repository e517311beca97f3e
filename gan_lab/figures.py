"""Pictures of a run: sample grids, single-image PNGs and the loss-curve figure."""

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


def save_png(picture: np.ndarray, path: Path) -> None:
    """Write a uint8 grayscale picture as PNG (byte-identical for identical pixels)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture, mode="L").save(path, format="PNG")


def save_loss_curve(history: dict[str, list[float]], path: Path) -> None:
    """Write a PNG of per-epoch D/G losses (left) and D accuracies (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
