"""A distributed launcher's environment: this process's index, the process count and its local rank.

torchrun and ``accelerate launch`` (multi-GPU and multi-node) set RANK, WORLD_SIZE and LOCAL_RANK;
MPI launchers (``accelerate launch`` multi-CPU runs go through mpirun) set the MPICH/Intel MPI,
Open MPI or MVAPICH names. Each is read in the order below, the order accelerate itself uses.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from .errors import UsageError

RANK_ENV = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_SIZE_ENV = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_ENV = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def env_int(names: Sequence[str], environ: Mapping[str, str] | None = None) -> tuple[str, int] | None:
    """(name, value) of the first of ``names`` set in ``environ`` (default: ``os.environ``), or None.

    Raises:
        UsageError: the variable is set to something other than an integer.
    """
    environ = os.environ if environ is None else environ
    for name in names:
        value = environ.get(name)
        if value is not None and value.strip() != "":
            try:
                return name, int(value)
            except ValueError:
                raise UsageError(f"environment variable {name}={value!r} is not an integer") from None
    return None


def local_rank(environ: Mapping[str, str] | None = None) -> int | None:
    """This process's index on its machine under a launcher, or None when there is no launcher."""
    found = env_int(LOCAL_RANK_ENV, environ)
    return None if found is None else found[1]
