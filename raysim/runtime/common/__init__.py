"""What every process of a session shares: the wire protocol, ids, config, task specs,
serialization, errors and process helpers (Ray's ``src/ray/common/``)."""
