"""FSDD spoken digits: WAV reading, where the data is found, splits, features and their cache."""

import hashlib
import os
import struct

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from leaky.app.cli import cli
from leaky.data import fsdd as fsdd_module
from leaky.data import load_named_dataset
from leaky.data.fsdd import (
    FSDD_SPEAKERS,
    example_spectrograms,
    find_fsdd,
    fsdd_recordings,
    load_fsdd,
    packaged_checksums,
)
from leaky.data.log_mel import MelSettings, log_mel
from leaky.data.wav import read_wav
from leaky.lab.models import pooled_mlp

from _helpers import wav_bytes, write_fsdd

SHARED = os.environ.get("LEAKY_DATA_DIR", "")
needs_shared = pytest.mark.skipif(
    not SHARED or not os.path.isdir(os.path.join(SHARED, "fsdd")),
    reason="the checked FSDD copy (../shared/data/fsdd, or LEAKY_DATA_DIR) is not here",
)


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """No FSDD anywhere: an empty LEAKY_DATA_DIR and an empty user cache."""
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


# --- WAV files -----------------------------------------------------------------------


def test_read_wav_reads_16_bit_mono_as_floats(tmp_path):
    path = tmp_path / "0_a_0.wav"
    path.write_bytes(wav_bytes(np.array([0, 16384, -32768])))
    assert read_wav(path).tolist() == [0.0, 0.5, -1.0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (wav_bytes(rate=16000), "expected a sample rate of 8000 Hz, but the file has 16000"),
        (wav_bytes(channels=2), "expected a mono recording, but the file has 2 channels"),
        (wav_bytes(np.full(100, 128), width=1), "expected 16-bit samples, but the file has 8-bit"),
        (wav_bytes()[:-1000], "truncated: the header declares 1,600 samples but the file holds"),
        (wav_bytes()[:30], "not a readable WAV file"),
        (b"ID3\x03 this is an mp3, not a wav" * 4, "not a readable WAV file"),
        (b"", "not a readable WAV file"),
        (wav_bytes(np.zeros(0)), "holds no samples"),
    ],
)
def test_malformed_wav_is_one_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "3_bad_1.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="3_bad_1.wav") as error:
        read_wav(path)
    assert message in str(error.value)


def test_a_header_declaring_hours_of_audio_is_refused_before_reading(tmp_path):
    data = bytearray(wav_bytes())
    data[40:44] = struct.pack("<I", 2 * 8000 * 3600)  # the data chunk's size: one hour
    path = tmp_path / "1_big_0.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="more than 60 s"):
        read_wav(path)


# --- where the data is found -------------------------------------------------------------


def test_data_dir_then_env_then_user_cache(monkeypatch, tmp_path):
    given = write_fsdd(tmp_path / "given")
    env = write_fsdd(tmp_path / "env" / "fsdd")
    cache = write_fsdd(tmp_path / "xdg" / "leaky" / "fsdd")
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert find_fsdd(given) == given
    assert find_fsdd() == env
    monkeypatch.delenv("LEAKY_DATA_DIR")
    assert find_fsdd() == cache


def test_missing_data_says_where_it_looked_and_how_to_get_it(no_data):
    with pytest.raises(ValueError) as error:
        find_fsdd()
    text = str(error.value)
    assert (
        str(no_data / "data" / "fsdd") in text and str(no_data / "cache" / "leaky" / "fsdd") in text
    )
    assert "leaky data fetch fsdd" in text and "\n" not in text


def test_missing_data_on_the_command_line_is_one_line_exit_2_and_no_store(no_data):
    store = no_data / "s.db"
    result = CliRunner().invoke(
        cli, ["run", "accuracy", "--set", "tasks=fsdd-cnn", "--store", str(store), "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert "leaky data fetch fsdd" in result.output and "Traceback" not in result.output
    assert result.output.strip().count("\n") == 0 and not store.exists()


@pytest.mark.parametrize("experiment", ["dying", "slope"])
def test_missing_data_stops_dying_and_slope_before_a_store_is_made(no_data, experiment):
    store = no_data / "s.db"
    args = ["run", experiment, "--quick", "--set", "dataset=fsdd", "--store", str(store)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "leaky data fetch fsdd" in result.output and "Traceback" not in result.output
    # These experiments read FSDD from LEAKY_DATA_DIR or the cache only: no data_dir offered.
    assert "data_dir" not in result.output
    assert result.output.strip().count("\n") == 0 and not store.exists()


def test_the_memory_estimate_of_an_mlp_on_fsdd_counts_its_spectrograms(tmp_path, monkeypatch):
    from leaky.lab.experiments.footprint import classifier_mlp_bytes
    from leaky.lab.findings import resolve_config

    write_fsdd(tmp_path / "fsdd")  # its own small copy: no recordings needed beside the clone
    monkeypatch.setenv("LEAKY_DATA_DIR", str(tmp_path))

    builtin = classifier_mlp_bytes(resolve_config("dying", preset="quick"), optimizer_states=1)
    config = resolve_config("dying", preset="quick", overrides={"dataset": "fsdd"})
    speech = classifier_mlp_bytes(config, optimizer_states=1)
    # 32 x 48 = 1,536 inputs instead of 64: the first layer and the batch grow.
    assert speech > builtin + 4 * (1536 - 64) * config.width


def test_data_dir_names_one_place_only(no_data):
    with pytest.raises(ValueError, match="data_dir: .*nowhere"):
        find_fsdd(no_data / "nowhere")


# --- the files of a copy ------------------------------------------------------------------


def test_a_wav_with_another_name_pattern_is_named(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd")
    (folder / "recordings" / "seven_jackson.wav").write_bytes(wav_bytes())
    with pytest.raises(ValueError, match=r"seven_jackson\.wav: expected an FSDD file name"):
        fsdd_recordings(folder)


def test_other_files_beside_the_recordings_are_ignored(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann",), indices=range(2))
    (folder / "recordings" / "notes.txt").write_text("hello")
    assert len(fsdd_recordings(folder)) == 20


def _write_sums(folder):
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
        for p in sorted((folder / "recordings").iterdir())
    ]
    (folder / "SHA256SUMS").write_text("".join(lines))
    return lines


def test_checksums_beside_the_recordings_are_checked(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann",), indices=range(2))
    _write_sums(folder)
    assert len(fsdd_recordings(folder)) == 20
    (folder / "recordings" / "4_ann_1.wav").write_bytes(wav_bytes(seed=99))
    with pytest.raises(ValueError, match=r"4_ann_1\.wav: its SHA-256 differs from SHA256SUMS"):
        fsdd_recordings(folder)


def test_a_recording_missing_from_a_checked_copy_is_an_error(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann",), indices=range(2))
    _write_sums(folder)
    kept = (folder / "recordings" / "2_ann_0.wav").read_bytes()
    (folder / "recordings" / "2_ann_0.wav").unlink()
    with pytest.raises(ValueError, match="1 recordings listed in SHA256SUMS are missing"):
        fsdd_recordings(folder)
    (folder / "recordings" / "2_ann_0.wav").write_bytes(kept)
    (folder / "recordings" / "2_ann_9.wav").write_bytes(wav_bytes())
    with pytest.raises(ValueError, match=r"2_ann_9\.wav: not listed in SHA256SUMS"):
        fsdd_recordings(folder)


def test_a_malformed_recording_is_named_when_the_features_are_made(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), indices=range(6))
    (folder / "recordings" / "5_bob_3.wav").write_bytes(wav_bytes(channels=2))
    with pytest.raises(ValueError, match=r"5_bob_3\.wav: expected a mono recording"):
        load_fsdd(folder, cache_dir=tmp_path / "cache")


# --- splits, features, normalisation, cache -----------------------------------------------


def test_official_split_tests_on_recordings_0_to_4(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), indices=range(7))
    data = load_fsdd(folder, cache_dir=tmp_path / "cache")
    assert data.sizes == (2 * 10 * 2, 2 * 10 * 5)
    assert data.input_shape == (1, 32, 48) and data.num_classes == 10
    assert sorted(data.y_test.tolist()) == sorted(list(range(10)) * 10)


def test_speaker_held_out_split_tests_on_one_voice(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob", "cy"), indices=range(6))
    data = load_fsdd(folder, holdout_speaker="bob", cache_dir=tmp_path / "cache")
    assert data.sizes == (2 * 60, 60)
    with pytest.raises(ValueError, match="holdout_speaker among the speakers .*ann, bob, cy"):
        load_fsdd(folder, holdout_speaker="dee", cache_dir=tmp_path / "cache")


def test_normalisation_is_fitted_on_the_training_split_only(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), indices=range(6))
    data = load_fsdd(folder, holdout_speaker="bob", cache_dir=tmp_path / "cache")
    bands = data.x_train.squeeze(1).transpose(0, 1).reshape(32, -1)
    torch.testing.assert_close(bands.mean(1), torch.zeros(32), atol=1e-4, rtol=0)
    # bob's recordings are other tones: his bands are not centred by the training statistics
    test_bands = data.x_test.squeeze(1).transpose(0, 1).reshape(32, -1)
    assert test_bands.mean(1).abs().max() > 1e-2


def test_log_mel_matches_a_numpy_stft_with_librosas_filter_bank():
    librosa = pytest.importorskip("librosa")
    settings = MelSettings()
    signal = np.random.default_rng(0).normal(0, 0.1, 5000)
    ours = log_mel(signal.astype(np.float32), settings)
    # The oracle: frames cut by hand (centred, zero-padded), a periodic Hann window, rfft.
    padded = np.zeros((settings.frames - 1) * settings.hop)
    padded[: len(signal)] = signal
    padded = np.pad(padded, settings.n_fft // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(settings.n_fft) / settings.n_fft)
    frames = np.stack(
        [padded[i * settings.hop : i * settings.hop + settings.n_fft] for i in range(48)]
    )
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2  # (frames, bins)
    bank = librosa.filters.mel(sr=8000, n_fft=256, n_mels=32)
    reference = np.log(bank @ power.T + settings.floor)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)


def test_long_recordings_are_cropped_and_short_ones_padded():
    settings = MelSettings()
    tone = np.sin(np.arange(20000) / 5).astype(np.float32)
    assert log_mel(tone, settings).shape == log_mel(tone[:800], settings).shape == (32, 48)
    short = log_mel(tone[:800], settings)
    assert np.allclose(short[:, -5:], np.log(settings.floor))  # silence after the recording


def test_features_are_cached_and_a_changed_file_is_a_new_key(tmp_path, monkeypatch):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), indices=range(6))
    cache = tmp_path / "cache"
    first = load_fsdd(folder, cache_dir=cache)
    assert len(list(cache.glob("fsdd-log-mel-*.npy"))) == 1

    def no_features(*args, **kwargs):
        raise AssertionError("computed again instead of read from the cache")

    monkeypatch.setattr(fsdd_module, "log_mel", no_features)
    again = load_fsdd(folder, cache_dir=cache)
    assert torch.equal(first.x_train, again.x_train)
    (folder / "recordings" / "0_ann_0.wav").write_bytes(wav_bytes(seed=50))
    with pytest.raises(AssertionError, match="computed again"):
        load_fsdd(folder, cache_dir=cache)


def test_a_damaged_cache_file_is_computed_again(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob"), indices=range(6))
    cache = tmp_path / "cache"
    first = load_fsdd(folder, cache_dir=cache)
    (path,) = cache.glob("fsdd-log-mel-*.npy")
    path.write_bytes(b"not numpy")
    assert torch.equal(load_fsdd(folder, cache_dir=cache).x_test, first.x_test)
    assert np.load(path).shape == (120, 32, 48)


def test_example_spectrograms_pick_the_same_speakers_for_every_digit(tmp_path):
    folder = write_fsdd(tmp_path / "fsdd", speakers=("ann", "bob", "cy", "dee"), indices=range(2))
    examples = example_spectrograms(folder, per_digit=3)
    assert len(examples) == 30 and {s for _, s, _ in examples} == {"ann", "bob", "cy"}
    assert examples[0][2].shape == (32, 48)


def test_pooled_mlp_averages_each_band_over_spans_of_time():
    net = pooled_mlp((32, 48), 10, segments=4, depth=1, width=8)
    assert net(torch.zeros(3, 1, 32, 48)).shape == (3, 10)
    with pytest.raises(ValueError, match="`segments` to be an int from 1 to 48"):
        pooled_mlp((32, 48), 10, segments=0)


def test_packaged_checksums_list_the_3000_recordings():
    sums = packaged_checksums()
    assert len(sums) == 3000
    assert {name.split("_")[1] for name in sums} == set(FSDD_SPEAKERS)


# --- the checked copy -----------------------------------------------------------------------


@needs_shared
def test_the_shared_copy_gives_both_splits():
    official = load_named_dataset("fsdd")
    assert official.sizes == (2700, 300) and official.input_shape == (1, 32, 48)
    assert torch.bincount(official.y_test).tolist() == [30] * 10
    held_out = load_named_dataset("fsdd", holdout_speaker="theo")
    assert held_out.sizes == (2500, 500)
    assert "CC BY-SA 4.0" in official.source


@needs_shared
def test_data_list_shows_the_shared_copy_and_its_licence():
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "present (3,000 recordings)" in result.output and "CC BY-SA 4.0" in result.output


def test_data_list_without_data_gives_the_fetch_command(no_data):
    result = CliRunner().invoke(cli, ["data", "list"])
    assert result.exit_code == 0, result.output
    assert "not present: leaky data fetch fsdd" in result.output and "CC BY-SA 4.0" in result.output
