"""`trader sweep` refuses a bad space before any work: exit 2, one line naming the
parameter, no store written, no cluster or Prefect server started."""

from __future__ import annotations

import textwrap

import pytest

from trader.cli import main

pytestmark = [pytest.mark.realdata]

HEAD = """
window: {from: 2025-09-01, to: 2025-09-08}
markets: [BTC, ETH]
variants:
  - name: baseline
    overrides: {}
"""


def refuse(tmp_path, capsys, real_data_dir, variant: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(variant), "  "))
    db = tmp_path / "sweeps.duckdb"
    code = main(["sweep", str(path), "--data-dir", str(real_data_dir), "--db", str(db)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert not db.exists()  # nothing started, nothing half-written
    return err


def test_an_unknown_parameter_is_named_with_the_closest_real_one(tmp_path, capsys, real_data_dir):
    err = refuse(tmp_path, capsys, real_data_dir, """
        - name: typo
          overrides: {strategy.ote_tolerence: 0.05}
    """)
    assert "unknown parameter 'strategy.ote_tolerence'" in err
    assert "strategy.ote_tolerance" in err  # the suggestion


def test_a_value_the_config_model_refuses_names_the_parameter(tmp_path, capsys, real_data_dir):
    err = refuse(tmp_path, capsys, real_data_dir, """
        - name: too-wide
          overrides: {strategy.ote_tolerance: 0.5}
    """)
    assert "strategy.ote_tolerance = 0.5 refused in variant 'too-wide'" in err
    assert "less than or equal to 0.3" in err


def test_an_inverted_safety_relation_in_a_variant_names_it(tmp_path, capsys, real_data_dir):
    err = refuse(tmp_path, capsys, real_data_dir, """
        - name: tight
          overrides: {safety.max_margin_utilization_pct: 0.85, strategy.momentum: true}
    """)
    assert "safety.max_margin_utilization_pct = 0.85 refused in variant 'tight'" in err
    assert "must be < max_margin_utilization_pct" in err
