"""Loading models to evaluate: open_clip_train checkpoints (ours, with plugin modules, or plain
ones), bare state dicts, and open_clip's named pretrained weights.

``--model`` is anything open_clip's factory takes (``ViT-B-32``, ``local-dir:PATH``,
``hf-hub:ORG/NAME``). For a checkpoint inside a training run (``<run>/checkpoints/*.pt``) the
model name and the architecture options the run was trained with (``--force-quick-gelu``,
``--force-image-size``, ...) are read from ``<run>/params.txt`` when not given.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from alignclip_plugins.evaluation.results import checkpoint_epoch, run_dir

log = logging.getLogger(__name__)

#: ``params.txt`` entries that change the architecture or the eval preprocessing, passed on to
#: ``open_clip.create_model_and_transforms`` when set.
ARCHITECTURE_PARAMS = (
    "force_quick_gelu",
    "force_custom_text",
    "force_image_size",
    "force_context_length",
    "image_mean",
    "image_std",
    "image_interpolation",
    "image_resize_mode",
)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """``(state dict without 'module.', epoch or None)`` of a training checkpoint or a bare
    state dict. Errors name the file and what was expected."""
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
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(
            f"checkpoint {path} holds no state dict (expected open_clip_train's "
            f"{{'epoch', 'state_dict', ...}} or a bare {{name: tensor}} dict)"
        )
    if next(iter(sd)).startswith("module."):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    epoch = checkpoint.get("epoch") if "state_dict" in checkpoint else None
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        epoch = checkpoint_epoch(path)
    return sd, epoch


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict of a training checkpoint or a bare state dict, without ``module.``."""
    return read_checkpoint(path)[0]


def load_weights(model: torch.nn.Module, sd: dict[str, torch.Tensor], source: str, name: str):
    """Load ``sd`` into a stock open_clip ``model``.

    Keys under top-level names the model does not have (plugin modules such as
    ``roi_encoder.*``) are skipped and logged; a missing key, an unexpected key inside a
    module the model has, or a shape mismatch is an error naming ``source`` and ``name``.
    """
    own = model.state_dict()
    top = {k.split(".")[0] for k in own}
    unknown = [k for k in sd if k not in own]
    foreign = [k for k in unknown if k.split(".")[0] in top]
    if foreign:
        raise ValueError(
            f"checkpoint {source} does not fit model {name}: unexpected {foreign[:5]}"
            f"{' ...' if len(foreign) > 5 else ''}; is --model the architecture it was trained as?"
        )
    plugins = sorted({k.split(".")[0] for k in unknown})
    if plugins:
        log.info(f"{source}: skipping plugin module weights {plugins}")
    missing = [k for k in own if k not in sd]
    if missing:
        raise ValueError(
            f"checkpoint {source} does not fit model {name}: missing {missing[:5]}"
            f"{' ...' if len(missing) > 5 else ''}"
        )
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if tuple(sd[k].shape) != tuple(v.shape)
    ]
    if shapes:
        raise ValueError(
            f"checkpoint {source} does not fit model {name}: shape mismatch {shapes[:3]}"
        )
    model.load_state_dict({k: v for k, v in sd.items() if k in own})


def load_clip(model_name: str, checkpoint: str | Path, device: str | torch.device = "cpu"):
    """``(model, preprocess_val, tokenizer)`` for ``model_name`` with weights from ``checkpoint``.

    Keys of plugin modules (e.g. ``roi_encoder.*``) are not part of a stock CLIP model;
    they are skipped and listed in the log. Any other mismatch is an error.
    """
    loaded = load_model(model_name, checkpoint=checkpoint, device=device, use_run_params=False)
    return loaded.model, loaded.preprocess, loaded.tokenizer


def read_run_params(checkpoint: str | Path) -> dict[str, Any]:
    """The options of the run a checkpoint belongs to (``<run>/params.txt``), or ``{}``."""
    run = run_dir(checkpoint)
    path = run / "params.txt" if run is not None else None
    if path is None or not path.is_file():
        return {}
    params: dict[str, Any] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition(": ")
        if not sep:
            continue
        try:
            params[name.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name.strip()] = value
    return params


@dataclass
class LoadedModel:
    """A model ready to evaluate, and where its weights came from."""

    model: torch.nn.Module
    preprocess: Any
    tokenizer: Any
    name: str
    checkpoint: Path | None
    pretrained: str | None
    epoch: int | None
    label: str


def default_label(checkpoint: Path | None, name: str, pretrained: str | None) -> str:
    """``<run>/epoch_N`` for a run's checkpoint, the file stem otherwise, or model/pretrained."""
    if checkpoint is None:
        return f"{name}/{pretrained}" if pretrained else name
    run = run_dir(checkpoint)
    return f"{run.name}/{checkpoint.stem}" if run is not None else checkpoint.stem


def load_model(
    model_name: str | None,
    checkpoint: str | Path | None = None,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | None = None,
    use_run_params: bool = True,
) -> LoadedModel:
    """Build ``model_name`` and load ``checkpoint`` into it, or open_clip's ``pretrained`` tag.

    Without ``model_name``, a checkpoint of a training run takes the run's ``--model``
    (``params.txt``), as do the run's architecture options (:data:`ARCHITECTURE_PARAMS`).
    """
    import open_clip

    if (checkpoint is None) == (pretrained is None):
        raise ValueError("give exactly one of a checkpoint file and --pretrained weights")
    if pretrained is not None and Path(pretrained).is_file():
        checkpoint, pretrained = pretrained, None
    checkpoint = Path(checkpoint).resolve() if checkpoint is not None else None
    if checkpoint is not None and not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
    params = read_run_params(checkpoint) if checkpoint is not None and use_run_params else {}
    if model_name is None:
        model_name = params.get("model")
        if not model_name:
            where = f" ({checkpoint} is not inside a run with a params.txt)" if checkpoint else ""
            raise ValueError(f"pass --model: the architecture is unknown{where}")
    kwargs = {k: params[k] for k in ARCHITECTURE_PARAMS if params.get(k) not in (None, False, "")}
    if kwargs:
        log.info(f"{checkpoint}: architecture options from the run's params.txt: {kwargs}")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=pretrained,
            load_weights=pretrained is not None,  # a checkpoint's weights replace any others
            cache_dir=cache_dir,
            **kwargs,
        )
    except RuntimeError as e:
        if pretrained is None:
            raise ValueError(f"cannot build model {model_name!r}: {e}") from e
        raise ValueError(
            f"pretrained weights {pretrained!r} of {model_name!r} are not available locally ({e}); "
            f"fetch them once with network access (open_clip caches them), or pass --checkpoint"
        ) from e
    except Exception as e:
        hint = ""
        if pretrained is not None:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            hint = f"; known tags for {model_name}: {', '.join(tags) or 'none'}"
        raise ValueError(f"cannot build model {model_name!r} ({e}){hint}") from e
    epoch = None
    if checkpoint is not None:
        sd, epoch = read_checkpoint(checkpoint)
        load_weights(model, sd, str(checkpoint), model_name)
    model.to(device).eval()
    return LoadedModel(
        model=model,
        preprocess=preprocess,
        tokenizer=open_clip.get_tokenizer(
            model_name, context_length=kwargs.get("force_context_length"), cache_dir=cache_dir
        ),
        name=model_name,
        checkpoint=checkpoint,
        pretrained=pretrained,
        epoch=epoch,
        label=default_label(checkpoint, model_name, pretrained),
    )
