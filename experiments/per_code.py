"""Where an InfoGAN-code run's precision and recall go, code by code (experiments/quality.md).

    python experiments/per_code.py <run id> [--store sqlite:///outputs/quality/mlflow.db] [--n 10000]

Draws the samples the run's judge saw (code i % code_dim for sample i) and prints, per code: the digit the
judge reads most often, the share of the code's samples read as that digit (purity), and the code's
precision (share inside the real k-NN manifold); then precision over pure and mixed codes, and the
recall of each digit's real images by all samples.
"""

import argparse

import mlflow
import numpy as np

from gan_lab import tracking
from gan_lab.judge import get_judge
from gan_lab.metrics import inside, knn_radii
from gan_lab.sampling import draw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_id")
    parser.add_argument("--store", default="sqlite:///outputs/quality/mlflow.db")
    parser.add_argument("--n", type=int, default=10_000)
    args = parser.parse_args()

    run, model_uri = tracking.generator_source(args.run_id, None, args.store)
    cfg = tracking.run_config(run)
    judge = get_judge(cfg)
    images, _, _ = draw(mlflow.keras.load_model(model_uri), cfg.model, args.n, seed=0)
    probs, features = judge.outputs(images)
    k, reference = judge.info["k"], judge.reference
    realistic = inside(features, reference, knn_radii(reference, k))  # precision, per sample
    covered = inside(reference, features, knn_radii(features, k))  # recall, per real image
    digits, codes = probs.argmax(1), np.arange(args.n) % cfg.model.code_dim

    print(f"run {args.run_id}: precision {realistic.mean():.3f}, recall {covered.mean():.3f}\n")
    print("| code | digit | purity | precision | second digit (share) |\n|---|---|---|---|---|")
    purity = {}
    for code in range(cfg.model.code_dim):
        counts = np.bincount(digits[codes == code], minlength=10) / (codes == code).sum()
        first, second = np.argsort(counts)[::-1][:2]
        purity[code] = counts[first]
        print(f"| {code} | {first} | {counts[first]:.2f} | {realistic[codes == code].mean():.2f} | "
              f"{second} ({counts[second]:.2f}) |")
    pure = np.isin(codes, [c for c, p in purity.items() if p >= 0.9])
    print(f"\ncodes with purity >= 0.9: {len(set(codes[pure]))} of {cfg.model.code_dim}, precision "
          f"{realistic[pure].mean():.3f}; the others: precision {realistic[~pure].mean():.3f} "
          f"({(~pure).mean():.0%} of the samples)")
    print("recall of each digit's real images: " + " ".join(
        f"{d}: {covered[judge.reference_labels == d].mean():.2f}" for d in range(10)))


if __name__ == "__main__":
    main()
