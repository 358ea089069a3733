"""One update of an ANN baseline (:mod:`cortexsim.ann`) as a function of its state and its input drive.

The ANN's own step map and Jacobians (:meth:`cortexsim.ann.LeakyRNN.step_map` and its GRU and LSTM
siblings, and the controller a closed loop composes with a body) are built from its cell -- one class
per architecture (:class:`RnnCell`, :class:`GruCell`, :class:`LstmCell`), each ANN naming its own
(``CELL``), so nothing dispatches on the architecture;
``tests/test_model_contract.py`` checks that one step of it reproduces one step of the ANN's
``simulate``.  The equations:

* ``rnn``: ``h' = (1 - a) h + a tanh(W h + B u + b)``, ``a = dt / tau``; state ``h`` (H,).
* ``gru``: ``r = sig(B_r u + W_r h + b_r)``, ``z = sig(B_z u + W_z h + b_z)``,
  ``m = tanh(B_m u + b_m + r * (W_m h + b_hn))``, ``h' = (1 - z) m + z h``; state ``h``.
* ``lstm``: ``[i, f, g, o] = [sig, sig, tanh, sig](B u + W h + b)``,
  ``c' = f c + i g``, ``h' = o tanh(c')``; the state is ``[h, c]`` (2H,).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Products


def _sig(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


class AnnCell:
    """One update of a :mod:`cortexsim.ann` baseline as a function of its state and its input drive.

    The drive ``x_in = B u + b`` (gate blocks stacked as in :mod:`cortexsim.ann`) may differ from
    row to row, as it does when the input is fed back from a body (:mod:`cortexsim.closed_loop_map`);
    the ANN's ``step_map`` is this cell under one constant input.  Equations in the module notes.
    The base class holds what every architecture shares; each subclass its update and derivatives.

    Parameters
    ----------
    model : LeakyRNN, GRU or LSTM
        Its ``n_units``, ``params`` and (rnn) ``alpha`` are read (parameters copied).

    Attributes
    ----------
    n_state : int
        H, or 2H for the LSTM (state ``[h, c]``).
    """

    def __init__(self, model: Any) -> None:
        self.H = int(model.n_units)
        self.p = {k: np.asarray(v, float) for k, v in model.params.items()}
        self.n_state = self.H

    def drive(self, u: np.ndarray) -> np.ndarray:
        """``B u + b`` for inputs ``u`` (..., inputs) -> (..., gates H)."""
        return u @ self.p["w_in"].T + self.p["b"]

    def step(self, X: np.ndarray, x_in: np.ndarray) -> np.ndarray:
        """Next states (m, n_state) from states (m, n_state) and drives (gates H,) or (m, gates H)."""
        raise NotImplementedError  # pragma: no cover

    def coefficients(self, X: np.ndarray, x_in: np.ndarray) -> tuple[np.ndarray, ...]:
        """Derivatives of the update with respect to each gate's pre-activation (per row).

        :meth:`full`, :meth:`linearize` and :meth:`input_jacobian` take them (``co``) so that
        one evaluation of the gates serves all three.
        """
        raise NotImplementedError  # pragma: no cover

    def full(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> np.ndarray:
        """Jacobians with respect to the state, (m, n_state, n_state)."""
        raise NotImplementedError  # pragma: no cover

    def linearize(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> Products:
        """Matrix-free products with the state Jacobians: ``(jvp, vjp)``, each (m, n_state) -> (m, n_state)."""
        raise NotImplementedError  # pragma: no cover

    def input_jacobian(
        self, X: np.ndarray, x_in: np.ndarray, columns: slice | np.ndarray, co: tuple | None = None
    ) -> np.ndarray:
        """Jacobians of the update with respect to the inputs ``u[columns]``, (m, n_state, len(columns)).

        The input enters every gate's pre-activation through ``B``, so this is the state
        Jacobian's structure with ``B[:, columns]`` in place of ``W`` (no reset gate on the
        GRU candidate's input, no leak).
        """
        raise NotImplementedError  # pragma: no cover


class RnnCell(AnnCell):
    """The leaky tanh RNN: ``h' = (1 - a) h + a tanh(W h + x_in)``; coefficients ``(a (1 - s^2),)``."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.a = float(model.alpha)

    def _parts(self, X: np.ndarray, x_in: np.ndarray):
        return (np.tanh(X @ self.p["w"].T + x_in),)

    def step(self, X: np.ndarray, x_in: np.ndarray) -> np.ndarray:
        """Next states (m, H) from states (m, H) and drives (H,) or (m, H)."""
        return (1 - self.a) * X + self.a * self._parts(X, x_in)[0]

    def coefficients(self, X: np.ndarray, x_in: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(a (1 - s^2),)`` with ``s`` the tanh."""
        s = self._parts(X, x_in)[0]
        return (self.a * (1.0 - s * s),)

    def full(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> np.ndarray:
        """Jacobians with respect to the state, (m, H, H)."""
        co = self.coefficients(X, x_in) if co is None else co
        return (1 - self.a) * np.eye(self.H) + co[0][:, :, None] * self.p["w"][None]

    def linearize(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> Products:
        """Matrix-free products with the state Jacobians: ``(jvp, vjp)``, each (m, H) -> (m, H)."""
        W = self.p["w"]
        co = self.coefficients(X, x_in) if co is None else co
        gain, a = co[0], self.a
        return (lambda V: (1 - a) * V + gain * (V @ W.T), lambda V: (1 - a) * V + (gain * V) @ W)

    def input_jacobian(
        self, X: np.ndarray, x_in: np.ndarray, columns: slice | np.ndarray, co: tuple | None = None
    ) -> np.ndarray:
        """Jacobians of the update with respect to the inputs ``u[columns]``, (m, H, len(columns))."""
        co = self.coefficients(X, x_in) if co is None else co
        return co[0][:, :, None] * self.p["w_in"][:, columns][None]


class GruCell(AnnCell):
    """The GRU (PyTorch's form); coefficients ``(z, dh'/dpre_z, dh'/dpre_r, dh'/dpre_m, r)``."""

    def _parts(self, X: np.ndarray, x_in: np.ndarray):
        H, W = self.H, self.p["w"]
        r = _sig(x_in[..., :H] + X @ W[:H].T)
        z = _sig(x_in[..., H : 2 * H] + X @ W[H : 2 * H].T)
        hm = X @ W[2 * H :].T + self.p["b_hn"]
        return r, z, hm, np.tanh(x_in[..., 2 * H :] + r * hm)

    def step(self, X: np.ndarray, x_in: np.ndarray) -> np.ndarray:
        """Next states (m, H) from states (m, H) and drives (3H,) or (m, 3H)."""
        _, z, _, m = self._parts(X, x_in)
        return (1 - z) * m + z * X

    def coefficients(self, X: np.ndarray, x_in: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(z, dh'/dpre_z, dh'/dpre_r, dh'/dpre_m, r)``."""
        r, z, hm, m = self._parts(X, x_in)
        cm = (1 - z) * (1 - m * m)  # dh'/d(candidate pre-activation)
        return z, (X - m) * z * (1 - z), cm * hm * r * (1 - r), cm, r

    def full(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> np.ndarray:
        """Jacobians with respect to the state, (m, H, H)."""
        H, W = self.H, self.p["w"]
        dz, cz, cr, cm, r = self.coefficients(X, x_in) if co is None else co
        # the candidate sees W_m h through the reset gate
        J = cz[:, :, None] * W[H : 2 * H] + cr[:, :, None] * W[:H] + (cm * r)[:, :, None] * W[2 * H :]
        J[:, np.arange(H), np.arange(H)] += dz
        return J

    def linearize(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> Products:
        """Matrix-free products with the state Jacobians: ``(jvp, vjp)``, each (m, H) -> (m, H)."""
        H, W = self.H, self.p["w"]
        dz, cz, cr, cm, r = self.coefficients(X, x_in) if co is None else co
        Wt = np.ascontiguousarray(W.T)  # one GEMM with the stacked gate blocks [r, z, m] per product
        gates = np.concatenate([cr, cz, cm * r], axis=1)  # the candidate sees W_m h through the reset gate

        def jvp(V):
            P = V @ Wt
            return dz * V + cr * P[:, :H] + cz * P[:, H : 2 * H] + gates[:, 2 * H :] * P[:, 2 * H :]

        def vjp(V):
            return dz * V + (gates * np.tile(V, 3)) @ W

        return jvp, vjp

    def input_jacobian(
        self, X: np.ndarray, x_in: np.ndarray, columns: slice | np.ndarray, co: tuple | None = None
    ) -> np.ndarray:
        """Jacobians of the update with respect to the inputs ``u[columns]``, (m, H, len(columns))."""
        H, B = self.H, self.p["w_in"][:, columns]
        _, cz, cr, cm, _ = self.coefficients(X, x_in) if co is None else co
        return cz[:, :, None] * B[H : 2 * H] + cr[:, :, None] * B[:H] + cm[:, :, None] * B[2 * H :]


class LstmCell(AnnCell):
    """The LSTM (gate order i, f, g, o); state ``[h, c]``.

    Coefficients ``(dc'/dpre_i, dc'/dpre_f, dc'/dpre_g, dh'/dpre_o, dh'/dc', f)``.
    """

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.n_state = 2 * self.H

    def _parts(self, X: np.ndarray, x_in: np.ndarray):
        H, W = self.H, self.p["w"]
        h, c = X[:, :H], X[:, H:]
        pre = h @ W.T + x_in
        i, f, o = _sig(pre[:, :H]), _sig(pre[:, H : 2 * H]), _sig(pre[:, 3 * H :])
        g = np.tanh(pre[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        return c, i, f, g, o, c_new, np.tanh(c_new)

    def step(self, X: np.ndarray, x_in: np.ndarray) -> np.ndarray:
        """Next states (m, 2H) from states ``[h, c]`` (m, 2H) and drives (4H,) or (m, 4H)."""
        *_, o, c_new, tc = self._parts(X, x_in)
        return np.concatenate([o * tc, c_new], axis=1)

    def coefficients(self, X: np.ndarray, x_in: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(dc'/dpre_i, dc'/dpre_f, dc'/dpre_g, dh'/dpre_o, dh'/dc', f)``."""
        c, i, f, g, o, _, tc = self._parts(X, x_in)
        return g * i * (1 - i), c * f * (1 - f), i * (1 - g * g), tc * o * (1 - o), o * (1 - tc * tc), f

    def full(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> np.ndarray:
        """Jacobians with respect to the state, (m, 2H, 2H)."""
        H, W = self.H, self.p["w"]
        ci, cf, cg, c_o, k, f = self.coefficients(X, x_in) if co is None else co
        dc_dh = ci[:, :, None] * W[:H] + cf[:, :, None] * W[H : 2 * H] + cg[:, :, None] * W[2 * H : 3 * H]
        J = np.zeros((X.shape[0], 2 * H, 2 * H))
        J[:, :H, :H] = c_o[:, :, None] * W[3 * H :] + k[:, :, None] * dc_dh
        J[:, H:, :H] = dc_dh
        eye = np.eye(H)
        J[:, :H, H:] = (k * f)[:, :, None] * eye
        J[:, H:, H:] = f[:, :, None] * eye
        return J

    def linearize(self, X: np.ndarray, x_in: np.ndarray, co: tuple | None = None) -> Products:
        """Matrix-free products with the state Jacobians: ``(jvp, vjp)``, each (m, 2H) -> (m, 2H)."""
        H, W = self.H, self.p["w"]
        ci, cf, cg, c_o, k, f = self.coefficients(X, x_in) if co is None else co
        Wt = np.ascontiguousarray(W.T)  # one GEMM with the stacked gate blocks [i, f, g, o] per product

        def jvp(V):
            vh, vc = V[:, :H], V[:, H:]
            P = vh @ Wt
            dc = ci * P[:, :H] + cf * P[:, H : 2 * H] + cg * P[:, 2 * H : 3 * H] + f * vc
            return np.concatenate([c_o * P[:, 3 * H :] + k * dc, dc], axis=1)

        def vjp(V):
            wh, wc = V[:, :H], V[:, H:]
            gc = wc + k * wh  # weight on dc'
            out_h = np.concatenate([ci * gc, cf * gc, cg * gc, c_o * wh], axis=1) @ W
            return np.concatenate([out_h, f * gc], axis=1)

        return jvp, vjp

    def input_jacobian(
        self, X: np.ndarray, x_in: np.ndarray, columns: slice | np.ndarray, co: tuple | None = None
    ) -> np.ndarray:
        """Jacobians of the update with respect to the inputs ``u[columns]``, (m, 2H, len(columns))."""
        H, B = self.H, self.p["w_in"][:, columns]
        ci, cf, cg, c_o, k, _ = self.coefficients(X, x_in) if co is None else co
        dc = ci[:, :, None] * B[:H] + cf[:, :, None] * B[H : 2 * H] + cg[:, :, None] * B[2 * H : 3 * H]
        return np.concatenate([c_o[:, :, None] * B[3 * H :] + k[:, :, None] * dc, dc], axis=1)


__all__ = ["AnnCell", "GruCell", "LstmCell", "RnnCell"]
