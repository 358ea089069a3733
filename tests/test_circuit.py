"""CircuitSpec validation, overrides and TOML; population_sizes and build_connectome
(properties, gain rule, silence and cut); Config round trips."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse.linalg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cortexsim.anatomy import LAYERS, SUBTYPES, CircuitSpec, PopulationSpec, ProjectionSpec
from cortexsim.circuit import build_connectome, estimate_spectral_radius, population_sizes
from cortexsim.errors import ConfigError

HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

# Probabilities: 0, 1 or moderate values (vanishingly small ones: test_tiny_positive_probability_terminates).
probabilities = st.one_of(st.just(0.0), st.just(1.0), st.floats(1e-3, 1.0))
# Relative weights: 0 or ordinary magnitudes (1e-292 underflows the gain rule's second moments).
weights = st.one_of(st.just(0.0), st.floats(1e-3, 3.0))


@st.composite
def circuit_specs(draw, max_pops: int = 6) -> CircuitSpec:
    """Small random circuits: 1-6 populations (the first excitatory), random projections,
    inputs, silenced populations and gain rule parameters."""
    n = draw(st.integers(1, max_pops))
    classes = ["E"] + [draw(st.sampled_from(["E", "I"])) for _ in range(n - 1)]
    pops = tuple(
        PopulationSpec(
            name=f"P{i}",
            layer=draw(st.sampled_from(LAYERS)),
            cell_class=cls,
            subtype=draw(st.sampled_from(SUBTYPES[cls])),
            size=draw(st.floats(0.05, 1000.0)),
            tau=draw(st.floats(0.001, 1.0)),
        )
        for i, cls in enumerate(classes)
    )
    names = [p.name for p in pops]
    pairs = [(a, b) for a in names for b in names]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    projs = tuple(ProjectionSpec(pre, post, draw(probabilities), draw(weights)) for pre, post in chosen)
    return CircuitSpec(
        populations=pops,
        projections=projs,
        inputs={"go": tuple(draw(st.lists(st.sampled_from(names), unique=True)))},
        outputs=("P0",),
        silenced=tuple(draw(st.lists(st.sampled_from(names[1:]), unique=True)) if n > 1 else ()),
        gain=draw(st.floats(0.1, 2.0)),
        reference_slope=draw(st.floats(0.5, 10.0)),
        weight_cv=draw(st.sampled_from([0.0, 0.5, 1.0])),
    )


def _spec_with_sizes(sizes) -> CircuitSpec:
    pops = tuple(PopulationSpec(f"P{i}", "L2/3", "E", "IT", float(s), 0.05) for i, s in enumerate(sizes))
    return CircuitSpec(populations=pops, projections=(), outputs=("P0",))


def _unit_population(connectome) -> np.ndarray:
    """Population index of each unit, computed from the start/stop ranges."""
    out = np.full(connectome.n_units, -1)
    for i, pop in enumerate(connectome.populations):
        out[pop.start : pop.stop] = i
    return out


def _pair_count(connectome, pre: str, post: str) -> int:
    a, b = connectome.population(pre), connectome.population(post)
    keep = (connectome.pre >= a.start) & (connectome.pre < a.stop)
    keep &= (connectome.post >= b.start) & (connectome.post < b.stop)
    return int(keep.sum())


# ---------------------------------------------------------------------------
# Clear errors for bad specs and overrides
# ---------------------------------------------------------------------------

BAD_OVERRIDES = [
    pytest.param({"sizes": {"PV5B": 300}}, ["sizes", "'size'"], id="unknown-key"),
    pytest.param({"probability": {"IT2/3 -> PT5B": 1.5}}, ["IT2/3 -> PT5B", "1.5", "[0, 1]"], id="p-above-1"),
    pytest.param({"probability": {"IT2/3 -> PT5B": -0.1}}, ["IT2/3 -> PT5B", "-0.1"], id="p-below-0"),
    pytest.param({"probability": {"IT2/3 -> XYZ": 0.1}}, ["IT2/3 -> XYZ"], id="p-unknown-population"),
    pytest.param({"weight": {"PT5B -> IT2/3": 1.0}}, ["PT5B -> IT2/3", "weight"], id="weight-missing-projection"),
    pytest.param({"weight": {"IT2/3 -> PT5B": -1.0}}, ["IT2/3 -> PT5B", "-1"], id="negative-weight"),
    pytest.param({"cut": ["PT5B -> IT5A"]}, ["PT5B -> IT5A", "cut"], id="cut-missing-projection"),
    pytest.param({"size": {"PV5B": 0}}, ["PV5B", "size", "0"], id="zero-size"),
    pytest.param({"size": {"PV5B": -3}}, ["PV5B", "size", "-3"], id="negative-size"),
    pytest.param({"size": {"PV5X": 3}}, ["PV5X", "PV5B"], id="size-unknown-population"),
    pytest.param({"tau": {"PT5B": 0.0}}, ["PT5B", "tau", "0.0"], id="zero-tau"),
    pytest.param({"tau": {"PT5B": -0.01}}, ["PT5B", "tau", "-0.01"], id="negative-tau"),
    pytest.param({"tau": {"PT5B": "fast"}}, ["PT5B", "tau", "'fast'"], id="text-tau"),
    pytest.param({"outputs": ["PV5B"]}, ["PV5B", "inhibitory"], id="inhibitory-output"),
    pytest.param({"outputs": ["XYZ"]}, ["outputs", "XYZ"], id="unknown-output"),
    pytest.param({"silence": ["XYZ"]}, ["silence", "XYZ"], id="silence-unknown"),
    pytest.param({"inputs": {"go": ["NOPE"]}}, ["inputs.go", "NOPE"], id="input-unknown"),
    pytest.param({"gain": 0}, ["gain", "0"], id="zero-gain"),
    pytest.param({"weight_cv": -0.5}, ["weight_cv", "-0.5"], id="negative-cv"),
]


@pytest.mark.parametrize(("overrides", "needles"), BAD_OVERRIDES)
def test_bad_override_raises_config_error_naming_key_and_value(default_spec, overrides, needles):
    with pytest.raises(ConfigError) as info:
        default_spec.with_overrides(overrides)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"size": 300}, id="size-scalar"),
        pytest.param({"probability": 0.05}, id="probability-scalar"),
        pytest.param({"inputs": ["IT4"]}, id="inputs-list"),
    ],
)
def test_override_of_wrong_type_raises_config_error(default_spec, overrides):
    with pytest.raises(ConfigError, match=next(iter(overrides))):
        default_spec.with_overrides(overrides)


@pytest.mark.parametrize(
    ("overrides", "value"),
    [
        pytest.param({"cut": "IT2/3 -> IT5A"}, "IT2/3 -> IT5A", id="cut-string"),
        pytest.param({"outputs": "PT5B"}, "PT5B", id="outputs-string"),
    ],
)
def test_string_instead_of_list_error_names_the_value(default_spec, overrides, value):
    with pytest.raises(ConfigError) as info:
        default_spec.with_overrides(overrides)
    assert repr(value) in str(info.value)


def test_projection_naming_unknown_population_is_rejected(default_spec):
    extra = ProjectionSpec("IT2/3", "XYZ", 0.1, 1.0)
    with pytest.raises(ConfigError, match="XYZ") as info:
        replace(default_spec, projections=default_spec.projections + (extra,))
    assert "IT2/3 -> XYZ" in str(info.value)


def test_duplicate_projection_is_rejected(default_spec):
    dup = default_spec.projections[0]
    with pytest.raises(ConfigError, match="listed twice"):
        replace(default_spec, projections=default_spec.projections + (dup,))


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        pytest.param({"layer": "L7"}, ["layer", "L7"], id="layer"),
        pytest.param({"cell_class": "X"}, ["cell_class", "X"], id="class"),
        pytest.param({"subtype": "PV"}, ["subtype", "PV"], id="subtype-of-other-class"),
        pytest.param({"size": 0.0}, ["size", "0.0"], id="zero-size"),
        pytest.param({"size": -1.0}, ["size", "-1.0"], id="negative-size"),
        pytest.param({"tau": 0.0}, ["tau", "0.0"], id="zero-tau"),
        pytest.param({"tau": float("nan")}, ["tau", "nan"], id="nan-tau"),
    ],
)
def test_bad_population_spec_is_rejected(kwargs, needles):
    base = {"name": "IT9", "layer": "L2/3", "cell_class": "E", "subtype": "IT", "size": 10.0, "tau": 0.05}
    with pytest.raises(ConfigError) as info:
        PopulationSpec(**{**base, **kwargs})
    for needle in ["IT9", *needles]:
        assert needle in str(info.value)


@pytest.mark.parametrize("probability", [-0.01, 1.01, float("inf")])
def test_projection_probability_outside_unit_interval_is_rejected(probability):
    with pytest.raises(ConfigError, match="probability"):
        ProjectionSpec("A", "B", probability, 1.0)


@pytest.mark.parametrize("n_units", [-5, 0, 1, 16])
def test_fewer_units_than_populations_is_rejected(default_spec, n_units):
    with pytest.raises(ConfigError, match="n_units") as info:
        build_connectome(default_spec, n_units, np.random.default_rng(0))
    assert str(n_units) in str(info.value)


def test_n_units_below_population_count_names_the_count(default_spec):
    with pytest.raises(ConfigError, match="17"):
        population_sizes(default_spec, 16)


@pytest.mark.parametrize("n_units", [100.5, "100", True])
def test_n_units_must_be_a_whole_number(default_spec, n_units):
    with pytest.raises(ConfigError, match="n_units"):
        population_sizes(default_spec, n_units)


def test_exactly_one_unit_per_population_at_the_minimum(default_spec):
    sizes = population_sizes(default_spec, len(default_spec.populations))
    assert sizes.tolist() == [1] * 17


# ---------------------------------------------------------------------------
# population_sizes: properties
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(shares=st.lists(st.floats(1e-3, 1e4), min_size=1, max_size=30), data=st.data())
def test_population_sizes_properties(shares, data):
    spec = _spec_with_sizes(shares)
    n = data.draw(st.integers(len(shares), 50_000), label="n_units")
    sizes = population_sizes(spec, n)
    assert sizes.shape == (len(shares),)
    assert sizes.sum() == n
    assert sizes.min() >= 1
    quota = n * np.asarray(shares) / np.sum(shares)
    if quota.min() >= 1:
        assert np.all(np.abs(sizes - quota) <= 1 + 1e-9), (sizes, quota)


@HYPOTHESIS
@given(n=st.integers(17, 20_000))
def test_default_population_sizes_properties(default_spec, n):
    sizes = population_sizes(default_spec, n)
    shares = np.array([p.size for p in default_spec.populations])
    quota = n * shares / shares.sum()
    assert sizes.sum() == n and sizes.min() >= 1
    if quota.min() >= 1:
        assert np.all(np.abs(sizes - quota) <= 1 + 1e-9)


# ---------------------------------------------------------------------------
# build_connectome: properties on random circuits
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(spec=circuit_specs(), data=st.data())
def test_build_connectome_properties(spec, data):
    n_pops = len(spec.populations)
    n = data.draw(st.integers(n_pops, 300), label="n_units")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    c = build_connectome(spec, n, np.random.default_rng(seed))

    # layout
    assert c.n_units == n
    assert [p.size for p in c.populations] == population_sizes(spec, n).tolist()
    assert c.populations[0].start == 0 and c.populations[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(c.populations, c.populations[1:]))
    unit_pop = _unit_population(c)

    # synapses inside range, no autapses, no duplicates, weights >= 0
    assert c.pre.shape == c.post.shape == c.weight.shape
    if c.n_synapses:
        assert 0 <= c.pre.min() and c.pre.max() < n
        assert 0 <= c.post.min() and c.post.max() < n
    assert not np.any(c.pre == c.post)
    assert np.unique(c.post.astype(np.int64) * n + c.pre).size == c.n_synapses
    assert np.all(np.isfinite(c.weight)) and np.all(c.weight >= 0)

    # Dale's law: the sign of every unit (hence synapse) is its population's class
    expected_sign = np.array([1 if p.cell_class == "E" else -1 for p in spec.populations])[unit_pop]
    assert np.array_equal(c.sign, expected_sign)
    pre_class = np.array([p.cell_class for p in spec.populations])[unit_pop[c.pre]]
    assert np.all((c.sign[c.pre] > 0) == (pre_class == "E"))

    # every synapse belongs to a projection of the spec with p > 0 and a live pre population
    allowed = {
        (spec.names.index(p.pre), spec.names.index(p.post))
        for p in spec.projections
        if p.probability > 0 and p.pre not in spec.silenced
    }
    found = set(zip(unit_pop[c.pre].tolist(), unit_pop[c.post].tolist()))
    assert found <= allowed

    # silenced populations: no outgoing synapses, no task input, no readout
    for name in spec.silenced:
        s = c.population(name).slice
        assert not np.any((c.pre >= s.start) & (c.pre < s.stop))
        assert not c.output_mask[s].any()
        assert not any(m[s].any() for m in c.input_masks.values())

    # gain rule: balanced when both signs are present, then scaled to the target radius
    signed = c.signed_weight
    has_e, has_i = np.any(signed > 0), np.any(signed < 0)
    if has_e and has_i:
        assert abs(signed.sum()) <= 1e-9 * np.abs(signed).sum()
    sizes = np.array([p.size for p in c.populations])
    radius = estimate_spectral_radius(signed, unit_pop[c.pre], unit_pop[c.post], sizes)
    if radius > 0:
        assert radius * spec.reference_slope == pytest.approx(spec.gain, rel=1e-6)

    # determinism
    again = build_connectome(spec, n, np.random.default_rng(seed))
    for name in ("pre", "post", "weight", "sign", "output_mask"):
        assert np.array_equal(getattr(c, name), getattr(again, name)), name


@pytest.mark.parametrize("n_units", [200, 3000])
def test_same_seed_same_connectome_different_seed_different(default_spec, n_units):
    a = build_connectome(default_spec, n_units, np.random.default_rng(11))
    b = build_connectome(default_spec, n_units, np.random.default_rng(11))
    c = build_connectome(default_spec, n_units, np.random.default_rng(12))
    for name in ("pre", "post", "weight", "sign"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert a.pre.dtype == np.int32 and a.post.dtype == np.int32
    assert np.array_equal(a.sign, c.sign)  # the layout does not depend on the seed
    same_synapses = a.n_synapses == c.n_synapses and np.array_equal(a.pre, c.pre) and np.array_equal(a.post, c.post)
    assert not same_synapses
    assert not np.array_equal(a.weight[:100], c.weight[:100])


class _StoppingRng:
    """A Generator stand-in that gives up after many geometric draws (a hang detector)."""

    def __init__(self, rng: np.random.Generator, limit: int = 1000):
        self._rng, self._limit, self.calls = rng, limit, 0

    def geometric(self, p, size=None):
        self.calls += 1
        if self.calls > self._limit:
            raise RuntimeError("Bernoulli sampling does not terminate")
        return self._rng.geometric(p, size=size)

    def __getattr__(self, name):
        return getattr(self._rng, name)


@pytest.mark.parametrize("probability", [1e-300, 1e-20, 1e-9])
def test_tiny_positive_probability_terminates(probability):
    """Regression: geometric gaps for p < ~1e-18 overflow int64 and the sampler looped forever."""
    pops = (PopulationSpec("A", "L2/3", "E", "IT", 1.0, 0.05),)
    spec = CircuitSpec(populations=pops, projections=(ProjectionSpec("A", "A", probability, 1.0),), outputs=("A",))
    c = build_connectome(spec, 50, _StoppingRng(np.random.default_rng(0)))
    assert c.n_synapses == 0


def test_stopping_rng_lets_ordinary_builds_through(default_spec):
    """Guard for the hang detector above: it must not break a normal build."""
    rng = _StoppingRng(np.random.default_rng(0))
    c = build_connectome(default_spec, 500, rng)
    assert c.n_synapses > 0 and 0 < rng.calls <= 1000


# ---------------------------------------------------------------------------
# The gain rule on the default circuit
# ---------------------------------------------------------------------------


def _arpack_radius(connectome, seed: int) -> float:
    """Largest |eigenvalue| of the signed matrix by ARPACK (converged to 1e-10, not estimated)."""
    v0 = np.random.default_rng(seed).standard_normal(connectome.n_units)
    values = scipy.sparse.linalg.eigs(connectome.sparse(), k=6, which="LM", tol=1e-10, v0=v0, return_eigenvectors=False)
    return float(np.max(np.abs(values)))


def test_arpack_radius_agrees_with_dense_eigendecomposition(default_spec):
    c = build_connectome(default_spec, 500, np.random.default_rng(500))
    dense_radius = np.max(np.abs(np.linalg.eigvals(c.dense())))
    assert _arpack_radius(c, 0) == pytest.approx(dense_radius, rel=1e-8)


@pytest.mark.parametrize("n_units", [1000, 2000])
def test_exact_spectral_radius_matches_gain(default_spec, n_units):
    # ARPACK on the same matrix as dense(): a dense eigendecomposition of 2000 x 2000 takes
    # 1-30 s on 2 shared cores, ARPACK < 0.2 s (checked against dense above)
    c = build_connectome(default_spec, n_units, np.random.default_rng(n_units))
    radius = _arpack_radius(c, n_units)
    assert radius * default_spec.reference_slope == pytest.approx(default_spec.gain, rel=0.2)


@pytest.mark.parametrize(
    ("overrides", "factor"),
    [
        ({"gain": 0.5}, 0.5),
        ({"gain": 1.5}, 1.5),
        ({"reference_slope": 7.0}, 0.5),
        ({"reference_slope": 1.75, "gain": 0.5}, 1.0),
    ],
)
def test_gain_and_slope_scale_all_weights(default_spec, overrides, factor):
    """Same seed, same synapses: weights scale by gain / reference_slope relative to the default."""
    base = build_connectome(default_spec, 800, np.random.default_rng(8))
    c = build_connectome(default_spec.with_overrides(overrides), 800, np.random.default_rng(8))
    assert np.array_equal(c.pre, base.pre) and np.array_equal(c.post, base.post)
    np.testing.assert_allclose(c.weight, factor * base.weight, rtol=1e-10)


@pytest.mark.parametrize(
    ("n_units", "overrides"),
    [
        (500, {}),
        (3000, {}),
        (1000, {"weight": {"IT2/3 -> PT5B": 5.0}, "silence": ["VIP2/3"]}),
    ],
)
def test_excitation_and_inhibition_balance(default_spec, n_units, overrides):
    spec = default_spec.with_overrides(overrides) if overrides else default_spec
    c = build_connectome(spec, n_units, np.random.default_rng(3))
    net = np.bincount(c.post, weights=c.signed_weight, minlength=c.n_units)
    gross = np.bincount(c.post, weights=c.weight, minlength=c.n_units)
    assert abs(net.mean()) < 1e-9 * gross.mean()
    # both signs really are present in quantity
    assert (c.sign[c.pre] < 0).sum() > 0.05 * c.n_synapses


def test_dense_sparse_block_and_table_agree(default_spec):
    c = build_connectome(default_spec, 400, np.random.default_rng(9))
    dense = c.dense()
    assert np.allclose(dense, c.sparse().toarray())
    assert np.array_equal(c.mask(), dense != 0)
    a, b = c.population("PT5B"), c.population("IT2/3")
    assert np.array_equal(c.block("PT5B", "IT2/3"), dense[a.slice, b.slice])
    assert np.all(c.block("PT5B", "IT2/3") >= 0) and np.all(c.block("PT5B", "PV5B") <= 0)
    table = {row["population"]: row for row in c.population_table()}
    from_e = (dense * (c.sign[None, :] > 0)) != 0
    assert table["PT5B"]["in_degree_E"] == pytest.approx(from_e[a.slice].sum(axis=1).mean())
    assert table["PT5B"]["signed_input"] == pytest.approx(dense[a.slice].sum(axis=1).mean())


def test_with_weight_checks_shape_and_sign(default_spec):
    c = build_connectome(default_spec, 100, np.random.default_rng(0))
    doubled = c.with_weight(2 * c.weight)
    assert np.array_equal(doubled.weight, 2 * c.weight) and np.array_equal(doubled.pre, c.pre)
    with pytest.raises(ValueError, match=">= 0"):
        c.with_weight(-c.weight)
    with pytest.raises(ValueError, match="shape"):
        c.with_weight(c.weight[:-1])


# ---------------------------------------------------------------------------
# Overrides: silence, cut, probability, weight, size
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("silence", [["VIP2/3"], ["IT2/3"], ["IT2/3", "PV5B"]])
def test_silenced_population_sends_nothing_and_gets_no_task_input(default_spec, silence):
    spec = default_spec.with_overrides({"silence": silence})
    assert spec.silenced == tuple(silence)
    c = build_connectome(spec, 2000, np.random.default_rng(1))
    for name in silence:
        s = c.population(name).slice
        assert not np.any((c.pre >= s.start) & (c.pre < s.stop)), name
        assert not c.output_mask[s].any()
        for group, mask in c.input_masks.items():
            assert not mask[s].any(), (name, group)
    # live targets keep their input and readout
    for group, targets in spec.inputs.items():
        for name in targets:
            if name not in silence:
                assert c.input_masks[group][c.population(name).slice].all()
    assert c.output_mask.any()


def test_silencing_every_output_population_is_an_error(default_spec):
    with pytest.raises(ConfigError, match="readout has nothing to read"):
        default_spec.with_overrides({"silence": ["PT5B"]})


@pytest.mark.parametrize("key", ["IT2/3 -> IT5A", "PV5B -> PT5B", "VIP2/3 -> SST2/3"])
def test_cut_removes_exactly_that_projection(default_spec, key):
    pre, post = key.split(" -> ")
    spec = default_spec.with_overrides({"cut": [key]})
    assert set(default_spec.projections) - set(spec.projections) == {default_spec.projection(pre, post)}
    assert set(spec.projections) < set(default_spec.projections)
    assert spec.projection(pre, post) is None
    c = build_connectome(spec, 3000, np.random.default_rng(2))
    assert _pair_count(c, pre, post) == 0
    before = build_connectome(default_spec, 3000, np.random.default_rng(2))
    assert _pair_count(before, pre, post) > 0


def test_probability_override_changes_sampled_probability(default_spec):
    spec = default_spec.with_overrides({"probability": {"IT2/3 -> PT5B": 0.05}})
    assert spec.projection("IT2/3", "PT5B").probability == 0.05
    c = build_connectome(spec, 5000, np.random.default_rng(4))
    n = c.population("IT2/3").size * c.population("PT5B").size
    se = np.sqrt(0.05 * 0.95 / n)
    assert abs(_pair_count(c, "IT2/3", "PT5B") / n - 0.05) < 4 * se


def test_weight_override_scales_relative_magnitude(default_spec):
    spec = default_spec.with_overrides({"weight": {"IT2/3 -> PT5B": 1.8}})
    c = build_connectome(spec, 5000, np.random.default_rng(5))

    def mean_weight(pre, post):
        a, b = c.population(pre), c.population(post)
        keep = (c.pre >= a.start) & (c.pre < a.stop) & (c.post >= b.start) & (c.post < b.stop)
        return c.weight[keep].mean()

    ratio = mean_weight("IT2/3", "PT5B") / mean_weight("IT4", "PT5B")
    assert ratio == pytest.approx(1.8 / spec.projection("IT4", "PT5B").weight, rel=0.05)


def test_size_override_resizes_population(default_spec):
    spec = default_spec.with_overrides({"size": {"PV5B": 1022.0}})
    assert spec.population("PV5B").size == 1022.0
    before, after = population_sizes(default_spec, 5000), population_sizes(spec, 5000)
    i = default_spec.names.index("PV5B")
    assert after[i] > 1.8 * before[i]
    assert after.sum() == before.sum() == 5000


def test_overrides_leave_the_original_spec_unchanged(default_spec):
    before = default_spec.to_toml()
    default_spec.with_overrides({"cut": ["IT2/3 -> IT5A"], "silence": ["VIP2/3"], "size": {"PV5B": 3.0}})
    assert default_spec.to_toml() == before


# ---------------------------------------------------------------------------
# TOML round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="default"),
        pytest.param({"probability": {"IT2/3 -> PT5B": 0.05}, "weight": {"IT2/3 -> PT5B": 1.2}}, id="p-w"),
        pytest.param({"size": {"PV5B": 300}, "tau": {"PT5B": 0.02}, "cut": ["IT2/3 -> IT5A"]}, id="size-tau-cut"),
        pytest.param(
            {
                "silence": ["VIP2/3"],
                "inputs": {"go": ["IT4"], "extra": ["IT6"]},
                "outputs": ["PT5B", "IT5B"],
                "gain": 0.8,
                "reference_slope": 2.0,
                "weight_cv": 0.0,
            },
            id="silence-io-scalars",
        ),
    ],
)
def test_spec_toml_round_trip(default_spec, overrides):
    spec = default_spec.with_overrides(overrides)
    text = spec.to_toml()
    back = CircuitSpec.from_toml_text(text)
    assert back == spec
    assert back.to_toml() == text


@HYPOTHESIS
@given(spec=circuit_specs())
def test_random_spec_toml_round_trip(spec):
    assert CircuitSpec.from_toml_text(spec.to_toml()) == spec


def test_spec_from_toml_file_and_errors(tmp_path, default_spec):
    path = tmp_path / "spec.toml"
    path.write_text(default_spec.to_toml())
    assert CircuitSpec.from_toml(path) == default_spec
    with pytest.raises(ConfigError, match="missing.toml"):
        CircuitSpec.from_toml(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        CircuitSpec.from_toml_text("populations = [", where="broken")
    with pytest.raises(ConfigError, match="colour"):
        CircuitSpec.from_toml_text(default_spec.to_toml() + 'colour = "red"\n')
