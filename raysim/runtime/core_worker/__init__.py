"""The core worker: what runs inside the driver and inside every worker process (Ray's
``src/ray/core_worker/``).

It submits tasks and actor calls, owns the objects its process creates and counts the
references to them, reads objects from the node's store and runs the tasks a worker is
given."""
