"""The dataset directory's bookkeeping: recorded options, the manifest, loading and checking.

``.options.json`` is written before any shard, so a rerun can tell whether the directory holds
data from the same seed and options (resume) or from others (refuse). ``manifest.json`` is
written last: its presence means the dataset is complete.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_text, remove_stale_temporaries
from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.plan import num_shards, split_size
from alignclip_plugins.synthetic.statistics import STATISTICS_FILE
from alignclip_plugins.synthetic.writer import (
    shard_name,
    shard_pattern,
)

# Bump whenever generated content changes: older directories are then refused, not resumed.
FORMAT = 3
OPTIONS_FILE = ".options.json"
MANIFEST_FILE = "manifest.json"
METADATA_FILES = (
    "classnames.txt",
    "classes.json",
    "attributes.json",
    "descriptions.json",
    "vocabulary.json",
    STATISTICS_FILE,
)


class SyntheticDataError(RuntimeError):
    """A dataset directory that cannot be used as asked."""


class SyntheticDataMissing(SyntheticDataError, FileNotFoundError):
    """No complete synthetic dataset where one was expected."""


class SyntheticOptionsMismatch(SyntheticDataError, FileExistsError):
    """The output directory holds data from other options, or something else entirely."""


def synth_command(out: str | Path, config: SynthConfig | None = None) -> str:
    """The ``alignclip synth`` command line that (re)generates ``config`` into ``out``."""
    parts = ["alignclip", "synth", "--out", str(out)]
    if config is not None:
        default = SynthConfig()
        for f in fields(SynthConfig):
            value = getattr(config, f.name)
            if value != getattr(default, f.name):
                shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
                parts += [f"--{f.name.replace('_', '-')}", shown]
    return " ".join(parts)


def options_record(config: SynthConfig) -> dict:
    """What ``.options.json`` holds: {"format", "seed", "options"}."""
    return {"format": FORMAT, "seed": config.seed, "options": config.options()}


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _recorded(out: Path) -> dict | None:
    """The seed and options recorded in ``out`` (options file, else manifest), if any."""
    for name in (OPTIONS_FILE, MANIFEST_FILE):
        record = _read_json(out / name)
        if record is not None and {"format", "seed", "options"} <= record.keys():
            return {k: record[k] for k in ("format", "seed", "options")}
    return None


def _differences(recorded: dict, wanted: dict) -> str:
    pairs = [
        ("format", recorded.get("format"), wanted["format"]),
        ("seed", recorded.get("seed"), wanted["seed"]),
    ]
    old = recorded.get("options") or {}
    pairs += [(k, old.get(k), v) for k, v in wanted["options"].items()]
    return ", ".join(f"{k} {a!r} there vs {b!r} now" for k, a, b in pairs if a != b)


def remove_dataset(out: Path) -> None:
    """Delete the files a generation writes into ``out`` (and nothing else)."""
    for name in (*METADATA_FILES, MANIFEST_FILE, OPTIONS_FILE):
        (out / name).unlink(missing_ok=True)
    for split in SPLITS:
        directory = out / split
        if not directory.is_dir():
            continue
        remove_stale_temporaries(directory)
        for shard in directory.glob(f"{split}-*.tar"):
            shard.unlink()
        if not any(directory.iterdir()):
            directory.rmdir()


def prepare_output(out: Path, config: SynthConfig, overwrite: bool = False) -> None:
    """Make ``out`` ready to generate ``config``, or to resume generating it.

    Raises SyntheticOptionsMismatch when ``out`` holds other data and ``overwrite`` is False.
    Leaves ``out`` with the options file written and no manifest.
    """
    if out.exists() and not out.is_dir():
        raise SyntheticOptionsMismatch(f"--out {out} exists and is not a directory")
    wanted = options_record(config)
    if out.is_dir() and any(out.iterdir()):
        recorded = _recorded(out)
        if overwrite:
            remove_dataset(out)
        elif recorded is None:
            raise SyntheticOptionsMismatch(
                f"{out} is not empty and holds no synthetic dataset: pick another --out, or pass "
                f"--overwrite to write the dataset into it anyway"
            )
        elif recorded != wanted:
            raise SyntheticOptionsMismatch(
                f"{out} holds synthetic data generated with other options "
                f"({_differences(recorded, wanted)}): pick another --out, or pass --overwrite "
                f"to replace it"
            )
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)
    atomic_write_text(out / OPTIONS_FILE, json.dumps(wanted, indent=2) + "\n")
    for split in SPLITS:
        remove_stale_temporaries(out / split)


def build_manifest(config: SynthConfig) -> dict:
    """The manifest of a complete dataset generated from ``config``."""
    splits = {}
    for split in SPLITS:
        shards = num_shards(config, split)
        splits[split] = {
            "pattern": shard_pattern(split, shards),
            "num_samples": split_size(config, split),
            "num_shards": shards,
        }
    return {**options_record(config), "splits": splits}


def write_manifest(out: Path, manifest: dict) -> None:
    """Write ``manifest.json``, marking the dataset complete."""
    atomic_write_text(out / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def split_urls(out: str | Path, split: str, manifest: dict | None = None) -> list[str]:
    """Paths of all shards of ``split`` under ``out`` (its manifest pattern, expanded)."""
    manifest = load_manifest(out) if manifest is None else manifest
    if split not in manifest["splits"]:
        raise KeyError(
            f"no split {split!r} in the synthetic dataset; splits: {list(manifest['splits'])}"
        )
    shards = range(manifest["splits"][split]["num_shards"])
    return [str(Path(out) / shard_name(split, i)) for i in shards]


def load_manifest(out: str | Path) -> dict:
    """The manifest of the complete synthetic dataset in ``out``.

    Raises SyntheticDataMissing, naming ``out`` and the command to (re)generate it, when the
    directory, its manifest or any shard is absent.
    """
    out = Path(out)
    manifest = _read_json(out / MANIFEST_FILE)
    if manifest is None:
        recorded = _recorded(out)
        if recorded is None:
            raise SyntheticDataMissing(
                f"no synthetic dataset in {out} (no readable {MANIFEST_FILE}); generate it "
                f"with `{synth_command(out)}`"
            )
        config = SynthConfig.from_record(recorded["seed"], recorded["options"])
        raise SyntheticDataMissing(
            f"the synthetic dataset in {out} is incomplete (its generation did not finish); "
            f"resume it with `{synth_command(out, config)}`"
        )
    if manifest.get("format") != FORMAT or "splits" not in manifest:
        raise SyntheticDataMissing(
            f"{out / MANIFEST_FILE} has format {manifest.get('format')!r}, this version reads "
            f"format {FORMAT}: regenerate it with `{synth_command(out)} --overwrite`"
        )
    missing = [
        url
        for split in manifest["splits"]
        for url in split_urls(out, split, manifest)
        if not Path(url).is_file()
    ]
    if missing:
        config = SynthConfig.from_record(manifest["seed"], manifest["options"])
        raise SyntheticDataMissing(
            f"the synthetic dataset in {out} is incomplete: {len(missing)} shard(s) missing, "
            f"e.g. {missing[0]}; regenerate them with `{synth_command(out, config)}`"
        )
    return manifest
