"""Input files of the ``dialog360`` tool: strict wire-shape checks, line numbers, streaming."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from dialog360_async import Contact, ContactsMessage, Location, LocationMessage, Name, Phone
from dialog360_async.cli._input import InputError, MessageSource, load_contacts, parse_contacts

LOCATION = {"latitude": 52.5, "longitude": 13.4}
ADA = {"name": {"formatted_name": "Ada", "first_name": "Ada"}}


def _source(tmp_path: Path, name: str, text: str) -> MessageSource:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return MessageSource(str(path))


def _error(tmp_path: Path, name: str, text: str) -> str:
    with pytest.raises(InputError) as excinfo, _source(tmp_path, name, text) as source:
        source.validate()
    return str(excinfo.value).removeprefix(str(tmp_path) + "/")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ({"to": "+15550001", "location": {**LOCATION, "lat": 1}}, "$.location: unknown key 'lat'"),
        (
            {"to": "+15550001", "location": {"lat": 1, "longitude": 2}},
            "$.location: missing 'latitude' (unknown key 'lat')",
        ),
        ({"to": "+15550001", "location": {"latitude": 1}}, "$.location: missing 'longitude'"),
        ({"to": 15550001, "location": LOCATION}, "$.to: must be a string, got int"),
        ({"to": "+15550001", "location": {**LOCATION, "latitude": "1"}}, "must be a number"),
        ({"to": "+15550001", "location": {**LOCATION, "latitude": True}}, "must be a number"),
        ({"to": "+15550001", "location": {**LOCATION, "latitude": 95}}, "Location.latitude"),
        ({"to": "+15550001", "contacts": ADA}, "$.contacts: must be a list, got dict"),
        ({"to": "+15550001", "contacts": []}, "must hold 1 to 257 contacts, got 0"),
        ({"to": "+15550001", "contacts": [{**ADA, "phones": "+1"}]}, "phones: must be a list"),
        ({"to": "+15550001", "contacts": [{"name": {"formatted_name": "Ada"}}]}, "Name: needs"),
        ({"to": "+15550001", "type": "location", "contacts": [ADA]}, "missing 'location'"),
        ({"to": "+15550001", "type": "image", "image": {}}, '$.type: must be "location", '),
        ({"to": "+15550001", "location": LOCATION, "key": ""}, "$.key: must be a non-empty"),
        ({"to": "+15550001", "location": LOCATION, "extra": 1}, "$: unknown key 'extra'"),
        ([1, 2], "a message must be a JSON object, got list"),
    ],
)
def test_bad_jsonl_line(tmp_path: Path, line: object, error: str) -> None:
    good = json.dumps({"to": "+15550001", "location": LOCATION})
    text = f"{good}\n\n{json.dumps(line)}\n{good}\n"
    message = _error(tmp_path, "in.jsonl", text)
    assert message.startswith("in.jsonl:3: ")
    assert error in message


def test_jsonl_wire_shape_with_extras(tmp_path: Path) -> None:
    text = "\n".join(
        json.dumps(line)
        for line in [
            {"messaging_product": "whatsapp", "to": "+1 555 0001", "location": LOCATION},
            {"to": "15550002", "type": "contacts", "contacts": [ADA], "key": "card-2"},
        ]
    )
    with _source(tmp_path, "in.ndjson", text) as source:
        assert source.validate() == 2
        rows = list(source)
    assert [(r.line, r.key) for r in rows] == [(1, None), (2, "card-2")]
    assert rows[0].message == LocationMessage(to="+15550001", location=Location(**LOCATION))
    ada = Contact(name=Name(formatted_name="Ada", first_name="Ada"))
    assert rows[1].message == ContactsMessage(to="15550002", contacts=[ada])


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "in.csv: no messages"),
        ("\n \n", "in.csv: no messages"),
        ("to,latitude,longitude\n\n", "in.csv: no messages"),
        ("\nto,latitude\n", "in.csv:2: missing column 'longitude'"),
        ("to,latitude\n", "in.csv:1: missing column 'longitude'"),
        ("to,latitude,longitude,zip\n", "in.csv:1: unknown column 'zip'"),
        ("to,to,latitude,longitude\n", "in.csv:1: duplicate column 'to'"),
        ("to,latitude,longitude\n+15550001,1,2\n+15550002,1\n", "in.csv:3: expected 3 fields"),
        ("to,latitude,longitude\n+15550001,1,\n", "in.csv:2: longitude: not a number: ''"),
        ("to,latitude,longitude\n,1,2\n", "in.csv:2: to: must be a phone number"),
        ("to,formatted_name,phone\n+15550001,Ada,+1\n", "in.csv:2: Name: needs at least one"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, error: str) -> None:
    assert _error(tmp_path, "in.csv", text).startswith(error)


def test_csv_rows(tmp_path: Path) -> None:
    text = (
        "\ufeffTo, Latitude ,longitude,name,key\n"  # a BOM and loose headers, as Excel writes
        '+15550001,1.5,-2,"Gate, north side",a\n'
        "\n"
        "+15550002,0,0,,\n"
    )
    with _source(tmp_path, "in.CSV", text) as source:
        assert source.validate() == 2
        rows = list(source)
    assert [(r.line, r.key) for r in rows] == [(2, "a"), (4, None)]
    where = Location(latitude=1.5, longitude=-2, name="Gate, north side")
    assert rows[0].message == LocationMessage(to="+15550001", location=where)
    origin = Location(latitude=0, longitude=0)
    assert rows[1].message == LocationMessage(to="+15550002", location=origin)


def test_csv_contacts(tmp_path: Path) -> None:
    text = "to,formatted_name,last_name,phone\n+15550001,Ada L,Lovelace,+44 20\n"
    with _source(tmp_path, "in.csv", text) as source:
        [row] = source
    card = Contact(
        name=Name(formatted_name="Ada L", last_name="Lovelace"), phones=[Phone(phone="+44 20")]
    )
    assert row.message == ContactsMessage(to="+15550001", contacts=[card])


def test_format_override_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown format"):
        MessageSource(str(tmp_path / "in.txt"))
    path = tmp_path / "in.txt"
    path.write_text("to,latitude,longitude\n+15550001,1,2\n")
    with MessageSource(str(path), "csv") as source:
        assert source.validate() == 1


def test_stdin_is_spooled_for_the_second_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [json.dumps({"to": f"+1555000{i}", "location": LOCATION}) for i in range(3)]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    with MessageSource("-") as source:
        assert source.name == "<stdin>"
        assert source.validate() == 3
        assert [r.message.to for r in source] == ["+15550000", "+15550001", "+15550002"]
        assert [r.line for r in source] == [1, 2, 3]  # readable again


def test_iteration_is_lazy(tmp_path: Path) -> None:
    good = json.dumps({"to": "+15550001", "location": LOCATION})
    with _source(tmp_path, "in.jsonl", f"{good}\n{{bad\n") as source:
        rows = iter(source)
        assert next(rows).line == 1  # the bad line 2 is not read yet
        with pytest.raises(InputError, match=r"in\.jsonl:2: not valid JSON"):
            next(rows)


def test_parse_contacts() -> None:
    assert parse_contacts(ADA) == [Contact(name=Name(formatted_name="Ada", first_name="Ada"))]
    assert len(parse_contacts([ADA, ADA])) == 2
    with pytest.raises(ValueError, match=r"^\$\[1\]: must be an object, got str$"):
        parse_contacts([ADA, "Bob"])
    with pytest.raises(ValueError, match="needs at least one contact"):
        parse_contacts([])
    with pytest.raises(ValueError, match=r"Contact\.birthday"):
        parse_contacts({**ADA, "birthday": "2020-13-01"})


def test_load_contacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"name": {"formatted_name": "Ada",\n "first_name": 1}}')
    with pytest.raises(InputError) as excinfo:
        load_contacts(str(path))
    assert str(excinfo.value) == f"{path}: $.name.first_name: must be a string, got int"
    path.write_text('{"name":\n\n }')
    with pytest.raises(InputError, match=r"c\.json:3: not valid JSON"):
        load_contacts(str(path))
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([ADA])))
    assert len(load_contacts("-")) == 1


@pytest.mark.parametrize(
    ("name", "text"), [("in.jsonl", ""), ("in.jsonl", "\n  \n"), ("in.csv", "")]
)
def test_an_input_without_messages_is_refused(tmp_path: Path, name: str, text: str) -> None:
    assert _error(tmp_path, name, text) == f"{name}: no messages"


def test_a_missing_input_is_one_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as excinfo, MessageSource(str(tmp_path / "gone.jsonl")) as s:
        s.validate()
    assert str(excinfo.value) == f"{tmp_path / 'gone.jsonl'}: no such file"
    with pytest.raises(InputError, match=r"gone\.json: no such file$"):
        load_contacts(str(tmp_path / "gone.json"))
    with (
        pytest.raises(InputError, match="is a directory"),
        MessageSource(str(tmp_path), "csv") as s,
    ):
        s.validate()


@pytest.mark.parametrize("header", ["to,lat,lon", "to,latitude", "to,formatted_name,city"])
def test_a_wrong_csv_header_names_both_layouts(tmp_path: Path, header: str) -> None:
    message = _error(tmp_path, "in.csv", f"{header}\n+15550001,1,2\n")
    assert message.startswith("in.csv:1: ")
    assert "to,latitude,longitude[,name,address]" in message
    assert "to,formatted_name[,first_name,last_name,phone]" in message


def _line(to: str, key: str | None = None, longitude: float = 13.4) -> str:
    data: dict[str, object] = {"to": to, "location": {"latitude": 52.5, "longitude": longitude}}
    if key is not None:
        data["key"] = key
    return json.dumps(data) + "\n"


def test_every_repeated_key_is_reported_with_its_first_line(tmp_path: Path) -> None:
    text = "".join(
        [
            _line("+15550001"),  # 1
            _line("+15550002", key="k"),  # 2
            _line("+15550001", longitude=1),  # 3: same recipient, other content: no repeat
            _line("+15550001"),  # 4: repeats line 1 (default key: recipient + content hash)
            "\n",  # 5
            _line("+15550003", key="k"),  # 6: repeats line 2's explicit key
            _line("+15550001"),  # 7: repeats line 1 again
        ]
    )
    found: list[str] = []
    with pytest.raises(InputError) as excinfo, _source(tmp_path, "in.jsonl", text) as source:
        source.validate(on_duplicate=lambda error: found.append(str(error)))
    where = str(tmp_path / "in.jsonl")
    assert found == [
        f"{where}:4: duplicate of line 1",
        f"{where}:6: duplicate of line 2",
        f"{where}:7: duplicate of line 1",
    ]
    assert str(excinfo.value).startswith(f"{where}: 3 lines repeat an earlier key")
    with pytest.raises(InputError, match=r"in\.jsonl:4: duplicate of line 1$"):
        with _source(tmp_path, "in.jsonl", text) as source:
            source.validate()  # without a callback: the first repeat is the error


def test_an_explicit_key_may_not_take_another_lines_default_key(tmp_path: Path) -> None:
    with _source(tmp_path, "in.jsonl", _line("+15550001")) as source:
        [row] = source
    text = _line("+15550001") + _line("+15550009", key=row.journal_key)
    with pytest.raises(InputError, match=r"in\.jsonl:2: duplicate of line 1$"):
        with _source(tmp_path, "in.jsonl", text) as source:
            source.validate()


def test_csv_and_stdin_repeats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "to,latitude,longitude,key\n+15550001,1,2,a\n+15550002,1,2,\n+15550003,1,2,a\n"
    with pytest.raises(InputError, match=r"in\.csv:4: duplicate of line 2$"):
        with _source(tmp_path, "in.csv", text) as source:
            source.validate()
    monkeypatch.setattr("sys.stdin", io.StringIO(_line("+15550001") * 2))
    with (
        pytest.raises(InputError, match=r"^<stdin>:2: duplicate of line 1$"),
        MessageSource("-") as s,
    ):
        s.validate()
