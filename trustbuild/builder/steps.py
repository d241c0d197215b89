"""One filesystem step (RUN, COPY, ADD, WORKDIR): from the step cache, or run on the rootfs.

:func:`layer_step` looks the step's key up before anything touches the stage's filesystem. On a
hit the cached layer (not downloaded) is appended to the image; the rootfs is materialised only
by the first step that has to run (``Executor.materialize``: base layers plus the cached layers
so far), so a build whose every step hits extracts nothing. A step without a key (no
``--cache``, or inputs that cannot be keyed such as a RUN bind mount) always runs, and the chain
then moves on by the layer it produced. A step whose kind is not cached (``cache_run_layers``,
``cache_copy_layers`` off) runs too, but its key still moves the chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trustbuild.builder.cachekey import chain_step
from trustbuild.builder.config import LayerRef, ensure_local
from trustbuild.builder.record import StepRecord
from trustbuild.oci.digest import Digest
from trustbuild.oci.extract import extract_layer

if TYPE_CHECKING:
    from trustbuild.builder.commands import Command
    from trustbuild.builder.executor import StageRun
    from trustbuild.builder.stepcontext import LayerStepContext

__all__ = ["layer_step", "LAYER_STEPS"]

LAYER_STEPS = frozenset({"RUN", "COPY", "ADD", "WORKDIR", "VOLUME"})


def layer_step(ex: LayerStepContext, st: StageRun, ins: Command, rec: StepRecord, *,
               key: str | None, history: str,
               produce: Callable[[], LayerRef | None]) -> None:
    """Take the step from the cache under ``key`` or run ``produce`` on the materialised rootfs.

    ``history`` is the step's ``created_by``; ``produce`` returns the new layer (None when the
    step changed nothing) and must not touch the image config's layers or history.
    """
    cache = ex.cache if (key is not None and ex.cache_enabled(ins.keyword)) else None
    entry = cache.lookup(key) if (cache is not None and key is not None) else None
    store = cache is not None and not ex.options.no_push_cache  # --no-push-cache: read only
    if entry is not None:
        layer = entry.layer
        if layer is not None and st.materialized:
            path = ensure_local(layer)
            extract_layer(path, st.rootfs, media_type=layer.descriptor.media_type,
                          diff_id=Digest.parse(layer.diff_id),
                          what=f"cached layer of {ex.path}:{ins.line}",
                          exclude=ex.cfs.excluded if ex.cfs is not None else None)
        shown = str(layer.descriptor.digest) if layer is not None else "no layer"
        print(f"{ex.path}:{ins.line} {ins.keyword}: cache hit ({shown})", file=ex.options.output)
        rec.cached = True
    else:
        ex.materialize(st)
        layer = produce()
        if store and cache is not None and key is not None:
            layer = cache.put_later(key, layer)  # uploads while the build goes on; a push
            # mounts it from the cache repository (Executor.run waits for it first)
    if layer is not None:
        st.image.add_layer(layer)
        rec.layer_digest = str(layer.descriptor.digest)
    st.image.add_history(history, created=ex.created(), empty_layer=layer is None)
    if key is not None:
        st.chain = key
    else:
        st.chain = chain_step(st.chain, ins.keyword, history, layer.diff_id if layer else "")
