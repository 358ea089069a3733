"""Kernels of the rate network's BPTT (private to :mod:`cortexsim.rate`).

Recurrent product
-----------------
``W_alpha @ r`` of every Euler step, and ``W_alpha^T @ g`` in the backward pass, on
(units, trials) arrays, by one of two kernels (:func:`recurrent_path`):

* ``"sparse"``: on the connectome's synapses only, with scipy's CSR multi-vector
  product (``y += A @ X``; one pass over the synapses in a fixed order, one thread);
* ``"dense"``: a BLAS GEMM with the dense masked matrix.

The choice is a fixed function of the connection density and the dtype (the same at
every size) -- never of timing or load.  Its thresholds come from the two kernels
timed against each other with one thread on the 2-core development machine, 64
trials, N = 32 ... 2048 and densities 0.04 ... 0.3 (``benchmarks/bptt.py`` prints
both rates at every size it runs): in float32 the CSR product does about 16 GFLOP/s
of useful work and OpenBLAS sgemm on the (N, N) @ (N, 64) shape 93-97 GFLOP/s, so
the sparse product takes 0.45 x the dense one's time at density 0.08, 0.55 x at 0.1,
0.8-0.9 x at 0.15 and breaks even near 0.18-0.2; in float64 (dgemm half as fast)
it breaks even near 0.22-0.25.  The thresholds, 0.15 (float32) and 0.2 (float64),
sit just below break-even; at 32 and 64 units the sparse product is faster too.

Weight gradient
---------------
``dW = sum_t dL/dx[t+1] r[t]^T`` over all steps and trials (only its entries at
synapses are used) is a few large GEMMs, not T small ones: the T - 1 step pairs are
cut into a fixed number of chunks (:func:`gradient_chunks`, a function of N, T and
the dtype only), each chunk's product goes to its own partial matrix, and the
gradient at the synapses is the sum of the partials in a fixed order.  A chunk is
ready as soon as the backward pass has produced its steps, so a helper thread
multiplies chunks while the backward pass goes on; when it ends the main thread
takes the remaining chunks too.  Which thread does which chunk varies from run to
run, but every chunk is one GEMM of the same operands and the final sum has a fixed
order: the result is bit-identical for any number of threads and any load (and for
1 or 2 BLAS threads: tests/test_kernels.py).  Waiting threads block (no busy-waiting).

The dense product does 1 / density (about 26) times the flops of a product sampled
at the synapses only, but at BLAS speed (about 100 GFLOP/s on one core here); a
sampled product written with numpy gathers moves every synapse's (T B) operands
through memory and is slower, and restricting the GEMMs to the population blocks
that hold synapses (71 % of the matrix for the default connectome) was measured no
faster than the whole product (the small blocks run at a lower rate).
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

try:  # the routine scipy.sparse's ``csr @ dense`` calls, here accumulating into a given output
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - a future scipy that moved it: recurrent_path then chooses "dense"
    _csr_matvecs = None

PATHS = ("sparse", "dense")
"""Recurrent-product kernels: see :func:`recurrent_path`."""

SPARSE_MAX_DENSITY = {np.dtype(np.float32): 0.15, np.dtype(np.float64): 0.2}
"""Largest connection density (synapses / units^2) at which the sparse product is chosen, per dtype."""

THREADED_MIN_UNITS = 128
"""From this many units on the weight gradient uses a helper thread (measured, quiet 2-core machine, 64 trials
x 150 steps: no gain at 64 units, 0.88 x the one-thread time at 128, 0.79 x at 192, 0.77 x at 256)."""

PARTIALS_BYTES = 64 * 2**20
"""Memory allowed for the weight gradient's partial matrices (bounds the number of chunks)."""

MAX_CHUNKS = 8
"""Most chunks the weight gradient is cut into."""


def recurrent_path(n_units: int, density: float, dtype) -> str:
    """Kernel of the recurrent product for this size, density and dtype.

    Parameters
    ----------
    n_units : int
        Units N (measured: the crossover does not depend on it from 32 to 2048 units).
    density : float
        Synapses / N^2 (the default M1 connectome: about 0.038 at every N).
    dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    str
        ``"sparse"`` when ``density <= SPARSE_MAX_DENSITY[dtype]`` (0.15 float32, 0.2
        float64; and scipy's CSR routine is importable), else ``"dense"``.
    """
    del n_units
    limit = SPARSE_MAX_DENSITY.get(np.dtype(dtype), SPARSE_MAX_DENSITY[np.dtype(np.float32)])
    if _csr_matvecs is None or density > limit:
        return "dense"
    return "sparse"


def kernel_path(n_units: int, density: float, dtype=np.float32) -> str:
    """Kernel of the recurrent product for a network of this size, density and dtype.

    A fixed, documented rule (never a function of timing or load): ``"sparse"``
    (scipy CSR multi-vector product on the synapses) when ``density <= 0.15``
    (float32) or ``<= 0.2`` (float64), else ``"dense"`` (BLAS GEMM with the masked
    matrix), at any size.  See :mod:`cortexsim._kernels` for the measurements
    behind the thresholds.

    Parameters
    ----------
    n_units : int
    density : float
        Synapses / n_units^2 (:attr:`cortexsim.rate.RateNetwork.density`).
    dtype : numpy dtype
    """
    return recurrent_path(n_units, density, dtype)


def gradient_threads(n_units: int, density: float, dtype=np.float32) -> int:
    """Python threads that share the weight-gradient GEMM of one iteration (a fixed rule).

    2 from 128 units on, else 1.  Each thread calls BLAS single-threaded (see
    :func:`training_threads`); the GEMM is cut into fixed bands of rows that
    either thread may take, and a band is one GEMM whichever thread does it, so
    the result is bit-identical for any number of threads.  Threads that wait
    block (no busy-waiting), so a busy machine slows them by its share only.
    """
    del density, dtype
    return 2 if n_units >= THREADED_MIN_UNITS else 1


def training_threads(n_units: int, density: float, dtype=np.float32) -> int:
    """BLAS threads to train a rate network with (a fixed rule; never a function of timing or load).

    Always 1.  The iteration's parallelism is its own: the weight-gradient GEMMs run
    on :func:`gradient_threads` threads, each calling BLAS single-threaded, while the
    per-step products are scipy CSR products (no BLAS) on the sparse path.  A
    multi-threaded OpenBLAS busy-waits at every small product on a busy machine (an
    iteration 21x slower with one competing process, measured before this rule),
    while blocked Python threads cost nothing.  Because the rule never reads the load,
    the same config gives the same bits on a quiet or a busy machine; 1 and 2 BLAS threads
    agree to rounding (``tests/test_kernels.py``; OpenBLAS may split a GEMM's inner dimension).

    Use as ``with threadpoolctl.threadpool_limits(training_threads(...), user_api="blas"):``
    around training.

    Parameters
    ----------
    n_units : int
    density : float
    dtype : numpy dtype
    """
    del n_units, density, dtype  # the rule is the same for every size today; the signature is the contract
    return 1


def gradient_chunks(n_units: int, n_steps: int, itemsize: int) -> list[tuple[int, int]]:
    """Step ranges ``[a, b)`` of ``dL/dx[t]`` (t >= 1) the weight gradient is cut into, latest first.

    ``min(MAX_CHUNKS, T - 1, PARTIALS_BYTES // (N^2 itemsize))`` chunks (at least one)
    of nearly equal length, in the order the backward pass completes them.
    """
    pairs = n_steps - 1
    if pairs <= 0:
        return []
    k = int(min(MAX_CHUNKS, pairs, max(1, PARTIALS_BYTES // (n_units * n_units * itemsize))))
    edges = np.linspace(1, n_steps, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])][::-1]


class Csr:
    """A fixed sparsity pattern in CSR form; ``data`` is refreshed in place.

    Parameters
    ----------
    rows, cols : ndarray of int, shape (entries,)
        Coordinates of the stored entries, sorted by row then column.
    shape : tuple of int
        (rows, columns).
    dtype : numpy dtype
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], dtype):
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        index = np.int32 if max(self.shape) < 2**31 - 1 and rows.size < 2**31 - 1 else np.int64
        self.indptr = np.zeros(self.shape[0] + 1, index)
        np.cumsum(np.bincount(rows, minlength=self.shape[0]), out=self.indptr[1:])
        self.indices = np.ascontiguousarray(cols, dtype=index)
        self.data = np.zeros(rows.size, self.dtype)

    def matvecs(self, x: np.ndarray, y: np.ndarray) -> None:
        """``y += A @ x`` in place, for C-contiguous ``x`` (columns, k) and ``y`` (rows, k) of the dtype."""
        if not (x.flags.c_contiguous and y.flags.c_contiguous and x.dtype == self.dtype == y.dtype):
            raise ValueError("Csr.matvecs needs C-contiguous operands of the matrix dtype")
        _csr_matvecs(
            self.shape[0], self.shape[1], x.shape[1], self.indptr, self.indices, self.data, x.reshape(-1), y.reshape(-1)
        )


class Recurrence:
    """``W_alpha[post, pre] = alpha[post] sign[pre] w[post, pre]`` on a fixed mask.

    Keeps both orientations as CSR (``W_alpha`` forward, ``W_alpha^T`` backward) on
    the sparse path, the dense matrix on the dense path.

    Parameters
    ----------
    mask : ndarray of bool, shape (units, units)
        Synapses ``[post, pre]``.
    coef : ndarray, shape (units, units)
        ``alpha[post] * sign[pre]`` (read on the mask only).
    path : str
        ``"sparse"`` or ``"dense"``.
    dtype : numpy dtype
    """

    def __init__(self, mask: np.ndarray, coef: np.ndarray, path: str, dtype):
        if path not in PATHS:
            raise ValueError(f"kernel path {path!r}; choose from {PATHS}")
        n = mask.shape[0]
        self.n, self.path, self.dtype = n, path, np.dtype(dtype)
        post, pre = np.nonzero(mask)  # row-major: sorted by post, then pre
        self.flat = post.astype(np.intp) * n + pre
        """Flat index into (units, units) of every synapse, in (post, pre) order."""
        self.coef = np.ascontiguousarray(coef[post, pre], dtype=self.dtype)
        self.n_synapses = int(post.size)
        self.values = np.zeros(self.n_synapses, self.dtype)
        """Magnitudes ``w`` at the synapses, from the last :meth:`set_weights`."""
        if path == "sparse":
            self.fwd = Csr(post, pre, (n, n), self.dtype)
            self.order_t = np.lexsort((post, pre))  # sorted by pre, then post
            self.bwd = Csr(pre[self.order_t], post[self.order_t], (n, n), self.dtype)
        else:
            self.dense = np.zeros((n, n), self.dtype)
            self.dense_t = np.zeros((n, n), self.dtype)
        self._partials: list[np.ndarray] = []

    def set_weights(self, w: np.ndarray) -> None:
        """Refresh the values from the magnitudes ``w`` (units, units); entries off the mask are ignored."""
        np.take(w.reshape(-1), self.flat, out=self.values)
        vals = self.values * self.coef
        if self.path == "sparse":
            self.fwd.data[:] = vals
            np.take(vals, self.order_t, out=self.bwd.data)
        else:
            self.dense.reshape(-1)[self.flat] = vals
            self.dense_t[...] = self.dense.T

    def forward(self, r: np.ndarray, y: np.ndarray, tmp: np.ndarray) -> None:
        """``y += W_alpha @ r`` for C-contiguous (units, trials) ``r``, ``y`` and ``tmp``."""
        if self.path == "sparse":
            self.fwd.matvecs(r, y)
        else:
            np.matmul(self.dense, r, out=tmp)
            y += tmp

    def backward(self, g: np.ndarray, y: np.ndarray, tmp: np.ndarray) -> None:
        """``y += W_alpha^T @ g`` for C-contiguous (units, trials) arrays."""
        if self.path == "sparse":
            self.bwd.matvecs(g, y)
        else:
            np.matmul(self.dense_t, g, out=tmp)
            y += tmp

    def partials(self, k: int) -> list[np.ndarray]:
        """``k`` reusable (units, units) work matrices for the weight gradient."""
        if len(self._partials) != k:
            self._partials = [np.empty((self.n, self.n), self.dtype) for _ in range(k)]
        return self._partials


class WeightGradient:
    """``sum_t gx[:, t] r[:, t-1]^T`` at the synapses, computed in chunks while the backward pass runs.

    Parameters
    ----------
    rec : Recurrence
        Supplies the synapse indices and the partial matrices.
    gx, r : ndarray, shape (units, time, trials)
        dL/dx (being filled by the backward pass, latest step first) and the rates.
    threads : int
        1: every chunk is multiplied in :meth:`result`; 2 or more: helper threads
        multiply chunks as soon as :meth:`step_done` reports them complete.

    Notes
    -----
    Use as::

        wg = WeightGradient(rec, gx, r, threads)
        try:
            for t in reversed(range(T)):
                ...  # fill gx[:, t]
                wg.step_done(t)
        finally:
            wg.close()  # also on error: releases the helpers
        values = wg.result()
    """

    def __init__(self, rec: Recurrence, gx: np.ndarray, r: np.ndarray, threads: int = 1):
        n, n_steps, n_trials = gx.shape
        self.rec, self.gx, self.r = rec, gx, r
        self.chunks = gradient_chunks(n, n_steps, gx.dtype.itemsize)
        self.out = rec.partials(len(self.chunks))
        self.ready = [threading.Event() for _ in self.chunks]
        self._next_ready = 0
        self._claim = itertools.count()  # next() is atomic under the GIL: each chunk is done once
        self._errors: list[BaseException] = []
        self._cancel = False
        self._helpers = (
            [threading.Thread(target=self._work, name="cortexsim-dW", daemon=True) for _ in range(max(0, threads - 1))]
            if len(self.chunks) > 1
            else []
        )
        for h in self._helpers:
            h.start()

    def _multiply(self, i: int) -> None:
        a, b = self.chunks[i]
        n = self.gx.shape[0]
        np.matmul(self.gx[:, a:b].reshape(n, -1), self.r[:, a - 1 : b - 1].reshape(n, -1).T, out=self.out[i])

    def _work(self) -> None:
        try:
            while True:
                i = next(self._claim)
                if i >= len(self.chunks):
                    return
                self.ready[i].wait()
                if self._cancel:
                    return
                self._multiply(i)
        except BaseException as exc:  # pragma: no cover - re-raised by result()
            self._errors.append(exc)

    def step_done(self, t: int) -> None:
        """The backward pass has filled ``gx[:, t]`` (and every later step)."""
        while self._next_ready < len(self.chunks) and t <= self.chunks[self._next_ready][0]:
            self.ready[self._next_ready].set()
            self._next_ready += 1

    def close(self) -> None:
        """Release the helper threads (if the backward pass did not finish, they stop without work)."""
        if self._next_ready < len(self.chunks):
            self._cancel = True
        for e in self.ready:
            e.set()

    def result(self) -> np.ndarray:
        """The gradient at the synapses, shape (synapses,), in (post, pre) order: partials summed in chunk order."""
        self._work()  # the main thread takes the chunks nobody has claimed yet
        for h in self._helpers:
            h.join()
        if self._errors:  # pragma: no cover
            raise self._errors[0]
        flat = self.rec.flat
        total = np.zeros(flat.size, self.gx.dtype)
        for part in self.out:
            total += part.reshape(-1)[flat]
        return total


def softplus(x: np.ndarray, out: np.ndarray, gain: float, threshold: float, softness: float) -> float:
    """``out = gain s log(1 + exp((x - threshold) / s))`` in 5 passes; returns ``max(out)``.

    ``log1p(exp(z))`` is exact in floating point except where ``exp`` overflows
    (z > 88 in float32): then the result is infinite and the caller recomputes with
    the stable form (:class:`cortexsim.transfer.Softplus`).  Call inside
    ``np.errstate(over="ignore")``.
    """
    np.subtract(x, out.dtype.type(threshold), out=out)
    out *= out.dtype.type(1.0 / softness)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out *= out.dtype.type(gain * softness)
    return float(out.max())
