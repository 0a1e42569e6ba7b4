"""Command line for the shapes world: `python -m vqclip.shapes train|evaluate`."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from vqclip.shapes.steered import STARTS, SteeredNegatives

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
CLIP_DIR = "shapes_clip"
VQGAN_DIR = "shapes_vqgan"


def _train(args: argparse.Namespace) -> dict:
    """Train the requested models, save them under args.out and return their metrics."""
    out = Path(args.out)
    metrics: dict = {}
    if args.only in (None, "vqgan"):
        from vqclip.shapes.evaluate import reconstruction_quality
        from vqclip.shapes.train_vqgan import (
            VqganTrainConfig,
            load_shapes_vqgan,
            log_progress,
            save_shapes_vqgan,
            train_vqgan,
        )

        cfg = VqganTrainConfig(steps=args.vqgan_steps, seed=args.seed)
        start = time.perf_counter()
        model = train_vqgan(cfg, on_step=log_progress(args.log_every))
        minutes = (time.perf_counter() - start) / 60
        save_shapes_vqgan(model, out / VQGAN_DIR)
        model = load_shapes_vqgan(out / VQGAN_DIR)
        rec = reconstruction_quality(model, n=args.n)
        metrics["vqgan"] = {"config": asdict(cfg), "minutes": round(minutes, 1), **asdict(rec)}
    if args.only in (None, "clip"):
        from vqclip.shapes.evaluate import zero_shot_accuracy
        from vqclip.shapes.train_clip import (
            ClipTrainConfig,
            load_clip,
            log_progress,
            normalize,
            save_clip,
            saved_model_config,
            train_clip,
        )
        from vqclip.shapes.train_vqgan import load_shapes_vqgan

        spoil = args.hard_negatives
        cfg = ClipTrainConfig(steps=args.clip_steps, seed=args.seed, blob_fraction=spoil,
                              cut_fraction=spoil, blur_fraction=spoil,
                              soft_fraction=args.soft_negatives,
                              ragged_fraction=args.ragged_negatives,
                              adversarial=args.adversarial,
                              steered=SteeredNegatives(per_step=args.steered,
                                                       refresh_every=args.steer_every,
                                                       steps=args.steer_steps,
                                                       start=args.steer_start,
                                                       morphs=args.steer_morphs),
                              **({"lr": args.clip_lr} if args.clip_lr else {}))
        begin = load_clip(args.clip_from)[0] if args.clip_from else None
        # Trained on from a saved CLIP, the model keeps that CLIP's architecture and is saved with it.
        model_cfg = saved_model_config(args.clip_from) if args.clip_from else None
        # Steered negatives are drawn with the VQGAN trained above, or else the bundled one.
        vqgan = load_shapes_vqgan(_vqgan_dir(out)) if args.steered else None
        start = time.perf_counter()
        model = train_clip(cfg, model_cfg=model_cfg, start=begin, vqgan=vqgan,
                           on_step=log_progress(args.log_every))
        minutes = (time.perf_counter() - start) / 60
        save_clip(model, out / CLIP_DIR, model_cfg)
        model, tokenizer = load_clip(out / CLIP_DIR)  # measure what was saved (fp16)
        acc = zero_shot_accuracy(model, tokenizer, normalize, n=args.n)
        metrics["clip"] = {"config": asdict(cfg), "from": args.clip_from, "minutes": round(minutes, 1),
                           **asdict(acc)}
    return metrics


def _vqgan_dir(out: Path) -> Path:
    """The shapes VQGAN under `out` if there is one, else the bundled one."""
    return out / VQGAN_DIR if (out / VQGAN_DIR / "config.json").is_file() else WEIGHTS_DIR / VQGAN_DIR


def _evaluate(args: argparse.Namespace) -> dict:
    """Measure the saved models under args.weights on fresh held-out images."""
    from vqclip.shapes.evaluate import (
        EVAL_SEED,
        preference_accuracy,
        reconstruction_quality,
        zero_shot_accuracy,
    )
    from vqclip.shapes.train_clip import load_clip, normalize
    from vqclip.shapes.train_vqgan import load_shapes_vqgan

    seed = EVAL_SEED if args.seed is None else args.seed
    weights = Path(args.weights)
    model, tokenizer = load_clip(weights / CLIP_DIR)
    plain = zero_shot_accuracy(model, tokenizer, normalize, n=args.n, seed=seed)
    cropped = zero_shot_accuracy(model, tokenizer, normalize, n=args.n, seed=seed, augment=True)
    prefers = preference_accuracy(model, tokenizer, normalize, n=args.n, seed=seed)
    rec = reconstruction_quality(load_shapes_vqgan(weights / VQGAN_DIR), n=args.n, seed=seed)
    return {"clip": asdict(plain), "clip_crops_flips": asdict(cropped),
            "clip_prefers_whole_sharp_single": prefers, "vqgan": asdict(rec)}


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than `minimum`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value

    return parse


def _number(text: str) -> float:
    """`text` as a float, or the argparse error that names it."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _fraction(text: str) -> float:
    """An argparse type: a number from 0 to 1."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def _radius(text: str) -> float:
    """An argparse type: a finite number, 0 or more."""
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"{value} is not a finite number of 0 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the command, print its metrics as JSON on stdout."""
    parser = argparse.ArgumentParser(prog="python -m vqclip.shapes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="retrain the shapes CLIP and VQGAN deterministically")
    train.add_argument("--out", default=str(WEIGHTS_DIR), help="folder receiving shapes_clip/ "
                       "and shapes_vqgan/ (default: the package's weights)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--clip-steps", type=int, default=1600)
    train.add_argument("--clip-from", help="train the CLIP on from this saved shapes CLIP folder "
                       "instead of from scratch")
    train.add_argument("--clip-lr", type=float, help="the CLIP's peak learning rate (default 1e-3)")
    train.add_argument("--hard-negatives", type=_fraction, default=0.0, metavar="FRACTION",
                       help="the share of one-shape images made a blob, and again cut off by "
                            "the frame, and again blurred (default 0: as the shipped CLIP)")
    train.add_argument("--soft-negatives", type=_fraction, default=0.0, metavar="FRACTION",
                       help="the share of one-shape images whose shape is softened past where "
                            "the pixel judge calls it that shape, captioned as a blob "
                            "(default 0: none)")
    train.add_argument("--ragged-negatives", type=_fraction, default=0.0, metavar="FRACTION",
                       help="the share of one-shape images whose shape's outline is made ragged, "
                            "captioned as a blob (default 0: none)")
    train.add_argument("--steered", type=_at_least(0), default=0, metavar="N",
                       help="images in each CLIP training batch drawn by steering the shapes "
                            "VQGAN with the CLIP being trained, captioned as blobs, each beside "
                            "a clean render of its prompt (default 0: none)")
    train.add_argument("--steer-every", type=_at_least(1), default=SteeredNegatives.refresh_every,
                       metavar="K", help="training steps between two rounds of steering "
                                         "(default %(default)s)")
    train.add_argument("--steer-steps", type=_at_least(1), default=SteeredNegatives.steps, metavar="S",
                       help="steering steps of each round's images (default %(default)s)")
    train.add_argument("--steer-start", choices=STARTS, default=SteeredNegatives.start,
                       help="what steering starts from: black, the dim gray spot the shapes "
                            "preset started from, or a clean render of the asked shape (default %(default)s)")
    train.add_argument("--steer-morphs", action="store_true",
                       help="place each steered image's twin over it and add a blend of the two, "
                            "captioned as the shape and as a blob in the blend's shares")
    train.add_argument("--adversarial", type=_radius, default=0.0, metavar="RADIUS",
                       help="train the CLIP on images moved within this L2 radius (pixels in "
                            "[0, 1]) to where its loss is highest (default 0: as they are)")
    train.add_argument("--vqgan-steps", type=int, default=1600)
    train.add_argument("--only", choices=["clip", "vqgan"], help="train just one of the two")
    train.add_argument("--n", type=int, default=500, help="held-out images for the metrics")
    train.add_argument("--log-every", type=int, default=50)
    evaluate = sub.add_parser("evaluate", help="print metrics of saved shapes models")
    evaluate.add_argument("--weights", default=str(WEIGHTS_DIR))
    evaluate.add_argument("--seed", type=int, default=None, help="held-out image seed")
    evaluate.add_argument("--n", type=int, default=500)
    for p in (train, evaluate):
        p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    total = (3 * args.hard_negatives + args.soft_negatives + args.ragged_negatives
             if args.command == "train" else 0)
    if total > 1:
        parser.error(f"--hard-negatives {args.hard_negatives} three times (blobs, cut off, "
                     f"blurred) plus --soft-negatives {args.soft_negatives} and --ragged-negatives "
                     f"{args.ragged_negatives} is {total:g} of the one-shape images: at most 1")
    if args.command == "train" and args.steered:
        from vqclip.shapes.train_clip import ClipTrainConfig

        per_image = SteeredNegatives(per_step=1, morphs=args.steer_morphs).batch_share()
        room = (ClipTrainConfig.batch_size - 1) // per_image
        if args.steered > room:
            beside = "their clean twins and morphs" if args.steer_morphs else "their clean twins"
            parser.error(f"--steered {args.steered}: a batch of {ClipTrainConfig.batch_size} holds "
                         f"at most {room} steered images beside {beside}")
    # open_clip logs its loading steps at INFO on the root logger: keep those quiet.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("vqclip").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    metrics = _train(args) if args.command == "train" else _evaluate(args)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
