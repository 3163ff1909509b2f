"""What the CLI prints of a server's or a model's text cannot drive the terminal."""

from gxft.output import print_table, printable


def test_control_characters_and_undecodable_bytes_print_as_escapes():
    assert printable("a\bb\x1a\x12c\ufffd\x1b[2J\x9b") == "a\\x08b\\x1a\\x12c\\ufffd\\x1b[2J\\x9b"
    assert printable("line one\n\tline two\r") == "line one\\n\\tline two\\r"
    assert printable("line one\n\tline two\r", newlines=True) == "line one\n\tline two\\r"
    assert printable("Grüße, 東京 ✓") == "Grüße, 東京 ✓"


def test_tables_escape_every_cell(capsys):
    print_table([{"id": "file-1", "filename": "a\x08b.jsonl"}], ["id", "filename"])
    assert capsys.readouterr().out.splitlines() == ["ID      FILENAME", "file-1  a\\x08b.jsonl"]
