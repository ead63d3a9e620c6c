"""Message templates: placeholders, checking them against a file's columns, filling them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import templates
from core.errors import BadInput
from core.templates import TemplateError, column_key, placeholders, preview, render, validate

COLUMNS = ["Nama", "No. Telefon", "Bandar", "First Name", "Promo Code", "name", "phone"]


@pytest.mark.parametrize(
    ("column", "key"),
    [
        ("Name", "name"),
        ("  NAME  ", "name"),
        ("First Name", "first_name"),
        ("first_name", "first_name"),
        ("First-Name", "first_name"),
        ("No. Telefon", "no_telefon"),
        ("Phone 1 - Value", "phone_1_value"),
        ("Promo Code (RM)", "promo_code_rm"),
        ("__x__", "x"),
        ("Bandar/Negeri", "bandar_negeri"),
        ("名字", "名字"),
        ("", ""),
        ("!!!", ""),
    ],
)
def test_column_key_rule(column: str, key: str) -> None:
    assert column_key(column) == key


def test_placeholders_in_order_of_first_use_each_once() -> None:
    text = "Hi {Name}! Code {promo code} for {name} in {BANDAR}. {{not_a_placeholder}}"
    assert placeholders(text) == ["name", "promo_code", "bandar"]


def test_a_good_template_has_no_problems() -> None:
    text = "Salam {nama} 👋 *Raya promo* _20% off_ in {Bandar} ~RM100~ ```CODE``` {Promo Code}"
    assert validate(text, COLUMNS) == []
    templates.check(text, COLUMNS)  # does not raise


def test_unknown_placeholder_suggests_close_names() -> None:
    problems = validate("Hi {nmae}, your code is {promocode}", COLUMNS)
    assert problems == [
        "{nmae} is not a column in the file. Did you mean {name} or {nama}?",
        "{promocode} is not a column in the file. Did you mean {promo_code}?",
    ]


def test_unknown_placeholder_with_nothing_close_lists_the_columns() -> None:
    problems = validate("Hi {birthday}", ["Name", "Phone"])
    assert problems == [
        "{birthday} is not a column in the file. Columns you can use: {name}, {phone}"
    ]


def test_unknown_placeholder_is_reported_once_as_first_written() -> None:
    problems = validate("{Nmae} {nmae} {NMAE}", ["Name"])
    assert problems == ["{Nmae} is not a column in the file. Did you mean {name}?"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Hi {name", "a lone { near"),
        ("Hi name}", "a lone } near"),
        ("Price: {{RM10}", "a lone } near"),
        ("Hi {na{me}", "a lone { near"),
        ("Hi {}", "an empty placeholder {}"),
        ("Hi {  }", "an empty placeholder {}"),
    ],
)
def test_brace_mistakes_are_problems(text: str, fragment: str) -> None:
    problems = validate(text, COLUMNS)
    assert any(fragment in p for p in problems), problems


def test_check_raises_with_every_problem() -> None:
    with pytest.raises(TemplateError) as caught:
        templates.check("Hi {nmae} {", ["Name"])
    assert isinstance(caught.value, BadInput)
    assert len(caught.value.problems) == 2
    assert "Did you mean {name}?" in caught.value.message
    assert "a lone {" in caught.value.message


def test_render_fills_values_case_and_spacing_blind() -> None:
    rendered = render(
        "Hi {Name}, your code is {promo code} 🎉",
        {"name": "Siti", "Promo Code": "RAYA20"},
    )
    assert rendered.text == "Hi Siti, your code is RAYA20 🎉"
    assert rendered.ok
    assert rendered.problems == ()


def test_render_keeps_whatsapp_formatting_emoji_and_line_breaks() -> None:
    text = "*Salam {nama}!* 🌙\n_Jualan Raya_ ~RM200~ *RM99*\n```KOD: {kod}```\n🎁🎉"
    rendered = render(text, {"nama": "Aisyah", "kod": "RAYA99"})
    assert rendered.text == "*Salam Aisyah!* 🌙\n_Jualan Raya_ ~RM200~ *RM99*\n```KOD: RAYA99```\n🎁🎉"


def test_escaped_braces_are_literal() -> None:
    rendered = render("{{name}} is {name}; JSON {{\"a\": 1}}", {"name": "Ali"})
    assert rendered.text == '{name} is Ali; JSON {"a": 1}'
    assert rendered.ok


def test_values_are_not_read_as_placeholders() -> None:
    rendered = render("Hi {name}", {"name": "{bandar} }{"})
    assert rendered.text == "Hi {bandar} }{"
    assert rendered.ok


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_an_empty_value_is_a_problem_for_that_row(empty: str | None) -> None:
    rendered = render("Hi {name}, see you in {bandar}", {"name": empty, "bandar": "Ipoh"})
    assert rendered.problems == ("{name} is empty for this row",)
    assert not rendered.ok
    assert rendered.text.endswith("see you in Ipoh")


def test_a_missing_value_is_a_problem() -> None:
    rendered = render("Hi {name} from {city}", {"name": "Ali"})
    assert rendered.text == "Hi Ali from "
    assert rendered.problems == ("{city} is not a column in the file",)


def test_a_repeated_empty_placeholder_is_reported_once() -> None:
    rendered = render("{name} {name} {Name}", {"name": ""})
    assert rendered.problems == ("{name} is empty for this row", "{Name} is empty for this row")


def test_render_reports_syntax_problems_too() -> None:
    rendered = render("Hi {name", {"name": "Ali"})
    assert rendered.text == "Hi {name"
    assert not rendered.ok


def test_render_accepts_a_parsed_template() -> None:
    parsed = templates.parse("Hi {name}")
    assert [render(parsed, {"name": n}).text for n in ("A", "B")] == ["Hi A", "Hi B"]


def test_preview_renders_the_first_rows_only() -> None:
    rows = [{"name": "Ali"}, {"name": ""}, {"name": "Siti"}, {"name": "Wong"}]
    shown = preview("Hi {name}!", rows, limit=3)
    assert [r.text for r in shown] == ["Hi Ali!", "Hi !", "Hi Siti!"]
    assert [r.ok for r in shown] == [True, False, True]


def test_preview_of_fewer_rows_than_the_limit() -> None:
    assert [r.text for r in preview("{a}", iter([{"a": "1"}]))] == ["1"]
    assert preview("{a}", []) == []


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=200))
def test_text_without_braces_comes_out_unchanged(text: str) -> None:
    rendered = render(text, {})
    assert rendered.text == text
    assert rendered.ok
    assert validate(text, []) == []


@given(st.text(max_size=200))
def test_escaped_text_comes_out_as_written(text: str) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    rendered = render(escaped, {})
    assert rendered.text == text
    assert rendered.ok


@given(st.text(max_size=120), st.dictionaries(st.text(max_size=10), st.text(max_size=10)))
@settings(max_examples=300)
def test_any_template_and_values_give_a_result(text: str, values: dict[str, str]) -> None:
    rendered = render(text, values)
    assert isinstance(rendered.text, str)
    assert isinstance(validate(text, values.keys()), list)
    for key in placeholders(text):  # keys come out normalised, never empty
        assert key
        assert column_key(key) == key


def test_a_column_in_double_braces_is_a_problem_not_a_literal() -> None:
    """WhatsApp Business templates write {{1}}: "{{name}}" would have sent "{name}" to everyone."""
    [problem] = validate("Hi {{name}}, {{Not a column}} {{{name}}}", ["Name"])
    assert problem.startswith("{{name}} would send “{name}” as typed")
    assert render("Hi {{x}}", {}).text == "Hi {x}"  # braces around anything else stay as typed
