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

Runs in: the driver and workers.
"""

from __future__ import annotations

import ctypes
import mmap
import weakref
from typing import Any, Callable

from raysim.runtime import serialization


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
