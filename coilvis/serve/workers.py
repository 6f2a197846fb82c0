"""The explorer's model workers: each model loads once, lazily, and runs one job at a time for every tab.

A :class:`ModelPool` holds the models the explorer may use, by name. The first job for
a model loads it (in its worker thread, so the server stays responsive); each model has
one worker thread, so two forwards never run on one model at once, whichever tabs asked
for them. A job that was superseded while it waited (a newer run from the same tab) is
skipped when its turn comes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from coilvis.errors import CoilvisValueError

__all__ = ["DEFAULT_MODEL", "ModelPool", "Superseded"]

#: The name of the embedded default model in the explorer's chooser.
DEFAULT_MODEL = "default"


class Superseded(Exception):
    """A job that a newer one from the same tab replaced before it started."""


class ModelPool:
    """Models by name, each loaded on first use and run by its own single worker thread.

    Args:
        models: name -> what :func:`coilvis.models.resolve_model` takes (a model id or
            folder, a model object, a ``(model, tokenizer)`` pair, a
            :class:`~coilvis.models.LoadedModel`), or ``None`` for the embedded default
            model. Names are shown in the chooser, in order.
        loader: turns such a value into a loaded model (default:
            :func:`coilvis.models.resolve_model`).
    """

    def __init__(self, models: Mapping[str, Any], *, loader: Callable[[Any], Any] | None = None) -> None:
        if not models:
            raise CoilvisValueError("models: the explorer needs at least one model")
        self._specs = dict(models)
        self._loader = loader
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()
        #: jobs that ran (not skipped), by model name
        self.jobs_run: dict[str, int] = dict.fromkeys(self._specs, 0)
        self._workers = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"coilvis-{i}") for i, name in enumerate(self._specs)}

    @property
    def names(self) -> list[str]:
        """The models' names, in the chooser's order."""
        return list(self._specs)

    def check_name(self, name: Any) -> str:
        """``name`` if the pool has such a model, else a CoilvisValueError listing them."""
        if not isinstance(name, str) or name not in self._specs:
            raise CoilvisValueError(f"model: {name!r} is not one of this explorer's models ({', '.join(self.names)})")
        return name

    def is_loaded(self, name: str) -> bool:
        """Whether the model has been loaded already."""
        return name in self._loaded

    def _model(self, name: str) -> Any:
        """The loaded model (loading it the first time; runs in the model's worker)."""
        with self._lock:
            loaded = self._loaded.get(name)
        if loaded is None:
            if self._loader is not None:
                loaded = self._loader(self._specs[name])
            else:
                from coilvis.models import resolve_model

                loaded = resolve_model(self._specs[name])
            with self._lock:
                self._loaded[name] = loaded
        return loaded

    def submit(self, name: str, job: Callable[[Any], Any], *, still_wanted: Callable[[], bool] = lambda: True) -> Future[Any]:
        """Run ``job(loaded_model)`` on the model's worker, after the jobs before it.

        Args:
            name: the model's name.
            job: called in the worker thread with the loaded model.
            still_wanted: checked when the job's turn comes; ``False`` skips it (the
                future then raises :class:`Superseded`).

        Returns:
            A future of the job's result.
        """
        name = self.check_name(name)

        def work() -> Any:
            if not still_wanted():
                raise Superseded()
            loaded = self._model(name)
            with self._lock:
                self.jobs_run[name] += 1
            return job(loaded)

        return self._workers[name].submit(work)

    def shutdown(self) -> None:
        """Stop the workers (waiting for the running jobs) and forget the models."""
        for worker in self._workers.values():
            worker.shutdown(wait=True, cancel_futures=True)
        self._loaded.clear()
