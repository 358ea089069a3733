"""From a :class:`~cortexsim.anatomy.CircuitSpec` to sampled, signed synapses.

:func:`build_connectome` scales the populations to ``n_units``, samples every
projection as independent Bernoulli draws (without forming any dense matrix),
draws lognormal weight magnitudes, applies Dale's law through the sign of the
presynaptic unit and sets the overall scale by the gain rule below.  The
resulting :class:`Connectome` is the single weight representation that the rate
and spiking simulators read.

Conventions
-----------
* Units are laid out population by population in spec order.
* A synapse ``k`` goes from unit ``pre[k]`` to unit ``post[k]``; its signed weight
  is ``sign[pre[k]] * weight[k]`` with ``weight >= 0`` in mV/Hz: the steady-state
  change of the postsynaptic rate unit's input (mV) per Hz of presynaptic rate.
* Dense matrices are ``W[post, pre]``, so that input = ``W @ r``.

Gain rule
---------
1. *E/I balance.*  All inhibitory magnitudes are multiplied by one factor so that
   the summed inhibitory weight equals the summed excitatory weight: the mean over
   units of the signed input weight is zero.
2. *Spectral radius.*  The signed matrix is scaled so that its estimated spectral
   radius times ``spec.reference_slope`` (Hz/mV) equals ``spec.gain``: the
   linearised network ``W * phi'`` starts at radius ``gain`` (default 1, at the
   edge of stability, neither exploding nor silent).  The radius is estimated from
   population-level statistics (no eigen-decomposition, any N): the larger of the
   random bulk radius ``sqrt(max eig(n_b * var_ab))`` (Rajan & Abbott 2006;
   Aljadeff, Stern & Sharpee 2015) and the largest outlier ``max |eig(n_b * mean_ab)|``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse

from . import _validate as v
from .anatomy import CircuitSpec, PopulationSpec
from .errors import ConfigError


@dataclass(frozen=True)
class Population:
    """A population of a built connectome: its spec and its unit range."""

    spec: PopulationSpec
    start: int
    stop: int

    @property
    def name(self) -> str:
        """Population name."""
        return self.spec.name

    @property
    def slice(self) -> slice:
        """Unit indices ``start:stop``."""
        return slice(self.start, self.stop)

    @property
    def size(self) -> int:
        """Number of units."""
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class Connectome:
    """Sampled synapses of a circuit.

    Attributes
    ----------
    spec : CircuitSpec
        The spec it was built from.
    populations : tuple of Population
        Unit ranges, in layout order.
    pre, post : ndarray of int32, shape (synapses,)
        Presynaptic and postsynaptic unit of each synapse.
    weight : ndarray of float64, shape (synapses,)
        Magnitudes (>= 0) in mV/Hz; the sign comes from ``sign[pre]``.
    sign : ndarray of int8, shape (units,)
        +1 for excitatory units, -1 for inhibitory ones.
    input_masks : dict of str to ndarray of bool, shape (units,)
        Units that receive each task input group.
    output_mask : ndarray of bool, shape (units,)
        Units the readout reads.
    """

    spec: CircuitSpec
    populations: tuple[Population, ...]
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    sign: np.ndarray
    input_masks: dict[str, np.ndarray] = field(default_factory=dict)
    output_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    # -- shape -------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units."""
        return int(self.sign.size)

    @property
    def n_synapses(self) -> int:
        """Number of synapses."""
        return int(self.pre.size)

    @property
    def sizes(self) -> dict[str, int]:
        """Units per population."""
        return {p.name: p.size for p in self.populations}

    def population(self, name: str) -> Population:
        """The population called ``name``."""
        for pop in self.populations:
            if pop.name == name:
                return pop
        raise ConfigError(f"unknown population {name!r}; known: {', '.join(self.sizes)}")

    @property
    def unit_population(self) -> np.ndarray:
        """Index of each unit's population, shape (units,)."""
        return np.repeat(np.arange(len(self.populations)), [p.size for p in self.populations])

    @property
    def tau(self) -> np.ndarray:
        """Time constant of each unit in seconds, shape (units,)."""
        return np.repeat([p.spec.tau for p in self.populations], [p.size for p in self.populations])

    def __repr__(self) -> str:
        return (
            f"<Connectome: {self.n_units:,} units, {len(self.populations)} populations, {self.n_synapses:,} synapses>"
        )

    # -- matrices ------------------------------------------------------------
    @property
    def signed_weight(self) -> np.ndarray:
        """Signed weight of each synapse in mV/Hz, shape (synapses,)."""
        return self.sign[self.pre] * self.weight

    def dense(self) -> np.ndarray:
        """Signed weight matrix ``W[post, pre]`` in mV/Hz, shape (units, units)."""
        w = np.zeros((self.n_units, self.n_units))
        np.add.at(w, (self.post, self.pre), self.signed_weight)
        return w

    def mask(self) -> np.ndarray:
        """Boolean connectivity ``M[post, pre]``, shape (units, units)."""
        m = np.zeros((self.n_units, self.n_units), bool)
        m[self.post, self.pre] = True
        return m

    def sparse(self) -> scipy.sparse.csr_array:
        """Signed weight matrix ``W[post, pre]`` as a CSR array (mV/Hz)."""
        n = self.n_units
        return scipy.sparse.csr_array((self.signed_weight, (self.post, self.pre)), shape=(n, n))

    def block(self, post: str, pre: str) -> np.ndarray:
        """Dense signed sub-matrix ``W[post units, pre units]``, shape (n_post, n_pre)."""
        a, b = self.population(post), self.population(pre)
        keep = (self.post >= a.start) & (self.post < a.stop) & (self.pre >= b.start) & (self.pre < b.stop)
        w = np.zeros((a.size, b.size))
        np.add.at(w, (self.post[keep] - a.start, self.pre[keep] - b.start), self.signed_weight[keep])
        return w

    def with_weight(self, weight: np.ndarray) -> Connectome:
        """The same synapses with new magnitudes (e.g. after training)."""
        weight = np.asarray(weight, dtype=np.float64)
        if weight.shape != self.weight.shape:
            raise ValueError(f"weight must have shape {self.weight.shape}, got {weight.shape}")
        if np.any(weight < 0):
            raise ValueError("weight magnitudes must be >= 0 (the sign comes from the presynaptic unit)")
        return replace(self, weight=weight)

    def within_populations(self) -> Connectome:
        """The same circuit with every synapse between two different populations removed.

        Within-population recurrence, inputs and outputs stay: the no-inter-population-recurrence
        control of Kalidindi et al. (2021)'s question (:mod:`cortexsim.rotations`).
        """
        label = self.unit_population
        keep = label[self.pre] == label[self.post]
        return replace(self, pre=self.pre[keep], post=self.post[keep], weight=self.weight[keep])

    def population_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """Empirical connection probability and summed signed input, population by population.

        Returns
        -------
        probability : ndarray, shape (populations, populations)
            ``[post, pre]``: fraction of possible pairs that are connected.
        drive : ndarray, shape (populations, populations)
            ``[post, pre]``: mean over post units of the summed signed weight from the
            pre population, in mV/Hz.
        """
        sizes = np.array([p.size for p in self.populations])
        unit_pop = self.unit_population
        post, pre = unit_pop[self.post], unit_pop[self.pre]
        count = block_sum(None, post, pre, sizes.size)
        total = block_sum(self.signed_weight, post, pre, sizes.size)
        return count / np.outer(sizes, sizes), total / sizes[:, None]

    def population_table(self) -> list[dict[str, object]]:
        """One row per population: units, mean in-degree from E and from I, mean signed input.

        ``signed_input`` is the mean over the population's units of the summed
        signed weight onto the unit (mV/Hz): positive means net excitation for
        equal presynaptic rates.
        """
        n = self.n_units
        from_e = self.sign[self.pre] > 0
        indeg_e = np.bincount(self.post[from_e], minlength=n)
        indeg_i = np.bincount(self.post[~from_e], minlength=n)
        net = np.bincount(self.post, weights=self.signed_weight, minlength=n)
        rows = []
        for pop in self.populations:
            s = pop.slice
            rows.append(
                {
                    "population": pop.name,
                    "layer": pop.spec.layer,
                    "class": pop.spec.cell_class,
                    "subtype": pop.spec.subtype,
                    "units": pop.size,
                    "in_degree_E": float(indeg_e[s].mean()),
                    "in_degree_I": float(indeg_i[s].mean()),
                    "signed_input": float(net[s].mean()),
                }
            )
        return rows


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def population_sizes(spec: CircuitSpec, n_units: int) -> np.ndarray:
    """Split ``n_units`` among the populations in proportion to their sizes.

    Largest-remainder rounding with at least one unit per population: the sizes
    sum to ``n_units`` and, whenever every quota is at least one, each size is
    within one unit of its exact quota ``n_units * size / total``.

    Returns
    -------
    ndarray of int, shape (populations,)
    """
    n_pops = len(spec.populations)
    n_units = v.number(n_units, "n_units", low=1, integer=True)
    if n_units < n_pops:
        raise ConfigError(
            f"n_units: {n_units} is smaller than the number of populations ({n_pops}); "
            f"use at least {n_pops} so every population has a unit"
        )
    share = np.array([p.size for p in spec.populations], float)
    quota = n_units * share / share.sum()
    sizes = np.maximum(1, np.floor(quota).astype(int))
    while sizes.sum() < n_units:  # give to the largest remainder
        sizes[np.argmax(quota - sizes)] += 1
    while sizes.sum() > n_units:  # take from the most over-served that can spare one
        spare = np.where(sizes > 1, sizes - quota, -np.inf)
        sizes[np.argmax(spare)] -= 1
    return sizes


def _bernoulli_pairs(n_post: int, n_pre: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted flat indices ``post * n_pre + pre`` of a Bernoulli(p) sample of all pairs.

    Draws geometric gaps between successive connected pairs, so the cost is
    proportional to the number of synapses, not of pairs.  For tiny ``p`` (where
    gaps could overflow) it draws the count from a binomial and the positions
    without replacement instead.
    """
    total = n_post * n_pre
    if p <= 0 or total == 0:
        return np.zeros(0, np.int64)
    if p >= 1:
        return np.arange(total, dtype=np.int64)
    if p < 1e-6:
        count = int(rng.binomial(total, p))
        return np.sort(rng.choice(total, size=count, replace=False)).astype(np.int64)
    expected = total * p
    chunk = int(expected + 6 * np.sqrt(expected) + 16)
    parts, last = [], -1
    while last < total:
        pos = last + np.cumsum(rng.geometric(p, size=chunk))
        parts.append(pos)
        last = int(pos[-1])
    flat = np.concatenate(parts)
    return flat[flat < total]


def _lognormal_unit_mean(size: int, cv: float, rng: np.random.Generator) -> np.ndarray:
    """Lognormal magnitudes with mean 1 and coefficient of variation ``cv``."""
    if cv == 0:
        return np.ones(size)
    s2 = np.log1p(cv**2)
    return rng.lognormal(-s2 / 2, np.sqrt(s2), size=size)


def block_sum(values: np.ndarray | None, post_pop: np.ndarray, pre_pop: np.ndarray, n_pop: int) -> np.ndarray:
    """Sum of per-synapse ``values`` (or the count, with None) in each population block.

    Returns
    -------
    ndarray, shape (populations, populations)
        ``[post, pre]``.
    """
    block = post_pop.astype(np.int64) * n_pop + pre_pop
    return np.bincount(block, weights=values, minlength=n_pop**2).reshape(n_pop, n_pop)


def estimate_spectral_radius(
    signed_weight: np.ndarray, pre_pop: np.ndarray, post_pop: np.ndarray, sizes: np.ndarray
) -> float:
    """Spectral radius of a block-random matrix from population-level statistics.

    Parameters
    ----------
    signed_weight : ndarray, shape (synapses,)
    pre_pop, post_pop : ndarray of int, shape (synapses,)
        Population index of each synapse's presynaptic and postsynaptic unit.
    sizes : ndarray of int, shape (populations,)

    Returns
    -------
    float
        ``max(sqrt(max eig(n_b var_ab)), max |eig(n_b mean_ab)|)``, same units as
        the weights.
    """
    pairs = np.outer(sizes, sizes).astype(float)
    mean = block_sum(signed_weight, post_pop, pre_pop, sizes.size) / pairs
    second = block_sum(signed_weight**2, post_pop, pre_pop, sizes.size) / pairs
    var = second - mean**2
    bulk = np.sqrt(max(np.max(np.abs(np.linalg.eigvals(var * sizes[None, :]))), 0.0))
    outlier = np.max(np.abs(np.linalg.eigvals(mean * sizes[None, :])))
    return float(max(bulk, outlier))


def build_connectome(spec: CircuitSpec, n_units: int, rng: np.random.Generator) -> Connectome:
    """Sample the synapses of ``spec`` scaled to ``n_units`` units.

    Parameters
    ----------
    spec : CircuitSpec
        Populations, projections, inputs and outputs.
    n_units : int
        Total number of units (at least one per population).
    rng : numpy.random.Generator
        Source of all randomness; the same seed gives the same connectome.

    Returns
    -------
    Connectome
        Magnitudes in mV/Hz, scaled by the gain rule of this module.
    """
    sizes = population_sizes(spec, n_units)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    index = {p.name: i for i, p in enumerate(spec.populations)}
    populations = tuple(Population(p, int(starts[i]), int(starts[i + 1])) for i, p in enumerate(spec.populations))
    silenced = set(spec.silenced)
    pres, posts, weights = [], [], []
    for proj in spec.projections:
        if proj.pre in silenced:
            continue
        a, b = index[proj.post], index[proj.pre]
        n_post, n_pre = int(sizes[a]), int(sizes[b])
        flat = _bernoulli_pairs(n_post, n_pre, proj.probability, rng)
        post, pre = np.divmod(flat, n_pre)
        if a == b:  # no autapses
            keep = post != pre
            post, pre = post[keep], pre[keep]
        posts.append((post + starts[a]).astype(np.int32))
        pres.append((pre + starts[b]).astype(np.int32))
        weights.append(proj.weight * _lognormal_unit_mean(post.size, spec.weight_cv, rng))
    pre = np.concatenate(pres) if pres else np.zeros(0, np.int32)
    post = np.concatenate(posts) if posts else np.zeros(0, np.int32)
    weight = np.concatenate(weights) if weights else np.zeros(0)

    sign = np.repeat([1 if p.cell_class == "E" else -1 for p in spec.populations], sizes).astype(np.int8)
    weight = _apply_gain_rule(spec, weight, sign, pre, post, sizes, starts)

    def mask_of(names: tuple[str, ...]) -> np.ndarray:
        m = np.zeros(n_units, bool)
        for name in names:
            if name not in silenced:
                m[starts[index[name]] : starts[index[name] + 1]] = True
        return m

    inputs = {group: mask_of(targets) for group, targets in spec.inputs.items()}
    return Connectome(spec, populations, pre, post, weight, sign, inputs, mask_of(spec.outputs))


def _apply_gain_rule(spec, weight, sign, pre, post, sizes, starts) -> np.ndarray:
    """Balance E against I, then scale to the target effective spectral radius."""
    if weight.size == 0:
        return weight
    inhibitory = sign[pre] < 0
    total_e, total_i = weight[~inhibitory].sum(), weight[inhibitory].sum()
    if total_e > 0 and total_i > 0:
        weight = weight.copy()
        weight[inhibitory] *= total_e / total_i
    unit_pop = np.repeat(np.arange(sizes.size), sizes)
    radius = estimate_spectral_radius(sign[pre] * weight, unit_pop[pre], unit_pop[post], sizes)
    if radius > 0:
        weight = weight * (spec.gain / (spec.reference_slope * radius))
    return weight
