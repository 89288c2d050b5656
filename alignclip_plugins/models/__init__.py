"""Modules the plugins attach to open_clip models (the SoftCLIP ROI encoder) and text-tower
helpers (trimmed encoding of short token sequences)."""
