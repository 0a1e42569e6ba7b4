"""What a run leaves in a log file when stderr is redirected (SLURM, nohup, CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_paths_in_redirected_stderr_are_never_wrapped(tiny_sets, tmp_path) -> None:
    out = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-on-its-own-" * 2)
    sets = [item for s in tiny_sets for item in ("-s", s)]
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        result = subprocess.run(
            [sys.executable, "-m", "vqclip", "generate", "a red circle", "--seeds", "1-2", *sets,
             "-s", "steps=1", "-s", "size=[32,32]", "-s", "save_every=0", "-o", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, env={**os.environ, "COLUMNS": "80"},
            timeout=300)
    assert result.returncode == 0, log.read_text()
    images = [item["image"] for item in json.loads(result.stdout)["items"]]
    text = log.read_text()
    assert len(images) == 2 and all(Path(image).is_file() for image in images)
    for image in images:
        assert image in text, f"{image} is not whole in the log:\n{text}"
