"""The one wrapper every command runs in: logging, --offline, errors and signals to exit codes."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from vqclip.errors import VqclipError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)  # never wrap paths or commands
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, what a process killed by SIGTERM reports


class Terminated(BaseException):
    """SIGTERM outside a run's loop (or a second one inside it): quit now, like Ctrl-C.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` swallows it."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def fail(message: str, code: int) -> typer.Exit:
    """Print one line on stderr (as plain text, never markup) and return the Exit to raise."""
    stderr.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def run_guarded(body: Callable[[], Any], *, verbose: bool) -> Any:
    """Run a command body; our errors and Ctrl-C become exit codes, never tracebacks."""
    try:
        return body()
    except VqclipError as err:
        raise fail(str(err), err.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except Terminated:
        raise fail("terminated", EXIT_TERMINATED) from None
    except typer.Exit:
        raise
    except OSError as err:  # disk or permission trouble outside the code that names its files
        raise fail(f"{err.strerror or err}: {err.filename or ''}".rstrip(": "), 1) from None
    except Exception as err:  # noqa: BLE001 - the last line of defence at the CLI edge
        if verbose:
            traceback.print_exc()
        hint = "" if verbose else " (run with -v for the traceback)"
        raise fail(f"{type(err).__name__}: {err}{hint}", 1) from None


def run_command(body: Callable[[], int | None], *, verbose: bool, offline: bool = False) -> None:
    """A command's body with logging set up and errors turned into exit codes; exit if it says so.

    `offline` (the command's --offline) holds for everything the body does. SIGTERM (scancel,
    timeout, a container stop) ends it as Ctrl-C does: exit 143."""
    _setup_logging(verbose)
    if offline:
        go_offline()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = run_guarded(body, verbose=verbose)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code:
        raise typer.Exit(code)


class Interruption:
    """The signal that asked a loop to stop, as the exit code to end with: 130 after Ctrl-C,
    143 after SIGTERM."""

    def __init__(self) -> None:
        self.exit_code = EXIT_INTERRUPTED


@contextmanager
def stop_on_first_interrupt(request_stop: Callable[[], None]) -> Iterator[Interruption]:
    """The first Ctrl-C or SIGTERM asks the loop to stop after this step (the image and state
    are saved); a second one quits at once."""
    interruption = Interruption()

    def handler(signum: int, frame: object) -> None:
        interruption.exit_code = 128 + signum
        request_stop()  # first: a second signal may interrupt what follows, and finds the stop asked
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _terminate)
        again = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        stderr.print(f"stopping after this step; saving the image and state ({again} again "
                     "to quit now)")

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield interruption
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def go_offline() -> None:
    """Never touch the network: read by vqclip's model manager and, before it is imported, by
    huggingface_hub."""
    os.environ["VQCLIP_OFFLINE"] = os.environ["HF_HUB_OFFLINE"] = "1"


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
