"""Batch grids of papermill runs on Dask distributed.

:class:`DaskExecutor` gives :func:`scintilab.batch.run_batch` a ``submit``/``result``
interface over a ``dask.distributed`` client: a two-worker ``LocalCluster`` by default or
an existing scheduler (``tcp://host:8786``) for a real cluster. Failures are handled
exactly as locally (``run_batch(..., executor=DaskExecutor())``): a failing notebook is
kept and marked ``failed``, its dependants ``skipped``, the batch goes on. Workers are
processes with one thread each, because papermill changes the working directory and
environment (see :mod:`scintilab.batch`).
"""

from __future__ import annotations

from typing import Any


class DaskExecutor:
    """``submit(fn, *args) -> future`` over Dask distributed, for :func:`scintilab.batch.run_batch`.

    Args:
        address: a running scheduler (``"tcp://host:8786"``); None starts a LocalCluster.
        n_workers: worker processes of the LocalCluster.
        threads_per_worker: threads per worker (1: papermill is not thread-safe).
        **cluster_options: passed to ``LocalCluster`` (e.g. ``memory_limit``).

    Use as a context manager (or call :meth:`close`) so a LocalCluster is shut down.
    """

    def __init__(
        self, address: str | None = None, n_workers: int = 2, threads_per_worker: int = 1, **cluster_options: Any
    ) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address is None:
            self.cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=threads_per_worker,
                processes=True,
                dashboard_address=None,  # no web server: nothing to reach from outside
                **cluster_options,
            )
            self.client = Client(self.cluster)
        else:
            self.client = Client(address)

    def submit(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on a worker; ``pure=False`` so re-runs are never deduplicated."""
        return self.client.submit(fn, *args, pure=False)

    @property
    def n_workers(self) -> int:
        """Workers currently connected."""
        return len(self.client.scheduler_info().get("workers", {}))

    def close(self) -> None:
        """Close the client (and the LocalCluster, when this executor started it)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
