"""Encoding images and texts with a CLIP model on one device, for evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def default_device() -> str:
    """``cuda`` when a GPU is present, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class Encoder:
    """L2-normalised float32 embeddings of image batches and caption lists.

    Runs under autocast (fp16) on CUDA when ``amp`` (the default there), in fp32 otherwise.
    Texts are tokenised and encoded ``text_batch_size`` at a time.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        device: str | torch.device = "cpu",
        amp: bool | None = None,
        text_batch_size: int = 512,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.amp = (self.device.type == "cuda") if amp is None else amp
        self.text_batch_size = text_batch_size

    def _autocast(self):
        return torch.autocast(self.device.type, enabled=self.amp)

    @torch.no_grad()
    def images(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) preprocessed images -> (B, D) unit vectors on the device."""
        with self._autocast():
            feats = self.model.encode_image(images.to(self.device, non_blocking=True))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    @torch.no_grad()
    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """T captions -> (T, D) unit vectors on the device."""
        texts = list(texts)
        out = []
        for i in range(0, len(texts), self.text_batch_size):
            tokens = self.tokenizer(texts[i : i + self.text_batch_size]).to(self.device)
            with self._autocast():
                feats = self.model.encode_text(tokens)
            out.append(torch.nn.functional.normalize(feats.float(), dim=-1))
        if not out:
            raise ValueError("no texts to encode")
        return torch.cat(out)

    @property
    def logit_scale(self) -> float:
        """The model's learned inverse temperature, ``exp(logit_scale)``."""
        scale = getattr(self.model, "logit_scale", None)
        if scale is None:
            raise ValueError("the model has no logit_scale")
        return float(scale.detach().float().exp())
