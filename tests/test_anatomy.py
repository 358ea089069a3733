"""The default M1 spec against shared/ANATOMY.md, and its motifs in a sampled connectome.

The tables below are typed in from ANATOMY.md (not copied from the package) so that a
typo in ``cortexsim/anatomy.py`` shows up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from cortexsim.anatomy import LAYERS, SUBTYPES

# ---------------------------------------------------------------------------
# ANATOMY.md, typed in independently
# ---------------------------------------------------------------------------

EXPECTED_NAMES = (
    "NGF1",
    "IT2/3",
    "PV2/3",
    "SST2/3",
    "VIP2/3",
    "IT4",
    "IT5A",
    "PV5A",
    "SST5A",
    "IT5B",
    "PT5B",
    "PV5B",
    "SST5B",
    "IT6",
    "CT6",
    "PV6",
    "SST6",
)

# populations taken unchanged from the Dura-Bernal 2023 count table
COUNTS = [
    ("IT2/3", "L2/3", "E", "IT", 1730),
    ("IT4", "L4", "E", "IT", 768),
    ("IT5A", "L5A", "E", "IT", 645),
    ("PV5A", "L5A", "I", "PV", 115),
    ("SST5A", "L5A", "I", "SST", 57),
    ("IT5B", "L5B", "E", "IT", 1435),
    ("PT5B", "L5B", "E", "PT", 1435),
    ("PV5B", "L5B", "I", "PV", 511),
    ("SST5B", "L5B", "I", "SST", 252),
    ("IT6", "L6", "E", "IT", 1236),
    ("CT6", "L6", "E", "CT", 1236),
    ("PV6", "L6", "I", "PV", 184),
    ("SST6", "L6", "I", "SST", 91),
]

# E -> E probability (relative weight); rows post, columns pre layer
EE_COLUMNS = ("L2/3", "L4", "L5A", "L5B", "L6")
EE_TABLE = {
    "IT2/3": [(0.079, 0.71), (0.133, 0.71), (0.093, 0.67), (0.019, 0.60), (0.003, 0.43)],
    "IT4": [(0.041, 0.80), (0.085, 0.74), (0.068, 0.69), (0.033, 0.55), (0.010, 0.45)],
    "IT5A": [(0.122, 0.87), (0.047, 0.84), (0.054, 0.69), (0.047, 0.48), (0.012, 0.45)],
    "IT5B": [(0.022, 0.91), (0.028, 0.90), (0.030, 0.77), (0.053, 0.57), (0.032, 0.49)],
    "PT5B": [(0.097, 0.90), (0.040, 0.89), (0.036, 0.75), (0.084, 0.58), (0.039, 0.50)],
    "IT6": [(0.006, 0.50), (0.004, 0.56), (0.012, 0.54), (0.030, 0.54), (0.045, 0.50)],
    "CT6": [(0.004, 0.50), (0.003, 0.56), (0.008, 0.54), (0.019, 0.54), (0.028, 0.50)],
}
IT_OF_LAYER = {"L2/3": "IT2/3", "L4": "IT4", "L5A": "IT5A", "L5B": "IT5B", "L6": "IT6"}


def _ee_rows():
    """(pre, post, probability, weight): IT presynaptic cells, plus PT for the PT5B row and
    CT for the L6 rows (ANATOMY.md)."""
    rows = []
    for post, cells in EE_TABLE.items():
        for layer, (p, w) in zip(EE_COLUMNS, cells):
            pres = [IT_OF_LAYER[layer]]
            if post == "PT5B" and layer == "L5B":
                pres.append("PT5B")
            if post in ("IT6", "CT6") and layer == "L6":
                pres.append("CT6")
            rows += [(pre, post, p, w) for pre in pres]
    return rows


EE_ROWS = _ee_rows()

# E -> PV / SST spot checks (Apicella 2011): (pre, post, probability, weight)
EI_SPOT = [
    ("IT2/3", "PV2/3", 0.078, 0.728),
    ("IT4", "SST2/3", 0.078, 0.728),
    ("IT5B", "PV2/3", 0.040, 0.583),
    ("CT6", "SST2/3", 0.006, 0.463),
    ("IT2/3", "PV5B", 0.003, 0.861),
    ("IT2/3", "SST5A", 0.117, 0.861),
    ("PT5B", "PV5A", 0.117, 0.600),
    ("IT5A", "SST5B", 0.003, 0.600),
    ("IT6", "PV5B", 0.025, 0.460),
    ("IT4", "SST6", 0.009, 0.526),
    ("PT5B", "PV6", 0.024, 0.508),
    ("CT6", "SST6", 0.068, 0.518),
]

# inhibitory -> all within the layer group: (pre, post, probability, weight)
II_SPOT = [
    ("PV2/3", "IT4", 0.19, 0.8),
    ("SST2/3", "PV2/3", 0.19, 1.2),
    ("PV5B", "IT5A", 0.14, 0.8),
    ("SST5A", "PT5B", 0.14, 0.8),
    ("PV5A", "SST5B", 0.14, 1.0),
    ("PV6", "CT6", 0.22, 1.0),
    ("SST6", "PV6", 0.22, 1.0),
]

LAYER_GROUP = {"L1": "L1", "L2/3": "L2/3+4", "L4": "L2/3+4", "L5A": "L5", "L5B": "L5", "L6": "L6"}


# ---------------------------------------------------------------------------
# Helpers on sampled connectomes
# ---------------------------------------------------------------------------


def block_counts(connectome) -> np.ndarray:
    """Synapse counts per population pair, ``[post, pre]``."""
    n_pop = len(connectome.populations)
    pop = connectome.unit_population
    flat = pop[connectome.post].astype(np.int64) * n_pop + pop[connectome.pre]
    return np.bincount(flat, minlength=n_pop**2).reshape(n_pop, n_pop)


def n_pairs(connectome, pre: str, post: str) -> int:
    """Possible (pre, post) unit pairs, autapses excluded."""
    a, b = connectome.population(pre).size, connectome.population(post).size
    return a * b - (a if pre == post else 0)


def count(connectome, pre: str, post: str) -> int:
    names = [p.name for p in connectome.populations]
    return int(block_counts(connectome)[names.index(post), names.index(pre)])


# ---------------------------------------------------------------------------
# The spec itself
# ---------------------------------------------------------------------------


def test_default_spec_has_the_17_documented_populations_in_all_six_layers(default_spec):
    assert default_spec.names == EXPECTED_NAMES
    assert {p.layer for p in default_spec.populations} == set(LAYERS)
    for pop in default_spec.populations:
        assert pop.subtype in SUBTYPES[pop.cell_class]
        assert pop.tau > 0


@pytest.mark.parametrize(("name", "layer", "cell_class", "subtype", "size"), COUNTS)
def test_population_matches_anatomy_count_table(default_spec, name, layer, cell_class, subtype, size):
    pop = default_spec.population(name)
    assert (pop.layer, pop.cell_class, pop.subtype) == (layer, cell_class, subtype)
    assert pop.size == pytest.approx(size)


def test_vip23_takes_a_quarter_of_l23_interneurons_in_proportion(default_spec):
    pv, sst, vip = (default_spec.population(n).size for n in ("PV2/3", "SST2/3", "VIP2/3"))
    assert pv + sst + vip == pytest.approx(258 + 127)
    assert vip == pytest.approx(0.25 * (258 + 127))
    assert pv / sst == pytest.approx(258 / 127)
    assert default_spec.population("VIP2/3").cell_class == "I"


def test_l1_population_is_inhibitory_and_one_to_two_percent(default_spec):
    total = sum(p.size for p in default_spec.populations)
    l1 = [p for p in default_spec.populations if p.layer == "L1"]
    assert [p.cell_class for p in l1] == ["I"]
    assert 0.01 <= l1[0].size / total <= 0.02


def test_excitatory_share_is_about_84_percent(default_spec):
    total = sum(p.size for p in default_spec.populations)
    exc = sum(p.size for p in default_spec.populations if p.cell_class == "E")
    assert 0.80 <= exc / total <= 0.86


@pytest.mark.parametrize(("pre", "post", "probability", "weight"), EE_ROWS, ids=[f"{r[0]}->{r[1]}" for r in EE_ROWS])
def test_ee_projection_equals_anatomy_table(default_spec, pre, post, probability, weight):
    proj = default_spec.projection(pre, post)
    assert proj is not None, f"missing E->E projection {pre} -> {post}"
    assert proj.probability == pytest.approx(probability)
    assert proj.weight == pytest.approx(weight)


def test_ee_projections_are_exactly_the_anatomy_table(default_spec):
    exc = {p.name for p in default_spec.populations if p.cell_class == "E"}
    found = {(p.pre, p.post) for p in default_spec.projections if p.pre in exc and p.post in exc}
    assert found == {(pre, post) for pre, post, _, _ in EE_ROWS}


def test_pt_never_projects_to_it_in_spec(default_spec):
    it = {p.name for p in default_spec.populations if p.subtype == "IT"}
    assert not [p.key for p in default_spec.projections if p.pre == "PT5B" and p.post in it]


@pytest.mark.parametrize(
    ("pre", "post", "probability", "weight"), EI_SPOT + II_SPOT, ids=[f"{r[0]}->{r[1]}" for r in EI_SPOT + II_SPOT]
)
def test_e_to_i_and_i_to_all_spot_checks(default_spec, pre, post, probability, weight):
    proj = default_spec.projection(pre, post)
    assert proj is not None, f"missing projection {pre} -> {post}"
    assert (proj.probability, proj.weight) == pytest.approx((probability, weight))


def test_inhibitory_projections_stay_within_their_layer_group(default_spec):
    layer = {p.name: p.layer for p in default_spec.populations}
    cls = {p.name: p.cell_class for p in default_spec.populations}
    wrong = []
    for proj in default_spec.projections:
        if cls[proj.pre] != "I":
            continue
        if layer[proj.pre] == "L1":  # neurogliaform cells act on L1 and L2/3 only
            ok = layer[proj.post] in ("L1", "L2/3")
        else:
            ok = LAYER_GROUP[layer[proj.pre]] == LAYER_GROUP[layer[proj.post]]
        if not ok:
            wrong.append(proj.key)
    assert wrong == []


def test_vip_disinhibition_motif_prefers_sst(default_spec):
    to_sst = default_spec.projection("VIP2/3", "SST2/3")
    for other in ("PV2/3", "IT2/3"):
        weak = default_spec.projection("VIP2/3", other)
        assert weak is not None
        assert to_sst.probability > weak.probability
        assert to_sst.weight > weak.weight


def test_task_inputs_and_pt5b_only_readout(default_spec):
    assert set(default_spec.inputs) == {"target", "go"}
    assert set(default_spec.inputs["target"]) == {"IT2/3", "IT5B", "PT5B"}
    assert set(default_spec.inputs["go"]) == {"IT4", "IT2/3", "PT5B"}
    assert default_spec.outputs == ("PT5B",)
    assert default_spec.silenced == ()


# ---------------------------------------------------------------------------
# Motifs in a sampled connectome (N = 10,000)
# ---------------------------------------------------------------------------


def test_all_six_layers_are_populated(large_connectome):
    units = {layer: 0 for layer in LAYERS}
    for pop in large_connectome.populations:
        units[pop.spec.layer] += pop.size
    assert all(n > 0 for n in units.values()), units
    assert sum(units.values()) == 10_000


@pytest.mark.parametrize("it_post", ["IT2/3", "IT4", "IT5A", "IT5B", "IT6"])
def test_no_pt5b_to_it_synapses(large_connectome, it_post):
    assert count(large_connectome, "PT5B", it_post) == 0


@pytest.mark.parametrize(
    ("pre", "post", "probability"),
    [
        ("IT2/3", "IT5A", 0.122),  # descending L2/3 -> L5A
        ("IT2/3", "PT5B", 0.097),  # descending L2/3 -> PT
        ("IT4", "IT2/3", 0.133),  # L4 -> L2/3
        ("PT5B", "PT5B", 0.084),  # recurrent, autapses excluded
    ],
)
def test_motif_probability_within_sampling_error(large_connectome, pre, post, probability):
    n = n_pairs(large_connectome, pre, post)
    k = count(large_connectome, pre, post)
    se = np.sqrt(probability * (1 - probability) / n)
    assert abs(k / n - probability) < 4 * se, (k / n, probability, se)


def test_every_projection_sampled_at_its_probability_and_nothing_else(large_connectome):
    c = large_connectome
    names = [p.name for p in c.populations]
    counts = block_counts(c)
    expected = np.zeros_like(counts, dtype=bool)
    bad = []
    for proj in c.spec.projections:
        i, j = names.index(proj.post), names.index(proj.pre)
        expected[i, j] = True
        n, p = n_pairs(c, proj.pre, proj.post), proj.probability
        z = (counts[i, j] - n * p) / np.sqrt(n * p * (1 - p))
        if abs(z) > 5:
            bad.append((proj.key, counts[i, j] / n, p))
    assert bad == []
    assert not counts[~expected].any(), "synapses between populations without a projection"


def test_ct6_excitatory_in_degree_is_about_0_62_of_it6(large_connectome):
    c = large_connectome
    from_e = c.sign[c.pre] > 0
    indeg = np.bincount(c.post[from_e], minlength=c.n_units)
    ratio = indeg[c.population("CT6").slice].mean() / indeg[c.population("IT6").slice].mean()
    assert 0.5 <= ratio <= 0.75


@pytest.mark.parametrize(
    ("pre", "post"),
    [
        ("PV6", "IT2/3"),
        ("PV2/3", "PT5B"),
        ("SST5B", "IT6"),
        ("SST2/3", "IT5A"),
        ("PV5A", "IT4"),
        ("VIP2/3", "IT5B"),
        ("NGF1", "PT5B"),
    ],
)
def test_no_inhibition_across_layer_groups(large_connectome, pre, post):
    assert count(large_connectome, pre, post) == 0


def test_sampled_inhibition_stays_within_layer_groups(large_connectome):
    c = large_connectome
    layer_of_unit = np.array([p.spec.layer for p in c.populations])[c.unit_population]
    inhib = c.sign[c.pre] < 0
    pre_layer, post_layer = layer_of_unit[c.pre[inhib]], layer_of_unit[c.post[inhib]]
    pairs = set(zip(pre_layer.tolist(), post_layer.tolist()))
    for pre_l, post_l in pairs:
        if pre_l == "L1":
            assert post_l in ("L1", "L2/3")
        else:
            assert LAYER_GROUP[pre_l] == LAYER_GROUP[post_l], (pre_l, post_l)
