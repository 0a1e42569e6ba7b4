"""`vqclip --install-completion` for bash: installed once, then Tab completes commands and presets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _complete(home: Path, *words: str) -> list[str]:
    script = ("source ~/.bashrc; COMP_WORDS=(" + " ".join(words) + f"); COMP_CWORD={len(words) - 1}; "
              '_vqclip_completion vqclip; printf "%s\\n" "${COMPREPLY[@]}"')
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "--norc", "-c", script], env=env, capture_output=True, text=True,
                            check=True, timeout=60)
    return result.stdout.split()


def test_bash_completion_installs_and_completes(tmp_path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "SHELL": "/bin/bash"}
    # Typed at a bash prompt, as users do: the shell is found among the command's parents.
    installed = subprocess.run(["bash", "--norc", "-c", f"'{BIN / 'vqclip'}' --install-completion; exit $?"],
                               env=env, capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    assert "vqclip" in (tmp_path / ".bashrc").read_text()

    assert _complete(tmp_path, "vqclip", "gen") == ["generate"]
    assert _complete(tmp_path, "vqclip", "models", "l") == ["list"]
    assert _complete(tmp_path, "vqclip", "generate", "--preset", "sh") == ["shapes"]
