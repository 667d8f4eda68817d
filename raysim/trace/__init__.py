"""raysim's trace: the schema every process writes and the tools that read it back.

``raysim.trace.schema`` defines the format and ``raysim.trace.writer`` is the runtime's
``emit()`` hook; both use only the standard library and orjson, so runtime processes import
them without paying for pandas.
"""
