from selfie_avatar.utils.table import Table, format_table, table_html


def test_format_table_aligns_and_formats():
    rows = [{"name": "full", "params": 1234567, "psnr": 21.123456}, {"name": "no_id_mrf", "psnr": None}]
    text = format_table(rows).splitlines()
    assert text[0].split() == ["name", "params", "psnr"]
    assert "1,234,567" in text[2] and "21.12" in text[2]
    assert text[3].split() == ["no_id_mrf", "-", "-"]
    assert text[2].index("21.12") + len("21.12") == len(text[0])  # numbers right-aligned
    assert format_table(rows, ["psnr"]).splitlines()[0].strip() == "psnr"
    assert format_table([]) == "(no rows)"


def test_html_escapes_and_table_displays_both_ways():
    rows = [{"name": "<b>", "shape": (1, 3)}]
    assert "&lt;b&gt;" in table_html(rows) and "(1, 3)" in table_html(rows)
    t = Table(rows)
    assert str(t) == format_table(rows) and t._repr_html_() == table_html(rows) and len(t) == 1
