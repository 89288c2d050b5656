"""Applies ``patches/open_clip_train-<version>.patch`` to open_clip_train in memory.

Stdlib only: :mod:`.importer` is imported at every interpreter start through the
``alignclip_plugins.pth`` file that the wheel installs into site-packages.
"""
