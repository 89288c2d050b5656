"""The built-in plugins, each registered in the ``open_clip_train.plugins`` entry-point group."""
