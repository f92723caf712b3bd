"""VoxCeleb corpora -> Kaldi data dirs, and the official trial lists -> Kaldi trials.

Layouts (see DESIGN.md):
  VoxCeleb1  <vox1>/wav/<spk>/<video>/<n>.wav                       -> data/vox1
  VoxCeleb2  <vox2>/dev/aac/<spk>/<video>/<n>.m4a (official AAC) or
             <vox2>/dev/wav/<spk>/<video>/<n>.wav (converted / mini corpus) -> data/vox2_dev
Utterance id = the path below wav/ (or aac/) without extension, e.g. ``id10270/x6uYqmx31kE/00001``,
speaker = its first component. This is the mapping that makes the official trial lines
``1 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav`` refer to utterance ids.
Each data dir gets wav.scp (absolute paths), utt2spk, spk2utt, utt2dur (from file headers only),
all sorted in byte order and written atomically.
"""

from __future__ import annotations

import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from bccmt.audio import AudioError, audio_duration
from bccmt.data.datadir import examples
from bccmt.io.tables import atomic_write, read_kv, write_kv, write_lists

log = logging.getLogger(__name__)

# official list -> Kaldi trials name (data/vox1/trials/<name>.kaldi)
TRIAL_LISTS = {
    "veri_test.txt": "vox1_O",
    "veri_test2.txt": "vox1_O_cleaned",
    "list_test_all.txt": "vox1_E",
    "list_test_all2.txt": "vox1_E_cleaned",
    "list_test_hard.txt": "vox1_H",
    "list_test_hard2.txt": "vox1_H_cleaned",
}
MAX_EXAMPLES = 5


def _examples(items: Iterable[str]) -> str:
    return examples(items, MAX_EXAMPLES)


class PrepError(ValueError):
    """Input that cannot be turned into a data dir or trials; the message says what and where."""


def scan_audio(top: Path, ext: str) -> Dict[str, str]:
    """{utt_id: absolute path} for every ``<spk>/<video>/<n><ext>`` file below ``top``."""
    top = Path(os.path.abspath(top))  # absolute, but keeps a symlinked corpus root as given
    found: Dict[str, str] = {}
    stray: List[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in filenames:
            if not name.endswith(ext):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, top)[: -len(ext)]
            parts = rel.split(os.sep)
            if len(parts) != 3 or any(not p or p.split() != [p] for p in parts):
                stray.append(rel + ext)
                continue
            found["/".join(parts)] = path
    if stray:
        log.warning("%s: ignoring %d files not at <spk>/<video>/<n>%s, e.g. %s",
                    top, len(stray), ext, _examples(stray))
    return found


def _duration(path: str) -> Tuple[str, Optional[float], str]:
    try:
        return path, audio_duration(path), ""
    except AudioError as e:
        return path, None, str(e)


def durations(paths: Sequence[str], nj: int = 1) -> Dict[str, Tuple[Optional[float], str]]:
    """{path: (seconds or None, reason)} from the headers; ``nj`` worker processes."""
    if nj <= 1 or len(paths) < 1000:
        return {p: (d, why) for p, d, why in map(_duration, paths)}
    with ProcessPoolExecutor(nj) as pool:
        return {p: (d, why) for p, d, why in pool.map(_duration, paths, chunksize=500)}


def write_data_dir(out_dir: Path, wavs: Dict[str, str], nj: int = 1) -> Dict[str, int]:
    """Writes wav.scp, utt2spk, spk2utt, utt2dur for ``wavs`` ({utt: path}) into a fresh ``out_dir``.

    Utterances whose header cannot be read (or have zero length) are left out, with a warning, and
    listed with the reason in ``out_dir/prep_excluded``. The dir is built beside ``out_dir`` and
    swapped in at the end, so stale tables of an earlier run (feats.scp, ...) never survive.
    """
    if not wavs:
        raise PrepError(f"no utterances for {out_dir}")
    durs = durations(list(wavs.values()), nj)
    bad = {u: durs[p][1] or "zero duration" for u, p in wavs.items() if not durs[p][0]}
    good = {u: p for u, p in wavs.items() if u not in bad}
    if not good:
        raise PrepError(f"{out_dir}: no readable audio ({len(bad)} files failed, e.g. "
                        f"{_examples(f'{u}: {r}' for u, r in bad.items())})")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    utt2spk = {u: u.split("/", 1)[0] for u in good}
    write_kv(tmp / "wav.scp", good)
    write_kv(tmp / "utt2spk", utt2spk)
    spk2utt: Dict[str, List[str]] = {}
    for u, s in utt2spk.items():
        spk2utt.setdefault(s, []).append(u)
    write_lists(tmp / "spk2utt", spk2utt)
    write_kv(tmp / "utt2dur", {u: f"{durs[p][0]:.3f}" for u, p in good.items()})
    if bad:
        log.warning("%s: left out %d utterances with unreadable headers, e.g. %s (all in %s)",
                    out_dir, len(bad), _examples(bad), out_dir / "prep_excluded")
        write_kv(tmp / "prep_excluded", bad)
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)
    hours = sum(durs[p][0] for p in good.values()) / 3600
    log.info("%s: %d utterances, %d speakers, %.2f hours", out_dir, len(good), len(spk2utt), hours)
    return {"utterances": len(good), "speakers": len(spk2utt), "excluded": len(bad)}


def prepare_vox1(vox1_root: Path, out_dir: Path, nj: int = 1) -> Dict[str, int]:
    """VoxCeleb1 (dev + test, all of <vox1>/wav) -> ``out_dir``."""
    top = Path(vox1_root) / "wav"
    if not top.is_dir():
        raise PrepError(f"{top}: no such directory (expected <vox1>/wav/<spk>/<video>/<n>.wav)")
    wavs = scan_audio(top, ".wav")
    if not wavs:
        raise PrepError(f"{top}: no <spk>/<video>/<n>.wav files found")
    return write_data_dir(Path(out_dir), wavs, nj)


def prepare_vox2_dev(vox2_root: Path, out_dir: Path, nj: int = 1) -> Dict[str, int]:
    """VoxCeleb2 dev -> ``out_dir``; <vox2>/dev/aac (m4a) is used when present, else dev/wav."""
    aac, wav = Path(vox2_root) / "dev" / "aac", Path(vox2_root) / "dev" / "wav"
    if aac.is_dir():
        top, ext = aac, ".m4a"
        if wav.is_dir():
            log.warning("%s and %s both exist; using the official AAC files", aac, wav)
    elif wav.is_dir():
        top, ext = wav, ".wav"
    else:
        raise PrepError(f"neither {aac} nor {wav} exists (expected <vox2>/dev/aac/<spk>/<video>/"
                        "<n>.m4a)")
    wavs = scan_audio(top, ext)
    if not wavs:
        raise PrepError(f"{top}: no <spk>/<video>/<n>{ext} files found")
    return write_data_dir(Path(out_dir), wavs, nj)


def _trial_utt(field: str) -> Optional[str]:
    parts = field.split("/")
    if len(parts) != 3 or not all(parts) or not parts[2].endswith(".wav"):
        return None
    return field[: -len(".wav")]


def convert_trials(list_path: Path, utts: Iterable[str], out_path: Path) -> Dict[str, int]:
    """Official ``<1|0> <spk/video/n.wav> <spk/video/n.wav>`` -> Kaldi ``enroll test
    target|nontarget`` (original order kept). Malformed lines -> PrepError naming file:line;
    trial utterances missing from ``utts`` -> PrepError naming a few and the count."""
    known = set(utts)
    lines: List[str] = []
    missing = set()
    n_target = 0
    with open(list_path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            parts = raw.split()
            enroll = test = None
            if len(parts) == 3 and parts[0] in ("0", "1"):
                enroll, test = _trial_utt(parts[1]), _trial_utt(parts[2])
            if enroll is None or test is None:
                raise PrepError(f"{list_path}:{lineno}: expected '<1|0> <spk/video/n.wav> "
                                f"<spk/video/n.wav>', got '{raw.strip()}'")
            missing.update(u for u in (enroll, test) if u not in known)
            n_target += parts[0] == "1"
            lines.append(f"{enroll} {test} {'target' if parts[0] == '1' else 'nontarget'}\n")
    if not lines:
        raise PrepError(f"{list_path}: no trials")
    if missing:
        raise PrepError(f"{list_path}: {len(missing)} trial utterances are not in the data dir, e.g. "
                        f"{_examples(missing)} (the E and H lists need the VoxCeleb1 dev audio too; "
                        "take a list out of the trials dir to skip it)")
    with atomic_write(out_path, encoding="utf-8") as f:
        f.writelines(lines)
    log.info("%s -> %s: %d trials (%d target)", list_path, out_path, len(lines), n_target)
    return {"trials": len(lines), "target": n_target}


def trial_speakers(trials_path: Path) -> set:
    """Speakers (first id component) of every utterance in a Kaldi trials file."""
    spks = set()
    with open(trials_path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            spks.update(p.split("/", 1)[0] for p in parts[:2])
    return spks


def check_speaker_overlap(trial_spks: Iterable[str], train_spks: Iterable[str],
                          what: str = "the trials") -> None:
    """PrepError naming the speakers that are both in the trials and in training."""
    both = set(trial_spks) & set(train_spks)
    if both:
        raise PrepError(f"{len(both)} speaker(s) of {what} are also training speakers: "
                        f"{_examples(both)}; "
                        "evaluating on training speakers gives meaningless results")


def prepare_voxceleb(data_root: Path, vox1_root: Optional[Path] = None,
                     vox2_root: Optional[Path] = None, trials_dir: Optional[Path] = None,
                     nj: int = 1) -> None:
    """Stage 0: data_root/vox2_dev, data_root/vox1 and data_root/vox1/trials/*.kaldi."""
    data_root = Path(data_root)
    if vox1_root is None and vox2_root is None:
        raise PrepError("give at least one of --vox1-root and --vox2-root")
    if vox2_root is not None:
        prepare_vox2_dev(vox2_root, data_root / "vox2_dev", nj)
    if vox1_root is not None:
        out = data_root / "vox1"
        prepare_vox1(vox1_root, out, nj)
        utts = read_kv(out / "utt2spk")
        tdir = Path(trials_dir) if trials_dir is not None else Path(vox1_root)
        if not tdir.is_dir():
            raise PrepError(f"{tdir}: trials directory does not exist")
        done = []
        for official, name in TRIAL_LISTS.items():
            if (tdir / official).is_file():
                convert_trials(tdir / official, utts, out / "trials" / f"{name}.kaldi")
                done.append(name)
        if not done:
            raise PrepError(f"{tdir}: none of the official trial lists "
                            f"({', '.join(TRIAL_LISTS)}) is there")
        log.info("trial lists: %s", ", ".join(done))
    train = data_root / "vox2_dev" / "utt2spk"
    trials = sorted((data_root / "vox1" / "trials").glob("*.kaldi"))
    if train.is_file() and trials:
        train_spks = set(read_kv(train).values())
        for t in trials:
            check_speaker_overlap(trial_speakers(t), train_spks, what=f"{t} vs {train}")
        log.info("no trial speaker of %s is in %s", ", ".join(t.name for t in trials), train)
