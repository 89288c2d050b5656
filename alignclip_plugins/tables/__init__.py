"""``alignclip tables``: the papers' tables and figures, with the numbers measured by the recipes.

:mod:`.spec` loads the paper numbers (``paper.yaml``, transcribed from the paper texts) and
this project's own tables (``project.yaml``: the mini reproductions, no paper numbers),
:mod:`.results` finds the runs' measurements in the log folders, :mod:`.markdown` renders
tables, :mod:`.figures` plots figures, :mod:`.cli` is the command.
"""
