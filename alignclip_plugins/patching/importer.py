"""Import hook: open_clip_train's modules are compiled from patched source.

``install()`` (run from ``alignclip_plugins.pth`` at interpreter start) puts
:class:`PatchFinder` on ``sys.meta_path``. It does nothing until a module named in the
patch (``open_clip_train.main``, ``.train``, ...) is imported; then it checks the
installed open_clip_torch version and compiles the module from its patched source. No
installed file is modified. ``ALIGNCLIP_PLUGINS_NO_PATCH=1`` turns the hook off (plain
upstream), e.g. to compare against it.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.metadata
import linecache
import os
import sys
from pathlib import Path

from alignclip_plugins.patching import unidiff

PACKAGE = "open_clip_train"
DISTRIBUTION = "open_clip_torch"
SUPPORTED_VERSION = "3.3.0"
DISABLE_ENV = "ALIGNCLIP_PLUGINS_NO_PATCH"
PATCH_NAME = f"{PACKAGE}-{SUPPORTED_VERSION}.patch"


class UnsupportedUpstreamError(ImportError):
    """The installed open_clip_train is not the release the patch was written for."""


def patch_file() -> Path:
    """The patch: inside the wheel (``_patches/``) or, in a source checkout, ``patches/``."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_patches" / PATCH_NAME, here.parent / "patches" / PATCH_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{PATCH_NAME} not found next to {here}; reinstall alignclip-plugins")


@functools.cache
def file_patches() -> dict[str, unidiff.FilePatch]:
    """``{"open_clip_train/main.py": FilePatch, ...}`` parsed from :func:`patch_file`."""
    return unidiff.parse(patch_file().read_text(encoding="utf-8"))


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _unsupported(found: str | None, detail: str) -> UnsupportedUpstreamError:
    return UnsupportedUpstreamError(
        f"alignclip-plugins patches {PACKAGE} of {DISTRIBUTION} {SUPPORTED_VERSION}, but "
        f"{DISTRIBUTION} {found or '(unknown version)'} is installed ({detail}). Install the "
        f"supported release: pip install '{DISTRIBUTION}[training]=={SUPPORTED_VERSION}', or set "
        f"{DISABLE_ENV}=1 to run {PACKAGE} unpatched (without --plugins)."
    )


class PatchedSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the module from patched source (bytecode caches are bypassed)."""

    def __init__(self, fullname: str, path: str, patch: unidiff.FilePatch) -> None:
        super().__init__(fullname, path)
        self._patch = patch

    def get_source(self, fullname: str) -> str:
        source = super().get_source(fullname)
        try:
            return unidiff.apply(source, self._patch)
        except unidiff.PatchError as exc:
            raise _unsupported(installed_version(), f"{exc} in {self.path}") from None

    def get_code(self, fullname: str):
        source = self.get_source(fullname)
        # Tracebacks and inspect then show the patched lines, not the file's (mtime None:
        # linecache.checkcache never drops the entry).
        linecache.cache[self.path] = (len(source), None, source.splitlines(True), self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


class PatchFinder:
    """A ``sys.meta_path`` finder for the patched open_clip_train modules."""

    def find_spec(self, fullname: str, path=None, target=None):
        if not fullname.startswith(PACKAGE + ".") or os.environ.get(DISABLE_ENV):
            return None
        relpath = fullname.replace(".", "/") + ".py"
        patch = file_patches().get(relpath)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        found = installed_version()
        if found is not None and found != SUPPORTED_VERSION:
            raise _unsupported(found, f"at {Path(spec.origin).parent}")
        spec.loader = PatchedSourceLoader(fullname, spec.origin, patch)
        return spec


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (idempotent)."""
    if not any(isinstance(f, PatchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PatchFinder())
