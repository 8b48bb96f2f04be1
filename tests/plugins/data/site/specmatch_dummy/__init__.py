"""A fake plugin package (see ../specmatch_dummy-0.1.dist-info): the entry points ``ok`` and ``broken``."""
