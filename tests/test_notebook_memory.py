"""notebooks/02_memory.ipynb runs top to bottom on a fresh kernel, and each lesson's outputs
show what the lesson says: one result inline and one stored, two arrays over one address and
read-only, ten copies against one, a captured object still referenced, a spill and a get
that still works."""

import html
import os
import re

import nbformat
from nbclient import NotebookClient

_NOTEBOOK = os.path.join(os.path.dirname(__file__), "..", "notebooks", "02_memory.ipynb")


def _text(output) -> str:
    """What a reader sees of one output: a stream's text, or a view's HTML as plain text."""
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    if "text/html" in data:
        return html.unescape(re.sub(r"<[^>]+>", "", data["text/html"]))
    return data.get("text/plain", "")


def _lessons(notebook) -> dict[str, list]:
    """The code cells under each "## N." heading, by N ("0": the set-up before them)."""
    lessons: dict[str, list] = {"0": []}
    current = "0"
    for cell in notebook.cells:
        heading = re.match(r"## (\d)\.", cell.source) if cell.cell_type == "markdown" else None
        if heading:
            current = heading.group(1)
            lessons[current] = []
        elif cell.cell_type == "code":
            lessons[current].append(cell)
    return lessons


def _between(text: str, start: str, end: str) -> str:
    """The text from the first ``start`` to the first ``end`` after it."""
    begin = text.index(start)
    return text[begin:text.index(end, begin)]


def test_memory_notebook_runs_and_shows_each_lesson(tmp_path):
    notebook = nbformat.read(_NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    errors = [out for cell in code_cells for out in cell.outputs
              if out.get("output_type") == "error"]
    assert not errors, errors
    lessons = _lessons(notebook)
    assert sorted(lessons) == ["0", "1", "2", "3", "4", "5"]
    text = {n: "\n".join(_text(out) for cell in cells for out in cell.outputs)
            for n, cells in lessons.items()}

    # Every view shows itself: each cell that calls one has HTML in its outputs.
    for cell in code_cells:
        if re.search(r"^(trace\.\w+\(|StoredWhere\()", cell.source, re.M):
            assert any("text/html" in out.get("data", {}) for out in cell.outputs), cell.source

    # 1. The 99 KiB result came back inline, the 101 KiB one went to the store.
    one = text["1"]
    assert re.search(r"payload#1\.ret: [\d,]+ B serialized -> inline", one)
    assert re.search(r"payload#2\.ret: [\d,]+ B serialized -> stored", one)
    assert "payload#1.ret (101.4 KB, inline, from the owner's memory)" in one
    assert "payload#2.ret (103.4 KB, deserialized from the store)" in one
    store = _between(one, "object store of node", "in the driver's memory")
    inline = _between(one, "in the driver's memory", "driver holds")
    assert "payload#2.ret" in store and "payload#1.ret" not in store
    assert "payload#1.ret" in inline

    # 2. Two gets, one address; read-only; the arrays pin the object once the ref is gone.
    two = text["2"]
    addresses = re.search(r"a starts at (0x[0-9a-f]+), b at (0x[0-9a-f]+): the same address",
                          two)
    assert addresses and addresses.group(1) == addresses.group(2)
    assert "a.flags.writeable = False" in two
    assert "a[0] = 42.0 raised ValueError" in two
    assert "zero-copy from the store" in two
    assert "PINNED_IN_MEMORY" in two

    # 3. By value: ten objects in the store; put once: one, a tenth of the bytes.
    three = text["3"]
    by_value = re.search(r"by value: (\d+) object\(s\) written to the store, ([\d,]+) B", three)
    put_once = re.search(r"put once: (\d+) object\(s\) written to the store, ([\d,]+) B", three)
    assert by_value and put_once
    assert (by_value.group(1), put_once.group(1)) == ("10", "1")
    assert int(by_value.group(2).replace(",", "")) == \
        10 * int(put_once.group(2).replace(",", ""))
    assert "put#10" in three and "USED_BY_PENDING_TASK" in three

    # 4. The captured table outlives the driver's own ref (the function it pickled holds
    # one, as Ray's does); the one passed as an argument is freed.
    four = text["4"]
    assert "lookup(7) = 7" in four
    at_end = _between(four, "GCS object table", "driver holds")
    assert re.search(r"put#1 .*driver.* LOCAL_REFERENCE", at_end)
    assert "put#2" not in at_end
    assert re.search(r"driver holds \d ObjectRef\(s\):.* put#1 \(LOCAL_REFERENCE\)", four)

    # 5. A full store spills, and the get of the spilled object restores it.
    five = text["5"]
    assert "get(refs[0]) is back: (2500000,) all zeros: True" in five
    assert re.search(r"object_store\.spilled +put#1 ", five)
    assert re.search(r"object_store\.restored +put#1 ", five)
    assert "spilled to disk by node" in five
    assert "store restores put#1 from disk" in five
    assert any("image/png" in out.get("data", {})
               for cell in lessons["5"] for out in cell.outputs)
