"""Other toolkits on the exported model.onnx: sherpa-onnx's speaker extractor
(bccmt.export.clients) and the documented onnxruntime + kaldi-native-fbank snippet, both fed the
whole file, against stage 4's embeddings and stage 5's EER; bad inputs through sherpa-onnx and
through ``bccmt embed``; stage 7's sherpa-onnx rows.

The snippets are extracted from README.md and docs/export.md and run as they are (exec with the
paths they need), so the documented code is what is tested.
"""

import re
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import RATE, speaker_wave

from bccmt.export.clients import ClientError, sherpa_embeddings
from bccmt.io.tables import read_kv, write_kv
from bccmt.io.vectors import read_vectors

REPO = Path(__file__).resolve().parents[1]
MIN_COSINE = 0.9999  # per utterance, against stage 4
EER_TOLERANCE = 0.01  # EER points, against stage 5


pytestmark = pytest.mark.usefixtures("keep_logging")


SNIPPETS = {"sherpa-onnx": "README.md", "onnx-client": "docs/export.md"}  # where each one lives


def doc_snippet(name: str) -> str:
    """The fenced python block right after ``<!-- snippet: name -->`` in its document."""
    doc = SNIPPETS[name]
    text = (REPO / doc).read_text(encoding="utf-8")
    marker = f"<!-- snippet: {name} -->"
    assert text.count(marker) == 1, f"{doc}: want one {marker}"
    m = re.match(r"\s*```python\n(.*?)\n```", text.split(marker, 1)[1], re.S)
    assert m, f"{doc}: no ```python block after {marker}"
    return m.group(1)


def run_snippet(name: str, export_dir, enroll_wav, test_wav) -> dict:
    """Runs a documented snippet; returns its namespace (``embed``, ``score``, ...)."""
    ns = {"export_dir": str(export_dir), "enroll_wav": str(enroll_wav),
          "test_wav": str(test_wav)}
    exec(compile(doc_snippet(name), f"{SNIPPETS[name]}:{name}", "exec"), ns)
    return ns


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def parity(ref_scp, got: dict) -> dict:
    """{utt: cosine of ``got[utt]`` with stage 4's embedding in ref_scp}, every utterance."""
    keys, ref = read_vectors(ref_scp)
    assert sorted(keys) == sorted(got), "not the same utterances as stage 4"
    return {k: cosine(r, got[k]) for k, r in zip(keys, ref)}


def check_parity(cos: dict, what: str) -> None:
    vals = list(cos.values())
    print(f"{what}: cosine with stage 4 over {len(vals)} utterances: min {min(vals):.9f}, "
          f"median {statistics.median(vals):.9f}")
    bad = {k: round(v, 6) for k, v in cos.items() if v < MIN_COSINE}
    assert not bad, f"{what}: cosine < {MIN_COSINE} with stage 4: {bad}"


def cosine_eer(export_dir, emb: dict, trials_path) -> float:
    """Cosine EER (%) of ``emb`` on a trial list, the training mean of metadata.json subtracted:
    the ``bccmt score`` path (bccmt.runtime.commands.score_trials) on given embeddings."""
    from bccmt.metrics import compute_metrics
    from bccmt.io.tables import read_trials
    from bccmt.runtime.model import ExportedModel, cosine_trial_scores

    trials = read_trials(trials_path, labels=False)
    keys = sorted(emb)
    scores = cosine_trial_scores(ExportedModel(export_dir), keys,
                                 np.stack([emb[k] for k in keys]), trials)
    return compute_metrics(scores, np.array([lab for _, _, lab in trials], dtype=bool))["eer"]


def stage5_eer(exp, trials_name: str) -> float:
    from bccmt.io.scores import read_result

    return float(read_result(Path(exp) / "scores" / f"{trials_name}.cosine.result")["eer_percent"])


def sherpa_dict(onnx, wav_scp) -> dict:
    return dict(sherpa_embeddings(onnx, list(read_kv(wav_scp).items())))


# ------------------------------------------------------------- the session's export (fast)
@pytest.fixture(scope="module")
def eval_sherpa(exported):
    root, exp, trials, out = exported
    return sherpa_dict(out / "model.onnx", root / "data" / "vox1" / "wav.scp")


def test_sherpa_matches_stage4_per_utterance(exported, eval_sherpa):
    root, exp, trials, out = exported
    check_parity(parity(exp / "embeddings" / "vox1" / "xvector.scp", eval_sherpa),
                 "sherpa-onnx, session export")


def test_sherpa_eer_matches_stage5(exported, eval_sherpa):
    root, exp, trials, out = exported
    got = cosine_eer(out, eval_sherpa, trials)
    want = stage5_eer(exp, "tiny_O")
    assert abs(got - want) <= EER_TOLERANCE, (got, want)


def test_readme_onnx_client_matches_stage4(exported):
    """The onnxruntime + kaldi-native-fbank snippet of docs/export.md: its embeddings match stage 4, and its
    score and decision are the recipe's cosine backend (ExportedModel.verify)."""
    from bccmt.runtime.model import ExportedModel

    root, exp, trials, out = exported
    wav = read_kv(root / "data" / "vox1" / "wav.scp")
    a, b = wav["id20001/vid/00001"], wav["id20002/vid/00002"]
    ns = run_snippet("onnx-client", out, a, b)
    check_parity(parity(exp / "embeddings" / "vox1" / "xvector.scp",
                        {k: ns["embed"](p) for k, p in wav.items()}), "docs/export.md onnx-client")
    model = ExportedModel(out)
    d = model.verify([model.embed_audio(a)], model.embed_audio(b))
    assert float(ns["score"]) == pytest.approx(d.score, abs=1e-4)
    assert bool(ns["same_speaker"]) == (float(ns["score"]) > d.threshold)


def test_readme_sherpa_snippet_scores_like_the_recipe(exported, eval_sherpa):
    """The README's sherpa-onnx snippet: its embed() is clients.sherpa_embeddings' and the
    manager's score, given mean-subtracted embeddings, is the recipe's cosine score."""
    from bccmt.runtime.model import ExportedModel, read_metadata

    root, exp, trials, out = exported
    wav = read_kv(root / "data" / "vox1" / "wav.scp")
    a, b = "id20001/vid/00001", "id20001/vid/00002"
    ns = run_snippet("sherpa-onnx", out, wav[a], wav[b])
    mean = np.asarray(read_metadata(out)["scoring"]["mean"], np.float32)
    np.testing.assert_allclose(ns["embed"](wav[a]) + mean, eval_sherpa[a], rtol=0, atol=1e-6)
    model = ExportedModel(out)
    d = model.verify([eval_sherpa[a]], eval_sherpa[b])
    assert float(ns["score"]) == pytest.approx(d.score, abs=1e-5)
    assert bool(ns["accept"]) == d.accept


# ---------------------------------------- own cases: silence, short, longer than a chunk (fast)
def test_gap_short_and_long_inputs_match_stage4(exported, tmp_path):
    """1 s of exact zeros inside speech (the silence floor), 0.5 s (tiled to min_frames), and a
    wav longer than stage 4's chunk (ExtractConfig.max_chunk_frames: two chunks, averaged); the
    reference is stage 4 itself (extract_job on a data dir of these wavs)."""
    from bccmt.embed import ExtractConfig, extract_job

    root, exp, trials, out = exported
    chunk_s = ExtractConfig().max_chunk_frames / 100  # 10 ms frames
    gap = speaker_wave(1, 3.0, 41)
    gap[RATE:2 * RATE] = 0.0
    waves = {"gap": gap, "half": speaker_wave(2, 0.5, 42),
             "long": speaker_wave(3, chunk_s + 2.0, 43)}
    data = tmp_path / "data"
    data.mkdir()
    wav = {}
    for name, x in waves.items():
        wav[name] = str(tmp_path / f"{name}.wav")
        sf.write(wav[name], x, RATE, subtype="PCM_16")
    assert not sf.read(wav["gap"])[0][RATE:2 * RATE].any()  # exact zeros on disk
    write_kv(data / "wav.scp", wav)
    write_kv(data / "utt2spk", {k: k for k in wav})
    _, scp, _ = extract_job(exp, data, tmp_path / "stage4")
    check_parity(parity(scp, sherpa_dict(out / "model.onnx", data / "wav.scp")),
                 "sherpa-onnx, gap/short/long")
    ns = run_snippet("onnx-client", out, wav["gap"], wav["half"])
    check_parity(parity(scp, {k: ns["embed"](p) for k, p in wav.items()}),
                 "docs/export.md onnx-client, gap/short/long")


# ----------------------------------------------------------------------- bad input (fast)
def _bad_inputs(tmp_path) -> dict:
    x = speaker_wave(0, 1.0, 7)
    files = {"empty": x[:0], "50 samples": x[:50], "0.1 s": x[:RATE // 10]}
    out = {}
    for name, wave in files.items():
        out[name] = tmp_path / f"{name.replace(' ', '_')}.wav"
        sf.write(str(out[name]), wave, RATE, subtype="PCM_16")
    from scipy.signal import resample_poly

    out["8 kHz"] = tmp_path / "8k.wav"
    sf.write(str(out["8 kHz"]), resample_poly(x, 1, 2), 8000, subtype="PCM_16")
    return out


def test_bad_input_sherpa_and_bccmt_embed(exported, tmp_path, capsys):
    """What each bad input does (recorded in docs/front_end.md, "Bad input"):
    sherpa-onnx 2.0.1 does not crash on any: a wav giving no fbank frame (0 or 50 samples) leaves
    the stream not ready and compute() returns an empty list; a wav shorter than min_frames is
    embedded (tiled in the graph) as by ``bccmt embed``; 8 kHz is resampled by sherpa-onnx. Our
    client turns the empty result into an error naming the file; ``bccmt embed`` refuses the
    empty and the 50-sample wav naming the file, embeds the short one, resamples 8 kHz (logged)."""
    from bccmt.bin.cli import main
    from bccmt.export.clients import read_wave, sherpa_extractor
    from bccmt.runtime.model import ExportedModel, read_metadata

    root, exp, trials, out = exported
    min_frames = int(read_metadata(out)["inputs"]["min_frames"])
    files = _bad_inputs(tmp_path)
    extractor = sherpa_extractor(out / "model.onnx")
    model = ExportedModel(out, "fp32")

    # raw sherpa-onnx API
    for name in ("empty", "50 samples"):
        wave, rate = sf.read(str(files[name]), dtype="float32")
        s = extractor.create_stream()
        s.accept_waveform(rate, wave)
        s.input_finished()
        assert not extractor.is_ready(s), name
        assert list(extractor.compute(s)) == [], name  # no exception, no crash: an empty list

    # our sherpa client and `bccmt embed`: errors name the file
    with pytest.raises(ClientError, match=re.escape(str(files["empty"])) + ".*no samples"):
        list(sherpa_embeddings(out / "model.onnx", [(str(files["empty"]),) * 2]))
    with pytest.raises(ClientError, match=re.escape(str(files["50 samples"])) + ".*too short"):
        list(sherpa_embeddings(out / "model.onnx", [(str(files["50 samples"]),) * 2]))
    for name, reason in (("empty", "no samples"), ("50 samples", "too short")):
        capsys.readouterr()
        assert main(["embed", "--model", str(out), str(files[name]),
                     "--out", str(tmp_path / "x.npy")]) == 1, name
        err = capsys.readouterr().err
        assert str(files[name]) in err and reason in err and "Traceback" not in err, err

    # shorter than min_frames: both embed it, and agree (tiling is inside the graph)
    short = str(files["0.1 s"])
    wave, rate = read_wave(short, short)
    assert len(wave) // 160 < min_frames
    got = dict(sherpa_embeddings(out / "model.onnx", [(short, short)]))[short]
    assert main(["embed", "--model", str(out), short, "--out", str(tmp_path / "s.npy")]) == 0
    ours = np.load(tmp_path / "s.npy")[0]
    np.testing.assert_allclose(ours, model.embed_audio(short), rtol=0, atol=1e-6)
    c_short = cosine(got, ours)

    # 8 kHz: sherpa-onnx resamples (linear interpolation), bccmt resamples (polyphase) and logs
    k8 = str(files["8 kHz"])
    assert read_wave(k8, k8)[1] == 8000
    got8 = dict(sherpa_embeddings(out / "model.onnx", [(k8, k8)]))[k8]
    capsys.readouterr()
    assert main(["embed", "--model", str(out), k8, "--out", str(tmp_path / "k8.npy")]) == 0
    assert "resampled from 8000 Hz to 16000 Hz" in capsys.readouterr().err
    c_8k = cosine(got8, np.load(tmp_path / "k8.npy")[0])
    print(f"sherpa-onnx vs bccmt embed: 0.1 s: cosine {c_short:.6f}; "
          f"8 kHz: cosine {c_8k:.6f}")
    assert c_short >= MIN_COSINE
    assert got8.shape == (model.dim,) and np.all(np.isfinite(got8))


def test_sherpa_embed_cli(exported, tmp_path):
    """python -m bccmt.bin.sherpa_embed: Kaldi xvector.{ark,scp} of a wav.scp, from the export dir's
    fp32 model; an utterance it cannot embed is an error naming it, nothing written."""
    from bccmt.bin.sherpa_embed import main

    root, exp, trials, out = exported
    wav_scp = root / "data" / "vox1" / "wav.scp"
    assert main(["--model", str(out), "--wav-scp", str(wav_scp),
                 "--out-dir", str(tmp_path / "e")]) == 0
    keys, emb = read_vectors(tmp_path / "e" / "xvector.scp")
    want = sherpa_dict(out / "model.onnx", wav_scp)
    assert sorted(keys) == sorted(want)
    np.testing.assert_array_equal(emb, np.stack([want[k] for k in keys]))
    bad = dict(read_kv(wav_scp))
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), RATE, subtype="PCM_16")
    bad["zz/empty"] = str(empty)
    write_kv(tmp_path / "bad.scp", bad)
    assert main(["--model", str(out), "--wav-scp", str(tmp_path / "bad.scp"),
                 "--out-dir", str(tmp_path / "f")]) == 1
    assert not (tmp_path / "f" / "xvector.scp").exists()
    assert main(["--model", str(tmp_path), "--wav-scp", str(wav_scp),
                 "--out-dir", str(tmp_path / "g")]) == 1  # no metadata.json


def test_stage7_sherpa_rows_do_not_decide_int8(tmp_path):
    """compare.collect reports the sherpa-onnx results beside the others; choose_default ignores
    them (a far worse or better sherpa-onnx EER changes nothing)."""
    from test_export_report import _exp, _result

    from bccmt.export.compare import choose_default, collect, table

    for sherpa_eer, name in ((10.05, "a"), (50.0, "b")):
        exp = _exp(tmp_path / name, 10.0, 10.1)
        _result(exp / "export_eval" / "sherpa" / "scores", "O", "cosine", sherpa_eer)
        rows = collect(exp)
        assert [r["runtime"] for r in rows] == ["PyTorch", "ONNX fp32", "ONNX int8",
                                                "sherpa-onnx fp32"]
        assert f"| sherpa-onnx fp32 | {sherpa_eer:.3f} |" in table(rows)
        choose_default(exp, rows)
        assert '"default_onnx": "model.int8.onnx"' in (exp / "export" / "metadata.json").read_text()


# ------------------------------------------------------------ the quick recipe's models (slow)
@pytest.mark.slow
@pytest.mark.parametrize("model", ["bccmt_base", "bccmt_tiny_kd", "bccmt_tiny"])
def test_quick_recipe_sherpa_matches_stages_4_and_5(quick_exported, model, monkeypatch):
    """Trained models of the quick run: sherpa-onnx on model.onnx against stage 4 (per utterance)
    and stage 5 (cosine EER, training mean of metadata.json), and stage 7's sherpa-onnx row."""
    from bccmt.runtime.model import read_metadata

    recipe, proc, _ = quick_exported
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    monkeypatch.chdir(recipe)  # wav.scp and scp paths are relative to the recipe dir
    exp, data = Path("quick/exp") / model, Path("quick/data/vox1")
    got = sherpa_dict(exp / "export" / "model.onnx", data / "wav.scp")
    check_parity(parity(exp / "embeddings" / "vox1" / "xvector.scp", got),
                 f"sherpa-onnx, quick {model}")
    name = read_metadata(exp / "export")["scoring"]["trials_name"]
    want = stage5_eer(exp, name)
    eer = cosine_eer(exp / "export", got, data / "trials" / f"{name}.kaldi")
    print(f"quick {model}: cosine EER on {name}: sherpa-onnx {eer:.3f}%, stage 5 {want:.3f}%")
    assert abs(eer - want) <= EER_TOLERANCE, (eer, want)
    stage7 = stage5_eer(exp / "export_eval" / "sherpa", name)  # sherpa's backend-set mean
    assert abs(stage7 - want) <= EER_TOLERANCE, (stage7, want)
