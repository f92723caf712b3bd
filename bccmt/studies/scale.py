"""The scale benchmark: stages 0-5 of the recipe at VoxCeleb size, measured (``benchmark_scale``).

Every step runs the recipe's own command (``local/*.sh``, ``python -m bccmt.bin.*``) in a child
process from ``egs/voxceleb`` and records wall time, CPU time and the peak RSS of its largest
process (``os.wait4``: the child and the descendants it waited for), plus the disk it wrote. The
steps, in order:

  corpus      stage 0: the scale corpus (eSpeak synthesis, ``--nj``)
  prepare     stage 0: Kaldi data dirs and the O/E/H trial lists
  augment     stage 1: reverb/noise/music/babble copies of a random subset (rate per hour)
  fbank       stage 1: float32 fbank of the training set (training settings)
  fbank_cm    stage 1: the same, Kaldi-compressed (``--compress true``)
  fbank_eval  stage 1: the evaluation set (extraction settings)
  fbank_backend stage 1: the backend subset (4 utterances per speaker, extraction settings)
  loader      the training loader's crops/s: workers 0/1/2, float32 and compressed, crop reads
              against whole-matrix reads (in this process)
  train_base / train_tiny_kd   the VoxCeleb schedules (conf/voxceleb) for a bounded number of
              steps on the whole training set: the 5,994-class AAM head, SGD, the margin ramp,
              SpecAugment, loader workers
  extract_eval / extract_backend   stage 4 with the Tiny + KD model
  score_<list>_<backend>   stage 5 per trial list (O, E, H) and backend

Results go to ``<work>/results.json`` after every step; a rerun skips the steps already there (so
an interrupted benchmark resumes; remove the file or the step's entry to measure again).
``report`` turns the results into markdown tables and a projection to full VoxCeleb2 + Vox1.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shlex
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from bccmt.exp import ExpLayout
from bccmt.studies.measure import Measure, log_tail, wait_measured

log = logging.getLogger(__name__)

# Full VoxCeleb, for the projection (VoxCeleb papers and the official cleaned lists).
VOX2_DEV_UTTS = 1_092_009
VOX2_DEV_HOURS = 2_300.0  # about 2,300 h (VoxCeleb2 dev)
VOX1_HOURS = 352.0  # 153,516 utterances
GPU_CROPS_PER_S = {"bccmt_base": 817.0, "bccmt_tiny_kd": 928.0}  # H200, AMP, 8 workers (docs/gpu.md)
EPOCHS = 150  # conf/voxceleb/train_voxceleb.yaml
BACKENDS = ("cosine", "asnorm", "plda")


class ScaleError(RuntimeError):
    """A benchmark step failed; the message names the step and its log."""


def run_measured(cmd: List[str], cwd: Path, log_path: Path,
                 env: Optional[Dict[str, str]] = None) -> Measure:
    """Runs cmd (output to log_path); wall, CPU (user + sys) and peak RSS of the process tree."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as out:
        out.write(f"# {shlex.join(cmd)}\n")
        out.flush()
        t0 = time.perf_counter()
        m = wait_measured(subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                           env=env), t0)
    if m.returncode != 0:
        raise ScaleError(f"{shlex.join(cmd[:3])} ... failed (rc {m.returncode}); see "
                         f"{log_path}:" + log_tail(log_path))
    return m


def disk_bytes(*paths: Path) -> int:
    """Bytes of the files under paths (apparent size)."""
    total = 0
    for root in paths:
        if root.is_file():
            total += root.stat().st_size
            continue
        for dirpath, _, files in os.walk(root):
            for f in files:
                try:
                    total += os.lstat(os.path.join(dirpath, f)).st_size
                except FileNotFoundError:
                    pass
    return total


def audio_hours(data_dir: Path) -> float:
    """Hours of audio from a data dir's utt2dur."""
    total = 0.0
    with open(data_dir / "utt2dur", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                total += float(parts[1])
    return total / 3600.0


def count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def machine() -> Dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version()}


def git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, text=True,
                             capture_output=True, check=True).stdout.strip()
        # the report this benchmark writes (docs/scale.md) is not a change to the code measured
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(exclude,top)docs/scale.md"], cwd=repo, text=True,
                               capture_output=True, check=True).stdout.strip()
        return out + ("+changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass
class Settings:
    recipe: Path  # egs/voxceleb
    work: Path  # everything the benchmark writes
    corpus_conf: Path
    nj: int = 2
    aug_subset: int = 2000  # utterances per augmentation type
    backend_per_spk: int = 4  # backend subset: utterances per training speaker
    train_steps: int = 400  # per model
    train_batch: int = 32
    train_workers: int = 2
    loader_crops: int = 4000  # per loader measurement
    quick: bool = False


class Benchmark:
    """Runs the steps (module doc), keeping results in <work>/results.json."""

    def __init__(self, s: Settings):
        self.s = s
        s.work.mkdir(parents=True, exist_ok=True)
        self.results_path = s.work / "results.json"
        self.results: Dict[str, Any] = {}
        from bccmt.corpus.config import ConfigError, load_config

        try:
            digest = load_config(str(s.corpus_conf)).digest()
        except (ConfigError, OSError) as e:
            raise ScaleError(f"corpus config {s.corpus_conf}: {e}") from None
        if self.results_path.exists():
            self.results = json.loads(self.results_path.read_text(encoding="utf-8"))
            old = self.results.get("corpus_digest")
            if old and old != digest:
                raise ScaleError(f"{self.results_path} holds results for corpus config "
                                 f"{self.results['settings'].get('corpus_conf')} (digest {old}), "
                                 f"not {s.corpus_conf} ({digest}): use another --work or remove it")
        self.results["corpus_digest"] = digest
        self.results.setdefault("steps", {})
        self.results["settings"] = {k: str(v) if isinstance(v, Path) else v
                                    for k, v in asdict(s).items()}
        self.results["machine"] = machine()
        self.env = dict(os.environ)
        self.env.setdefault("OMP_NUM_THREADS", "1")

    # paths
    @property
    def corpus(self) -> Path:
        return self.s.work / "corpus"

    def data(self, name: str = "") -> Path:
        return self.s.work / "data" / name if name else self.s.work / "data"

    def fbank(self, name: str) -> Path:
        return self.s.work / "fbank" / name

    def exp(self, name: str) -> Path:
        return self.s.work / "exp" / name

    def logs(self, name: str) -> Path:
        return self.s.work / "log" / f"{name}.log"

    def save(self) -> None:
        tmp = self.results_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, self.results_path)

    def step(self, name: str, fn: Callable[[], Dict[str, Any]]) -> Dict[str, Any]:
        if name in self.results["steps"]:
            log.info("step %s: done before (%s); skipped", name, self.results_path)
            return self.results["steps"][name]
        load = os.getloadavg()[0]  # 1-min load average: was the machine idle when it started?
        log.info("step %s (load average %.2f) ...", name, load)
        t0 = time.time()
        out = fn()
        out.setdefault("load_at_start", load)
        out.setdefault("finished", time.strftime("%Y-%m-%d %H:%M:%S"))
        out.setdefault("commit", self.results["commit"])  # a resumed benchmark may span commits
        self.results["steps"][name] = out
        self.save()
        log.info("step %s done in %.1f s: %s", name, time.time() - t0,
                 {k: v for k, v in out.items() if not isinstance(v, (dict, list))})
        return out

    def sh(self, name: str, cmd: List[str]) -> Measure:
        return run_measured(cmd, self.s.recipe, self.logs(name), self.env)

    # steps
    def run(self) -> Dict[str, Any]:
        s = self.s
        self.results["commit"] = git_commit(s.recipe)
        self.step("corpus", self._corpus)
        self.step("prepare", self._prepare)
        self.step("augment", self._augment)
        self.step("fbank", lambda: self._fbank("fbank", "vox2_dev", "training", False))
        self.step("fbank_cm", lambda: self._fbank("fbank_cm", "vox2_dev_cm", "training", True))
        self.step("fbank_eval", lambda: self._fbank("fbank_eval", "vox1", "extraction", False))
        self.step("fbank_backend", self._fbank_backend)
        self.step("loader", self._loader)
        self.step("train_base", lambda: self._train("bccmt_base", None))
        self.step("train_tiny_kd", lambda: self._train("bccmt_tiny_kd", self.exp("bccmt_base")))
        self.step("extract_eval", lambda: self._extract("vox1", False))
        self.step("extract_backend", lambda: self._extract("vox2_dev_backend", True))
        for trials in sorted((self.data("vox1") / "trials").glob("*.kaldi")):
            for backend in BACKENDS:
                self.step(f"score_{trials.stem}_{backend}", lambda t=trials, b=backend:
                          self._score(t, b))
        self.save()
        return self.results

    def _corpus(self) -> Dict[str, Any]:
        m = self.sh("corpus", ["local/make_mini_corpus.sh", "--nj", str(self.s.nj), "--config",
                               str(self.s.corpus_conf), str(self.corpus)])
        stats = json.loads((self.corpus / ".done").read_text(encoding="utf-8"))
        return {**asdict(m), "stats": stats, "hours": stats["train_hours"] + stats["test_hours"],
                "disk": disk_bytes(self.corpus / "voxceleb1", self.corpus / "voxceleb2"),
                "utts": stats["train_utts"] + stats["test_utts"]}

    def _prepare(self) -> Dict[str, Any]:
        m = self.sh("prepare", ["local/prepare_voxceleb.sh", "--nj", str(self.s.nj),
                                "--vox1-root", str(self.corpus / "voxceleb1"),
                                "--vox2-root", str(self.corpus / "voxceleb2"), str(self.data())])
        trials = {t.stem: count_lines(t) for t in (self.data("vox1") / "trials").glob("*.kaldi")}
        hours = audio_hours(self.data("vox2_dev")) + audio_hours(self.data("vox1"))
        return {**asdict(m), "hours": hours, "trials": trials,
                "utts": count_lines(self.data("vox2_dev") / "utt2spk")
                + count_lines(self.data("vox1") / "utt2spk"),
                "train_speakers": count_lines(self.data("vox2_dev") / "spk2utt"),
                "eval_speakers": count_lines(self.data("vox1") / "spk2utt")}

    def _augment(self) -> Dict[str, Any]:
        m = self.sh("augment", ["local/augment_data_dir.sh", "--nj", str(self.s.nj),
                                "--subset", str(self.s.aug_subset),
                                "--musan-root", str(self.corpus / "musan"),
                                "--rirs-root", str(self.corpus / "rirs_noises"),
                                str(self.data("vox2_dev"))])
        sets = [self.data(f"vox2_dev_{t}") for t in ("reverb", "noise", "music", "babble")]
        hours = sum(audio_hours(d) for d in sets if (d / "utt2dur").exists())
        utts = sum(count_lines(d / "utt2spk") for d in sets)
        return {**asdict(m), "hours": hours, "utts": utts, "disk": disk_bytes(*sets)}

    def _fbank(self, name: str, data_name: str, purpose: str, compress: bool) -> Dict[str, Any]:
        data = self.data(data_name)
        if data_name == "vox2_dev_cm" and not (data / "wav.scp").exists():
            data.mkdir(parents=True, exist_ok=True)
            for f in ("wav.scp", "utt2spk", "spk2utt", "utt2dur"):
                (data / f).write_bytes((self.data("vox2_dev") / f).read_bytes())
        m = self.sh(name, ["local/make_fbank.sh", "--nj", str(self.s.nj), "--fbank-config",
                           "conf/fbank.yaml", "--purpose", purpose, "--compress",
                           str(compress).lower(), str(data), str(self.s.work / "log" / name),
                           str(self.fbank(data_name))])
        return {**asdict(m), "hours": audio_hours(data), "utts": count_lines(data / "feats.scp"),
                "disk": disk_bytes(self.fbank(data_name)), "compress": compress}

    def _fbank_backend(self) -> Dict[str, Any]:
        spks = count_lines(self.data("vox2_dev") / "spk2utt")
        n = min(spks * self.s.backend_per_spk, count_lines(self.data("vox2_dev") / "utt2spk"))
        subprocess.run(["utils/subset_data_dir.py", "--seed", "1234", str(n),
                        str(self.data("vox2_dev")), str(self.data("vox2_dev_backend"))],
                       cwd=self.s.recipe, check=True, env=self.env, capture_output=True)
        backend = self.data("vox2_dev_backend")
        for f in ("feats.scp", "utt2num_frames", "fbank.yaml"):  # the training features go
            if (backend / f).exists():
                (backend / f).unlink()
        return self._fbank("fbank_backend", "vox2_dev_backend", "extraction", False)

    def _loader(self) -> Dict[str, Any]:
        """Crops/s of the training loader (in this process), on the scale corpus's features (short
        utterances: crops are tiled) and on random matrices with VoxCeleb2's lengths (mean ~8 s),
        each float32 and compressed, reading crops and (baseline) whole matrices."""
        from bccmt.studies.scale_loader import make_length_dir, measure_loader, voxceleb_lengths

        s = self.s
        lengths = voxceleb_lengths(200 if s.quick else 3000)
        sets = {"scale corpus": ("vox2_dev", "vox2_dev_cm")}
        vox = {}
        for name, compress in (("vox_len", False), ("vox_len_cm", True)):
            vox[name] = make_length_dir(s.work / "loader" / name, lengths, compress)
        sets["VoxCeleb lengths"] = ("vox_len", "vox_len_cm")
        rows = []
        for label, names in sets.items():
            for name in names:
                data = vox.get(name) or self.data(name)
                arks = list((s.work / "loader" / name).glob("*.ark")) if name in vox else list(
                    self.fbank(name).glob("*.ark"))
                for ark in arks:  # into the page cache
                    with open(ark, "rb") as f:
                        while f.read(1 << 24):
                            pass
                for reads, workers in (("crop", 0), ("whole", 0), ("crop", 1), ("crop", 2)):
                    crops = s.loader_crops * max(1, workers)
                    rate = measure_loader(data, crops, workers, reads=reads, spec_augment=True)
                    rows.append({"data": label, "compressed": name.endswith("_cm"),
                                 "reads": reads, "workers": workers, "crops": crops,
                                 "crops_per_s": rate})
                    log.info("loader %s", rows[-1])
        return {"rows": rows, "mean_frames_scale": _mean_frames(self.data("vox2_dev")),
                "mean_frames_vox": float(np.mean(lengths)),
                "vox_len_hours": float(np.sum(lengths)) / 100 / 3600,
                "disk_vox_len": disk_bytes(vox["vox_len"]),
                "disk_vox_len_cm": disk_bytes(vox["vox_len_cm"])}

    def _train(self, model: str, teacher: Optional[Path]) -> Dict[str, Any]:
        from bccmt.config import load_config
        from bccmt.studies.scale_training import train_steps

        exp = self.exp(model)
        config = self.s.recipe / "conf" / "voxceleb" / f"{model}.yaml"
        # The schedule squeezed into the one epoch of steps: warm-up over the first fifth, decay
        # to final_lr by the end, the margin ramped in over 60-90% of the steps (so that most
        # steps show the margin-free loss, which is the one that can fall). The learning rates
        # are scaled to the smaller batch (linear rule: the config's 0.1 is for batch 256; at
        # batch 32 a peak of 0.1 made the loss rise, 10.9 -> 12.9 in 30 steps at margin 0).
        cfg = load_config(config)
        opt, ratio = cfg.optim, self.s.train_batch / cfg.train.batch_size
        overrides = [f"train.batch_size={self.s.train_batch}",
                     f"data.num_workers={self.s.train_workers}", "optim.warmup_epochs=0.2",
                     f"optim.lr={opt.lr * ratio:g}", f"optim.final_lr={opt.final_lr * ratio:g}",
                     "head.margin_start_epoch=0.6", "head.margin_end_epoch=0.9"]
        if teacher is not None:
            overrides += ["kd.check_p_value=null", f"kd.check_utts={8 if self.s.quick else 32}"]
        out = train_steps(config, self.data("vox2_dev"), exp, self.s.train_steps, overrides,
                          teacher=teacher, log_path=self.logs(f"train_{model}"), cwd=self.s.recipe)
        return out

    def _extract(self, data_name: str, spk_mean: bool) -> Dict[str, Any]:
        exp = self.exp("bccmt_tiny_kd")
        data = self.data(data_name)
        out = ExpLayout(exp).embeddings(data_name).root
        m = self.sh(f"extract_{data_name}", [
            "local/extract_embeddings.sh", "--nj", str(self.s.nj), "--spk-mean",
            str(spk_mean).lower(), str(exp), str(data), str(out)])
        utts = count_lines(data / "utt2spk")
        return {**asdict(m), "utts": utts, "hours": audio_hours(data),
                "utts_per_s": utts / max(m.wall_s, 1e-9), "disk": disk_bytes(out)}

    def _score(self, trials: Path, backend: str) -> Dict[str, Any]:
        exp = self.exp("bccmt_tiny_kd")
        m = self.sh(f"score_{trials.stem}_{backend}", [
            "local/score.sh", "--backends", backend, "--train-set", "vox2_dev_backend",
            str(exp), str(trials)])
        result = ExpLayout(exp).result_file(trials.stem, backend)
        return {**asdict(m), "trials": count_lines(trials),
                "result": result.read_text(encoding="utf-8").strip() if result.exists() else ""}


def _mean_frames(data: Path) -> float:
    n, total = 0, 0
    with open(data / "utt2num_frames", encoding="utf-8") as f:
        for line in f:
            n += 1
            total += int(line.split()[1])
    return total / max(n, 1)
