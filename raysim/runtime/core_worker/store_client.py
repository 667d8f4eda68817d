"""A process's view of its node's object store: write an object, map one zero-copy.

Seed, phase 2 step 2: "Driver writes serialized model to local Object Store shared memory".
Phase 5 step 2: "If result is local → deserialize via zero-copy memory mapping".

Every driver and worker maps the store's memfd once, at connect time (Ray's plasma client does
the same with the fd it receives over the store's Unix socket). After that:

* writing an object is a ``create`` message to the raylet (which picks an offset), a memcpy of
  the serialized bytes into the mapping, and a ``seal`` message;
* reading an object is pure local work: slice the mapping at the object's offset and unpickle
  with out-of-band buffers pointing into it. numpy arrays, pandas blocks and Arrow buffers come
  back as *read-only views of shared memory*; nothing is copied, whatever the size.

A zero-copy view must keep the object alive: if the object were freed and its space reused
while a numpy array still pointed into it, the array would silently change. So each read that
produced views *pins* the object: the views hang off a ctypes array whose finalizer unpins it
when the last view is garbage. While pinned, the process is a ``PINNED_IN_MEMORY`` holder in
the reference table, which is the reference type Ray's ``ray memory`` shows for this case.

The raylet may move an object while nobody has it mapped (spill it to disk when the store is
full, restore it elsewhere later), so a reader never keeps an object's place for later: it
asks the raylet where the object is now, which pins it in the raylet too, and tells the
raylet when it is done (``core_worker.py``: ``read_placed``, ``release_store_pins``).

Runs in: the driver and workers.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import weakref
from typing import Any, Callable

from raysim import exceptions
from raysim.runtime.common import serialization


class StoreClient:
    def __init__(self, fd: int, capacity: int) -> None:
        self.capacity = capacity
        # One shared, writable mapping of the whole store. Pages are only backed by memory
        # once something is written to them; mapping 30% of RAM costs nothing up front.
        self.mmap = mmap.mmap(fd, capacity, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._view = memoryview(self.mmap)

    def write(self, offset: int, obj: serialization.SerializedObject) -> None:
        obj.write_into(self._view[offset:offset + obj.total_size])

    def read(self, offset: int, size: int, on_unpin: Callable[[], None] | None) -> tuple[Any, bool]:
        """Deserialize the object at ``offset``. Returns (value, zero_copy).

        ``on_unpin`` is called once no view into the object remains (only if there were any).
        """
        region = self._view[offset:offset + size]
        if not serialization.has_buffers(region):
            return serialization.deserialize(region), False
        # Views into the store hang off this ctypes array; its finalizer is the unpin.
        anchor = (ctypes.c_char * size).from_buffer(self.mmap, offset)
        if on_unpin is not None:
            weakref.finalize(anchor, on_unpin)
        view = memoryview(anchor).cast("B").toreadonly()
        del anchor
        return serialization.deserialize(view), True

    def close(self) -> None:
        self._view.release()
        try:
            self.mmap.close()
        except BufferError:
            # Views handed to user code still point into the store; the mapping stays until
            # they are gone, the memory until the process exits.
            pass


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB ({n:,} bytes)"


def _store_state(reply: dict) -> str:
    return (f"the store holds {_mib(reply['capacity'])}, of which {_mib(reply['used'])} "
            f"are in use, {_mib(reply['immovable'])} by objects that cannot move (pinned by "
            f"zero-copy reads or task arguments, or still being written)")


def store_full_error(what: str, size: int, node_id: str,
                     reply: dict) -> exceptions.ObjectStoreFullError:
    """The raylet could not make room to create an object (its "full" answer)."""
    needed = math.ceil((size + reply["immovable"]) * 1.25 / 2**20)
    return exceptions.ObjectStoreFullError(
        f"Could not {what} of {_mib(size)} in the object store of node {node_id}: "
        f"{reply['reason']}; {_store_state(reply)}. Tip: pass a larger object_store_memory "
        f"to raysim.init() (e.g. object_store_memory={needed} * 1024**2), or drop "
        f"references to objects you no longer need (del the ObjectRefs and the arrays read "
        f"from them) so that their space can be reused.")


_LOST_ERRORS = {"OWNER_DIED": exceptions.OwnerDiedError,
                "FREED": exceptions.ReferenceCountingAssertionError}


def store_read_error(object_id: str, node_id: str, reply: dict) -> exceptions.RayError:
    """The raylet cannot give an object to a reader: it is lost, or it could not be brought
    back into memory from disk."""
    if reply.get("error") == "lost" and reply.get("cause") in _LOST_ERRORS:
        # The GCS's word (object_directory.py): its owner died, or it was freed too early.
        return _LOST_ERRORS[reply["cause"]](object_id, reply["message"])
    if reply.get("error") == "lost":
        error = exceptions.ObjectLostError(
            object_id, f"Object {object_id} cannot be read: {reply['message']}. Tip: create "
                       f"it again (put it, or call the task that makes it).")
        error.lost_cause = reply.get("cause")  # NODE_DIED: its owner may make it again
        return error
    return exceptions.ObjectStoreFullError(
        f"Could not read object {object_id} of {_mib(reply['size'])} back from disk into "
        f"the object store of node {node_id}: {reply['reason']}; {_store_state(reply)}. "
        f"Tip: get fewer large objects at once and drop the values you no longer need (a "
        f"zero-copy value keeps its object in memory while you hold it), or pass a larger "
        f"object_store_memory to raysim.init().")
