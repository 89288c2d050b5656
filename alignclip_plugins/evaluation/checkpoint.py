"""Loading open_clip_train checkpoints (ours, with plugin modules, or plain ones)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a training checkpoint or a bare state dict, without ``module.``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ValueError(
            f"checkpoint {path} could not be read ({exc}); is it a torch.save file?"
        ) from exc
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"checkpoint {path} holds no state dict")
    if next(iter(sd)).startswith("module."):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def load_clip(model_name: str, checkpoint: str | Path, device: str | torch.device = "cpu"):
    """``(model, preprocess_val, tokenizer)`` for ``model_name`` with weights from ``checkpoint``.

    Keys of plugin modules (e.g. ``roi_encoder.*``) are not part of a stock CLIP model;
    they are skipped and listed in the log. Any other mismatch is an error.
    """
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None)
    sd = load_state_dict(checkpoint)
    own = model.state_dict()
    extra = sorted({k.split(".")[0] for k in sd if k not in own})
    if extra:
        log.info(f"{checkpoint}: skipping plugin module weights {extra}")
    missing = [k for k in own if k not in sd]
    if missing:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit model {model_name}: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    model.load_state_dict({k: v for k, v in sd.items() if k in own})
    model.to(device).eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)
