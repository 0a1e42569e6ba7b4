"""Fetch one file into the cache: fallback URLs, resume, retries, sha256, lock, atomic placement.

pooch does the cache side (temporary file beside the target, hash check, atomic move, cleanup
on failure); requests does the HTTP. pooch has no resume, so `ResumableDownloader` plugs into
pooch's downloader interface and keeps a `.part` file that it continues with Range requests.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import filelock
import pooch
import requests
from tqdm import tqdm

from vqclip.errors import DownloadError, UsageError, first_line
from vqclip.files import sha256_file

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # for hashing
READ_CHUNK = 1 << 16  # a cut connection loses at most the chunk being read
TIMEOUT = (15.0, 60.0)  # connect, read (seconds); a stalled read counts as a cut connection
RETRIES = 5  # attempts per URL without progress; any received bytes reset the count
# Seconds a file may go without receiving a byte, over all its URLs and tries (VQCLIP_DOWNLOAD_TIMEOUT)
STALL_LIMIT = 120.0
BACKOFF = 1.0  # seconds before the first retry, doubled for each further one
MAX_WAIT = 30.0  # the longest wait between two tries
# What to do when downloads cannot work: the last words of a failed download.
WAY_OUT = ("without a network: --preset shapes runs the bundled models, `vqclip models import` adopts "
           "files fetched elsewhere, and --offline never tries the network")
SPACE_MARGIN = 64 << 20  # keep this much free beyond the expected size


@dataclass(frozen=True)
class FetchResult:
    """A file in the cache, where it came from and its sha256."""

    path: Path
    url: str | None
    sha256: str
    size: int
    downloaded: bool


class _Incomplete(requests.exceptions.RequestException):
    """The server closed the body before Content-Length bytes arrived."""


class Patience:
    """How long a download may go without receiving a byte, over all its URLs and tries."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.last_progress = time.monotonic()

    def progressed(self) -> None:
        """Bytes arrived: the wait starts again."""
        self.last_progress = time.monotonic()

    def left(self) -> float:
        """Seconds to go before giving up (0 or less: give up)."""
        return self.limit - (time.monotonic() - self.last_progress)


def host_of(url: str) -> str:
    """The host (and port) a URL points at, for messages."""
    return urlsplit(url).netloc or url


def describe_failure(err: BaseException) -> str:
    """A few words saying why a request failed, instead of urllib3's nested repr."""
    if isinstance(err, requests.exceptions.HTTPError):
        return f"HTTP {err.response.status_code if err.response is not None else '?'}"
    if isinstance(err, requests.exceptions.ProxyError):
        return "the proxy cannot be reached"
    if isinstance(err, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(err, (requests.exceptions.Timeout, TimeoutError)):
        return str(err) if str(err).startswith("timed out: ") else "timed out"
    if isinstance(err, (_Incomplete, requests.exceptions.ChunkedEncodingError)):
        return str(err) if isinstance(err, _Incomplete) else "connection closed mid-file"
    text = str(err)
    for marker, words in (("NameResolution", "host name not resolved (no network or no DNS?)"),
                          ("Name or service not known", "host name not resolved (no network or no DNS?)"),
                          ("Temporary failure in name resolution", "host name not resolved (no DNS?)"),
                          ("Connection refused", "connection refused"),
                          ("Network is unreachable", "network unreachable"),
                          ("RemoteDisconnected", "the server closed the connection"),
                          ("Connection reset", "connection reset"),
                          ("Connection aborted", "connection aborted")):
        if marker in text:
            return words
    return first_line(text, type(err).__name__)[:120]


def _hopeless(err: BaseException) -> bool:
    """Failures that a retry within seconds does not cure: no DNS, no proxy, no route."""
    return isinstance(err, requests.exceptions.ProxyError) or describe_failure(err).startswith(
        ("host name not resolved", "network unreachable"))


class _LocalWriteError(Exception):
    """Writing the partial file failed (disk full, read-only, ...)."""

    def __init__(self, err: OSError, path: Path):
        super().__init__(str(err))
        self.err = err
        self.path = path


def is_url(text: str) -> bool:
    """True for http(s) URLs, False for local paths."""
    return text.startswith(("http://", "https://"))


def _content_range(response: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) from a `Content-Range: bytes a-b/total` header."""
    value = response.headers.get("Content-Range", "")
    if not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes ") :].partition("/")
    start = span.split("-")[0]
    return (
        int(start) if start.isdigit() else None,
        int(total) if total.isdigit() else None,
    )


class ResumableDownloader:
    """A pooch downloader that writes to a `.part` file and resumes it with HTTP Range."""

    def __init__(
        self,
        partial: Path,
        *,
        progress: bool = True,
        desc: str | None = None,
        retries: int | None = None,
        backoff: float | None = None,
        session: requests.Session | None = None,
        patience: Patience | None = None,
    ):
        self.partial = partial
        self.patience = patience or Patience(stall_limit())
        self.progress = progress
        self.desc = desc
        self.retries = RETRIES if retries is None else retries
        self.backoff = BACKOFF if backoff is None else backoff
        self.session = session or requests.Session()
        self.sha256: str | None = None
        self.resumed_from = 0

    def __call__(self, url: str, output_file: str, pooch_: object, check_only: bool = False):
        """Download `url` into pooch's temporary `output_file` (pooch's downloader protocol).

        Gives up on `url` after RETRIES tries without progress (waiting BACKOFF, then twice as
        long before each further one), at once when retrying cannot help (no DNS, no proxy), or
        once the patience shared by all the file's URLs runs out."""
        if check_only:
            response = self.session.head(url, timeout=TIMEOUT, allow_redirects=True)
            return response.status_code == 200
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        self.resumed_from = self.partial.stat().st_size if self.partial.exists() else 0
        failures = 0
        while True:
            before = self._size()
            left = self.patience.left()
            if left <= 0:
                raise requests.exceptions.Timeout("timed out")
            try:
                self._attempt(url, (min(TIMEOUT[0], left), min(TIMEOUT[1], left)))
                break
            except requests.exceptions.HTTPError as err:
                status = err.response.status_code if err.response is not None else 0
                if status < 500 and status not in (408, 429):
                    raise  # 404 and friends: the next URL, not a retry
                error: Exception = err
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                _Incomplete,
            ) as err:
                error = err
            if _hopeless(error):
                raise error
            failures = 0 if self._size() > before else failures + 1
            if failures == 0:
                self.patience.progressed()
            wait = min(self.backoff * 2 ** max(failures - 1, 0), MAX_WAIT)
            if wait >= self.patience.left():
                raise requests.exceptions.Timeout(
                    f"timed out: nothing received for {self.patience.limit:g} s "
                    "(VQCLIP_DOWNLOAD_TIMEOUT sets "
                    f"how long to wait); last: {describe_failure(error)}")
            if failures > self.retries:
                raise error
            log.warning("download from %s failed (%s); try %d of %d in %.0f s", host_of(url),
                        describe_failure(error), failures + 1, self.retries + 1, wait)
            time.sleep(wait)
        self.sha256 = sha256_file(self.partial)
        # pooch made output_file beside the final target; moving the finished .part onto it
        # lets pooch check the hash and do the atomic move (or delete it on mismatch).
        shutil.move(str(self.partial), output_file)

    def _size(self) -> int:
        return self.partial.stat().st_size if self.partial.exists() else 0

    def _attempt(self, url: str, timeout: tuple[float, float]) -> None:
        offset = self._size()
        headers = {"Accept-Encoding": "identity"}  # byte ranges of a compressed body don't mix
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.session.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 416 and offset:
                _, total = _content_range(response)
                if total == offset:
                    return  # the partial file is already complete
                self._truncate(0)  # a stale partial file of another version: start again
                raise _Incomplete("range not satisfiable; restarting")
            response.raise_for_status()
            if response.status_code == 206:
                start, total = _content_range(response)
                if start is None or start > offset:
                    self._truncate(0)
                    raise _Incomplete("unusable Content-Range; restarting")
                if start < offset:  # a server may answer from an earlier byte (RFC 9110)
                    self._truncate(start)
                offset = start
            else:
                total = None
                if offset:  # the server ignored Range and sends the whole file
                    self._truncate(0)
                    offset = 0
            length = response.headers.get("Content-Length")
            expected_end = offset + int(length) if length and length.isdigit() else total
            self._stream(response, offset, expected_end)

    def _stream(self, response: requests.Response, offset: int, end: int | None) -> None:
        bar = tqdm(
            total=end,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=self.desc,
            file=sys.stderr,
            disable=None if self.progress else True,  # None: only on a terminal
            leave=False,
        )
        written = offset
        try:
            with open(self.partial, "ab") as fh:
                for chunk in response.iter_content(READ_CHUNK):
                    try:
                        fh.write(chunk)
                    except OSError as err:
                        raise _LocalWriteError(err, self.partial) from err
                    written += len(chunk)
                    bar.update(len(chunk))
                try:
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError as err:
                    raise _LocalWriteError(err, self.partial) from err
        except OSError as err:  # opening the partial file
            if isinstance(err, requests.exceptions.RequestException):
                raise
            raise _LocalWriteError(err, self.partial) from err
        finally:
            bar.close()
        if end is not None and written != end:
            raise _Incomplete(f"connection closed after {written} of {end} bytes")

    def _truncate(self, size: int) -> None:
        if size == 0:
            self.partial.unlink(missing_ok=True)
        else:
            with open(self.partial, "r+b") as fh:
                fh.truncate(size)


def _amount(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def stall_limit() -> float:
    """STALL_LIMIT, or the seconds VQCLIP_DOWNLOAD_TIMEOUT gives."""
    text = os.environ.get("VQCLIP_DOWNLOAD_TIMEOUT")
    if text is None:
        return STALL_LIMIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f"VQCLIP_DOWNLOAD_TIMEOUT={text!r}: expected a number of seconds above 0")
    return seconds


def partial_path(dest: Path, url: str, partial_dir: Path) -> Path:
    """Where the resumable `.part` file of `dest` downloaded from `url` lives."""
    return partial_dir / f"{_key(str(dest))}-{_key(url)}.part"


def remove_partials(dest: Path, partial_dir: Path) -> None:
    """Delete every `.part` file kept for `dest`, from any URL."""
    for part in partial_dir.glob(f"{_key(str(dest))}-*.part"):
        part.unlink(missing_ok=True)


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs each download at INFO on stderr; our progress bar already says it."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_writable(directory: Path) -> None:
    """Create `directory` or raise DownloadError saying the cache is not writable."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A unique probe: threads of one process check the same folder at the same time.
        with tempfile.TemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as err:
        raise DownloadError(
            f"cache folder {directory} is not writable ({err.strerror or err}); "
            "set VQCLIP_HOME to a writable folder"
        ) from None


def _check_space(directory: Path, size: int | None) -> None:
    if not size:
        return
    free = shutil.disk_usage(directory).free
    if free < size + SPACE_MARGIN:
        raise DownloadError(
            f"not enough disk space in {directory}: {free / 1e9:.2f} GB free, "
            f"about {size / 1e9:.2f} GB needed"
        )


def fetch_file(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    partial_dir: Path,
    lock_dir: Path,
    progress: bool = True,
    retries: int | None = None,
    backoff: float | None = None,
) -> FetchResult:
    """Download `dest` from the first of `urls` that works, verified against `sha256` if given."""
    if not urls:
        raise DownloadError(f"no URL to download {dest.name} from")
    check_writable(dest.parent)
    check_writable(partial_dir)
    check_writable(lock_dir)
    lock = filelock.FileLock(str(lock_dir / f"{_key(str(dest))}.lock"))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.warning("another process is downloading %s; waiting for it", dest.name)
        lock.acquire()
    try:
        if dest.exists():  # a previous run, or the process that held the lock, finished it
            actual = sha256_file(dest)
            if sha256 is None or actual == sha256:
                return FetchResult(dest, None, actual, dest.stat().st_size, downloaded=False)
            log.warning("%s does not match its sha256; downloading it again", dest)
            dest.unlink()
        _check_space(dest.parent, size)
        failures = []
        patience = Patience(stall_limit())
        for url in urls:
            result = _fetch_from(url, dest, sha256, partial_dir, progress, retries, backoff, patience)
            if isinstance(result, FetchResult):
                remove_partials(dest, partial_dir)
                return result
            failures.append((url, result))
        # each source by its host, or by its URL where two share a host
        hosts = [host_of(url) for url in urls]
        named = [f"{host if hosts.count(host) == 1 else url}: {why}"
                 for host, (url, why) in zip(hosts, failures, strict=True)]
        raise DownloadError(f"could not download {dest.name} from " + "; ".join(named) + f"; {WAY_OUT}")
    finally:
        lock.release()


def _fetch_from(
    url: str,
    dest: Path,
    sha256: str | None,
    partial_dir: Path,
    progress: bool,
    retries: int | None,
    backoff: float | None,
    patience: Patience,
) -> FetchResult | str:
    """Try one URL: a FetchResult, or a one-line reason to try the next URL."""
    part = partial_path(dest, url, partial_dir)
    for _ in range(2):  # a second, fresh try when a resumed file fails its checksum
        downloader = ResumableDownloader(
            part, progress=progress, desc=dest.name, retries=retries, backoff=backoff, patience=patience
        )
        fetcher = pooch.create(
            path=dest.parent,
            base_url="",
            registry={dest.name: f"sha256:{sha256}" if sha256 else None},
            urls={dest.name: url},
        )
        try:
            with _quiet_pooch():
                fetcher.fetch(dest.name, downloader=downloader)
        except _LocalWriteError as err:
            part.unlink(missing_ok=True)
            if err.err.errno == errno.ENOSPC:
                raise DownloadError(
                    f"disk full while downloading {dest.name} into {err.path.parent}; "
                    "free some space (or set VQCLIP_HOME) and try again"
                ) from None
            raise DownloadError(f"cannot write {err.path}: {err.err.strerror or err.err}") from None
        except requests.exceptions.RequestException as err:
            kept = part.stat().st_size if part.exists() else 0
            if not kept:
                part.unlink(missing_ok=True)  # an empty partial file keeps nothing worth resuming
            return describe_failure(err) + (f" (kept the {_amount(kept)} received, to resume later)"
                                            if kept else "")
        except ValueError:  # pooch: hash mismatch; it already deleted the file
            part.unlink(missing_ok=True)
            if downloader.resumed_from:
                log.warning("resumed %s failed its checksum; downloading it afresh", dest.name)
                continue
            return f"checksum mismatch (expected sha256 {sha256}, got {downloader.sha256}); file discarded"
        except OSError as err:  # pooch's temporary file or the final move
            part.unlink(missing_ok=True)
            if err.errno == errno.ENOSPC:
                raise DownloadError(f"disk full while placing {dest.name}") from None
            raise DownloadError(f"cannot write {dest}: {err.strerror or err}") from None
        return FetchResult(dest, url, downloader.sha256 or sha256_file(dest), dest.stat().st_size, True)
    return f"checksum mismatch (expected sha256 {sha256}, got {downloader.sha256}); file discarded"
