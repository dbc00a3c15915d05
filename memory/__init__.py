"""The run store: episodes in Zarr v3 with crash-safe commits, and the run manifest.

Layout and names: layout.py. Crash-safety guarantees: writer.py. What a reader trusts: integrity.py.
"""

from memory.errors import StoreError
from memory.layout import STORE_FORMAT, STORE_VERSION, ArraySpec
from memory.manifest import read_manifest, update_manifest, write_manifest
from memory.reader import ArrayInfo, EpisodeStore, open_store
from memory.writer import EpisodeWriter, create_store

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "ArrayInfo",
    "ArraySpec",
    "EpisodeStore",
    "EpisodeWriter",
    "StoreError",
    "create_store",
    "open_store",
    "read_manifest",
    "update_manifest",
    "write_manifest",
]
