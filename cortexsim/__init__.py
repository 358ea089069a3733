"""cortexsim: a six-layer motor-cortex circuit as rate RNN, spiking twin and ANN, compared.

Data flow: :mod:`~cortexsim.anatomy` -> :mod:`~cortexsim.circuit` -> models ->
:mod:`~cortexsim.store` (HDF5) -> analysis -> figures.
"""

__version__ = "0.1.0"
