"""Caption object parsing (``alignclip objects parse``) and the object vocabulary
(``alignclip objects stats``); see docs/objects.md. Submodules are imported on use."""
