"""A third-party plugin used only by the tests: it implements every hook observably.

- ``--probe-weight`` option, checked in ``octrain_configure`` (must be >= 0);
- a ``probe`` module (Linear embed_dim -> 1) attached to the model;
- a sample stage adding ``probe_len`` (caption length, from the sample) and
  ``probe_side`` (read from a sidecar ``<shard>.probe.json``), both collated;
- ``octrain_forward_features`` returning ``probe_out`` = probe(image features) * probe_side;
- loss ``probe-clip`` = upstream ClipLoss + weight * mean(probe_out^2), reported as two terms;
- a zero-shot classifier hook (identity prototypes) and an ``octrain_evaluate`` metric.
"""

import json
from pathlib import Path

import torch
from open_clip.loss import ClipLoss

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.host import unwrap


def add_probe_arguments(parser):
    parser.add_argument("--probe-weight", type=float, default=0.5)


class ProbeClipLoss(ClipLoss):
    def __init__(self, weight, **kwargs):
        super().__init__(**kwargs)
        self.weight = weight

    def forward(
        self, image_features, text_features, logit_scale, probe_out, output_dict=False, **_
    ):
        clip = super().forward(image_features, text_features, logit_scale)
        out = {"contrastive_loss": clip, "probe_loss": self.weight * probe_out.pow(2).mean()}
        return out if output_dict else sum(out.values())


def make_loss(args):
    return ProbeClipLoss(
        args.probe_weight,
        local_loss=args.local_loss,
        gather_with_grad=args.gather_with_grad,
        cache_labels=True,
        rank=args.rank,
        world_size=args.world_size,
        use_horovod=args.horovod,
    )


@hookimpl
def octrain_add_arguments(parser):
    parser.add_argument("--probe-sidecars", action="store_true", help="read <shard>.probe.json")


@hookimpl
def octrain_register_losses(registry):
    registry.register(
        "probe-clip", make_loss, add_arguments=add_probe_arguments, supports_accum=True
    )


@hookimpl
def octrain_configure(args):
    if args.probe_weight < 0:
        raise ValueError(f"--probe-weight must be >= 0, got {args.probe_weight}")


@hookimpl
def octrain_attach_modules(model, args):
    return {"probe": torch.nn.Linear(model.text_projection.shape[1], 1)}


class AddProbeFields:
    def __init__(self, sidecars):
        self.sidecars, self.cache = sidecars, {}

    def side(self, url):
        if url not in self.cache:
            self.cache[url] = json.loads(Path(url).with_suffix(".probe.json").read_text())
        return self.cache[url]

    def __call__(self, src):
        for sample in src:
            sample["probe_len"] = len(sample["text"])
            sample["probe_side"] = (
                self.side(sample["__url__"])[sample["__key__"]] if self.sidecars else 1.0
            )
            yield sample


def collate_floats(values):
    return torch.tensor(values, dtype=torch.float32)


@hookimpl
def octrain_sample_stages(args, is_train, tokenizer):
    return [AddProbeFields(args.probe_sidecars)]


@hookimpl
def octrain_collate_fields(args, is_train):
    return {"probe_len": collate_floats, "probe_side": collate_floats}


@hookimpl
def octrain_forward_features(model, batch, model_out, args):
    probe = unwrap(model).probe
    feats = model_out["image_features"]
    return {"probe_out": probe(feats).squeeze(1) * batch["probe_side"] + 0 * batch["probe_len"]}


@hookimpl
def octrain_zero_shot_classifier(model, tokenizer, classnames, templates, args, device):
    dim = model.text_projection.shape[1]
    return torch.eye(dim, len(classnames), device=device)


@hookimpl
def octrain_evaluate(model, data, epoch, args, tokenizer):
    return {"probe_bias": float(model.probe.bias.detach().cpu().item())}
