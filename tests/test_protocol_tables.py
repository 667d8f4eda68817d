"""Each server's handler table (message kind -> handler) answers exactly the messages the
trace schema says that process receives: the protocol reads like a table of contents, and
a message added to the schema without a handler (or the other way round) fails here.
Nothing is started: the tables are read from the classes."""

import pathlib
from unittest import mock

import pytest

from raysim.runtime.core_worker.core_worker import CoreWorker
from raysim.runtime.gcs.server import GcsServer
from raysim.runtime.raylet.server import Raylet
from raysim.runtime.raylet.zygote import Zygote
from raysim.trace import schema


def _received_by(*processes: str) -> set[str]:
    return {m.name for m in schema.MESSAGES.values()
            if m.name != "reply" and set(m.receiver.split("|")) & set(processes)}


@pytest.mark.parametrize("server, processes, answers_replies", [
    (GcsServer, ("gcs",), False),
    (Raylet, ("raylet",), True),
    (Zygote, ("zygote",), False),
    (CoreWorker, ("driver", "worker"), True),
])
def test_handler_table_matches_the_schema(server, processes, answers_replies):
    table = server._handlers(mock.Mock())
    assert set(table) - {"reply"} == _received_by(*processes)
    assert ("reply" in table) == answers_replies
    assert all(callable(handler) for handler in table.values())


def test_every_handle_method_is_in_its_table():
    """No handler that nothing dispatches to."""
    for server in (GcsServer, Raylet, Zygote):
        table = server._handlers(mock.Mock())
        methods = {name[len("handle_"):] for name in dir(server) if name.startswith("handle_")}
        assert methods <= set(table), server.__name__



def test_trace_format_document_is_the_schema():
    """docs/trace-format.md is what ``python -m raysim.trace.schema`` prints."""
    document = pathlib.Path(__file__).resolve().parent.parent / "docs" / "trace-format.md"
    assert schema.markdown() == document.read_text()


def test_no_event_field_hides_a_common_field():
    """An event's own field named like a common one (node, pid, ...) would be overwritten by
    the writer's: the emitting process's."""
    for kind in schema.EVENTS.values():
        assert not set(kind.fields) & set(schema.COMMON_FIELDS), kind.name
