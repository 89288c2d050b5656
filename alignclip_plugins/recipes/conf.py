"""Finding and composing the recipe configs with Hydra.

The shipped configs are ``recipes/conf`` in a source checkout, installed into the wheel as
``alignclip_plugins/recipes/conf``. A user config directory (``$ALIGNCLIP_RECIPES_CONF``,
default ``~/.config/alignclip/recipes``) is searched after them: it adds configs of its own
(``data/mydata.yaml``, ``launch/mycluster.yaml``) and ``local_data/<name>.yaml`` files that
are merged over the shipped ``data/<name>.yaml`` (paths and sample counts of your copies).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_ENV = "ALIGNCLIP_RECIPES_CONF"
DEFAULT_USER_CONF = Path("~/.config/alignclip/recipes")
PRIMARY = "config"


class RecipeConfigError(ValueError):
    """A recipe configuration that cannot be composed or resolved; the message says why."""


def shipped_conf_dir() -> Path:
    """The directory of the shipped configs (wheel first, then the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "recipes" / "conf"):
        if (candidate / f"{PRIMARY}.yaml").is_file():
            return candidate
    raise RecipeConfigError(
        f"the recipe configs are missing: looked for {here / 'conf'} (installed wheel) and "
        f"{here.parents[1] / 'recipes' / 'conf'} (source checkout); reinstall alignclip-plugins"
    )


def user_conf_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user config directory, if it exists (``explicit`` must exist when given)."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_dir():
            raise RecipeConfigError(f"--config-dir {path} is not a directory")
        return path.resolve()
    path = Path(os.environ.get(CONF_ENV) or DEFAULT_USER_CONF).expanduser()
    return path.resolve() if path.is_dir() else None


def _synthetic_split(root: str, synth: DictConfig, split: str, field: str):
    """``pattern`` (under ``root``) or ``num_samples`` of a synthetic split, without generating.

    The generator is deterministic in its options, so the manifest it will write is known.
    """
    from alignclip_plugins.synthetic.manifest import build_manifest

    entry = build_manifest(_synth_config(synth)[0])["splits"][split]
    if field == "pattern":
        return str(Path(root) / entry["pattern"])
    return entry[field]


def _synth_config(synth):
    """The SynthConfig of ``data.synth``: its non-null fields over the generator's defaults."""
    from alignclip_plugins.synthetic.config import SynthConfig

    options = (
        OmegaConf.to_container(synth, resolve=True) if isinstance(synth, DictConfig) else synth
    )
    options = {k: v for k, v in (options or {}).items() if v is not None}
    try:
        return SynthConfig(**options), options
    except (TypeError, ValueError) as e:
        raise RecipeConfigError(f"data.synth: {e}") from e


def _synth_args(synth) -> list[str]:
    """``alignclip synth`` options for the fields set (non-null) in ``data.synth``."""
    config, options = _synth_config(synth)
    args = []
    for name in options:
        value = getattr(config, name)
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args += [f"--{name.replace('_', '-')}", shown]
    return args


def _synth_option(synth, name: str):
    """The value of SynthConfig field ``name`` that ``data.synth`` generates with."""
    return getattr(_synth_config(synth)[0], str(name))


def _tiny_model() -> str:
    from alignclip_plugins.model_configs import model_arg

    return model_arg()


def _shipped_model(name: str) -> str:
    """``--model`` of a config shipped in alignclip_plugins/model_configs (``local-dir:``)."""
    from alignclip_plugins.model_configs import model_arg

    try:
        return model_arg(str(name))
    except FileNotFoundError as e:
        raise RecipeConfigError(str(e)) from e


def _if_file(path, then, otherwise):
    """``then`` if ``path`` names an existing file, else ``otherwise`` (optional inputs)."""
    return then if path not in (None, "") and os.path.isfile(str(path)) else otherwise


def register_resolvers() -> None:
    """The ``alignclip.*`` interpolations the configs use (idempotent)."""
    resolvers = {
        "alignclip.tiny_model": _tiny_model,
        "alignclip.shipped_model": _shipped_model,
        "alignclip.if_file": _if_file,
        "alignclip.synthetic_split": _synthetic_split,
        "alignclip.synth_args": _synth_args,
        "alignclip.synth_option": _synth_option,
    }
    for name, fn in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


class Composer:
    """Composes configs from the shipped directory (+ the user's); use as a context manager.

    >>> with Composer() as c:
    ...     cfg = c.compose(["experiment=softclip/table6", "model=RN50"])
    """

    def __init__(self, config_dir: str | os.PathLike | None = None) -> None:
        self.shipped = shipped_conf_dir()
        self.user = user_conf_dir(config_dir)
        self._context = None
        self._cache: dict[tuple[str, ...], DictConfig] = {}

    def __enter__(self) -> Composer:
        from hydra import initialize_config_dir

        register_resolvers()
        self._context = initialize_config_dir(config_dir=str(self.shipped), version_base="1.3")
        self._context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._context.__exit__(*exc)
        self._context = None

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The composed (unresolved) config, a fresh copy; errors name the bad override."""
        from hydra import compose
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        key = tuple(overrides)
        if key not in self._cache:
            extra = [f"hydra.searchpath=[file://{self.user}]"] if self.user else []
            try:
                self._cache[key] = compose(PRIMARY, overrides=[*overrides, *extra])
            except (HydraException, OmegaConfBaseException) as e:
                raise RecipeConfigError(f"cannot compose the recipe config: {e}") from e
        return copy.deepcopy(self._cache[key])


def resolve(cfg: DictConfig) -> dict:
    """``cfg`` as plain, fully interpolated containers; errors name the key."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" ({key})" if key else ""
        raise RecipeConfigError(f"cannot resolve the recipe config{where}: {e}") from e
    except RecipeConfigError:
        raise


def experiments(config_dir: str | os.PathLike | None = None) -> list[str]:
    """The experiment names (``softclip/table6``, ...) of the shipped and user configs."""
    dirs = [shipped_conf_dir()]
    user = user_conf_dir(config_dir)
    if user is not None:
        dirs.append(user)
    names: set[str] = set()
    for base in dirs:
        root = base / "experiment"
        if root.is_dir():
            names.update(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))
    return sorted(names)
