"""Every registered component over a matrix of bad values and geometries: whatever its factory refuses,
``validate`` refused first; and a ParamError from a factory is a recipe error, not a traceback."""

from __future__ import annotations

import math
import types

import attrs
import pytest

from specmatch.core.errors import ParamError, RecipeError, SpecmatchError
from specmatch.core.kinds import KINDS
from specmatch.core.recipe import load_recipe
from specmatch.core.session import get_registry

#: values tried for each numeric parameter (one parameter at a time)
BAD_NUMBERS = (0, -1, 3, 1e-300, math.nan, math.inf, 10**6)
#: (resolution, autoencoder preset): latent sides 8, 4, 12
GEOMETRIES = ((16, "micro-f2d4"), (16, "tiny-f4d4"), (24, "micro-f2d4"))
#: components whose build needs packages or weights this machine may not have (checked by file facts)
NEEDS_EXTERNAL = {("alignment", "timm"), ("alignment", "stlpips-alex"), ("perceptual", "stlpips"),
                  ("perceptual", "lpips"), ("autoencoder", "diffusers-vae"), ("metric", "sfid"),
                  ("metric", "inception-score"), ("metric", "fd-dinov2"), ("metric", "lpips")}


def _recipe(kind: str, name: str, params: dict, resolution: int, preset: str) -> str:
    import tomli_w

    data = {"data": {"name": "demo-photos", "params": {"resolution": resolution}},
            "autoencoder": {"name": "sdvae", "params": {"preset": preset}},
            "denoiser": {"name": "dit", "params": {"preset": "dit-micro"}}}
    table = {"name": name, "params": params}
    named_in = KINDS[kind].named_in
    if named_in:  # chosen by name in a list; params in the sibling <kind>_params table
        parent, key = named_in.split(".")
        data[parent] = {key: [name], f"{kind}_params": {name: params} if params else {}}
    else:
        data[KINDS[kind].table] = [table] if KINDS[kind].array else table
    if (kind, name) in (("regularizer", "vavae"), ("denoiser_regularizer", "repa")):
        data["alignment"] = {"name": "stlpips-alex"}
    if kind == "objective":  # a sampler that works with every objective (the default one integrates dx/dt)
        data["sampler"] = {"name": "ddim"}
    if kind == "denoiser_regularizer":  # deep enough for the default tap (REPA: 8)
        data["denoiser"]["params"]["depth"] = 8
    return tomli_w.dumps(data)


def _cases(spec):
    cls = spec.params_class()
    for case in _bad_values(cls):  # required string params (a root folder) get a placeholder
        required = {f.name: "placeholder" for f in attrs.fields(cls) if f.default is attrs.NOTHING
                    and f.type in (str, "str")} if cls is not None else {}
        yield {**required, **case}


def _bad_values(cls):
    yield {}
    for field in attrs.fields(cls) if cls is not None else ():
        default = field.default if not isinstance(field.default, attrs.Factory) else field.default.factory()
        if isinstance(default, bool) or (default is not None and not isinstance(default, (int, float, tuple))):
            continue
        for value in BAD_NUMBERS:
            if isinstance(default, tuple):
                yield {field.name: [value]}
            else:
                yield {field.name: value}


def _fake_upstream(resolved):
    comp = resolved.component("autoencoder")
    facts = comp.spec.facts_for(comp.params)
    side = resolved.component("data").params.resolution // facts.downsample_factor
    den = resolved.component("denoiser")
    taps = den.spec.facts_for(den.params).depth
    return {"denoiser": types.SimpleNamespace(tap_widths=(32,) * taps),"latent_shape": (facts.latent_channels, side, side), "num_classes": 0,
            "autoencoder": types.SimpleNamespace(latent_channels=facts.latent_channels,
                                                 downsample_factor=facts.downsample_factor),
            "alignment": types.SimpleNamespace(feature_dim=64)}


SPECS = [(s.kind, s.name) for s in get_registry(autoload=False).specs]


@pytest.mark.parametrize("kind, name", SPECS, ids=[f"{k}-{n}" for k, n in SPECS])
def test_whatever_the_factory_refuses_validate_refused_first(tmp_path, monkeypatch, kind, name):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from specmatch.core.specs import BuildContext
    from specmatch.engine.build import build

    registry = get_registry(autoload=False)
    spec = registry.get(kind, name)
    if (kind, name) in NEEDS_EXTERNAL:
        pytest.skip("builds from external packages or weights files; their files are checked by facts")
    path = tmp_path / "r.toml"
    built = 0
    geometries = GEOMETRIES if kind in ("autoencoder", "regularizer", "denoiser") else GEOMETRIES[:1]
    for resolution, preset in geometries:
        for params in _cases(spec):
            path.write_text(_recipe(kind, name, params, resolution, preset), encoding="utf-8")
            try:
                # a dataset is not built here, so its (missing) folder does not matter
                resolved = load_recipe(path, registry=registry, check_files=kind != "dataset")
            except RecipeError:
                continue  # refused up front: nothing to build
            comp = next(c for c in resolved.components.values() if c.kind == kind)
            ctx = BuildContext(recipe_dir=tmp_path, upstream=_fake_upstream(resolved))
            if kind == "dataset":  # building reads every image; its params are covered by ranges and file facts
                built += 1
                continue
            try:
                build(comp, ctx)
            except Exception as exc:  # noqa: BLE001 - any refusal here is a validate gap
                pytest.fail(f"validate accepted {comp.path}.params={params} at {resolution}px/{preset}, "
                            f"but the build failed: {type(exc).__name__}: {exc}")
            built += 1
    assert built > 0


def test_param_error_from_a_factory_is_a_recipe_error(tmp_path):
    from specmatch.core.recipe import ResolvedComponent
    from specmatch.core.specs import BuildContext, DenoiserSpec
    from specmatch.engine.build import build

    def factory(params, ctx):
        raise ParamError("width", "expected an even width; got 3")

    def buggy(params, ctx):
        raise ZeroDivisionError("a bug")

    comp = ResolvedComponent(path="denoiser", kind="denoiser", config=None, params=None, source="r.toml",
                             spec=DenoiserSpec(name="x", factory=factory))
    with pytest.raises(RecipeError) as info:
        build(comp, BuildContext())
    assert info.value.exit_code == 2
    assert [p.render() for p in info.value.problems] == ["denoiser.params.width: expected an even width; got 3"]
    with pytest.raises(RuntimeError) as bug:  # a bug stays a bug (a traceback), naming the component
        build(attrs.evolve(comp, spec=DenoiserSpec(name="x", factory=buggy)), BuildContext())
    assert not isinstance(bug.value, SpecmatchError) and "denoiser" in str(bug.value)
