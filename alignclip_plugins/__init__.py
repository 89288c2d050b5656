"""SoftCLIP and AlignCLIP soft-label training as plugins for open_clip's trainer.

This module is imported at every interpreter start (through ``alignclip_plugins.pth``),
so it must stay free of heavy imports: no torch here.
"""

__version__ = "0.1.0"
