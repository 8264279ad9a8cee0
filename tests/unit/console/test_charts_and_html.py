"""The console's SVG charts and HTML helpers: escaped labels, a labelled value axis, a nice axis end."""

from __future__ import annotations

from decimal import Decimal

from tollway.console.charts import _nice_max, bar_chart
from tollway.console.html import e, table
from tollway.console.queries import source


def test_chart_escapes_labels_and_draws_axis() -> None:
    svg = bar_chart(
        "Spend by key",
        [("<script>alert(1)</script>", Decimal("0.5")), ("b&c", Decimal("0.25"))],
        chart_id="k",
    )
    assert "<script>" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "b&amp;c" in svg
    assert 'role="img"' in svg and '<title id="k-t">Spend by key</title>' in svg
    for tick in ("$0", "$0.125", "$0.25", "$0.375", "$0.5"):
        assert f">{tick}</text>" in svg
    assert svg.count("<rect") == 2


def test_empty_chart_says_so() -> None:
    assert "no usage yet" in bar_chart("Spend", [])


def test_nice_axis_end() -> None:
    assert _nice_max(Decimal("0.000005")) == Decimal("0.000005")
    assert _nice_max(Decimal("3.2")) == Decimal(5)
    assert _nice_max(Decimal("11")) == Decimal(20)
    assert _nice_max(Decimal(0)) == Decimal(1)


def test_table_escapes_cells_but_not_built_buttons() -> None:
    html = table(("Label", "Action"), [("<b>x</b>", "<button>Revoke</button>")], "Keys", raw_cols=1)
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<button>Revoke</button>" in html
    assert e("\"'<>&") == "&quot;&#x27;&lt;&gt;&amp;"


def test_billing_sources_name_each_funding_rail_and_the_operator() -> None:
    assert source("stripe:cs_test_1") == source("stripe:dp_1") == "card (Stripe)"
    assert source("chain:0xabc:3") == "USDC deposit"
    assert source("code:rc_1") == "redemption code"
    assert source("x402:x402_1") == "x402"
    assert source("adj:key-1") == source("my-reference") == source("") == "operator"
