"""Model configs shipped with the package, used through open_clip's ``local-dir:`` schema.

``--model $(python -c "from alignclip_plugins.model_configs import model_arg; print(model_arg())")``
trains the embedded demo's tiny ViT (64 px, 8 px patches, 4 layers of width 128 per tower,
context 32) from scratch with stock open_clip_train.
"""

from pathlib import Path

TINY = "ViT-Tiny-64"
DEMO = "RN-Demo-64"  # alignclip demo's model (recipes/conf/model/demo.yaml), with its own tokenizer


def model_dir(name: str = TINY) -> Path:
    path = Path(__file__).resolve().parent / name
    if not (path / "open_clip_config.json").is_file():
        known = sorted(
            p.name for p in path.parent.iterdir() if (p / "open_clip_config.json").is_file()
        )
        raise FileNotFoundError(f"no shipped model config {name!r}; known: {', '.join(known)}")
    return path


def model_arg(name: str = TINY) -> str:
    """The ``--model`` value for open_clip_train: ``local-dir:<path>``."""
    return f"local-dir:{model_dir(name)}"
