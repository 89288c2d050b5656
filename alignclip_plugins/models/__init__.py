"""Helpers for open_clip models that any plugin can use: the text tower's encoding of short
token sequences without running the padding (:mod:`.text_trim`). Model parts of one method
live in its plugin (SoftCLIP's ROI encoder: :mod:`alignclip_plugins.plugins.softclip.roi_encoder`)."""
