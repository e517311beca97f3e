"""Write a folder-of-PNGs dataset, the layout ``data=folder`` reads: one subfolder per class, named after it.

    python make_digits.py digits [--per-class 200] [--classes 0,1,7] [--unlabelled]

The images come from MNIST's test split ($GAN_LAB_DATA_DIR, else Keras' download): a stand-in for your own
images, to try the layout with. ``--unlabelled``: one flat folder of images (no classes).
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from gan_lab.config import Split
from gan_lab.data import load_data
from gan_lab.figures import to_uint8


def write_folder(out: Path, per_class: int, classes: list[int], unlabelled: bool = False) -> int:
    """Write ``per_class`` MNIST test images of each of ``classes`` under ``out``; returns how many."""
    images, labels = load_data(split=Split.test)
    pixels = to_uint8(images)
    written = 0
    for digit in classes:
        folder = out if unlabelled else out / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(labels == digit)[:per_class]:
            Image.fromarray(pixels[i]).save(folder / f"{digit}_{i:05d}.png")
            written += 1
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="the folder to write")
    parser.add_argument("--per-class", type=int, default=200, help="images per class (default 200)")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9", help="digits to include, comma-separated")
    parser.add_argument("--unlabelled", action="store_true", help="one flat folder: an unlabelled dataset")
    args = parser.parse_args()
    count = write_folder(args.out, args.per_class, [int(d) for d in args.classes.split(",")], args.unlabelled)
    print(f"wrote {count} PNGs to {args.out}; train on them with data=folder data.path={args.out}")


if __name__ == "__main__":
    main()
