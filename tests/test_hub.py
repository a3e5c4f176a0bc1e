"""Checkpoints named by URL or registry name: download through iopath from a local server, cache, verification,
interrupted downloads and one-line errors."""

import hashlib
import io
import os

import pytest
import torch

from mvit_video import hub, weights
from mvit_video.hub import DownloadError, cache_path, resolve_checkpoint

from .http_server import FileServer


def checkpoint_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model_state": {"w": torch.randn(64, 64, generator=torch.Generator().manual_seed(seed))}}, buffer)
    return buffer.getvalue()


def files_under(folder) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("MVIT_VIDEO_CACHE", str(folder))
    return folder


def test_download_verifies_the_hash_in_the_name_then_serves_the_cache_without_network(server, cache):
    body = checkpoint_bytes()
    name = f"/models/tiny-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    server.files[name] = body

    path, entry = resolve_checkpoint(server.url(name))

    assert entry is None
    assert path == cache_path(server.url(name)) and path.startswith(str(cache))
    assert open(path, "rb").read() == body
    assert files_under(cache) == [os.path.relpath(path, cache)]  # no staging folder, lock or partial file left
    server.stop()
    assert resolve_checkpoint(server.url(name))[0] == path  # the server is gone: the cache answers
    assert server.requests == [name]


def test_a_hash_mismatch_is_refused_and_nothing_is_cached(server, cache):
    server.files["/tiny-deadbeef.pth"] = checkpoint_bytes()
    with pytest.raises(DownloadError, match="expected a prefix deadbeef: refused, nothing cached"):
        resolve_checkpoint(server.url("/tiny-deadbeef.pth"))
    assert files_under(cache) == []


def test_a_registry_sha256_mismatch_is_refused(server, cache):
    server.files["/plain.pyth"] = checkpoint_bytes()
    with pytest.raises(DownloadError, match="refused"):
        hub.fetch(server.url("/plain.pyth"), sha256="0" * 64)
    assert files_under(cache) == []
    assert hub.fetch(server.url("/plain.pyth"), sha256=hashlib.sha256(checkpoint_bytes()).hexdigest())


def test_an_interrupted_download_leaves_nothing_under_the_final_name(server, cache):
    body = checkpoint_bytes()
    server.files["/big.pyth"] = body
    server.truncated.add("/big.pyth")
    with pytest.raises(DownloadError) as err:
        resolve_checkpoint(server.url("/big.pyth"))
    assert server.url("/big.pyth") in str(err.value) and "incomplete" in str(err.value)
    assert not os.path.exists(cache_path(server.url("/big.pyth")))
    assert files_under(cache) == []
    server.truncated.clear()  # the next try downloads the whole file
    assert open(resolve_checkpoint(server.url("/big.pyth"))[0], "rb").read() == body


def test_a_404_is_one_line_naming_the_url_and_where_to_place_the_file(server, cache):
    url = server.url("/missing.pyth")
    with pytest.raises(DownloadError) as err:
        resolve_checkpoint(url)
    message = str(err.value)
    assert "\n" not in message
    assert url in message and "HTTP 404" in message and cache_path(url) in message


def test_no_network_and_no_cache_is_one_line_naming_the_url_and_the_cache_path(server, cache):
    url = server.url("/never.pyth")
    server.stop()
    with pytest.raises(DownloadError) as err:
        resolve_checkpoint(url)
    message = str(err.value)
    assert "\n" not in message and url in message and cache_path(url) in message


def test_a_registry_name_downloads_its_entry(server, cache, monkeypatch):
    body = checkpoint_bytes(1)
    server.files["/zoo/k400.pyth"] = body
    entry = weights.Weights("tiny_k400", server.url("/zoo/k400.pyth"), "pyslowfast",
                            "configs/synthetic/MVIT_TINY.yaml", "kinetics400", 1.0, 2.0, "1 crop x 1 clip", None,
                            "a test", hashlib.sha256(body).hexdigest())
    monkeypatch.setitem(weights.REGISTRY, "tiny_k400", entry)
    path, found = resolve_checkpoint("tiny_k400")
    assert found is entry and open(path, "rb").read() == body


def test_a_local_path_is_used_as_it_is_and_an_unknown_name_is_refused(tmp_path, cache):
    local = tmp_path / "mine.pyth"
    local.write_bytes(checkpoint_bytes())
    assert resolve_checkpoint(str(local)) == (str(local), None)
    with pytest.raises(FileNotFoundError, match="not a registry name"):
        resolve_checkpoint("no_such_model")


def test_a_page_only_entry_says_where_to_place_the_file(cache):
    entry = weights.get_weights("mvit_b_16x4_k400")
    with pytest.raises(DownloadError, match="place it at .*mvit_b_16x4_k400.pyth"):
        resolve_checkpoint("mvit_b_16x4_k400")
    os.makedirs(cache, exist_ok=True)
    (cache / "mvit_b_16x4_k400.pyth").write_bytes(checkpoint_bytes())
    assert resolve_checkpoint("mvit_b_16x4_k400") == (hub.entry_path(entry), entry)
