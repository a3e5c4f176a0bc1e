"""One way to name a checkpoint: a local path, an http(s) URL or a registry name (:mod:`mvit_video.weights`).

:func:`resolve_checkpoint` turns any of them into a local file. A URL is downloaded once into the cache,
``$MVIT_VIDEO_CACHE`` (default ``~/.cache/mvit_video``), at ``<cache>/<host>/<path of the URL>``:

* through iopath's ``PathManager`` and ``HTTPURLHandler`` (with a tqdm progress bar), into a staging folder
  inside the cache, so that a partial file is never visible under the final name;
* verified against the registry's sha256, or else against the hash prefix in the file name (torch.hub's
  ``name-<hex>.ext`` convention: at least 8 hex digits of the sha256 after the last ``-``); a mismatch is refused and
  nothing is cached;
* then renamed into place with ``os.replace`` (atomic on one file system).

A cached file is used as it is, with no network. With no network and no cached copy, the error is one line naming
the URL and the path where the file can be placed by hand.
"""

import http.client
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse

from iopath.common.file_io import HTTPURLHandler, PathManager

from .weight_files import CheckpointError, file_sha256
from .weights import REGISTRY, Weights, get_weights

CACHE_ENV = "MVIT_VIDEO_CACHE"
DEFAULT_CACHE = "~/.cache/mvit_video"
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")

logger = logging.getLogger(__name__)


class DownloadError(CheckpointError):
    """A checkpoint could not be downloaded, or its download did not match its published hash."""


def cache_dir() -> str:
    """``$MVIT_VIDEO_CACHE``, else ``~/.cache/mvit_video``."""
    return os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def cache_path(url: str) -> str:
    """Where the file of ``url`` is cached: ``<cache>/<host>/<path>`` (so equal file names on two hosts differ)."""
    parsed = urlparse(url)
    parts = [p for p in parsed.path.split("/") if p not in ("", ".", "..")]
    return os.path.join(cache_dir(), parsed.netloc.replace(":", "_"), *parts)


def entry_path(entry: Weights) -> str:
    """Where a registry entry's file is cached; ``<cache>/<name>.pyth`` when its URL is a page, not the file."""
    return cache_path(entry.url) if entry.direct else os.path.join(cache_dir(), f"{entry.name}.pyth")


def hash_prefix(url: str) -> str:
    """The sha256 prefix in the URL's file name (``mvit_v1_b-dbeb1030.pth`` -> ``dbeb1030``), or ""."""
    match = _HASH_IN_NAME.search(os.path.basename(urlparse(url).path))
    return match.group(1) if match else ""


def resolve_checkpoint(spec: str) -> Tuple[str, Optional[Weights]]:
    """The local file of a checkpoint named by path, URL or registry name, and its registry entry (or None).

    A local path wins over a registry name of the same spelling.

    Raises:
        FileNotFoundError: ``spec`` is none of the three.
        DownloadError: the download failed (one line: the URL, the reason, the path to place the file by hand), or
            it does not match its published hash (nothing is cached then).
    """
    spec = os.fspath(spec)
    if is_url(spec):
        return fetch(spec), None
    if os.path.exists(os.path.expanduser(spec)):
        return os.path.expanduser(spec), None
    entry = get_weights(spec)
    if entry is None:
        raise FileNotFoundError(
            f"checkpoint {spec!r}: no such file, not an http(s) URL and not a registry name "
            f"(python -m mvit_video.weights lists the {len(REGISTRY)} names)"
        )
    return fetch_entry(entry), entry


def fetch_entry(entry: Weights) -> str:
    """The cached file of a registry entry, downloaded first if needed (see :func:`fetch`)."""
    if entry.direct:
        return fetch(entry.url, entry.sha256)
    path = entry_path(entry)
    if not os.path.isfile(path):
        raise DownloadError(f"{entry.name} is published as a web page, not a file: download it from {entry.url} "
                            f"and place it at {path}")
    return path


def fetch(url: str, sha256: str = "") -> str:
    """The cached copy of ``url``, downloaded and verified first when there is none. Raises DownloadError."""
    path = cache_path(url)
    if os.path.isfile(path):
        return path
    return download(url, path, sha256)


def download(url: str, dest: str, sha256: str = "") -> str:
    """Downloads ``url`` to ``dest`` through a staging folder next to it; returns ``dest``.

    Raises:
        DownloadError: the server could not be reached, answered an error or closed early; or the file's sha256
            differs from ``sha256`` (or from the hash prefix in the URL's file name). ``dest`` is then not created.
    """
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".download-", dir=os.path.dirname(dest))
    try:
        logger.info("downloading %s to %s", url, dest)
        staged = _fetch_with_iopath(url, staging, dest)
        _verify(staged, url, sha256)
        os.replace(staged, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def _fetch_with_iopath(url: str, staging: str, dest: str) -> str:
    manager = PathManager()
    manager.register_handler(HTTPURLHandler())
    try:
        with _quiet("iopath"):
            return manager.get_local_path(url, cache_dir=staging)
    except (OSError, http.client.HTTPException) as err:
        raise DownloadError(
            f"cannot download {url} ({_reason(err)}); to use a copy fetched another way, place it at {dest}"
        ) from None


def _reason(err: Exception) -> str:
    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _verify(path: str, url: str, sha256: str) -> None:
    expected = (sha256 or hash_prefix(url)).lower()
    if not expected:
        return
    digest = file_sha256(path)
    if not digest.startswith(expected):
        raise DownloadError(
            f"{url}: the downloaded file's sha256 is {digest}, expected {'' if sha256 else 'a prefix '}{expected}: "
            f"refused, nothing cached"
        )


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silences a library's logger: its failure messages would repeat the one line our error gives."""
    log = logging.getLogger(name)
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)
