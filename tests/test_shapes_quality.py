"""The shapes preset's images, judged by pixels alone, pass often enough: a floor every earlier
preset, started from the spot, missed on the same grid.

Not timed: the floor is on what the pixels say (vqclip.shapes.pixel_judge), after the preset's
own step count. BENCHMARKS.md ("A spot start with the steered CLIP", "A start the CLIP picks
among the world's shapes") has the measurements behind the floor.
"""

from __future__ import annotations

from PIL import Image

from vqclip.series.batch import BatchSettings, parse_batch, run_batch
from vqclip.series.pool import plan_workers
from vqclip.shapes.data import COLORS, SHAPES, article
from vqclip.shapes.pixel_judge import judge

# Every color and every shape, each shape three times: the i-th prompt pairs the i-th color with
# the i-th shape, both lists taken round.
GRID = [(COLORS[i % len(COLORS)], SHAPES[i % len(SHAPES)]) for i in range(3 * len(SHAPES))]
# Criteria passed (color, shape, single object, inside the frame) over the images of seed 0, one
# thread. On red, green and blue × circle, square, triangle, star (12 images) the preset of 150
# steps, cutn 24, lr 0.1 passed 26 of 48 (all four for 1 image); at 100 steps, cutn 8, lr 0.2
# 34; with the border prior 39; with the CLIP trained on steered negatives 42; starting from the
# dim spot 45; and at 150 steps of a cosine lr from 0.35, 41, though on the full grid it draws
# more images right (56 -> 66 %). This grid takes in the other colors and the cross: on it the
# 100-step preset passes 49 of 60 (all four for 6 images), the 150-step one 54 (for 9). Those
# counts are by the judge's earlier shape test (fill and solidity); by the fitted outline it has
# now, the 150-step preset passes 53 (for 8): two more squares, three fewer stars and crosses.
# Started from the shape the CLIP picks, 50 steps of lr 0.1 pass 59 (all four for 14 images);
# the floor leaves two criteria for a machine that draws other images from the same seed.
FLOOR = 57


def test_the_shapes_preset_passes_its_quality_floor(tmp_path) -> None:
    """As a batch on two one-thread worker processes: each image is the one-thread run's."""
    lines = "".join(f"{article(color)} {color} {shape} --seed 0\n" for color, shape in GRID)
    result = run_batch(parse_batch(lines), tmp_path, BatchSettings(preset="shapes", sets=["save_every=0"]),
                       engine=plan_workers(workers=2, devices=None, threads=1))
    assert len(result.ok) == len(GRID), result.failed
    passed = 0
    for record in result.ok:
        color, shape = record["label"].split()[-2:]
        with Image.open(record["image"]) as image:
            verdict = judge(image, color, shape)
        passed += verdict.color + verdict.shape + verdict.single + verdict.inside
    assert passed >= FLOOR, f"{passed} of {4 * len(GRID)} criteria passed; the floor is {FLOOR}"
