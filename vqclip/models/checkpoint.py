"""Load weight files (.ckpt/.pt/.pth pickles, .safetensors) without running code from them."""

from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vqclip.errors import ModelError, UnsafeCheckpointError, first_line

__all__ = ["ALLOWED_GLOBALS", "load_state_dict", "safetensors_shapes"]

_MAX_HEADER = 100 * 2**20  # bytes; real headers are kilobytes to a few megabytes


class _Inert:
    """Stand-in for an allowlisted class: keeps what the pickle gives as plain data, runs nothing.

    The weights-only unpickler creates instances with ``cls.__new__(cls, *args)`` (NEWOBJ),
    calls ``cls(*args)`` (REDUCE) and hands state to ``__setstate__`` (BUILD); all three only
    store their arguments here.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"


class _LightningCallback(_Inert):
    """Stands in for Lightning's ModelCheckpoint (a dict key in ``checkpoint['callbacks']``)."""


class _OmegaConfNode(_Inert):
    """Stands in for OmegaConf containers, nodes and their metadata (saved hyper-parameters)."""


class _Namespace(_Inert):
    """Stands in for argparse.Namespace (hyper-parameters of older Lightning scripts)."""


class _NumpyValue(_Inert):
    """Stands in for numpy scalars and dtypes (scores and counters in callback states)."""


class _TypeMarker(_Inert):
    """Stands in for typing.Any, which OmegaConf metadata stores as a type annotation."""


def _plain_dict(*args: Any, **kwargs: Any) -> dict:
    """Stand-in for collections.defaultdict: an empty plain dict the pickle then fills."""
    return {}


def _build_allowlist() -> dict[str, Any]:
    """Qualified global name -> the inert object the unpickler gets instead."""
    allowed: dict[str, Any] = {
        "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint": _LightningCallback,
        "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint": _LightningCallback,
        "argparse.Namespace": _Namespace,
        "typing.Any": _TypeMarker,
        "collections.defaultdict": _plain_dict,
        "numpy.core.multiarray.scalar": _NumpyValue,
        "numpy._core.multiarray.scalar": _NumpyValue,
        "numpy.dtype": _NumpyValue,
        # Constructors of plain data: they appear as markers (OmegaConf's ``object_type``) and
        # calling them can only build data from values the restricted unpickler already made.
        "builtins.dict": dict,
        "builtins.list": list,
        "builtins.tuple": tuple,
        "builtins.int": int,
        "builtins.float": float,
        "builtins.str": str,
        "builtins.bool": bool,
        "builtins.frozenset": frozenset,
    }
    for module, names in {
        "omegaconf.dictconfig": ["DictConfig"],
        "omegaconf.listconfig": ["ListConfig"],
        "omegaconf.base": ["ContainerMetadata", "Metadata", "Container", "Node"],
        "omegaconf.nodes": [
            "AnyNode", "StringNode", "IntegerNode", "FloatNode", "BooleanNode",
            "EnumNode", "BytesNode", "PathNode", "ValueNode", "InterpolationResultNode",
        ],
    }.items():
        for name in names:
            allowed[f"{module}.{name}"] = _OmegaConfNode
    for dtype in [
        "Float16DType", "Float32DType", "Float64DType", "LongDoubleDType",
        "Int8DType", "Int16DType", "Int32DType", "Int64DType", "LongLongDType",
        "UInt8DType", "UInt16DType", "UInt32DType", "UInt64DType", "ULongLongDType",
        "BoolDType", "ObjectDType", "StrDType", "BytesDType",
    ]:
        allowed[f"numpy.dtypes.{dtype}"] = _NumpyValue
    return allowed


ALLOWED_GLOBALS: Mapping[str, Any] = _build_allowlist()
"""Globals a checkpoint may name, each mapped to an inert stand-in; anything else is refused."""

# Messages of torch's weights-only unpickler that mean "this pickle wants to run something".
_REFUSAL_PATTERNS = (
    re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)"),
    re.compile(r"(Trying to call reduce for unrecognized function .*)"),
    re.compile(r"(Can only (?:build|create new object) .*)"),
)


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """.ckpt/.pt/.pth (pickles) or .safetensors -> flat state dict of tensors."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"Checkpoint {path} does not exist or is not a file.")
    if path.suffix.lower() == ".safetensors":
        return _load_safetensors(path)
    return _extract_state_dict(_load_pickle(path), path)


def safetensors_shapes(path: str | os.PathLike) -> dict[str, list[int]]:
    """The shape of every tensor in a .safetensors file, read from its header alone (the first
    8 bytes give the header's length; the tensors are not read)."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            length = int.from_bytes(file.read(8), "little")
            if not 2 <= length <= _MAX_HEADER:
                raise ModelError(f"{path} is not a readable .safetensors file: a header of {length} bytes")
            header = json.loads(file.read(length).decode("utf-8"))
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a readable .safetensors file: its header is not JSON "
                         f"({exc})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path} is not a readable .safetensors file: its header is not a JSON object")
    return {key: list(value["shape"]) for key, value in header.items()
            if key != "__metadata__" and isinstance(value, dict) and isinstance(value.get("shape"), list)}


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise ModelError(f"{path} is not a readable .safetensors file: {exc}") from exc


def _load_pickle(path: Path) -> Any:
    """torch.load with weights_only=True, the allowlist's stand-ins and a refusal up front."""
    is_zip = zipfile.is_zipfile(path)
    if is_zip:
        # Name every unsafe global at once, before a single opcode of the pickle runs.
        unsafe = _unsafe_globals(path)
        if unsafe:
            raise _refusal(path, unsafe)
    stand_ins = [(obj, name) for name, obj in ALLOWED_GLOBALS.items()]
    try:
        with torch.serialization.safe_globals(stand_ins):
            # mmap: only the tensors we keep are read from disk (optimizer states are not).
            return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        for pattern in _REFUSAL_PATTERNS:
            match = pattern.search(message)
            if match:
                name = match.group(1)
                # torch shortens builtins.X to X in this message; name it in full.
                if pattern is _REFUSAL_PATTERNS[0] and "." not in name:
                    name = f"builtins.{name}"
                raise _refusal(path, [name]) from None
        raise ModelError(f"{path} is not a readable checkpoint: {first_line(message, 'unknown error')}"
                         ) from exc
    except Exception as exc:  # truncated zip, text file, wrong magic number, ...
        raise ModelError(
            f"{path} is not a readable checkpoint: {type(exc).__name__}: "
            f"{first_line(str(exc), 'unknown error')}"
        ) from exc


def _unsafe_globals(path: Path) -> list[str]:
    """Globals the pickle names that are neither torch's defaults nor on our allowlist."""
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        # The scan understands fewer opcodes than exist; the restricted load below still
        # refuses anything unsafe, so an unscannable file is left to it.
        return []
    return sorted(name for name in found if name not in ALLOWED_GLOBALS)


def _refusal(path: Path, names: list[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"Refusing to load {path}: it needs {', '.join(names)}, "
        f"which {'is' if len(names) == 1 else 'are'} not on the allowlist of harmless "
        "checkpoint globals, and unpickling it could run code. "
        "Use a .safetensors copy of the weights instead."
    )


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """Keep checkpoint['state_dict'] when present, else the object itself if it is one."""
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(f"{path} holds no state dict (expected a 'state_dict' entry of tensors).")
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelError(
                f"{path} holds no state dict: entry {key!r} is a {type(value).__name__}, "
                "not a tensor."
            )
    return dict(obj)
