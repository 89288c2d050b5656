"""ROI features and tags for SoftCLIP: per-shard sidecar storage, detector-output conversion
(VinVL / Oscar TSVs) and the embedded dataset's oracle detector.

See ``docs/softclip.md``; the command line is ``alignclip rois --help``.
"""
