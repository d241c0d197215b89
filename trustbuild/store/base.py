"""Where the store types live now (kept for imports from older code).

:class:`Store` and :data:`BlobSource` are part of the image model (``trustbuild.oci.store``);
:class:`StoreOptions` belongs to the registry client (``trustbuild.registry.options``).
"""

from trustbuild.oci.store import BlobSource, Store
from trustbuild.registry.options import StoreOptions

__all__ = ["Store", "BlobSource", "StoreOptions"]
