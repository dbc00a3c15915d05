"""The run store: episodes and the learner's memories in Zarr v3 with crash-safe commits, and the run manifest.

Layout and names: layout.py. Crash-safety guarantees: writer.py. What a reader trusts: integrity.py.
Finding damaged chunks: verify.py. Stored captions as words: captions.py. Disk space: disk.py.
The learner's cache and spectral memories: learner_memory.py.
"""

from memory.captions import caption_decoder
from memory.disk import check_free_space, free_bytes, store_bytes_needed
from memory.errors import StoreBusy, StoreError
from memory.layout import STORE_FORMAT, STORE_VERSION, ArraySpec
from memory.learner_memory import LearnerMemory, MemoryBlock, load_learner_memory, save_learner_memory
from memory.manifest import read_manifest, update_manifest, write_manifest
from memory.reader import ArrayInfo, EpisodeStore, StoreCheck, open_store
from memory.verify import ArrayCheck, Damage
from memory.writer import EpisodeWriter, create_store

__all__ = [
    "STORE_FORMAT",
    "STORE_VERSION",
    "ArrayCheck",
    "ArrayInfo",
    "ArraySpec",
    "EpisodeStore",
    "EpisodeWriter",
    "LearnerMemory",
    "MemoryBlock",
    "Damage",
    "StoreBusy",
    "StoreCheck",
    "StoreError",
    "caption_decoder",
    "check_free_space",
    "create_store",
    "free_bytes",
    "load_learner_memory",
    "open_store",
    "read_manifest",
    "save_learner_memory",
    "store_bytes_needed",
    "update_manifest",
    "write_manifest",
]
