"""Output-potent and output-null subspaces of the readout population (Kaufman et al. 2014).

Kaufman, Churchland, Ryu & Shenoy (2014, *Nat Neurosci* 17:440) asked how motor cortex can
prepare a movement without making it: preparatory activity lies mostly in dimensions that the
muscles do not read -- the *output-null* space of the neural-to-muscle map -- and movement
activity in the *output-potent* space.  Here the map is known exactly: the muscles read PT5B
through ``W_out`` (``excitation = floor + (1 - floor) sigmoid(W_out r + b)``), so the potent space
is the row space of ``W_out`` (its local linearisation is the same space scaled per muscle) and
the null space its orthogonal complement in PT5B's rate space.

:func:`potent_null` reports, for the preparatory and the movement epoch, the share of the
across-condition variance of PT5B's condition-averaged rates that lies in the potent space, and
the share a random subspace of the same dimension would hold (``dim / units``), so that "mostly
null" is judged against chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PotentNull:
    """Where the readout population's activity lies with respect to the muscles.

    Attributes
    ----------
    potent_dim : int
        Dimension of the output-potent space (the rank of the readout, 6 for six muscles).
    units : int
        Readout units.
    chance : float
        ``potent_dim / units``: the potent share of isotropic activity.
    prep_potent, move_potent : float
        Share of the across-condition variance in the potent space, preparatory and movement epoch.
    prep_null, move_null : float
        ``1 - prep_potent`` and ``1 - move_potent``.
    prep_variance, move_variance : float
        Total across-condition variance of each epoch (Hz^2, summed over units, mean over time).
    """

    potent_dim: int
    units: int
    chance: float
    prep_potent: float
    move_potent: float
    prep_variance: float
    move_variance: float

    @property
    def prep_null(self) -> float:
        """Share of the preparatory variance in the output-null space."""
        return 1.0 - self.prep_potent

    @property
    def move_null(self) -> float:
        """Share of the movement variance in the output-null space."""
        return 1.0 - self.move_potent


def potent_basis(readout: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Orthonormal basis of the row space of ``readout`` (outputs, units): shape (units, rank)."""
    u, s, vt = np.linalg.svd(np.asarray(readout, float), full_matrices=False)
    rank = int(np.sum(s > tol * max(s.max(), 1e-300)))
    return vt[:rank].T


def _epoch_share(rates: np.ndarray, basis: np.ndarray) -> tuple[float, float]:
    """Potent share and total of the across-condition variance of ``rates`` (conditions, time, units)."""
    centred = rates - rates.mean(axis=0, keepdims=True)  # variance across conditions at each time
    total = float(np.sum(centred**2))
    potent = float(np.sum((centred @ basis) ** 2))
    n = rates.shape[0] * rates.shape[1]
    return (potent / total if total > 0 else float("nan")), total / max(n, 1)


def potent_null(rates: np.ndarray, readout: np.ndarray, prep: np.ndarray, move: np.ndarray) -> PotentNull:
    """Share of preparatory and movement activity in the readout's output-potent space.

    Parameters
    ----------
    rates : ndarray, shape (conditions, time, units)
        Condition-averaged rates of the readout population (Hz).
    readout : ndarray, shape (outputs, units)
        The map the muscles read (``W_out``).
    prep, move : ndarray of bool, shape (conditions, time)
        Samples of the preparatory epoch (e.g. target on to go) and of the movement epoch (e.g.
        movement onset to its end) of each condition.  Each epoch's samples are aligned by their
        position within the epoch, and only as many as every condition has are used.

    Returns
    -------
    PotentNull
    """
    rates = np.asarray(rates, float)
    if rates.ndim != 3 or readout.shape[1] != rates.shape[2]:
        raise ValueError(f"rates {rates.shape} and readout {readout.shape} do not match (conditions, time, units)")
    basis = potent_basis(readout)
    shares = []
    for mask in (prep, move):
        mask = np.asarray(mask, bool)
        length = int(mask.sum(axis=1).min())
        if length == 0:
            shares.append((float("nan"), float("nan")))
            continue
        aligned = np.stack([rates[c, np.flatnonzero(mask[c])[:length]] for c in range(rates.shape[0])])
        shares.append(_epoch_share(aligned, basis))
    dim, units = basis.shape[1], rates.shape[2]
    return PotentNull(dim, units, dim / units, shares[0][0], shares[1][0], shares[0][1], shares[1][1])
