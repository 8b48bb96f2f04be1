"""Would register ``dummy-old``; never imported, because the distribution requires specmatch<0.1."""

from specmatch import RegularizerSpec, hookimpl


@hookimpl
def specmatch_regularizers():
    yield RegularizerSpec(name="dummy-old", factory="specmatch_dummy_oldapi.plugin:nothing")
