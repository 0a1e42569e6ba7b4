"""Counts model loads in every Python process started with this folder on PYTHONPATH and
$VQCLIP_COUNT_LOADS naming a file: each call of vqclip.models.loading's load_vqgan and
load_perceptor appends "PID NAME" to that file (the real load still runs). Worker processes
(the pool's, Ray's actors) inherit both variables, so a test counts their loads per process."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys

LOG = os.environ.get("VQCLIP_COUNT_LOADS")
WATCHED = "vqclip.models.loading"


def _counted(name, original):
    def load(*args, **kwargs):
        with open(LOG, "a") as log:
            log.write(f"{os.getpid()} {name}\n")
        return original(*args, **kwargs)
    return load


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        for name in ("load_vqgan", "load_perceptor"):
            setattr(module, name, _counted(name, getattr(module, name)))


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != WATCHED:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None:
            spec.loader = _Loader(spec.loader)
        return spec


if LOG:
    sys.meta_path.insert(0, _Finder())
