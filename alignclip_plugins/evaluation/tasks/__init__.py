"""The ``alignclip eval`` tasks, one module each: its options (``add_arguments``) and its run
(``run``) over the models of :mod:`.base`, as a :class:`~.base.Task` named ``TASK``. The
computations they run live in the modules of :mod:`alignclip_plugins.evaluation`."""
