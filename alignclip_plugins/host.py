"""The plugin host: loads ``--plugins`` and answers the calls the patch adds upstream.

The functions under the ``call sites`` headings are the call sites of ``patches/``. Each
returns upstream's own behaviour when ``--plugins`` is empty, so the patched trainer
without plugins is upstream. The hooks themselves are specified in
:mod:`alignclip_plugins.hookspecs`; plugins are found by :mod:`alignclip_plugins.discovery`.
A :class:`PluginHost` is cached per set of plugin names; the plugins' state of one run is
that run's :class:`~alignclip_plugins.stash.Stash` (:meth:`PluginHost.stash_for`), passed
to the run's hooks as ``stash``.
"""

from __future__ import annotations

import argparse
import logging
import re
import weakref
from collections.abc import Callable, Sequence

import pluggy

from alignclip_plugins import batching, hookspecs, loader_report
from alignclip_plugins.discovery import (  # noqa: F401  (the host's public names)
    PluginError,
    installed_plugins,
    load_plugin,
    parse_plugin_names,
    resolve_plugins,
)
from alignclip_plugins.registry import LossRegistry, LossSpec
from alignclip_plugins.stash import Stash

log = logging.getLogger(__name__)


class PluginHost:
    """The active plugins (a pluggy manager), their losses, and the state of each run.

    Hosts are cached per plugin names (:func:`get_host`), so several runs in one process may
    share one; a run's plugin state is its own :class:`~alignclip_plugins.stash.Stash`
    (:meth:`stash_for`).
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        modules = resolve_plugins(names)
        self.names = tuple(name for name, _ in modules)  # named ones plus their requirements
        # pluggy calls the last registered first: register in reverse so hooks run in
        # --plugins order.
        for name, module in reversed(modules):
            self.pm.register(module, name=name)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or str(exc.plugin)
            raise PluginError(_validation_message(name, exc)) from exc
        self.losses = LossRegistry()
        self.default_loss: str | None = None
        self._stashes: dict[int, Stash] = {}  # by id() of each run's args
        for name in self.names:
            added = self.losses_of(name)
            if added and self.default_loss is None:
                self.default_loss = added[0]

    def losses_of(self, name: str) -> list[str]:
        """Call plugin ``name``'s ``octrain_register_losses`` (alone) with a registry of its
        own, add its losses to :attr:`losses`; their names in registration order."""
        others = [self.pm.get_plugin(n) for n in self.names if n != name]
        register = self.pm.subset_hook_caller("octrain_register_losses", remove_plugins=others)
        own = LossRegistry(plugin=name)
        register(registry=own)
        try:
            return self.losses.update(own)
        except ValueError as exc:
            raise PluginError(str(exc)) from None

    @property
    def hook(self):
        return self.pm.hook

    def implements(self, hook_name: str) -> bool:
        return bool(getattr(self.pm.hook, hook_name).get_hookimpls())

    def loss_spec(self, args: argparse.Namespace) -> LossSpec | None:
        name = getattr(args, "loss", None)
        return self.losses.get(name) if name else None

    def stash_for(self, args: argparse.Namespace) -> Stash:
        """The stash of the run whose parsed options are ``args`` (made on first use).

        A run is one ``args`` object (``parse_args`` makes it; the trainer passes the same
        object to every call site), so two runs in one process never share plugin state,
        even with one cached host. Forgotten when ``args`` is.
        """
        key = id(args)
        stash = self._stashes.get(key)
        if stash is None:
            try:
                weakref.finalize(args, self._stashes.pop, key, None)
            except TypeError:
                raise TypeError(
                    f"a run's options must be an argparse.Namespace (parse_args' result), "
                    f"got {type(args).__name__}"
                ) from None
            stash = self._stashes[key] = Stash()
        return stash


def _validation_message(name: str, exc: pluggy.PluginValidationError) -> str:
    """pluggy's message, with the hooks' names when a marked function is not one of them."""
    text = f"plugin {name!r}: {exc}"
    match = re.search(r"unknown hook '(\w+)'", str(exc))
    if match and not match[1].startswith(hookspecs.PREFIX):
        known = sorted(n for n in dir(hookspecs) if n.startswith(hookspecs.PREFIX))
        text += (
            f"; every hook's name starts with {hookspecs.PREFIX!r} ({', '.join(known)}): "
            "see alignclip_plugins.hookspecs"
        )
    return text


_HOSTS: dict[tuple[str, ...], PluginHost] = {}


def get_host(names: Sequence[str]) -> PluginHost:
    """The (cached) host for these plugin names."""
    key = tuple(names)
    if key not in _HOSTS:
        _HOSTS[key] = PluginHost(key)
    return _HOSTS[key]


def host_for(args: argparse.Namespace) -> PluginHost | None:
    """The host of a parsed run, or None when ``--plugins`` is empty (upstream behaviour)."""
    names = parse_plugin_names(getattr(args, "plugins", ""))
    return get_host(names) if names else None


def unwrap(model):
    """The CLIP model inside a DDP / compiled wrapper."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)


# ---- call sites in open_clip_train.params ---------------------------------------------


def add_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> None:
    """Add the options of the plugins named by ``--plugins`` in ``argv``, and ``--loss``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugins", default="")
    known, _ = pre.parse_known_args(argv)
    names = parse_plugin_names(known.plugins)
    if not names:
        return
    try:
        host = get_host(names)
    except PluginError as exc:
        parser.error(str(exc))
    add_plugin_arguments(parser, host)


def add_plugin_arguments(parser: argparse.ArgumentParser, host: PluginHost) -> None:
    """Add the options of ``host``'s plugins, ``--loss`` (with any loss) and each loss's own."""
    host.hook.octrain_add_arguments(parser=parser)
    if not len(host.losses):
        return
    group = parser.add_argument_group("plugin losses")
    group.add_argument(
        "--loss",
        default=host.default_loss,
        choices=host.losses.names(),
        help=f"Loss registered by the active plugins (default: {host.default_loss}).",
    )
    for name in host.losses.names():
        spec = host.losses.get(name)
        if spec.add_arguments is not None:
            spec.add_arguments(parser)


def configure(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the parsed options against the active plugins; exits with a usage error."""
    host = host_for(args)
    if host is None:
        return
    spec = host.loss_spec(args)
    if spec is not None:
        clashes = [
            flag
            for flag, on in (
                ("--siglip", args.siglip),
                ("--distill-model", args.distill_model is not None),
                ("a CoCa model", "coca" in args.model.lower()),
            )
            if on
        ]
        if clashes:
            parser.error(
                f"--loss {spec.name} (plugin {spec.plugin}) replaces upstream's CLIP loss and "
                f"cannot be combined with {', '.join(clashes)}"
            )
        if args.accum_freq > 1 and not spec.supports_accum:
            parser.error(
                f"--loss {spec.name} (plugin {spec.plugin}) does not support --accum-freq > 1; "
                f"use --accum-freq 1 with a larger --batch-size or more GPUs"
            )
    try:
        host.hook.octrain_configure(args=args, stash=host.stash_for(args))
    except ValueError as exc:
        parser.error(str(exc))


def training_dataset_type(args: argparse.Namespace) -> str | None:
    """The dataset type upstream trains on (``get_data``'s rule), None without training data.

    ``auto`` resolves as upstream does, by the last extension of ``--train-data``: ``tar``
    is ``webdataset``, ``csv``/``tsv`` is ``csv``; any other stays ``auto`` (upstream
    then fails once the model is built).
    """
    if args.dataset_type == "synthetic":
        return "synthetic"  # trains without --train-data
    if not args.train_data:
        return None
    if args.dataset_type != "auto":
        return args.dataset_type
    ext = str(args.train_data).split(".")[-1]
    return {"tar": "webdataset", "csv": "csv", "tsv": "csv"}.get(ext, "auto")


def require_webdataset(args: argparse.Namespace, plugin: str, fields: str) -> None:
    """For a plugin's ``octrain_configure``: refuse training data that is not webdataset shards.

    ``fields`` says what the plugin reads per sample from its shards' sidecars. Raises
    ValueError naming ``--plugins``, ``--dataset-type`` and what to give instead; passes
    when the run has no training data (evaluation only).
    """
    kind = training_dataset_type(args)
    if kind in (None, "webdataset"):
        return
    given = f"--dataset-type {args.dataset_type}"
    if args.dataset_type == "auto":
        given += f" (--train-data {args.train_data} is not a .tar pattern)"
    elif kind == "synthetic":
        given += " (generated images, no shards)"
    raise ValueError(
        f"--plugins {getattr(args, 'plugins', plugin)}: {given} is not supported: {plugin} reads the {fields} of "
        f"each training sample from sidecars of its webdataset shard; use --dataset-type "
        f"webdataset with --train-data 'DIR/train-{{000000..000099}}.tar' (the shards the "
        f"sidecars were made for)"
    )


# ---- call sites in open_clip_train.main -----------------------------------------------


def attach_modules(model, args: argparse.Namespace, *, device) -> None:
    """Add the plugins' auxiliary modules to ``model`` (on its device and dtype)."""
    host = host_for(args)
    if host is None:
        return
    dtype = next(model.parameters()).dtype
    stash = host.stash_for(args)
    for modules in host.hook.octrain_attach_modules(model=model, args=args, stash=stash):
        for name, module in (modules or {}).items():
            if hasattr(model, name):
                raise PluginError(f"cannot attach module {name!r}: the model already has one")
            model.add_module(name, module.to(device=device, dtype=dtype))
            count = sum(p.numel() for p in module.parameters())
            log.info(f"Plugin module {name}: {type(module).__name__}, {count:,} parameters")


def create_loss(args: argparse.Namespace, *, default: Callable):
    """The loss chosen with ``--loss`` among the plugins' losses, else upstream's."""
    host = host_for(args)
    spec = host.loss_spec(args) if host is not None else None
    if spec is None:
        return default(args)
    log.info(f"Loss: {spec.name} (plugin {spec.plugin})")
    return spec.factory(args)


def evaluates(args: argparse.Namespace) -> bool:
    """Whether the epoch's evaluation call runs without --val-data: with any plugin (the
    plugins' metrics, the training loader's report)."""
    return host_for(args) is not None


# ---- call sites in open_clip_train.data -----------------------------------------------


def _loader_events(args: argparse.Namespace, is_train: bool) -> loader_report.LoaderEvents | None:
    """The events of the run's training pipeline being built (None: no plugins, not training)."""
    host = host_for(args)
    if host is None or not is_train:
        return None
    return host.stash_for(args).get(loader_report.EVENTS)


def _loader_totals(stash: Stash) -> loader_report.LoaderTotals:
    totals = stash.get(loader_report.TOTALS)
    if totals is None:
        totals = stash[loader_report.TOTALS] = loader_report.LoaderTotals()
    return totals


def tar_samples(args: argparse.Namespace, *, default: Callable) -> Callable:
    """The training pipeline's tar reader: upstream's, reporting its errors with plugins."""
    host = host_for(args)
    if host is None:
        return default
    events = loader_report.LoaderEvents()  # the first call site of a training pipeline
    host.stash_for(args)[loader_report.EVENTS] = events
    return loader_report.TarSamples(default, events)


def watch_samples(args: argparse.Namespace, *, is_train: bool, keep: Callable) -> list:
    """Before upstream's sample filter ``keep``: the stage recording what it drops (training
    with plugins; else none)."""
    events = _loader_events(args, is_train)
    return [] if events is None else [loader_report.WatchSamples(events, keep)]


def decode_handler(args: argparse.Namespace, *, is_train: bool, default: Callable) -> Callable:
    """The decoder's error handler: upstream's, or (training with plugins) one naming the
    sample and counting it in the epoch's report."""
    events = _loader_events(args, is_train)
    return default if events is None else events.decode_error


def sample_stages(args: argparse.Namespace, *, is_train: bool, tokenizer, epoch=None) -> list:
    """The plugins' per-sample webdataset stages, in ``--plugins`` order."""
    host = host_for(args)
    if host is None:
        return []
    results = host.hook.octrain_sample_stages(
        args=args, is_train=is_train, tokenizer=tokenizer, epoch=epoch, stash=host.stash_for(args)
    )
    return [stage for stages in results for stage in (stages or [])]


def batch_stages(args: argparse.Namespace, *, is_train: bool, default: list) -> list:
    """Upstream's ``to_tuple`` + ``batched``, or dict batches with the plugins' fields."""
    host = host_for(args)
    if host is None:
        return default
    import webdataset as wds

    stash = host.stash_for(args)
    collate: dict[str, Callable] = {}
    for fields in host.hook.octrain_collate_fields(args=args, is_train=is_train, stash=stash):
        for name, fn in (fields or {}).items():
            if name in collate or name in (*batching.BASE_FIELDS, loader_report.FIELD):
                raise PluginError(f"two plugins collate the batch field {name!r}")
            collate[name] = fn
    batcher = wds.batched(
        args.batch_size, partial=not is_train, collation_fn=batching.DictCollator(collate)
    )
    events = stash.get(loader_report.EVENTS) if is_train else None
    if events is not None:  # a training pipeline: its report
        batcher = loader_report.ReportBatches(batcher, events)
    return [wds.map(batching.SelectFields(list(collate))), batcher]


# ---- call sites in open_clip_train.train and .zero_shot ------------------------------


def batch_to_device(batch, args: argparse.Namespace, *, device, input_dtype) -> dict:
    """The batch as a dict on the device; upstream's tuple batches become ``image``/``text``.

    A training batch's loader report is taken out and counted in the run's
    :class:`~.loader_report.LoaderTotals`.
    """
    if isinstance(batch, dict):
        host = host_for(args)
        if host is not None:
            _loader_totals(host.stash_for(args)).receive(batch)
    return batching.to_device(batch, device=device, input_dtype=input_dtype)


def forward_features(model, batch: dict, model_out: dict, args: argparse.Namespace) -> dict:
    """The plugins' extra loss inputs for this step (empty without plugins)."""
    host = host_for(args)
    if host is None:
        return {}
    extra: dict = {}
    for features in host.hook.octrain_forward_features(
        model=model, batch=batch, model_out=model_out, args=args, stash=host.stash_for(args)
    ):
        for key, value in (features or {}).items():
            if key in extra or key in model_out:
                raise PluginError(f"two sources provide the loss input {key!r}")
            extra[key] = value
    return extra


def zero_shot_classifier(args: argparse.Namespace, *, default: Callable) -> Callable:
    """A drop-in for ``build_zero_shot_classifier`` that asks the plugins first."""
    host = host_for(args)
    if host is None or not host.implements("octrain_zero_shot_classifier"):
        return default

    def build(model, tokenizer, classnames, templates, device="cpu", **kwargs):
        result = host.hook.octrain_zero_shot_classifier(
            model=unwrap(model),
            tokenizer=tokenizer,
            classnames=list(classnames),
            templates=list(templates),
            args=args,
            device=device,
            stash=host.stash_for(args),
        )
        if result is None:
            return default(model, tokenizer, classnames, templates, device=device, **kwargs)
        return result

    return build


def evaluate(model, data: dict, epoch: int, args: argparse.Namespace, *, tokenizer) -> dict:
    """The plugins' extra metrics for this epoch (rank 0), with ``epoch`` when any; logs
    the training loader's report of the epoch (:meth:`.loader_report.LoaderTotals.report`)."""
    host = host_for(args)
    if host is None:
        return {}
    stash = host.stash_for(args)
    _loader_totals(stash).report(epoch, args)
    metrics: dict = {}
    for result in host.hook.octrain_evaluate(
        model=unwrap(model), data=data, epoch=epoch, args=args, tokenizer=tokenizer, stash=stash
    ):
        metrics.update(result or {})
    if metrics:
        metrics.setdefault("epoch", epoch)
    return metrics


# ---- `alignclip plugins` --------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    """List the installed plugins, the hooks they implement and the losses they register."""
    parser = argparse.ArgumentParser(prog="alignclip plugins", description=main.__doc__)
    parser.parse_args(argv)
    installed = installed_plugins()
    if not installed:
        print(f"no plugins in the {hookspecs.ENTRY_POINT_GROUP!r} entry-point group")
        return 1
    for name, ep in installed.items():
        try:
            host = PluginHost([name])
        except PluginError as exc:
            print(f"{name:<18} {ep.value}  ERROR: {exc}")
            continue
        hooks = sorted(h.name for h in host.pm.get_hookcallers(host.pm.get_plugin(name)) or [])
        own = [n for n in host.losses.names() if host.losses.get(n).plugin == name]
        lines = [f"{name:<18} {ep.value}", f"    losses: {', '.join(own) or '-'}"]
        if len(host.names) > 1:
            lines.append(f"    requires: {', '.join(host.names[1:])}")
        lines.append(f"    hooks: {', '.join(hooks)}")
        print("\n".join(lines))
    return 0
