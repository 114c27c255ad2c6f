"""`leaky data fetch fsdd` against a local HTTP server (127.0.0.1) serving archives built here."""

import hashlib
import io
import os
import socket
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.data.fetch import FetchError, fetch_fsdd
from leaky.data.fsdd import fsdd_recordings

from _helpers import LoopbackServer, wav_bytes

TOP = "free-spoken-digit-dataset-1.0.10"


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _release(names=("0_ann_0.wav", "1_ann_0.wav", "2_bob_5.wav")) -> dict[str, bytes]:
    files = {f"{TOP}/recordings/{n}": wav_bytes(seed=i) for i, n in enumerate(names)}
    files[f"{TOP}/README.md"] = b"# FSDD"
    files[f"{TOP}/utils/trimmer.py"] = b"print('trim')"
    return files


def _sums(files: dict[str, bytes]) -> dict[str, str]:
    return {
        Path(name).name: hashlib.sha256(data).hexdigest()
        for name, data in files.items()
        if name.endswith(".wav")
    }


@pytest.fixture
def server():
    running = LoopbackServer()
    yield running
    running.close()


def _nothing_installed(target: Path) -> None:
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary folder left behind either


def test_good_archive_is_checked_and_moved_into_place(server, tmp_path):
    files = _release()
    target = tmp_path / "data" / "fsdd"
    result = fetch_fsdd(
        target,
        url=server.serve("/v.tar.gz", _archive(files)),
        checksums=_sums(files),
        progress=False,
    )
    assert result.installed == 3 and result.path == target and not result.already_present
    assert sorted(p.name for p in (target / "recordings").iterdir()) == [
        "0_ann_0.wav",
        "1_ann_0.wav",
        "2_bob_5.wav",
    ]
    assert len(fsdd_recordings(target)) == 3  # the SHA256SUMS written beside them checks out
    assert "CC BY-SA 4.0" in (target / "README.txt").read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["fsdd"]


def test_a_second_fetch_finds_the_data_and_downloads_nothing(server, tmp_path):
    files = _release()
    url = server.serve("/v.tar.gz", _archive(files))
    fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(files), progress=False)
    again = fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(files), progress=False)
    assert again.already_present and server.requests == 1


def test_unlisted_recordings_are_left_out_and_missing_ones_counted(server, tmp_path):
    files = _release()
    sums = _sums(files)
    del sums["2_bob_5.wav"]
    sums["9_cy_1.wav"] = "0" * 64
    result = fetch_fsdd(
        tmp_path / "fsdd",
        url=server.serve("/v.tar.gz", _archive(files)),
        checksums=sums,
        progress=False,
    )
    assert (result.installed, result.left_out, result.not_in_archive) == (2, 1, 1)
    assert not (tmp_path / "fsdd" / "recordings" / "2_bob_5.wav").exists()


def test_truncated_download_installs_nothing(server, tmp_path):
    files = _release()
    body = _archive(files)
    url = server.serve("/v.tar.gz", body[: len(body) // 2], declared=len(body))
    with pytest.raises(FetchError, match="ended early"):
        fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(files), progress=False)
    _nothing_installed(tmp_path / "fsdd")


def test_truncated_archive_installs_nothing(server, tmp_path):
    files = _release()
    body = _archive(files)
    url = server.serve("/v.tar.gz", body[: len(body) - 40])  # complete download of a cut file
    with pytest.raises(FetchError, match="damaged or truncated"):
        fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(files), progress=False)
    _nothing_installed(tmp_path / "fsdd")


def test_wrong_checksum_installs_nothing_and_names_the_file(server, tmp_path):
    files = _release()
    sums = _sums(files)
    files[f"{TOP}/recordings/1_ann_0.wav"] = wav_bytes(seed=42)  # not the checked file
    url = server.serve("/v.tar.gz", _archive(files))
    with pytest.raises(FetchError, match=r"1_ann_0\.wav: its SHA-256 .* differs"):
        fetch_fsdd(tmp_path / "fsdd", url=url, checksums=sums, progress=False)
    _nothing_installed(tmp_path / "fsdd")


def test_wrong_layout_installs_nothing(server, tmp_path):
    files = {f"{TOP}/{name}": data for name, data in _release().items() if "recordings" in name}
    flat = {f"{TOP}/{Path(name).name}": data for name, data in files.items()}
    url = server.serve("/flat.tar.gz", _archive(flat))
    with pytest.raises(FetchError, match="no FSDD recordings in a recordings/ folder"):
        fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(flat), progress=False)
    _nothing_installed(tmp_path / "fsdd")
    url = server.serve("/html", b"<html>not an archive</html>")
    with pytest.raises(FetchError, match="damaged or truncated"):
        fetch_fsdd(tmp_path / "fsdd", url=url, checksums=_sums(flat), progress=False)
    _nothing_installed(tmp_path / "fsdd")


def test_http_error_and_no_network_install_nothing(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_fsdd(tmp_path / "fsdd", url=server.serve("/x", b"")[:-2] + "/missing", progress=False)
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match="Cannot download .* no network"):
        fetch_fsdd(
            tmp_path / "fsdd", url=f"http://127.0.0.1:{port}/v.tar.gz", progress=False, timeout=5
        )
    _nothing_installed(tmp_path / "fsdd")


def test_a_folder_that_is_not_ours_is_never_overwritten(tmp_path):
    target = tmp_path / "fsdd"
    target.mkdir()
    (target / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="holds no FSDD recordings; remove it or choose another"):
        fetch_fsdd(target, url="http://127.0.0.1:9/x.tar.gz", progress=False)
    assert (target / "thesis.tex").read_text() == "mine"


def test_only_http_urls(tmp_path):
    with pytest.raises(ValueError, match="http:// or https://"):
        fetch_fsdd(tmp_path / "fsdd", url="file:///etc/passwd")


def test_the_default_target_is_the_data_dir_env(server, tmp_path, monkeypatch):
    files = _release()
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "env"))
    result = fetch_fsdd(
        url=server.serve("/v.tar.gz", _archive(files)), checksums=_sums(files), progress=False
    )
    assert result.path == tmp_path / "env" / "fsdd" and result.installed == 3


# --- the command line, with the checksum list shipped in the package ---------------------


def test_cli_corrupt_download_is_exit_1_one_line_and_nothing_installed(server, tmp_path):
    files = {f"{TOP}/recordings/0_george_0.wav": wav_bytes()}  # not George's real recording
    url = server.serve("/v.tar.gz", _archive(files))
    target = tmp_path / "out" / "fsdd"
    result = CliRunner().invoke(
        cli, ["data", "fetch", "fsdd", "--dir", str(target), "--url", url, "--quiet"]
    )
    assert result.exit_code == 1, result.output
    assert "0_george_0.wav: its SHA-256" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0
    _nothing_installed(target)


def test_cli_bad_url_is_a_user_error(tmp_path):
    result = CliRunner().invoke(
        cli, ["data", "fetch", "fsdd", "--dir", str(tmp_path / "f"), "--url", "ftp://x/y"]
    )
    assert result.exit_code == 2 and "http:// or https://" in result.output


@pytest.mark.skipif(
    not os.path.isdir(os.path.join(os.environ.get("LEAKY_DATA_DIR", ""), "fsdd")),
    reason="the checked FSDD copy (../shared/data/fsdd, or LEAKY_DATA_DIR) is not here",
)
def test_cli_installs_real_recordings_checked_against_the_packaged_list(server, tmp_path):
    shared = Path(os.environ["LEAKY_DATA_DIR"]) / "fsdd" / "recordings"
    names = ["0_george_0.wav", "7_jackson_32.wav", "9_yweweler_49.wav"]
    files = {f"{TOP}/recordings/{n}": (shared / n).read_bytes() for n in names}
    url = server.serve("/v.tar.gz", _archive(files))
    target = tmp_path / "fsdd"
    result = CliRunner().invoke(
        cli, ["data", "fetch", "fsdd", "--dir", str(target), "--url", url, "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "Checked and installed 3 recordings" in result.output
    assert "lacks 2,997 recordings" in result.output
    assert len(fsdd_recordings(target)) == 3
