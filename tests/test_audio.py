"""bccmt.audio.read_audio: every input kind and every bad-input reason."""

import numpy as np
import pytest
import soundfile as sf

from bccmt.audio import AudioError, audio_duration, read_audio


def noise(seconds, rate=16000, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    shape = (int(seconds * rate),) if channels == 1 else (int(seconds * rate), channels)
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)


def write_wav(path, x, rate=16000):
    sf.write(str(path), x, rate, subtype="PCM_16")
    return str(path)


def write_m4a(path, x, rate=16000):
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(x[None, :], format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return str(path)


def test_wav_and_flac_read_back(tmp_path):
    x = noise(1.0)
    y = read_audio(write_wav(tmp_path / "a.wav", x))
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=1 / 32768 + 1e-6)
    sf.write(str(tmp_path / "a.flac"), x, 16000, subtype="PCM_16")
    np.testing.assert_allclose(read_audio(str(tmp_path / "a.flac")), y, atol=1.01 / 32768)
    assert audio_duration(str(tmp_path / "a.wav")) == pytest.approx(1.0)


def test_pipe_entry(tmp_path):
    x = noise(0.5)
    p = write_wav(tmp_path / "a.wav", x)
    y = read_audio(f"cat {p} |")
    np.testing.assert_array_equal(y, read_audio(p))
    with pytest.raises(AudioError, match="command failed with exit status 3"):
        read_audio(f"cat {p}; exit 3 |")
    with pytest.raises(AudioError, match="command failed with exit status 1"):
        read_audio(f"cat {tmp_path}/missing.wav | cat |")  # pipefail: the first command fails


def test_streamed_wav_header_with_unknown_length_is_accepted(tmp_path):
    p = write_wav(tmp_path / "a.wav", noise(0.5))
    data = bytearray(open(p, "rb").read())
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # what ffmpeg writes to a pipe
    q = tmp_path / "s.wav"
    q.write_bytes(bytes(data))
    assert len(read_audio(f"cat {q} |")) == 8000


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing", "no such file"),
        ("empty", r"empty file \(0 bytes\)"),
        ("corrupt", "unreadable audio"),
        ("truncated", "truncated wav: header declares 32000 data bytes, file has 15978"),
        ("header_only", "no samples"),
        ("short", r"too short: 160 samples \(0.010 s\) < 400"),
        ("8k", "sample rate 8000 Hz, expected 16000 Hz"),
        ("stereo", "2 channels; mono required"),
    ],
)
def test_bad_inputs_give_reasons(tmp_path, case, reason):
    p = tmp_path / f"{case}.wav"
    if case == "empty":
        p.write_bytes(b"")
    elif case == "corrupt":
        p.write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif case == "truncated":  # 44-byte header + 32000 data bytes, cut in half
        data = open(write_wav(tmp_path / "full.wav", noise(1.0)), "rb").read()
        p.write_bytes(data[: len(data) // 2])
    elif case == "header_only":  # a consistent header with zero samples
        write_wav(p, np.zeros(0, np.float32))
    elif case == "short":
        write_wav(p, noise(0.01))
    elif case == "8k":
        write_wav(p, noise(1.0, rate=8000), rate=8000)
    elif case == "stereo":
        write_wav(p, noise(1.0, channels=2))
    with pytest.raises(AudioError, match=reason):
        read_audio(str(p))


def test_min_samples_is_configurable(tmp_path):
    p = write_wav(tmp_path / "a.wav", noise(0.5))
    assert len(read_audio(p, min_samples=8000)) == 8000
    with pytest.raises(AudioError, match="too short"):
        read_audio(p, min_samples=8001)


def test_m4a_round_trip(tmp_path):
    x = noise(2.0, seed=3)[:32123]
    p = write_m4a(tmp_path / "a.m4a", x)
    y = read_audio(p)
    assert y.dtype == np.float32
    assert abs(len(y) - len(x)) < 160  # within one frame shift
    assert abs(audio_duration(p) - len(x) / 16000) < 0.01
    # decoded audio is aligned with the input and close to it (AAC is lossy)
    n = min(len(x), len(y))
    corr = np.corrcoef(x[1000 : n - 1000], y[1000 : n - 1000])[0, 1]
    assert corr > 0.9


def test_m4a_wrong_rate_and_corrupt(tmp_path):
    p = write_m4a(tmp_path / "a.m4a", noise(1.0, rate=8000), rate=8000)
    with pytest.raises(AudioError, match="sample rate 8000 Hz"):
        read_audio(p)
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    with pytest.raises(AudioError, match="unreadable audio"):
        read_audio(str(bad))
